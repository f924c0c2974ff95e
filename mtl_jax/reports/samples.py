"""Sample grids: a fixed few images of the eval split beside a model's predictions, drawn the
same way for the report's page and for TensorBoard at every eval during training.

The fixed set is the first NUM_IMAGES samples of the split, read from its source by index, so
drawing it never touches the train iterator (a resumed run stays bit-identical) and every
checkpoint of every run is drawn on the same images. A grid has one row per image and the
columns COLUMNS:
  input, semseg truth, semseg prediction   the dataset's class colours (`registry.class_colors`)
  depth truth, depth prediction            DEPTH_COLORMAP over DEPTH_RANGE_M on a log scale (near
                                           is yellow, far is purple), predictions clamped to
                                           that range as the metrics clamp them
  depth error                              |p − g| / g from 0 to ERROR_MAX (ERROR_COLORMAP)
Black marks pixels without ground truth (ignored labels, no depth); a task the model does not
predict leaves its prediction column grey.
"""

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh
from matplotlib import colormaps

from mtl_jax import parallel
from mtl_jax.data.sample import DEPTH_RANGE_M, SPATIAL_KEYS

NUM_IMAGES = 4
COLUMNS = (
  'input',
  'semseg truth',
  'semseg prediction',
  'depth truth',
  'depth prediction',
  'depth error',
)
DEPTH_COLORMAP = 'viridis_r'  # has no black, which marks missing depth
ERROR_COLORMAP = 'YlOrRd'  # pale yellow (exact) to dark red; no black either
ERROR_MAX = 0.5  # the relative error at which the error map saturates
GAP_PX = 2  # white space between tiles
NOT_PREDICTED_GREY = 128

Images = dict[str, np.ndarray]  # SPATIAL_KEYS stacked: image [N,H,W,3], semseg, depth [N,H,W]


def fixed_samples(source: Sequence[dict], count: int = NUM_IMAGES) -> Images:
  """The first `count` samples of `source` (all of them if it has fewer), stacked."""
  samples = [source[i] for i in range(min(count, len(source)))]
  return {key: np.stack([s[key] for s in samples]) for key in SPATIAL_KEYS}


def predict(predict_fn: Callable, state, images: np.ndarray, mesh: Mesh) -> dict[str, np.ndarray]:
  """predict_fn(state, images) on the host. The images go in replicated, not sharded: any
  number of them fits any number of devices, and every process of a multi-host run reads the
  same few."""
  return jax.device_get(predict_fn(state, parallel.replicate(images, mesh)))


def _palette(colors: Sequence[tuple[int, int, int]]) -> np.ndarray:
  """[256, 3] uint8 indexed by class id; ids without a colour (the ignore label) black."""
  table = np.zeros((256, 3), np.uint8)
  table[: len(colors)] = colors
  return table


def colorize_semseg(labels: np.ndarray, colors: Sequence[tuple[int, int, int]]) -> np.ndarray:
  return _palette(colors)[labels.astype(np.int64)]


def _apply_colormap(name: str, t: np.ndarray, valid: np.ndarray) -> np.ndarray:
  """t in [0, 1] through colormap `name` as uint8 RGB; black where not `valid`."""
  rgb = (colormaps[name](np.clip(t, 0.0, 1.0))[..., :3] * 255).round().astype(np.uint8)
  rgb[~valid] = 0
  return rgb


def colorize_depth(depth: np.ndarray) -> np.ndarray:
  """Metres → RGB on a log scale over DEPTH_RANGE_M (streets span 4 m to a few hundred: a
  linear scale would leave everything but the sky the same colour); 0 (no depth) black."""
  low, high = DEPTH_RANGE_M
  t = np.log(np.clip(depth, low, high) / low) / np.log(high / low)
  return _apply_colormap(DEPTH_COLORMAP, t, depth > 0)


def relative_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
  """|p − g| / g with p clamped to DEPTH_RANGE_M as the metrics clamp it; 0 where g = 0."""
  valid = gt > 0
  pred = np.clip(pred, *DEPTH_RANGE_M)
  return np.where(valid, np.abs(pred - gt) / np.where(valid, gt, 1.0), 0.0)


def colorize_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
  return _apply_colormap(ERROR_COLORMAP, relative_error(pred, gt) / ERROR_MAX, gt > 0)


def _row(i: int, images: Images, preds: dict, colors) -> list[np.ndarray]:
  """The tiles of image i, in COLUMNS order."""
  grey = np.full_like(images['image'][i], NOT_PREDICTED_GREY)
  semseg = preds.get('semseg')
  depth = preds.get('depth')
  gt_depth = images['depth'][i]
  return [
    images['image'][i],
    colorize_semseg(images['semseg'][i], colors),
    grey if semseg is None else colorize_semseg(semseg[i], colors),
    colorize_depth(gt_depth),
    grey if depth is None else colorize_depth(depth[i]),
    grey if depth is None else colorize_error(depth[i], gt_depth),
  ]


def join_tiles(tiles: list[np.ndarray], axis: int) -> np.ndarray:
  """Tiles side by side (axis 1) or stacked (axis 0), GAP_PX of white between them."""
  shape = list(tiles[0].shape)
  shape[axis] = GAP_PX
  gap = np.full(shape, 255, np.uint8)
  parts = [part for tile in tiles for part in (gap, tile)][1:]
  return np.concatenate(parts, axis=axis)


def grid(images: Images, preds: dict[str, np.ndarray], colors) -> np.ndarray:
  """The sample grid as one HWC uint8 image (see the module docstring for its columns)."""
  rows = [join_tiles(_row(i, images, preds, colors), axis=1) for i in range(len(images['image']))]
  return join_tiles(rows, axis=0)


@dataclasses.dataclass(frozen=True)
class SampleGrid:
  """The fixed images of one eval split and a compiled predict step: `grid_of(state)` draws a
  state's predictions on them (`predictions_of` gives the raw ones)."""

  images: Images
  colors: tuple[tuple[int, int, int], ...]
  predict_fn: Callable
  mesh: Mesh

  @classmethod
  def of(cls, experiment, graphdef, source) -> 'SampleGrid':
    """For an `experiment.Experiment`, its model's graphdef and an eval `pipeline.SampleSource`."""
    return cls(
      fixed_samples(source), source.class_colors, experiment.predict_step(graphdef), experiment.mesh
    )

  def predictions_of(self, state) -> dict[str, np.ndarray]:
    return predict(self.predict_fn, state, self.images['image'], self.mesh)

  def grid_of(self, state) -> np.ndarray:
    return grid(self.images, self.predictions_of(state), self.colors)
