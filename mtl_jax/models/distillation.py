"""PAD-Net-style distillation: the self-attention gate and the second-stage decoders."""

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from mtl_jax.models import layers


class SelfAttention(nnx.Module):
  """PAD-Net's distillation gate: SA(x) = conv3×3(x) · sigmoid(conv3×3(x)).

  zero_init_gate: the course template's `SelfAttention` starts its attention conv at zero, so
  every feature passes at half weight (sigmoid(0) = 0.5) until training says otherwise.
  The gate's sigmoid runs in the compute dtype: it is bounded, so bfloat16 loses no range.
  """

  def __init__(
    self,
    channels: int,
    *,
    zero_init_gate: bool = False,
    dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.value = layers.conv(channels, channels, 3, dtype=dtype, rngs=rngs)
    self.gate = layers.conv(channels, channels, 3, dtype=dtype, rngs=rngs)
    if zero_init_gate:
      self.gate.kernel[...] = jnp.zeros_like(self.gate.kernel[...])

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.value(x) * nnx.sigmoid(self.gate(x))


class SecondStageDecoder(nnx.Module):
  """The distilled model's second decoder: 3×3 conv-BN-ReLU at stride 4, 1×1 to outputs."""

  def __init__(self, channels: int, out_ch: int, *, dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    self.conv = layers.ConvBNReLU(channels, channels, 3, dtype=dtype, rngs=rngs)
    self.head = layers.head_conv(channels, out_ch, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, size) -> jax.Array:
    del size  # predictions stay at stride 4; the model upsamples them
    return self.head(self.conv(x))


class DeepSecondStageDecoder(nnx.Module):
  """The deeper variant: three 3×3 conv-BN-ReLU, 2× upsampling after the first two, channels
  halved each time, so predictions come out at full resolution."""

  def __init__(self, channels: int, out_ch: int, *, dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    widths = (channels, channels // 2, channels // 4, channels // 8)
    self.convs = nnx.List(
      [layers.ConvBNReLU(widths[i], widths[i + 1], 3, dtype=dtype, rngs=rngs) for i in range(3)]
    )
    self.head = layers.head_conv(widths[-1], out_ch, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, size) -> jax.Array:
    del size  # upsamples 4× from stride 4 by construction
    for i, conv in enumerate(self.convs):
      x = conv(x)
      if i < 2:
        x = layers.resize_bilinear(x, (x.shape[1] * 2, x.shape[2] * 2))
    return self.head(x)


class SeedSecondStage(nnx.Module):
  """The study's second decoder (Listing 7, `DecoderDeeplabSA`): one 3×3 conv with bias over the
  summed features, straight to the outputs at stride 4."""

  def __init__(self, channels: int, out_ch: int, *, dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    self.conv3x3 = layers.conv(channels, out_ch, 3, use_bias=True, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, size) -> jax.Array:
    del size  # predictions stay at stride 4; the model upsamples them
    return self.conv3x3(x)


class SeedDeepSecondStage(nnx.Module):
  """The study's deeper second decoder (Listing 8): two 3×3 conv-BN-ReLU, each halving the
  channels and followed by a bilinear resize (to half the output size, then to it), then a 3×3
  conv with bias to the outputs at full resolution."""

  def __init__(self, channels: int, out_ch: int, *, dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    conv_bn_relu = functools.partial(layers.ConvBNReLU, dtype=dtype, rngs=rngs)
    self.conv_upscale1 = conv_bn_relu(channels, channels // 2, 3)
    self.conv_upscale2 = conv_bn_relu(channels // 2, channels // 4, 3)
    self.conv3x3 = layers.conv(channels // 4, out_ch, 3, use_bias=True, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, size) -> jax.Array:
    x = layers.resize_bilinear(self.conv_upscale1(x), (size[0] // 2, size[1] // 2))
    x = layers.resize_bilinear(self.conv_upscale2(x), size)
    return self.conv3x3(x)


# model.second_stage → the distilled model's second decoder, for each head family; each is
# called as decoder(features, output size).
SECOND_STAGE_DECODERS = {'simple': SecondStageDecoder, 'deep': DeepSecondStageDecoder}
SEED_SECOND_STAGE_DECODERS = {'simple': SeedSecondStage, 'deep': SeedDeepSecondStage}
