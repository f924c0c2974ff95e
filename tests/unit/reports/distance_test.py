"""Depth error by distance: per-bin errors by hand, and the streamed totals over padded eval
batches equal to the errors of all the split's images in one go."""

import math

import numpy as np
import pytest

from mtl_jax.reports import distance


def test_errors_by_distance_by_hand():
  gt = np.array([[[5.0, 15.0, 30.0, 60.0, 100.0, 0.0]]])
  pred = np.array([[[6.0, 15.0, 20.0, 60.0, 400.0, 10.0]]])  # 400 m is clamped to 300 m
  errors = distance.errors_by_distance(pred, gt)
  assert errors['pixels'] == [1, 1, 1, 1, 1]
  assert errors['mae'] == pytest.approx([1, 0, 10, 0, 200])
  assert errors['abs_rel'] == pytest.approx([0.2, 0, 1 / 3, 0, 2])
  assert distance.bin_names() == ['0–10 m', '10–20 m', '20–40 m', '40–80 m', '80+ m']
  nearest = distance.errors_by_distance(pred[..., :1], gt[..., :1])
  assert all(math.isnan(v) for v in nearest['mae'][1:]) and nearest['pixels'][1:] == [0] * 4
  # A bin holds [low, high): 10 m is in the second.
  assert distance.errors_by_distance(np.full((1, 1, 1), 12.0), np.full((1, 1, 1), 10.0))[
    'pixels'
  ] == [0, 1, 0, 0, 0]


def _padded_batches(images, depths, batch_size):
  """As `pipeline.eval_batches` yields them: the tail padded, mask False (the padding here has
  depth and images a model would score, so only the mask keeps it out)."""
  for start in range(0, len(images), batch_size):
    image, depth = images[start : start + batch_size], depths[start : start + batch_size]
    pad = batch_size - len(image)
    yield {
      'image': np.concatenate([image, image[:1].repeat(pad, 0)]),
      'depth': np.concatenate([depth, np.full((pad, *depth.shape[1:]), 15.0)]),
      'mask': np.arange(batch_size) < len(image),
    }


def test_the_split_streamed_in_padded_batches_pools_every_pixel_of_every_image():
  rng = np.random.default_rng(0)
  depths = rng.choice([0.0, 3.0, 12.0, 25.0, 50.0, 120.0], size=(7, 4, 5))
  images = rng.integers(0, 256, size=(7, 4, 5, 3), dtype=np.uint8)
  model = lambda image: image[..., 0].astype(np.float64)  # "depth" = red channel, in metres
  calls = []

  def predict_depth(image):
    calls.append(len(image))
    return model(image)

  totals = distance.over_split(predict_depth, _padded_batches(images, depths, batch_size=3))
  assert calls == [3, 3, 3] and totals.images == 7
  streamed, at_once = distance.errors(totals), distance.errors_by_distance(model(images), depths)
  for key in ('mae', 'abs_rel', 'pixels'):
    assert streamed[key] == pytest.approx(at_once[key]), key
  assert sum(totals.pixels) == (depths > 0).sum()
