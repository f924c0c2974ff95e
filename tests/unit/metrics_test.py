"""Hand-computed checks of mtl_jax.metrics (numbers, not just keys)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from mtl_jax import metrics
from mtl_jax.data.labels import CLASS_NAMES

# A 1x2x3 semseg case. Valid (label, pred) pairs: (0,0) (0,1) (1,1) (1,2) (2,2); the 255 is ignored.
LABEL = np.array([[[0, 0, 1], [1, 2, 255]]], np.int32)
PRED = np.array([[[0, 1, 1], [2, 2, 0]]], np.int32)
CONFUSION = np.array(
  [
    [1, 1, 0],  # gt 0: one right, one predicted as 1
    [0, 1, 1],  # gt 1: one right, one predicted as 2
    [0, 0, 1],
  ]
)  # gt 2: one right
# IoU_c = TP / (row + col - TP): c0 = 1/(2+1-1), c1 = 1/(2+2-1), c2 = 1/(1+2-1).
IOUS = np.array([1 / 2, 1 / 3, 1 / 2])

# A 1x1x4 depth case: gt 10, 20, 40 valid, the 0 is invalid (its pred 7 must not count).
# p = 20 everywhere, so d = ln 2, 0, -ln 2: mean(d) = 0, mean(d^2) = 2 ln^2 2 / 3.
DEPTH_GT = np.array([[[10.0, 20.0, 40.0, 0.0]]], np.float32)
DEPTH_PRED = np.array([[[20.0, 20.0, 20.0, 7.0]]], np.float32)
LN2 = math.log(2)
DEPTH_EXPECTED = {
  'silog': 100 * math.sqrt(2 / 3) * LN2,  # 100 * sqrt(2 ln^2 2 / 3 - 0^2) = 56.59
  'abs_rel': (10 / 10 + 0 / 20 + 20 / 40) / 3,  # 0.5
  'rel_squared': (1**2 + 0**2 + 0.5**2) / 3,  # 5 / 12
  'kitti_sq_rel': (100 / 10 + 0 / 20 + 400 / 40) / 3,  # 20 / 3
  'mae': (10 + 0 + 20) / 3,  # 10
  'rmse': math.sqrt((100 + 0 + 400) / 3),  # 12.91
  'log_mae': 2 * LN2 / 3,  # 0.4621
  'log_rmse': math.sqrt(2 / 3) * LN2,  # 0.5659
  # |1/20 - 1/10| = 1/20, 0, |1/20 - 1/40| = 1/40 (per metre)
  'inv_mae': (1 / 20 + 0 + 1 / 40) / 3,  # 0.025
  'inv_rmse': math.sqrt((1 / 400 + 0 + 1 / 1600) / 3),  # 0.0323
  'delta1': 1 / 3,
  'delta2': 1 / 3,
  'delta3': 1 / 3,  # ratios 2, 1, 2: only the exact pixel
}


# Jitted once per shape: far faster than op-by-op eager on many tiny shapes (eager parity is
# checked in test_jit_equals_eager).
_semseg_update = jax.jit(metrics.semseg_update)
_depth_update = jax.jit(metrics.depth_update)
_update = jax.jit(metrics.update)


def _semseg(pred, label, num_classes, mask=None):
  state = _semseg_update(metrics.semseg_empty(num_classes), pred, label, mask)
  return state, metrics.semseg_compute(state)


def _depth(pred, gt, mask=None):
  return metrics.depth_compute(_depth_update(metrics.depth_empty(), pred, gt, mask))


def template_depth_metrics(pred, gt):
  """The course template's `depth_metrics_calc_one` / `MetricsDepth`, transcribed to numpy in
  float64 (valid = gt > 0, prediction clamped to 4..300 m, deltas as fractions), averaged over
  the images with a valid pixel."""
  per_image = []
  for p, g in zip(np.asarray(pred, np.float64), np.asarray(gt, np.float64)):
    valid = g > 0
    y, y_hat = g[valid], np.clip(p[valid], 4.0, 300.0)
    n = y.size
    if n == 0:
      continue
    d_diff_log = np.log(y) - np.log(y_hat)
    normalized_squared_log = np.mean(d_diff_log**2)
    d_err = np.abs(y - y_hat)
    d_err_inv = np.abs(1 / y - 1 / y_hat)
    ratio = y / y_hat
    m = {
      'silog': 100 * np.sqrt(normalized_squared_log - d_diff_log.sum() ** 2 / (n * n)),
      'abs_rel': np.mean(d_err / y),
      'rel_squared': np.mean(d_err**2 / (y * y)),
      'kitti_sq_rel': np.mean(d_err**2 / y),  # not in the template: KITTI's
      'mae': np.mean(d_err),
      'rmse': np.sqrt(np.mean(d_err**2)),
      'log_mae': np.mean(np.abs(d_diff_log)),
      'log_rmse': np.sqrt(normalized_squared_log),
      'inv_mae': np.mean(d_err_inv),
      'inv_rmse': np.sqrt(np.mean(d_err_inv**2)),
    }
    for k in (1, 2, 3):
      m[f'delta{k}'] = np.mean((ratio > 1 / 1.25**k) & (ratio < 1.25**k))
    per_image.append(m)
  return {key: np.mean([m[key] for m in per_image]) for key in per_image[0]}


def _random_batch(seed, n, c=5, h=6, w=7):
  rng = np.random.default_rng(seed)
  label = rng.integers(0, c, (n, h, w)).astype(np.int32)
  label[rng.random(label.shape) < 0.2] = 255
  gt = rng.uniform(1, 80, (n, h, w)).astype(np.float32)
  gt[rng.random(gt.shape) < 0.3] = 0
  return dict(
    semseg_pred=rng.integers(0, c, (n, h, w)).astype(np.int32),
    semseg_label=label,
    depth_pred=rng.uniform(0.5, 400, (n, h, w)).astype(np.float32),
    depth_gt=gt,
  )


class SemsegTest(absltest.TestCase):
  def test_confusion_iou_and_pixel_acc(self):
    state, out = _semseg(PRED, LABEL, 3)
    np.testing.assert_array_equal(state.confusion, CONFUSION)
    self.assertEqual(state.confusion.dtype, jnp.int32)
    np.testing.assert_allclose([out[f'iou/class_{i}'] for i in range(3)], 100 * IOUS)
    self.assertAlmostEqual(out['miou'], 100 * (1 / 2 + 1 / 3 + 1 / 2) / 3)  # 44.44
    self.assertAlmostEqual(out['pixel_acc'], 100 * 3 / 5)  # trace 3 of 5 labelled pixels

  def test_absent_classes_count_as_zero_in_the_mean(self):
    _, out = _semseg(PRED, LABEL, 19)
    self.assertAlmostEqual(out['miou'], 100 * (1 / 2 + 1 / 3 + 1 / 2) / 19)  # 7.02
    self.assertAlmostEqual(out['iou/road'], 50.0)
    self.assertAlmostEqual(out['iou/sidewalk'], 100 / 3)
    self.assertAlmostEqual(out['iou/building'], 50.0)
    self.assertEqual([k for k in out if k.startswith('iou/')], [f'iou/{n}' for n in CLASS_NAMES])
    self.assertTrue(all(out[f'iou/{n}'] == 0.0 for n in CLASS_NAMES[3:]))

  def test_predicted_but_unlabelled_class_has_zero_iou(self):
    # gt 0 predicted as 3: IoU_0 = 1/(2+1-1); IoU_3 = 0/(0+1-0) = 0; classes 1, 2 absent -> 0.
    _, out = _semseg(np.array([[[0, 3]]]), np.array([[[0, 0]]]), 4)
    self.assertAlmostEqual(out['iou/class_3'], 0.0)
    self.assertAlmostEqual(out['miou'], 100 * (1 / 2) / 4)
    self.assertAlmostEqual(out['pixel_acc'], 50.0)

  def test_ignore_label_excluded(self):
    all_ignored, _ = _semseg(np.zeros((1, 2, 3), np.int32), np.full((1, 2, 3), 255), 3)
    np.testing.assert_array_equal(all_ignored.confusion, np.zeros((3, 3)))
    # Changing the prediction under the 255 pixel changes nothing.
    other = PRED.copy()
    other[0, 1, 2] = 1
    state, _ = _semseg(other, LABEL, 3)
    np.testing.assert_array_equal(state.confusion, CONFUSION)

  def test_masked_image_excluded(self):
    pred = np.concatenate([PRED, np.full_like(PRED, 2)])
    label = np.concatenate([LABEL, np.zeros_like(LABEL)])
    state, _ = _semseg(pred, label, 3, mask=np.array([True, False]))
    np.testing.assert_array_equal(state.confusion, CONFUSION)

  def test_empty_split(self):
    out = metrics.semseg_compute(metrics.semseg_empty(3))
    self.assertEqual(out['miou'], 0.0)
    self.assertTrue(math.isnan(out['pixel_acc']))


class DepthTest(absltest.TestCase):
  def test_hand_computed_with_invalid_pixel(self):
    out = _depth(DEPTH_PRED, DEPTH_GT)
    self.assertEqual(list(out), list(metrics.DEPTH_KEYS))
    for key, want in DEPTH_EXPECTED.items():
      self.assertAlmostEqual(out[key], want, places=5, msg=key)

  def test_every_metric_equals_the_template_transcription(self):
    rng = np.random.default_rng(7)
    n, h, w = 20, 9, 11  # 20 > one numpy-API chunk
    gt = rng.uniform(4, 120, (n, h, w)).astype(np.float32)
    gt[rng.random(gt.shape) < 0.3] = 0  # invalid pixels
    gt[5] = 0  # an image with no valid pixel
    # Around gt, with a tail beyond both ends of the 4..300 m clamp.
    pred = (gt * rng.lognormal(0, 0.4, gt.shape)).astype(np.float32)
    far = rng.random(pred.shape) < 0.1
    pred[far] = rng.choice([0.5, 2.0, 350.0, 1000.0], far.sum())
    want = template_depth_metrics(pred, gt)
    got = metrics.depth_metrics(pred, gt)
    self.assertEqual(set(got), set(want))
    for key in metrics.DEPTH_KEYS:
      np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)

  def test_deltas_both_directions(self):
    # max(p/g, g/p) = 10/10 = 1, 15/10 = 1.5, 19/10 = 1.9 (under-estimate), 25/10 = 2.5.
    # Thresholds 1.25, 1.5625, 1.953125 -> 1, 2, 3 of the 4 pixels.
    out = _depth(np.array([[[10.0, 15.0, 10.0, 10.0]]]), np.array([[[10.0, 10.0, 19.0, 25.0]]]))
    self.assertAlmostEqual(out['delta1'], 1 / 4)
    self.assertAlmostEqual(out['delta2'], 2 / 4)
    self.assertAlmostEqual(out['delta3'], 3 / 4)
    self.assertAlmostEqual(out['mae'], (0 + 5 + 9 + 15) / 4, places=5)

  def test_prediction_clamped_to_4_300(self):
    # pred 1 -> 4 against gt 8: |4-8|/8 = 0.5 (not 7/8); pred 1000 -> 300 against 150: 150/150 = 1.
    out = _depth(np.array([[[1.0, 1000.0]]]), np.array([[[8.0, 150.0]]]))
    self.assertAlmostEqual(out['abs_rel'], (0.5 + 1.0) / 2)
    self.assertAlmostEqual(out['mae'], (4 + 150) / 2, places=4)

  def test_silog_is_scale_invariant(self):
    # p = 2 g everywhere: d = ln 2 constant, so silog = 0 while log_rmse = ln 2, abs_rel = 1.
    out = _depth(np.array([[[20.0, 40.0, 60.0]]]), np.array([[[10.0, 20.0, 30.0]]]))
    self.assertAlmostEqual(out['silog'], 0.0, places=4)
    self.assertAlmostEqual(out['log_rmse'], LN2, places=6)
    self.assertAlmostEqual(out['abs_rel'], 1.0, places=6)

  def test_image_without_valid_pixel_excluded(self):
    pred = np.concatenate([DEPTH_PRED, np.full_like(DEPTH_PRED, 50)])
    gt = np.concatenate([DEPTH_GT, np.zeros_like(DEPTH_GT)])
    state = _depth_update(metrics.depth_empty(), pred, gt)
    self.assertEqual(float(state.count), 1.0)
    out = metrics.depth_compute(state)
    for key, want in DEPTH_EXPECTED.items():
      self.assertAlmostEqual(out[key], want, places=5, msg=key)
    nothing = _depth(np.ones((1, 2, 2)), np.zeros((1, 2, 2)))
    self.assertTrue(all(math.isnan(v) for v in nothing.values()))

  def test_masked_image_excluded(self):
    pred = np.concatenate([DEPTH_PRED, np.full_like(DEPTH_PRED, 50)])
    gt = np.concatenate([DEPTH_GT, np.full_like(DEPTH_GT, 5)])
    out = _depth(pred, gt, mask=np.array([True, False]))
    self.assertAlmostEqual(out['abs_rel'], DEPTH_EXPECTED['abs_rel'], places=6)
    self.assertAlmostEqual(out['rmse'], DEPTH_EXPECTED['rmse'], places=4)

  def test_average_over_images_not_pixels(self):
    # Image A: 1 valid pixel, 20 vs 10 -> abs_rel 1, mae 10. Image B: 3 exact pixels -> 0, 0.
    # Per image: abs_rel (1 + 0)/2 = 0.5, mae 5; per pixel it would be 1/4 and 10/4.
    pred = np.array([[[20.0, 7.0, 7.0, 7.0]], [[10.0, 10.0, 10.0, 7.0]]])
    gt = np.array([[[10.0, 0.0, 0.0, 0.0]], [[10.0, 10.0, 10.0, 0.0]]])
    out = _depth(pred, gt)
    self.assertAlmostEqual(out['abs_rel'], 0.5)
    self.assertAlmostEqual(out['mae'], 5.0)

  def test_gradients_finite_for_empty_and_exact_images(self):
    gt = jnp.array([[[10.0, 20.0]], [[0.0, 0.0]]])  # image 1 has no valid pixel

    def loss(pred):
      per_image, _ = metrics.per_image_depth_metrics(pred, gt)
      return per_image.sum()

    # Image 0 predicted exactly: silog = rmse = 0, where a bare sqrt has an infinite gradient.
    grad = jax.jit(jax.grad(loss))(gt + jnp.array([[[0.0, 0.0]], [[5.0, 5.0]]]))
    self.assertTrue(bool(jnp.isfinite(grad).all()))
    np.testing.assert_array_equal(grad[1], 0.0)


class EvalStateTest(absltest.TestCase):
  def test_compute_keys_total_and_grader(self):
    state = _update(
      metrics.empty(3),
      semseg_pred=PRED,
      semseg_label=LABEL,
      depth_pred=np.array([[[20.0, 40.0]]]),
      depth_gt=np.array([[[10.0, 20.0]]]),
    )
    out = metrics.compute(state)
    want_keys = (
      ['miou', 'pixel_acc']
      + [f'iou/class_{i}' for i in range(3)]
      + list(metrics.DEPTH_KEYS)
      + ['total', 'grader', 'nonfinite_images']
    )
    self.assertEqual(list(out), want_keys)
    self.assertEqual(out['nonfinite_images'], 0)
    miou = 100 * (1 / 2 + 1 / 3 + 1 / 2) / 3  # 44.44; silog = 0 (p = 2 g, scale-invariant)
    self.assertAlmostEqual(out['total'], miou, places=3)
    self.assertAlmostEqual(out['grader'], 0 + 50, places=3)  # mIoU < 50 adds nothing

  def test_summary(self):
    self.assertEqual(metrics.summary(60.0, 20.0), {'total': 40.0, 'grader': 10.0 + 30.0})
    self.assertEqual(metrics.summary(40.0, 70.0), {'total': -30.0, 'grader': 0.0})

  def test_summary_of_nan_is_nan_in_either_argument(self):
    # max(nan - 50, 0.0) is nan but max(0.0, nan) is 0.0: no argument order may make it finite.
    for miou, silog in ((math.nan, 20.0), (60.0, math.nan)):
      self.assertTrue(all(math.isnan(v) for v in metrics.summary(miou, silog).values()))

  def test_nonfinite_outputs_void_every_score_and_are_counted(self):
    # Image 1 had NaN logits (its argmax, class 0, would score); image 2 is padding, not counted.
    state = _update(
      metrics.empty(3),
      semseg_pred=np.zeros((3, 1, 2), np.int32),
      semseg_label=np.zeros((3, 1, 2), np.int32),
      depth_pred=np.full((3, 1, 2), 10.0),
      depth_gt=np.full((3, 1, 2), 10.0),
      mask=np.array([True, True, False]),
      nonfinite=np.array([False, True, True]),
    )
    out = metrics.compute(state)
    self.assertEqual(out.pop('nonfinite_images'), 1)
    self.assertTrue(all(math.isnan(v) for v in out.values()), out)

  def test_merge_equals_concatenated_update(self):
    a, b = _random_batch(0, 3), _random_batch(1, 2)
    both = {k: np.concatenate([a[k], b[k]]) for k in a}
    empty = metrics.empty(5)
    merged = metrics.merge(_update(empty, **a), _update(empty, **b))
    whole = _update(empty, **both)
    np.testing.assert_array_equal(merged.semseg.confusion, whole.semseg.confusion)
    np.testing.assert_allclose(merged.depth.sums, whole.depth.sums, rtol=1e-6)
    self.assertEqual(float(merged.depth.count), float(whole.depth.count))

  def test_jit_equals_eager(self):
    batch = _random_batch(2, 4)
    mask = np.array([True, True, False, True])
    eager = metrics.update(metrics.empty(5), **batch, mask=mask)
    jitted = jax.jit(metrics.update)(metrics.empty(5), **batch, mask=mask)
    np.testing.assert_array_equal(jitted.semseg.confusion, eager.semseg.confusion)
    np.testing.assert_allclose(jitted.depth.sums, eager.depth.sums, rtol=1e-5)
    np.testing.assert_array_equal(jitted.depth.count, eager.depth.count)

  def test_single_task_states(self):
    depth_only = _update(metrics.empty(tasks=('depth',)), depth_pred=DEPTH_PRED, depth_gt=DEPTH_GT)
    self.assertEqual(list(metrics.compute(depth_only)), [*metrics.DEPTH_KEYS, 'nonfinite_images'])
    semseg_only = _update(metrics.empty(3, tasks=('semseg',)), semseg_pred=PRED, semseg_label=LABEL)
    self.assertAlmostEqual(metrics.compute(semseg_only)['pixel_acc'], 60.0)
    with self.assertRaisesRegex(ValueError, 'semseg_pred'):
      metrics.update(metrics.empty(3), depth_pred=DEPTH_PRED, depth_gt=DEPTH_GT)


class NumpyApiTest(absltest.TestCase):
  def test_matches_state_path(self):
    batch = _random_batch(3, 20, c=19)  # 20 > one chunk: exercises the padded last chunk
    state = _update(metrics.empty(19), **batch)
    semseg = metrics.semseg_metrics(batch['semseg_pred'], batch['semseg_label'])
    depth = metrics.depth_metrics(batch['depth_pred'], batch['depth_gt'])
    want = metrics.compute(state)
    self.assertEqual(list(semseg) + list(depth), list(want)[:-3])  # total, grader, nonfinite_images
    for key, value in {**semseg, **depth}.items():
      self.assertIsInstance(value, float)
      np.testing.assert_allclose(value, want[key], rtol=1e-6, err_msg=key)

  def test_hand_computed(self):
    out = metrics.semseg_metrics(PRED.astype(np.uint8), LABEL.astype(np.uint8), num_classes=3)
    self.assertAlmostEqual(out['miou'], 100 * (1 / 2 + 1 / 3 + 1 / 2) / 3)
    self.assertAlmostEqual(
      metrics.depth_metrics(DEPTH_PRED, DEPTH_GT)['rmse'], DEPTH_EXPECTED['rmse'], places=4
    )

  def test_a_nonfinite_prediction_voids_its_image_instead_of_scoring_perfectly(self):
    # Was SI-log 0.00 (the guarded sqrt mapped NaN to 0) and Inf was clamped to 300 m.
    for bad in (math.nan, math.inf):
      pred = np.concatenate([DEPTH_PRED, DEPTH_PRED])
      pred[1, 0, 0] = bad  # a valid pixel of image 1
      out = metrics.depth_metrics(pred, np.concatenate([DEPTH_GT, DEPTH_GT]))
      self.assertTrue(all(math.isnan(v) for v in out.values()), (bad, out))
    # On an invalid pixel (gt 0) a NaN is never looked at.
    pred = DEPTH_PRED.copy()
    pred[0, 0, 3] = math.nan
    self.assertAlmostEqual(
      metrics.depth_metrics(pred, DEPTH_GT)['silog'], DEPTH_EXPECTED['silog'], places=3
    )

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, r'\(1, 2, 3\).*\(1, 3, 2\)'):
      metrics.semseg_metrics(PRED, PRED.reshape(1, 3, 2))
    with self.assertRaisesRegex(ValueError, r'\(1, 4\).*\(1, 1, 4\)'):
      metrics.depth_metrics(DEPTH_PRED[0], DEPTH_GT)
    with self.assertRaisesRegex(ValueError, r'\[N, H, W\]'):
      metrics.depth_metrics(DEPTH_PRED[0], DEPTH_GT[0])
    with self.assertRaisesRegex(ValueError, 'pred values'):
      metrics.semseg_metrics(PRED + 2, LABEL, num_classes=3)
    with self.assertRaisesRegex(ValueError, 'label values.*found 7'):
      metrics.semseg_metrics(PRED, np.where(LABEL == 2, 7, LABEL), num_classes=3)


if __name__ == '__main__':
  absltest.main()
