"""The official Cityscapes layout, as unpacked from the four *_trainvaltest.zip packages.

  <root>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png   RGB; <stem> = <city>_<seq>_<frame>
  <root>/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png    8-bit label ids (cityscapesScripts)
  <root>/disparity/<split>/<city>/<stem>_disparity.png       16-bit: p = 0 invalid, else
                                                             disparity d = (p − 1)/256 px
  <root>/camera/<split>/<city>/<stem>_camera.json            extrinsic.baseline (m),
                                                             intrinsic.fx (px)
with depth = baseline·fx/d metres (d ≤ 0 → 0 = invalid) and label ids mapped to train ids through
cityscapesScripts' own table. <split> is train, val or test; a split with neither gtFine/ nor
disparity/ is unlabeled, one with either needs all three label packages. The TFDS split
`validation` is the folder `val`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from mtl_jax.data import file_checks, labels, layouts
from mtl_jax.data.file_checks import BadFile

NAME = 'cityscapes'
INSTRUCTIONS = (
  'Expected the official Cityscapes layout <manual_dir>/leftImg8bit/{train,val,test}/<city>/'
  '<stem>_leftImg8bit.png (<stem> = <city>_<seq>_<frame>) with <manual_dir>/gtFine/<split>/'
  '<city>/<stem>_gtFine_labelIds.png, disparity/<split>/<city>/<stem>_disparity.png and '
  'camera/<split>/<city>/<stem>_camera.json alongside (test may lack gtFine/ and disparity/), '
  'as unpacked into one directory from '
  'leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip, disparity_trainvaltest.zip and '
  'camera_trainvaltest.zip, which https://www.cityscapes-dataset.com offers for download after '
  'registration.'
)
FOLDERS = {'train': 'train', 'validation': 'val', 'test': 'test'}  # TFDS split → folder
REQUIRED_SPLITS = ('train', 'validation')

IMAGE_SUFFIX = '_leftImg8bit.png'
# package folder → file suffix of a labeled split's counterpart files
COUNTERPARTS = {
  'gtFine': '_gtFine_labelIds.png',
  'disparity': '_disparity.png',
  'camera': '_camera.json',
}
# Pillow opens 16-bit greyscale PNGs as 'I;16' (recent) or 'I' (older versions).
DISPARITY_MODES = frozenset({'I;16', 'I'})
DISPARITY_SCALE = 256  # PNG value p encodes disparity (p − 1)/256 pixels
_MAX_CAMERA_BYTES = 1 << 20  # real camera files have a few hundred bytes

_TRAIN_ID = labels.label_id_to_train_id()
_KNOWN_ID = np.isin(np.arange(256), labels.label_ids())


def decode_depth(values: np.ndarray, baseline: float, fx: float) -> np.ndarray:
  """16-bit disparity PNG values → float32 depth in metres; p = 0 and p = 1 (d = 0) → 0."""
  d = (np.asarray(values, np.float64) - 1) / DISPARITY_SCALE
  valid = d > 0
  return np.where(valid, baseline * fx / np.where(valid, d, 1), 0).astype(np.float32)


def to_train_ids(path: Path, label_ids: np.ndarray) -> np.ndarray:
  """gtFine label ids → train ids (255 = ignore); ids cityscapesScripts lacks are a BadFile."""
  ids = np.unique(label_ids)
  unknown = ids[~_KNOWN_ID[ids]]
  if unknown.size:
    shown = ', '.join(str(i) for i in unknown[:8]) + (' …' if unknown.size > 8 else '')
    known = labels.label_ids()
    raise BadFile(
      path,
      f'label ids {shown} are not Cityscapes label ids (cityscapesScripts '
      f'defines {known[0]}..{known[-1]})',
    )
  return _TRAIN_ID[label_ids]


def _camera_value(camera: object, section: str, key: str, unit: str, path: Path) -> float:
  """camera[section][key] as a positive finite number, else a BadFile naming the key."""
  part = camera.get(section) if isinstance(camera, dict) else None
  value = part.get(key) if isinstance(part, dict) else None
  if value is None:
    raise BadFile(path, f'camera JSON lacks {section}.{key}')
  # bool is an int to Python, but `true` is no baseline.
  if (
    isinstance(value, bool)
    or not isinstance(value, (int, float))
    or not math.isfinite(value)
    or value <= 0
  ):
    raise BadFile(
      path, f'camera {section}.{key} must be a positive number of {unit}, got {value!r}'
    )
  return float(value)


def read_camera(path: Path) -> tuple[float, float]:
  """(baseline in metres, fx in pixels) from a camera/*.json file."""
  try:
    with open(path, 'rb') as f:
      data = f.read(_MAX_CAMERA_BYTES + 1)
  except OSError as e:
    raise BadFile(path, f'cannot read ({e.strerror or e})') from None
  if not data:
    raise BadFile(path, 'empty file (0 bytes)')
  if len(data) > _MAX_CAMERA_BYTES:
    raise BadFile(path, f'over {_MAX_CAMERA_BYTES} bytes, too large for a camera JSON file')
  try:
    camera = json.loads(data)
  except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, deep nesting
    raise BadFile(path, f'not a camera JSON file ({e})') from None
  return (
    _camera_value(camera, 'extrinsic', 'baseline', 'metres', path),
    _camera_value(camera, 'intrinsic', 'fx', 'pixels', path),
  )


def _labeled(root: Path, folder: str) -> bool:
  """Whether the split has labels; a labeled split needs every label package's folder."""
  if not any((root / package / folder).is_dir() for package in ('gtFine', 'disparity')):
    return False
  for package in COUNTERPARTS:
    # One missing package would make every sample bad: say so once, as a setup mistake.
    if not (root / package / folder).is_dir():
      raise layouts.missing(NAME, INSTRUCTIONS, root / package / folder)
  return True


def _image_stems(images: Path) -> list[tuple[str, str]]:
  """(city, stem) of every images/<city>/<stem>_leftImg8bit.png, sorted."""
  # Dot files are skipped: unzipping on macOS leaves ._<name> resource forks beside each image.
  return sorted(
    (city.name, path.name.removesuffix(IMAGE_SUFFIX))
    for city in images.iterdir()
    if city.is_dir() and not city.name.startswith('.')
    for path in city.iterdir()
    if path.name.endswith(IMAGE_SUFFIX) and not path.name.startswith('.')
  )


def _sample_files(
  root: Path, folder: str, city: str, stem: str, labeled: bool
) -> layouts.SampleFiles:
  image = root / 'leftImg8bit' / folder / city / f'{stem}{IMAGE_SUFFIX}'
  if not labeled:
    return layouts.SampleFiles(root=root, image=image)
  gt_fine, disparity, camera = (
    root / package / folder / city / f'{stem}{suffix}' for package, suffix in COUNTERPARTS.items()
  )
  return layouts.SampleFiles(
    root=root, image=image, semseg=gt_fine, depth=disparity, extra={'camera': camera}
  )


class_names = layouts.cityscapes_class_names


def find_samples(root: Path) -> dict[str, list[layouts.SampleFiles]]:
  root = Path(root)
  samples = {}
  for split, folder, images in layouts.present_splits(
    root, NAME, INSTRUCTIONS, FOLDERS, REQUIRED_SPLITS, lambda f: root / 'leftImg8bit' / f
  ):
    labeled = _labeled(root, folder)
    samples[split] = [
      _sample_files(root, folder, city, stem, labeled) for city, stem in _image_stems(images)
    ]
    if not samples[split]:
      raise layouts.missing(NAME, INSTRUCTIONS, images / '<city>' / f'*{IMAGE_SUFFIX}')
  return samples


IMAGE = layouts.FileKind('leftImg8bit', frozenset({'RGB'}), 'RGB 8-bit PNG')
LABEL_IDS = layouts.FileKind('gtFine labelIds', frozenset({'L', 'P'}), '8-bit label-id PNG')
DISPARITY = layouts.FileKind('disparity', DISPARITY_MODES, '16-bit greyscale disparity PNG')


def load_sample(
  files: layouts.SampleFiles,
  *,
  max_pixels: int = file_checks.DEFAULT_MAX_PIXELS,
  size: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
  raw = layouts.read_sample(
    files, image=IMAGE, semseg=LABEL_IDS, depth=DISPARITY, max_pixels=max_pixels, size=size
  )
  if raw.semseg is None:
    return layouts.unlabeled(raw.image)
  camera_path = file_checks.require(files.extra.get('camera'), 'camera', files.image)
  baseline, fx = read_camera(camera_path)
  return {
    'image': raw.image,
    'semseg': to_train_ids(raw.semseg_path, raw.semseg),
    'depth': decode_depth(raw.depth, baseline, fx),
  }
