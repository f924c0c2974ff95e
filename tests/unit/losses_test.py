"""Loss values against hand computations, and the all-ignored / all-invalid guards."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import losses
from mtl_jax.depth_codec import DepthCodec


def test_cross_entropy_averages_over_labelled_pixels_only():
  logits = jnp.array([[[[0.0, 0.0], [2.0, 0.0], [5.0, -5.0]]]])  # [1, 1, 3, 2]
  labels = jnp.array([[[0, 1, 255]]])
  # pixel 1: -log(1/2); pixel 2: -log(e^0 / (e^2 + e^0)) = log(1 + e^2); pixel 3 ignored
  expected = (math.log(2) + math.log(1 + math.e**2)) / 2
  assert float(losses.semseg_cross_entropy(logits, labels)) == pytest.approx(expected, rel=1e-6)


def test_all_ignored_batch_gives_zero_loss_and_zero_gradients_not_nan():
  logits = jax.random.normal(jax.random.key(0), (2, 4, 4, 19))
  labels = jnp.full((2, 4, 4), 255)
  loss, grad = jax.value_and_grad(losses.semseg_cross_entropy)(logits, labels)
  assert float(loss) == 0.0
  assert bool(jnp.all(grad == 0))


def test_depth_l1_is_on_normalised_depth_over_valid_pixels():
  codec = DepthCodec('linear', mean=10.0, std=5.0)
  raw = jnp.array([[[0.0, 1.0, 7.0]]])
  depth = jnp.array([[[10.0, 20.0, 0.0]]])  # third pixel invalid
  # encoded gt: 0 and 2; |0 - 0| and |1 - 2| → mean 0.5
  assert float(losses.depth_l1(raw, depth, codec)) == pytest.approx(0.5)


@pytest.mark.parametrize('name', sorted(losses.DEPTH_LOSSES))
def test_depth_losses_are_zero_without_valid_pixels(name):
  codec = DepthCodec()
  raw, depth = jnp.ones((1, 2, 2)), jnp.zeros((1, 2, 2))
  loss, grad = jax.value_and_grad(losses.depth_loss(name))(raw, depth, codec)
  assert float(loss) == 0.0
  assert bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.parametrize('name', sorted(losses.DEPTH_LOSSES))
def test_depth_losses_are_zero_with_finite_gradients_for_a_perfect_prediction(name):
  codec = DepthCodec('log', mean=0.0, std=1.0)
  depth = jnp.array([[[5.0, 0.0], [20.0, 80.0]]])
  loss, grad = jax.value_and_grad(losses.depth_loss(name))(codec.encode(depth), depth, codec)
  assert float(loss) == pytest.approx(0.0, abs=1e-6)
  assert bool(jnp.all(jnp.isfinite(grad)))


def test_silog_loss_hand_value_and_near_scale_invariance():
  codec = DepthCodec('log', mean=0.0, std=1.0)
  gt = jnp.array([[[2.0, 8.0]]])
  raw = jnp.log(gt * jnp.array([[[1.0, 4.0]]]))  # d = log p - log g = [0, log 4]
  d = np.array([0.0, math.log(4)])
  expected = math.sqrt(np.mean(d**2) - losses.SILOG_LAMBDA * np.mean(d) ** 2)
  assert float(losses.depth_silog(raw, gt, codec)) == pytest.approx(expected, rel=1e-5)
  scaled = losses.depth_silog(jnp.log(3 * gt), gt, codec)  # a global scale error only
  assert float(scaled) == pytest.approx(math.sqrt(1 - losses.SILOG_LAMBDA) * math.log(3), rel=1e-4)


def test_codec_round_trip_and_unknown_mode():
  depth = jnp.array([4.0, 20.0, 300.0])
  for mode in ('linear', 'log'):
    codec = DepthCodec(mode, mean=1.0, std=2.0)
    np.testing.assert_allclose(codec.decode(codec.encode(depth)), depth, rtol=1e-5)
  with pytest.raises(ValueError, match="unknown depth mode 'cubic'"):
    DepthCodec('cubic')
  with pytest.raises(ValueError, match="unknown depth loss 'l3'; valid names: l1, silog"):
    losses.depth_loss('l3')
