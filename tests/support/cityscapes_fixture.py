"""A tiny Cityscapes dataset in the official layout, for loader and end-to-end tests.

`write_cityscapes(root)` writes every requested split as the four *_trainvaltest.zip packages
unpack it (leftImg8bit/, gtFine/, disparity/, camera/ with <split>/<city>/<stem>_... files), with
random content that is still valid: RGB images, label ids drawn from cityscapesScripts' table
(each id present, the unlabeled ones included), 16-bit disparity with invalid p = 0 pixels (the
top row) and p = 1 pixels (half the bottom row), and per-city camera files.

Import it as `import cityscapes_fixture` (tests/support is on sys.path: tests/conftest.py).
"""

import json
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers import labels as cs_labels
from PIL import Image

FOLDERS = {'train': 'train', 'validation': 'val', 'test': 'test'}
# Two real cities per split; sample i lives in CITIES[split][i % 2].
CITIES = {
  'train': ('bochum', 'aachen'),
  'validation': ('lindau', 'frankfurt'),
  'test': ('bielefeld', 'berlin'),
}
SUFFIXES = {
  'leftImg8bit': '_leftImg8bit.png',
  'gtFine': '_gtFine_labelIds.png',
  'disparity': '_disparity.png',
  'camera': '_camera.json',
}
BASELINE_M, FX_PX = 0.209313, 2262.52  # the typical Cityscapes stereo rig
# Label ids a gtFine *_labelIds.png can hold, read from the table (not retyped).
LABEL_IDS = np.array(sorted(x.id for x in cs_labels.labels if 0 <= x.id < 256), np.uint8)


def camera(city: str) -> dict:
  """A camera file as Cityscapes ships it; baseline and fx vary slightly per city."""
  k = sum(CITIES.values(), ()).index(city)
  return {
    'extrinsic': {
      'baseline': BASELINE_M + 0.0005 * k,
      'pitch': 0.038,
      'roll': 0.0,
      'x': 1.7,
      'y': 0.1,
      'yaw': -0.0195,
      'z': 1.22,
    },
    'intrinsic': {'fx': FX_PX + 3.5 * k, 'fy': FX_PX + 3.5 * k + 2.8, 'u0': 1096.98, 'v0': 513.137},
  }


def stem(split: str, i: int) -> tuple[str, str]:
  """(city, stem) of sample i of a split, e.g. ('aachen', 'aachen_000001_000019')."""
  city = CITIES[split][i % 2]
  return city, f'{city}_{i:06d}_000019'


def _arrays(rng: np.random.Generator, height: int, width: int):
  image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
  label_ids = rng.choice(LABEL_IDS, (height, width))
  label_ids.flat[: LABEL_IDS.size] = LABEL_IDS[: height * width]  # every id at least once
  # Disparities of 3..156 px: depths of about 3..150 m with this rig, as in street scenes.
  disparity = rng.integers(800, 40_000, (height, width), dtype=np.uint16)
  disparity[0] = 0  # invalid
  disparity[-1, : width // 2] = 1  # zero disparity: infinitely far, also invalid
  return image, label_ids, disparity


DEFAULT_SPLITS = {'train': 3, 'validation': 2}


def write_cityscapes(root, *, splits=None, height=32, width=64, seed=0):
  """Writes `splits` ({TFDS split: number of samples}; default 3 train, 2 validation) under
  `root`; returns root as a Path."""
  root = Path(root)
  splits = DEFAULT_SPLITS if splits is None else splits
  for split, count in splits.items():
    folder = FOLDERS[split]
    for i in range(count):
      city, name = stem(split, i)
      rng = np.random.default_rng([seed, list(FOLDERS).index(split), i])
      image, label_ids, disparity = _arrays(rng, height, width)
      files = {
        package: root / package / folder / city / f'{name}{suffix}'
        for package, suffix in SUFFIXES.items()
      }
      for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
      Image.fromarray(image).save(files['leftImg8bit'])
      Image.fromarray(label_ids).save(files['gtFine'])
      Image.fromarray(disparity).save(files['disparity'])
      files['camera'].write_text(json.dumps(camera(city), indent=4))
  return root
