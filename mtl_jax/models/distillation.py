"""PAD-Net-style distillation: the self-attention gate and the second-stage decoders."""

import jax
from flax import nnx

from mtl_jax.models import layers


class SelfAttention(nnx.Module):
  """PAD-Net's distillation gate: SA(x) = conv3×3(x) · sigmoid(conv3×3(x))."""

  def __init__(self, channels: int, *, rngs: nnx.Rngs):
    self.value = layers.conv(channels, channels, 3, rngs=rngs)
    self.gate = layers.conv(channels, channels, 3, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.value(x) * nnx.sigmoid(self.gate(x))


class SecondStageDecoder(nnx.Module):
  """The distilled model's second decoder: 3×3 conv-BN-ReLU at stride 4, 1×1 to outputs."""

  def __init__(self, channels: int, out_ch: int, *, rngs: nnx.Rngs):
    self.conv = layers.ConvBNReLU(channels, channels, 3, rngs=rngs)
    self.head = nnx.Conv(channels, out_ch, (1, 1), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.conv(x))


class DeepSecondStageDecoder(nnx.Module):
  """The deeper variant: three 3×3 conv-BN-ReLU, 2× upsampling after the first two, channels
  halved each time, so predictions come out at full resolution."""

  def __init__(self, channels: int, out_ch: int, *, rngs: nnx.Rngs):
    widths = (channels, channels // 2, channels // 4, channels // 8)
    self.convs = nnx.List(
      [layers.ConvBNReLU(widths[i], widths[i + 1], 3, rngs=rngs) for i in range(3)]
    )
    self.head = nnx.Conv(widths[-1], out_ch, (1, 1), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    for i, conv in enumerate(self.convs):
      x = conv(x)
      if i < 2:
        x = layers.resize_bilinear(x, (x.shape[1] * 2, x.shape[2] * 2))
    return self.head(x)


SECOND_STAGE_DECODERS = {'simple': SecondStageDecoder, 'deep': DeepSecondStageDecoder}
