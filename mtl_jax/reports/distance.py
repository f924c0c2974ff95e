"""Depth error by distance: a model's depth error per ground-truth distance bin (DEPTH_BINS_M),
over every image of an eval split, the pixels of all images pooled per bin (far bins are sparse
in any one image, so a per-image mean would rest on a handful of pixels).

Predictions are clamped to DEPTH_RANGE_M as the metrics clamp them; pixels without ground truth
(depth 0) and the eval batches' padding (mask False) count in no bin. The split is streamed:
each batch's errors are added to per-bin sums (`Totals`) and the batch dropped, so memory is one
batch whatever the split's size.
"""

import dataclasses
import math
from collections.abc import Callable, Iterable

import numpy as np

from mtl_jax.data.sample import DEPTH_RANGE_M

# Bin edges in metres over the ground-truth depth; a bin holds [low, high).
DEPTH_BINS_M = (0.0, 10.0, 20.0, 40.0, 80.0, math.inf)
NUM_BINS = len(DEPTH_BINS_M) - 1


@dataclasses.dataclass(frozen=True)
class Totals:
  """Per-bin sums over the pixels seen so far (float64: a split has millions of pixels)."""

  abs_error: np.ndarray  # [NUM_BINS] Σ |p − g| in metres
  rel_error: np.ndarray  # [NUM_BINS] Σ |p − g| / g
  pixels: np.ndarray  # [NUM_BINS] int64
  images: int  # real (unpadded) images added


def empty() -> Totals:
  zeros = np.zeros(NUM_BINS)
  return Totals(zeros, zeros, np.zeros(NUM_BINS, np.int64), 0)


def add(totals: Totals, pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> Totals:
  """`totals` with the [N,H,W] predictions `pred` against ground truth `gt` (metres) added;
  `mask` [N] marks the real images of a padded batch (default: all)."""
  mask = np.ones(len(gt), bool) if mask is None else np.asarray(mask, bool)
  valid = (gt > 0) & mask[:, None, None]
  truth = gt[valid].astype(np.float64)
  error = np.abs(np.clip(pred[valid], *DEPTH_RANGE_M) - truth)
  bins = np.digitize(truth, DEPTH_BINS_M[1:-1])  # i: DEPTH_BINS_M[i] <= truth < [i + 1]
  sums = lambda weights: np.bincount(bins, weights=weights, minlength=NUM_BINS)
  return Totals(
    totals.abs_error + sums(error),
    totals.rel_error + sums(error / truth),
    totals.pixels + np.bincount(bins, minlength=NUM_BINS),
    totals.images + int(mask.sum()),
  )


def errors(totals: Totals) -> dict[str, list[float]]:
  """Per bin: `mae` (metres), `abs_rel` and `pixels`; NaN errors for an empty bin."""
  counts = totals.pixels.tolist()
  mean = lambda sums: [s / n if n else math.nan for s, n in zip(sums.tolist(), counts)]
  return {
    'mae': mean(totals.abs_error),
    'abs_rel': mean(totals.rel_error),
    'pixels': counts,
  }


def errors_by_distance(pred: np.ndarray, gt: np.ndarray) -> dict[str, list[float]]:
  """`errors` of [N,H,W] predictions against their ground truth, in one go."""
  return errors(add(empty(), pred, gt))


def over_split(
  predict_depth: Callable[[np.ndarray], np.ndarray], batches: Iterable[dict]
) -> Totals:
  """The totals of `predict_depth` (uint8 images [N,H,W,3] → metres [N,H,W] on the host) over
  eval batches (`pipeline.eval_batches`: image, depth, mask), one batch in memory at a time."""
  totals = empty()
  for batch in batches:
    totals = add(totals, predict_depth(batch['image']), batch['depth'], batch['mask'])
  return totals


def bin_names() -> list[str]:
  """'0–10 m', ..., '80+ m'."""
  edges = [f'{e:g}' for e in DEPTH_BINS_M]
  return [
    f'{low}+ m' if high == 'inf' else f'{low}–{high} m' for low, high in zip(edges[:-1], edges[1:])
  ]
