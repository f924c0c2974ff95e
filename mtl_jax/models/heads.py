"""Per-task pieces built on decoder features: the task branch and PAD-Net-style distillation."""

from collections.abc import Sequence

import jax
from flax import nnx

from mtl_jax.models import aspp as aspp_lib
from mtl_jax.models import deeplab, layers


class PlainContext(nnx.Module):
  """The first rows of the study: no ASPP, a 1×1 conv-BN-ReLU over the deepest features."""

  def __init__(self, in_ch: int, out_ch: int, *, rngs: nnx.Rngs):
    self.proj = layers.ConvBNReLU(in_ch, out_ch, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.proj(x)


class Branch(nnx.Module):
  """Context module (ASPP or plain) + decoder: deepest and stride-4 features → stride-4 features."""

  def __init__(self, encoder_channels: dict[str, int], *, use_aspp: bool = True,
               aspp_rates: Sequence[int] = (3, 6, 9), aspp_channels: int = 256,
               decoder: str = 'deeplabv3plus', decoder_channels: int = 256,
               skip_channels: int = 48, rngs: nnx.Rngs):
    deepest = encoder_channels['stride32']
    self.context = (aspp_lib.ASPP(deepest, aspp_channels, aspp_rates, rngs=rngs) if use_aspp
                    else PlainContext(deepest, aspp_channels, rngs=rngs))
    if decoder not in deeplab.DECODERS:
      raise ValueError(f'unknown decoder {decoder!r}; valid names: {", ".join(deeplab.DECODERS)}')
    options = {'skip_reduced_ch': skip_channels, **deeplab.DECODERS[decoder]}
    self.decoder = deeplab.DeepLabV3PlusDecoder(
        aspp_channels, encoder_channels['stride4'], out_ch=decoder_channels, rngs=rngs,
        **options)
    self.out_ch = decoder_channels

  def __call__(self, features: dict[str, jax.Array]) -> jax.Array:
    return self.decoder(self.context(features['stride32']), features['stride4'])


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
    self.convs = nnx.List([layers.ConvBNReLU(widths[i], widths[i + 1], 3, rngs=rngs)
                           for i in range(3)])
    self.head = nnx.Conv(widths[-1], out_ch, (1, 1), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    for i, conv in enumerate(self.convs):
      x = conv(x)
      if i < 2:
        x = layers.resize_bilinear(x, (x.shape[1] * 2, x.shape[2] * 2))
    return self.head(x)


SECOND_STAGE_DECODERS = {'simple': SecondStageDecoder, 'deep': DeepSecondStageDecoder}
