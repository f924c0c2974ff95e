"""The sample and batch contract: the one description every data module and step refers to.

Sample: a dict of numpy values, as layouts load it, builders store it (`tfds_records`),
`pipeline.data_source` returns it and `augment` transforms it:
  image   uint8   [H, W, 3]  RGB
  semseg  uint8   [H, W]     class ids 0..C-1 (train ids for Cityscapes-like data);
                             IGNORE_LABEL = unlabelled
  depth   float32 [H, W]     metres, 0 = invalid; valid depth lies in DEPTH_RANGE_M
  index   int64   []         position of the sample in its split (-1 on padding)
Transforms change image, semseg and depth together and pass any other key through untouched.

Batch: `to_batch` of each sample, stacked on a leading axis B (train and eval alike):
  image uint8 [B, h, w, 3], semseg int32 [B, h, w], depth float32 [B, h, w], index int64 [B];
eval batches add mask bool [B], False on padding rows.

Padding (crop padding in augment, the last eval batch): FILL, i.e. image 0, semseg
IGNORE_LABEL, depth 0 (invalid), index -1; so a metric that forgets the mask still ignores it.

DEVICE_KEYS: the batch entries the jitted steps read; the others (index) stay on the host.

Resizing (`resize`, the one rule for train-time scaling and build-time resizing): image
bilinear; semseg and depth nearest neighbour sampling pixel centres, so no label or depth value
is invented and depth values are never rescaled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

Sample = dict[str, Any]

# The tasks: each names the sample array that is its target (models, losses, metrics, configs).
TASKS = ('semseg', 'depth')
IGNORE_LABEL = 255
# Metres. Metrics clamp predicted depth to it (the DLAD template); the miniscapes 8-bit inverse
# depth encodes exactly this range.
DEPTH_RANGE_M = (4.0, 300.0)
# dtype and the shape after [H, W] of each sample array (what builders check renderers against).
ARRAYS = {'image': (np.uint8, (3,)), 'semseg': (np.uint8, ()), 'depth': (np.float32, ())}
FILL = {'image': 0, 'semseg': IGNORE_LABEL, 'depth': 0.0, 'index': -1}
DEVICE_KEYS = ('image', 'semseg', 'depth', 'mask')
SPATIAL_KEYS = ('image', 'semseg', 'depth')  # the arrays geometric transforms change together


def to_batch(sample: Sample) -> Sample:
  """A sample's entries in their batch dtypes (semseg widened to int32); other keys dropped."""
  return {
    'image': sample['image'].astype(np.uint8, copy=False),
    'semseg': sample['semseg'].astype(np.int32),
    'depth': sample['depth'].astype(np.float32, copy=False),
    'index': np.int64(sample['index']),
  }


def padding_like(sample: Sample) -> Sample:
  """A padding sample (FILL everywhere) with the shapes and dtypes of `sample`."""
  padding = {key: np.full_like(sample[key], FILL[key]) for key in SPATIAL_KEYS}
  return {**padding, 'index': np.int64(FILL['index'])}


def _nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Nearest-neighbour resize of the first two axes, sampling pixel centres.

  Not Pillow's NEAREST: for non-integer ratios Pillow picks a neighbouring row or column on a
  few percent of pixels (float rounding), and augmentation has always used this rule.
  """
  (h, w), (nh, nw) = array.shape[:2], size
  rows = np.minimum(((np.arange(nh) + 0.5) * h / nh).astype(np.int64), h - 1)
  cols = np.minimum(((np.arange(nw) + 0.5) * w / nw).astype(np.int64), w - 1)
  return array[rows[:, None], cols[None, :]]


def resize(sample: Sample, size: tuple[int, int]) -> Sample:
  """The sample at size=(h, w): image bilinear (Pillow), semseg and depth nearest."""
  h, w = size
  out = dict(sample)
  image = Image.fromarray(sample['image'])
  out['image'] = np.asarray(image.resize((w, h), Image.Resampling.BILINEAR))
  out['semseg'] = _nearest(sample['semseg'], size)
  out['depth'] = _nearest(sample['depth'], size)
  return out
