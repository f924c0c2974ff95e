"""Context modules over the deepest encoder features: ASPP (DeepLabV3) or a plain 1×1 conv."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models import layers


class ImagePooling(nnx.Module):
  """Global average → 1×1 conv → BN (→ ReLU), broadcast back to the input's spatial size.

  relu=False is the study's (Listing 1: AdaptiveAvgPool2d, conv, BatchNorm2d and nothing else).
  """

  def __init__(self, in_ch: int, out_ch: int, *, relu: bool = True, rngs: nnx.Rngs):
    self.proj = layers.ConvBNReLU(in_ch, out_ch, 1, rngs=rngs)
    self.relu = relu

  def __call__(self, x: jax.Array) -> jax.Array:
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    pooled = self.proj(mean) if self.relu else self.proj.bn(self.proj.conv(mean))
    return jnp.broadcast_to(pooled, (*x.shape[:3], pooled.shape[-1]))


class ASPP(nnx.Module):
  """1×1 branch, one 3×3 atrous branch per rate, image pooling; concat; 1×1 projection."""

  def __init__(
    self,
    in_ch: int,
    out_ch: int,
    rates: Sequence[int] = (3, 6, 9),
    *,
    pooling_relu: bool = True,
    rngs: nnx.Rngs,
  ):
    self.branches = nnx.List(
      [layers.ConvBNReLU(in_ch, out_ch, 1, rngs=rngs)]
      + [layers.ConvBNReLU(in_ch, out_ch, 3, dilation=r, rngs=rngs) for r in rates]
    )
    self.pooling = ImagePooling(in_ch, out_ch, relu=pooling_relu, rngs=rngs)
    self.project = layers.ConvBNReLU(out_ch * (len(rates) + 2), out_ch, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    outs = [branch(x) for branch in self.branches] + [self.pooling(x)]
    return self.project(jnp.concatenate(outs, axis=-1))


class PlainContext(nnx.Module):
  """The first rows of the study: no ASPP, a 1×1 conv-BN-ReLU over the deepest features."""

  def __init__(self, in_ch: int, out_ch: int, *, rngs: nnx.Rngs):
    self.proj = layers.ConvBNReLU(in_ch, out_ch, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.proj(x)
