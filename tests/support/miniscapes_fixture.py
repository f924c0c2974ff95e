"""Writes a tiny miniscapes dataset in the course's exact on-disk layout (for tests)."""

from pathlib import Path

import numpy as np
from PIL import Image

FOLDERS = {'train': 'train', 'validation': 'val', 'test': 'test'}


def write_miniscapes(root, *, splits=None, height=32, width=64, seed=0, labeled_test=False) -> Path:
  """splits: TFDS split → sample count (default train 4, validation 2, test 2).

  Depth values cover invalid (0) and the whole 1..255 code range; labels all 19 ids and 255.
  """
  root = Path(root)
  rng = np.random.default_rng(seed)
  for split, count in (splits or {'train': 4, 'validation': 2, 'test': 2}).items():
    folder = root / FOLDERS[split]
    labeled = split != 'test' or labeled_test
    for sub in ('rgb', 'semseg', 'depth') if labeled else ('rgb',):
      (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
      image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
      Image.fromarray(image).save(folder / 'rgb' / f'{i}.jpg', quality=95)
      if labeled:
        labels = rng.choice(np.r_[0:19, 255], (height, width)).astype(np.uint8)
        Image.fromarray(labels).save(folder / 'semseg' / f'{i}.png')
        depth = rng.integers(0, 256, (height, width), dtype=np.uint8)
        Image.fromarray(depth).save(folder / 'depth' / f'{i}.png')
  return root


def read_depth_codes(root, split: str, index: int) -> np.ndarray:
  return np.asarray(Image.open(Path(root) / FOLDERS[split] / 'depth' / f'{index}.png'))


def expected_depth(codes: np.ndarray) -> np.ndarray:
  """The course's 8-bit inverse-depth decoding (the README's miniscapes row), written out
  independently of miniscapes.decode_depth."""
  v = codes.astype(np.float64)
  disparity = (1 / 4 - 1 / 300) * (v - 1) / 254 + 1 / 300
  return np.where(v == 0, 0.0, 1 / disparity)
