"""Task losses. Each averages over its valid pixels and is 0 (not NaN) when there are none.

Under pmap (`axis_name`), the valid pixels are the global batch's: every sum a loss is made of
is summed over the devices (`_global_sum`), so each device's loss is the jit step's loss,
whatever number of valid pixels each device holds. Each device's gradient is then its own
pixels' share of the global gradient, and `steps` sums the shares over the devices.

Semseg: softmax cross-entropy over pixels with label ≠ ignore. An all-ignored batch would give
0/0 = NaN with finite gradients, so the denominator is floored at 1.
Depth: over pixels with gt > 0 — 'l1' on codec (normalised) units, as the course template, or
'silog' = the scale-invariant log loss (Eigen et al., λ = 0.85) on decoded metres.
"""

import jax
import jax.numpy as jnp
import optax

from mtl_jax.data.sample import IGNORE_LABEL
from mtl_jax.depth_codec import DECODE_FLOOR_M, DepthCodec
from mtl_jax.metrics import safe_sqrt

SILOG_LAMBDA = 0.85


def _global_sum(local: jax.Array, axis_name) -> jax.Array:
  """`local` summed over the mapped axis, differentiable through this device's term only (the
  value is exactly the psum: adding local − local changes nothing)."""
  if axis_name is None:
    return local
  return jax.lax.stop_gradient(jax.lax.psum(local, axis_name)) + (
    local - jax.lax.stop_gradient(local)
  )


def _masked_mean(values: jax.Array, mask: jax.Array, axis_name=None) -> jax.Array:
  mask = mask.astype(values.dtype)
  total = _global_sum(jnp.sum(values * mask), axis_name)
  count = jnp.sum(mask) if axis_name is None else jax.lax.psum(jnp.sum(mask), axis_name)
  return total / jnp.maximum(count, 1.0)


def semseg_cross_entropy(
  logits: jax.Array, labels: jax.Array, ignore_label: int = IGNORE_LABEL, axis_name=None
) -> jax.Array:
  valid = labels != ignore_label
  safe_labels = jnp.where(valid, labels, 0)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), safe_labels)
  return _masked_mean(ce, valid, axis_name)


def depth_l1(raw: jax.Array, depth: jax.Array, codec: DepthCodec, axis_name=None) -> jax.Array:
  valid = depth > 0
  return _masked_mean(jnp.abs(raw - codec.encode(depth)), valid, axis_name)


def depth_silog(raw: jax.Array, depth: jax.Array, codec: DepthCodec, axis_name=None) -> jax.Array:
  valid = depth > 0
  d = jnp.log(codec.decode(raw)) - jnp.log(jnp.maximum(depth, DECODE_FLOOR_M))
  mean_d2 = _masked_mean(d * d, valid, axis_name)
  mean_d = _masked_mean(d, valid, axis_name)
  # safe_sqrt: exactly 0 without valid pixels (or for a perfect prediction), finite gradients.
  return safe_sqrt(mean_d2 - SILOG_LAMBDA * mean_d * mean_d)


DEPTH_LOSSES = {'l1': depth_l1, 'silog': depth_silog}


def depth_loss(name: str):
  if name not in DEPTH_LOSSES:
    raise ValueError(f'unknown depth loss {name!r}; valid names: {", ".join(DEPTH_LOSSES)}')
  return DEPTH_LOSSES[name]
