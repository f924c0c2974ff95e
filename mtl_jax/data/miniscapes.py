"""The course's miniscapes layout (a Synscapes subset), read and written.

  <root>/<split>/rgb/<i>.jpg      RGB
  <root>/<split>/semseg/<i>.png   8-bit train ids 0..18, 255 = ignore
  <root>/<split>/depth/<i>.png    8-bit inverse depth: v = 0 invalid, else
                                  disparity = (1/lo − 1/hi)·(v − 1)/254 + 1/hi, depth =
                                  1/disparity, with (lo, hi) = `sample.DEPTH_RANGE_M` metres
with <split> in train, val, test (test may come without semseg/ and depth/). The TFDS split
`validation` is the folder `val`. `encode_depth` is the inverse of `decode_depth`, used to export
datasets and predictions in this layout (the course's submission encoding).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtl_jax.data import file_checks, layouts
from mtl_jax.data.labels import NUM_CLASSES
from mtl_jax.data.sample import DEPTH_RANGE_M, IGNORE_LABEL

NAME = 'miniscapes'
INSTRUCTIONS = (
  'Expected the miniscapes layout <manual_dir>/{train,val,test}/{rgb/<i>.jpg, '
  'semseg/<i>.png, depth/<i>.png} (test may lack semseg/ and depth/), as '
  "unpacked from the course's miniscapes download."
)
FOLDERS = {'train': 'train', 'validation': 'val', 'test': 'test'}  # TFDS split → folder
REQUIRED_SPLITS = ('train', 'validation')

MIN_DEPTH_M, MAX_DEPTH_M = DEPTH_RANGE_M
_DISPARITY_STEP = (1 / MIN_DEPTH_M - 1 / MAX_DEPTH_M) / 254


def decode_depth(values: np.ndarray) -> np.ndarray:
  """8-bit inverse depth → float32 metres (0 stays 0 = invalid)."""
  v = np.asarray(values).astype(np.float64)
  disparity = _DISPARITY_STEP * (v - 1) + 1 / MAX_DEPTH_M
  return np.where(v > 0, 1 / disparity, 0).astype(np.float32)


def encode_depth(depth: np.ndarray) -> np.ndarray:
  """float metres → 8-bit inverse depth; ≤ 0 or non-finite → 0, others clipped to the range."""
  d = np.asarray(depth, np.float64)
  valid = np.isfinite(d) & (d > 0)
  clipped = np.clip(np.where(valid, d, MAX_DEPTH_M), MIN_DEPTH_M, MAX_DEPTH_M)
  v = np.rint((1 / clipped - 1 / MAX_DEPTH_M) / _DISPARITY_STEP) + 1
  return np.where(valid, v, 0).astype(np.uint8)


class_names = layouts.cityscapes_class_names


def find_samples(root: Path) -> dict[str, list[layouts.SampleFiles]]:
  root = Path(root)
  samples = {}
  for split, folder, rgb in layouts.present_splits(
    root, NAME, INSTRUCTIONS, FOLDERS, REQUIRED_SPLITS, lambda f: root / f / 'rgb'
  ):
    labeled = (root / folder / 'semseg').is_dir() or (root / folder / 'depth').is_dir()
    samples[split] = [
      layouts.SampleFiles(
        root=root,
        image=image,
        semseg=root / folder / 'semseg' / f'{image.stem}.png' if labeled else None,
        depth=root / folder / 'depth' / f'{image.stem}.png' if labeled else None,
      )
      for image in layouts.sorted_files(rgb, ('.jpg', '.jpeg'))
    ]
    if not samples[split]:
      raise layouts.missing(NAME, INSTRUCTIONS, rgb / '*.jpg')
  return samples


IMAGE = layouts.FileKind('rgb', frozenset({'RGB'}), 'RGB JPEG')
SEMSEG = layouts.FileKind('semseg', frozenset({'L', 'P'}), '8-bit train-id PNG')
DEPTH = layouts.FileKind('depth', frozenset({'L'}), '8-bit greyscale inverse-depth PNG')


def load_sample(
  files: layouts.SampleFiles,
  *,
  max_pixels: int = file_checks.DEFAULT_MAX_PIXELS,
  size: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
  raw = layouts.read_sample(
    files, image=IMAGE, semseg=SEMSEG, depth=DEPTH, max_pixels=max_pixels, size=size
  )
  if raw.semseg is None:
    return layouts.unlabeled(raw.image)
  file_checks.check_label_ids(raw.semseg_path, raw.semseg, NUM_CLASSES, IGNORE_LABEL)
  return {'image': raw.image, 'semseg': raw.semseg, 'depth': decode_depth(raw.depth)}
