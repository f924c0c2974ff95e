"""Decoders: fuse upsampled context with the stride-4 skip (DeepLabV3+ and the seed's variant)."""

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from mtl_jax.models import layers


class DeepLabV3PlusDecoder(nnx.Module):
  """Upsample context to the skip's resolution, concat with the (1×1-reduced) skip, 3×3 convs.

  `skip_channels=48, num_convs=2` is the standard DeepLabV3+ decoder; `skip_channels=0,
  num_convs=1` the course seed's (one 3×3 conv over [upsampled ASPP, raw 1/4 skip]).
  Returns decoder features at stride 4; task heads turn them into predictions.
  """

  def __init__(
    self,
    context_ch: int,
    skip_ch: int,
    *,
    skip_channels: int = 48,
    out_ch: int = 256,
    num_convs: int = 2,
    dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
  ):
    conv_bn_relu = functools.partial(layers.ConvBNReLU, dtype=dtype, rngs=rngs)
    self.skip_reduce = conv_bn_relu(skip_ch, skip_channels, 1) if skip_channels else None
    in_ch = context_ch + (skip_channels or skip_ch)
    convs = []
    for _ in range(num_convs):
      convs.append(conv_bn_relu(in_ch, out_ch, 3))
      in_ch = out_ch
    self.convs = nnx.List(convs)
    self.out_ch = out_ch

  def __call__(self, context: jax.Array, skip: jax.Array) -> jax.Array:
    context = layers.resize_bilinear(context, skip.shape[1:3])
    if self.skip_reduce is not None:
      skip = self.skip_reduce(skip)
    x = jnp.concatenate([context, skip], axis=-1)
    for conv in self.convs:
      x = conv(x)
    return x


class SeedDecoder(nnx.Module):
  """The study's decoder (Listings 2 and 7): upsample context to the skip's resolution, concat
  with the raw skip, one 3×3 conv with bias straight to the outputs.

  Returns (outputs at stride 4, the concatenated features), which the distilled model's
  self-attention and second stage read.
  """

  def __init__(
    self,
    context_ch: int,
    skip_ch: int,
    out_ch: int,
    *,
    dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.conv3x3 = layers.conv(
      context_ch + skip_ch, out_ch, 3, use_bias=True, dtype=dtype, rngs=rngs
    )
    self.features_ch = context_ch + skip_ch

  def __call__(self, context: jax.Array, skip: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = jnp.concatenate([layers.resize_bilinear(context, skip.shape[1:3]), skip], axis=-1)
    return self.conv3x3(x), x


# name → the decoder's options on top of the config's (the seed's decoder never reduces the skip).
DECODERS = {
  'deeplabv3plus': dict(num_convs=2),
  'seed': dict(num_convs=1, skip_channels=0),
}
