"""Semantic segmentation and depth metrics as small pytree states.

Each task has a state with empty / update / compute. `update` is pure jnp with static shapes, so
it runs inside the jitted eval step; states are sums, so `merge` adds any two (across devices and
batches); `compute` runs once on the host and returns Python floats. `EvalState` groups the tasks
a model has (a single-task model leaves the other one `None`).

Conventions (docs/metrics.md summarises them):

Semseg
  * One confusion matrix over the whole split, rows = ground truth, columns = prediction, counting
    pixels whose label is in [0, C) -- so `IGNORE_LABEL` pixels are excluded. Predictions
    are integer class ids in [0, C) (argmax taken by the caller; the numpy API checks the range).
  * IoU_c = TP / (TP + FP + FN). A class absent from both label and prediction has IoU 0 (the DLAD
    course template), so `miou` = 100 * mean over all C classes, absent ones included.
  * `pixel_acc` = 100 * trace / sum (NaN when no labelled pixel); `iou/<name>` in percent.
  * Counts are int32 inside jit: a cell overflows after 2**31 pixels, i.e. ~65k 128x256 images,
    far beyond a split. The numpy API accumulates chunks in int64.

Depth (metres; g = ground truth, p = prediction)
  * Per image over valid pixels (gt > 0); the prediction is clamped to the data's depth range
    `DEPTH_RANGE_M`. Each metric is then averaged over images -- not over pixels -- skipping
    images with no valid pixel; if no image counts, every depth metric is NaN.
  * The DLAD course template's set (its `mtl/utils/metrics.py`, `depth_metrics_calc_one`), with
    d = ln(p) - ln(g) (natural log; the template's ln(g) - ln(p) has the same values below):
      silog        = 100 * sqrt(mean(d^2) - mean(d)^2)  (template: si_log_rmse), computed as the
                     equal 100 * sqrt(mean((d - mean d)^2)) to avoid float32 cancellation
      abs_rel      = mean(|p - g| / g)                  (template: rel)
      rel_squared  = mean((|p - g| / g)^2)
      mae          = mean(|p - g|)                      metres
      rmse         = sqrt(mean((p - g)^2))              metres
      log_mae      = mean(|d|)
      log_rmse     = sqrt(mean(d^2))
      inv_mae      = mean(|1/p - 1/g|)                  1/m (KITTI's iMAE is in 1/km)
      inv_rmse     = sqrt(mean((1/p - 1/g)^2))          1/m
      delta1..3    = fraction in [0, 1] of pixels with max(p/g, g/p) < 1.25^k (the template
                     reports the same in percent)
    and KITTI's squared relative error, which the template lacks:
      kitti_sq_rel = mean((p - g)^2 / g)                metres
    The template marks invalid pixels NaN (we: gt = 0) and floors both depths at 0.01 m instead
    of clamping the prediction; for predictions within `DEPTH_RANGE_M` the two agree.
  * Divisions and square roots are guarded so an empty image yields finite zeros (values and
    gradients), which the image mask then drops.
  * A NaN or Inf prediction on a valid pixel makes every metric of its image NaN, and so the
    split's: a diverged model never scores (clamping would turn Inf into 300 m, and a guarded
    square root NaN into 0).

Non-finite outputs: the jitted eval also counts `nonfinite_images`, real images whose model
outputs (logits or depth) hold a NaN or Inf -- an argmax would turn NaN logits into a class id.
When any image has, every score of the split is NaN; `nonfinite_images` is always reported.

Padding: `mask` ([N] bool) marks real images in a padded eval batch; masked-out images add nothing.

Summary: `total` = miou - silog (checkpoint selection); `grader` = max(miou - 50, 0) +
max(50 - silog, 0) (the course leaderboard). Both need both tasks.
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mtl_jax.data.labels import NUM_CLASSES, default_class_names
from mtl_jax.data.sample import DEPTH_RANGE_M, IGNORE_LABEL, TASKS
from mtl_jax.runtime.progress import format_duration

DEPTH_KEYS = (
  'silog',
  'abs_rel',
  'rel_squared',
  'kitti_sq_rel',
  'mae',
  'rmse',
  'log_mae',
  'log_rmse',
  'inv_mae',
  'inv_rmse',
  'delta1',
  'delta2',
  'delta3',
)
_NUMPY_CHUNK = 16  # images per jitted update in the numpy API; bounds memory and int32 counts


@struct.dataclass
class SemsegState:
  confusion: jax.Array  # [C, C] int32; rows = ground truth, cols = prediction


@struct.dataclass
class DepthState:
  sums: jax.Array  # [len(DEPTH_KEYS)] float32, per-image metrics summed over counted images
  count: jax.Array  # [] float32, images with >= 1 valid pixel


@struct.dataclass
class EvalState:
  semseg: SemsegState | None = None
  depth: DepthState | None = None
  nonfinite: jax.Array | None = None  # [] int32, images whose model outputs were not finite


def _real_images(shape, mask):
  """[N, 1, 1] broadcastable bool: True for real images."""
  if mask is None:
    return jnp.ones((shape[0], 1, 1), bool)
  return jnp.asarray(mask, bool).reshape(shape[0], 1, 1)


# --- semseg ---


def semseg_empty(num_classes: int = NUM_CLASSES) -> SemsegState:
  return SemsegState(jnp.zeros((num_classes, num_classes), jnp.int32))


def semseg_update(
  state: SemsegState, pred, label, mask=None, ignore_label: int = IGNORE_LABEL
) -> SemsegState:
  """Adds [N, H, W] integer predictions vs labels to the confusion matrix."""
  c = state.confusion.shape[0]
  label = jnp.asarray(label).astype(jnp.int32)
  pred = jnp.asarray(pred).astype(jnp.int32)
  valid = (label != ignore_label) & (label >= 0) & (label < c) & _real_images(label.shape, mask)
  # Weighted bincount keeps shapes static; ignored pixels land in cell 0 with weight 0.
  index = jnp.where(valid, label * c + pred, 0).ravel()
  counts = jnp.bincount(index, weights=valid.ravel().astype(jnp.int32), length=c * c)
  return SemsegState(state.confusion + counts.reshape(c, c).astype(jnp.int32))


def semseg_compute(
  state: SemsegState, class_names: Sequence[str] | None = None
) -> dict[str, float]:
  """miou, pixel_acc and iou/<name>, all in percent (host side, float64)."""
  conf = np.asarray(state.confusion, np.float64)
  names = default_class_names(conf.shape[0]) if class_names is None else tuple(class_names)
  if len(names) != conf.shape[0]:
    raise ValueError(f'{len(names)} class names for a {conf.shape[0]}-class confusion matrix')
  tp = np.diag(conf)
  union = conf.sum(0) + conf.sum(1) - tp
  iou = np.where(union > 0, tp / np.maximum(union, 1), 0.0)  # absent in both -> 0
  total = conf.sum()
  out = {
    'miou': 100 * float(iou.mean()),
    'pixel_acc': 100 * float(tp.sum() / total) if total > 0 else float('nan'),
  }
  out.update({f'iou/{n}': 100 * float(v) for n, v in zip(names, iou)})
  return out


# --- depth ---


def depth_empty() -> DepthState:
  return DepthState(jnp.zeros((len(DEPTH_KEYS),), jnp.float32), jnp.zeros((), jnp.float32))


def safe_sqrt(x):
  """sqrt, 0 for x <= 0, with finite gradients everywhere (a bare sqrt's is infinite at 0)."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def per_image_depth_metrics(pred, gt, mask=None):
  """([N, len(DEPTH_KEYS)] metrics, [N] bool "image counts") for [N, H, W] metres."""
  valid = (gt > 0) & _real_images(gt.shape, mask)
  n = valid.sum((1, 2)).astype(jnp.float32)
  g = jnp.where(valid, gt, 1.0).astype(jnp.float32)  # 1.0 keeps logs/divisions finite off-mask
  p = jnp.where(valid, jnp.clip(pred, *DEPTH_RANGE_M), 1.0).astype(jnp.float32)
  nonfinite = (valid & ~jnp.isfinite(pred)).any((1, 2))

  def mean(x):
    return jnp.where(valid, x, 0.0).sum((1, 2)) / jnp.maximum(n, 1.0)

  d = jnp.log(p) - jnp.log(g)
  d_centered = d - mean(d)[:, None, None]
  err = jnp.abs(p - g)
  inv_err = jnp.abs(1 / p - 1 / g)
  ratio = jnp.maximum(p / g, g / p)
  metrics = {
    'silog': 100 * safe_sqrt(mean(d_centered**2)),
    'abs_rel': mean(err / g),
    'rel_squared': mean((err / g) ** 2),
    'kitti_sq_rel': mean(err**2 / g),
    'mae': mean(err),
    'rmse': safe_sqrt(mean(err**2)),
    'log_mae': mean(jnp.abs(d)),
    'log_rmse': safe_sqrt(mean(d**2)),
    'inv_mae': mean(inv_err),
    'inv_rmse': safe_sqrt(mean(inv_err**2)),
  }
  for k in (1, 2, 3):
    metrics[f'delta{k}'] = mean((ratio < 1.25**k).astype(jnp.float32))
  per_image = jnp.stack([metrics[key] for key in DEPTH_KEYS], -1)
  return jnp.where(nonfinite[:, None], jnp.nan, per_image), n > 0


def depth_update(state: DepthState, pred, gt, mask=None) -> DepthState:
  """Adds per-image metrics of [N, H, W] predictions vs ground truth (0 = invalid)."""
  per_image, counted = per_image_depth_metrics(jnp.asarray(pred), jnp.asarray(gt), mask)
  sums = jnp.where(counted[:, None], per_image, 0.0).sum(0)
  return DepthState(state.sums + sums, state.count + counted.sum().astype(jnp.float32))


def depth_compute(state: DepthState) -> dict[str, float]:
  sums = np.asarray(state.sums, np.float64)
  count = float(state.count)
  values = sums / count if count > 0 else np.full_like(sums, np.nan)
  return {key: float(v) for key, v in zip(DEPTH_KEYS, values)}


# --- both tasks ---


def summary(miou: float, silog: float) -> dict[str, float]:
  if math.isnan(miou) or math.isnan(silog):  # Python's max(nan, 0.0) depends on argument order
    return {'total': math.nan, 'grader': math.nan}
  return {'total': miou - silog, 'grader': max(miou - 50, 0.0) + max(50 - silog, 0.0)}


def empty(num_classes: int = NUM_CLASSES, tasks: Sequence[str] = TASKS) -> EvalState:
  unknown = set(tasks) - set(TASKS)
  if unknown:
    raise ValueError(f'unknown tasks {sorted(unknown)}; valid: {TASKS}')
  return EvalState(
    semseg=semseg_empty(num_classes) if 'semseg' in tasks else None,
    depth=depth_empty() if 'depth' in tasks else None,
    nonfinite=jnp.zeros((), jnp.int32),
  )


def update(
  state: EvalState,
  *,
  semseg_pred=None,
  semseg_label=None,
  depth_pred=None,
  depth_gt=None,
  mask=None,
  nonfinite=None,
) -> EvalState:
  """Updates each task the state holds; that task's arrays are then required. nonfinite: [N]
  bool, images whose model outputs were not finite (counted where `mask` marks real images)."""
  semseg, depth = state.semseg, state.depth
  if semseg is not None:
    if semseg_pred is None or semseg_label is None:
      raise ValueError('state tracks semseg: pass semseg_pred and semseg_label')
    semseg = semseg_update(semseg, semseg_pred, semseg_label, mask)
  if depth is not None:
    if depth_pred is None or depth_gt is None:
      raise ValueError('state tracks depth: pass depth_pred and depth_gt')
    depth = depth_update(depth, depth_pred, depth_gt, mask)
  count = state.nonfinite
  if count is not None and nonfinite is not None:
    real = nonfinite if mask is None else nonfinite & jnp.asarray(mask, bool)
    count = count + real.sum().astype(jnp.int32)
  return EvalState(semseg, depth, count)


def merge(a: EvalState, b: EvalState) -> EvalState:
  """The state of both states' images: every field is a sum."""
  return jax.tree.map(lambda x, y: x + y, a, b)


def compute(state: EvalState, class_names: Sequence[str] | None = None) -> dict[str, float]:
  """The metrics of the tasks present, as the module docstring defines them (`total`/`grader`
  need both tasks)."""
  out = {}
  if state.semseg is not None:
    out.update(semseg_compute(state.semseg, class_names))
  if state.depth is not None:
    out.update(depth_compute(state.depth))
  if state.semseg is not None and state.depth is not None:
    out.update(summary(out['miou'], out['silog']))
  if state.nonfinite is not None:
    count = int(state.nonfinite)
    if count:
      out = dict.fromkeys(out, math.nan)
    out['nonfinite_images'] = count
  return out


def has_labels(m: dict[str, float]) -> bool:
  """Whether `compute`'s metrics `m` scored anything: a labelled semseg pixel (else `pixel_acc`
  is NaN) or an image with valid depth (else `silog` is NaN). An unlabelled split has neither."""
  return any(not math.isnan(m[key]) for key in ('pixel_acc', 'silog') if key in m)


# --- numpy API: the same jitted updates, chunked and padded to one shape ---

_semseg_update_jit = jax.jit(semseg_update, static_argnames='ignore_label')
_depth_update_jit = jax.jit(depth_update)


def _check_pair(pred, target, pred_name, target_name):
  pred, target = np.asarray(pred), np.asarray(target)
  if pred.shape != target.shape:
    raise ValueError(f'{pred_name} shape {pred.shape} != {target_name} shape {target.shape}')
  if pred.ndim != 3:
    raise ValueError(f'{pred_name} and {target_name} must be [N, H, W]; got shape {pred.shape}')
  return pred, target


def _chunks(*arrays):
  """Yields (chunks padded to _NUMPY_CHUNK images, [chunk] bool mask of real images)."""
  n = arrays[0].shape[0]
  for start in range(0, n, _NUMPY_CHUNK):
    real = min(_NUMPY_CHUNK, n - start)
    pad = ((0, _NUMPY_CHUNK - real),) + ((0, 0),) * (arrays[0].ndim - 1)
    yield ([np.pad(a[start : start + real], pad) for a in arrays], np.arange(_NUMPY_CHUNK) < real)


def semseg_metrics(
  pred,
  label,
  num_classes: int = NUM_CLASSES,
  ignore_label: int = IGNORE_LABEL,
  class_names: Sequence[str] | None = None,
) -> dict[str, float]:
  """miou, pixel_acc, iou/<name> for integer [N, H, W] predictions and labels (numpy in)."""
  pred, label = _check_pair(pred, label, 'pred', 'label')
  if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
    raise ValueError(f'pred values must be in [0, {num_classes}); got [{pred.min()}, {pred.max()}]')
  bad = (label != ignore_label) & ((label < 0) | (label >= num_classes))
  if bad.any():
    raise ValueError(
      f'label values must be in [0, {num_classes}) or {ignore_label}; found {label[bad][0]}'
    )
  confusion = np.zeros((num_classes, num_classes), np.int64)
  for (p, t), mask in _chunks(pred.astype(np.int32), label.astype(np.int32)):
    chunk = _semseg_update_jit(semseg_empty(num_classes), p, t, mask, ignore_label=ignore_label)
    confusion += np.asarray(chunk.confusion, np.int64)
  return semseg_compute(SemsegState(confusion), class_names)


def depth_metrics(pred, gt) -> dict[str, float]:
  """The DEPTH_KEYS metrics for [N, H, W] predictions and ground truth in metres (0 = invalid)."""
  pred, gt = _check_pair(pred, gt, 'pred', 'gt')
  sums, count = np.zeros(len(DEPTH_KEYS), np.float64), 0.0
  for (p, g), mask in _chunks(pred.astype(np.float32), gt.astype(np.float32)):
    chunk = _depth_update_jit(depth_empty(), p, g, mask)
    sums += np.asarray(chunk.sums, np.float64)
    count += float(chunk.count)
  return depth_compute(DepthState(sums, np.float64(count)))


# --- how scores are shown ---

# (key, label, format) of the scores a run is summarised and compared by, in the order shown: the
# final line, the report's tables and its curves. Eval lines show two more (`_EVAL_LINE`).
HEADLINE = (
  ('miou', 'mIoU', '.2f'),
  ('silog', 'SI-log', '.2f'),
  ('total', 'total', '.2f'),
  ('grader', 'grader', '.2f'),
)
_EVAL_LINE = (
  *HEADLINE[:2],
  ('pixel_acc', 'pixel acc', '.2f'),
  ('abs_rel', 'abs_rel', '.3f'),
  *HEADLINE[2:],
)


def _scores_text(m: dict[str, float], shown) -> str:
  """'mIoU 42.01 | SI-log 25.32 | …' for the scores of `shown` that `m` has."""
  return ' | '.join(f'{label} {m[key]:{fmt}}' for key, label, fmt in shown if key in m)


def eval_line(label: str, m: dict[str, float]) -> str:
  return f'{label}: {_scores_text(m, _EVAL_LINE)}'


def summary_line(m: dict[str, float], best_step: int | None) -> str:
  return (
    f'final: step {m["step"]} epoch {m["epoch"]} {m["split"]} | {_scores_text(m, HEADLINE)} '
    f'| best checkpoint step {best_step} | wall time {format_duration(m["wall_time_s"])}'
  )
