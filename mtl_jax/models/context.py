"""Context modules over the deepest encoder features: ASPP (DeepLabV3) or a plain 1×1 conv."""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from mtl_jax.models import layers


class ImagePooling(nnx.Module):
  """Global average → 1×1 conv → BN (→ ReLU), broadcast back to the input's spatial size.

  relu=False is the study's (Listing 1: AdaptiveAvgPool2d, conv, BatchNorm2d and nothing else).
  """

  def __init__(
    self,
    in_ch: int,
    out_ch: int,
    *,
    relu: bool = True,
    dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.proj = layers.ConvBNReLU(in_ch, out_ch, 1, dtype=dtype, rngs=rngs)
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
    dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
  ):
    conv_bn_relu = functools.partial(layers.ConvBNReLU, dtype=dtype, rngs=rngs)
    self.branches = nnx.List(
      [conv_bn_relu(in_ch, out_ch, 1)] + [conv_bn_relu(in_ch, out_ch, 3, dilation=r) for r in rates]
    )
    self.pooling = ImagePooling(in_ch, out_ch, relu=pooling_relu, dtype=dtype, rngs=rngs)
    self.project = conv_bn_relu(out_ch * (len(rates) + 2), out_ch, 1)

  def __call__(self, x: jax.Array) -> jax.Array:
    outs = [branch(x) for branch in self.branches] + [self.pooling(x)]
    return self.project(jnp.concatenate(outs, axis=-1))


class PlainContext(nnx.Module):
  """The first rows of the study: no ASPP, a 1×1 conv-BN-ReLU over the deepest features."""

  def __init__(self, in_ch: int, out_ch: int, *, dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    self.proj = layers.ConvBNReLU(in_ch, out_ch, 1, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.proj(x)
