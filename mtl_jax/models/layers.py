"""Small building blocks shared by the encoder, ASPP and decoders (NHWC throughout).

Every conv and BatchNorm is made here, with the model's compute dtype (`dtype`: float32, or
bfloat16 for mixed precision) and float32 parameters, so the optimizer state is float32 too.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

# torchvision's defaults: BN eps 1e-5 and running-stat momentum 0.1, i.e. flax momentum 0.9.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

# torchvision initialises convolutions with kaiming_normal_(mode='fan_out', nonlinearity='relu').
conv_init = nnx.initializers.variance_scaling(2.0, 'fan_out', 'normal')

# Parameters are stored, updated and checkpointed in float32 whatever the compute dtype.
PARAM_DTYPE = jnp.float32


def conv(
  in_ch: int,
  out_ch: int,
  kernel: int,
  *,
  stride: int = 1,
  dilation: int = 1,
  use_bias: bool = False,
  dtype: DTypeLike = jnp.float32,
  rngs: nnx.Rngs,
) -> nnx.Conv:
  """A conv with torch-style symmetric padding (dilation·(k−1)/2 on each side).

  'SAME' would pad asymmetrically for strided convs and break parity with torchvision.
  """
  pad = dilation * (kernel - 1) // 2
  return nnx.Conv(
    in_ch,
    out_ch,
    (kernel, kernel),
    strides=stride,
    padding=((pad, pad), (pad, pad)),
    kernel_dilation=dilation,
    use_bias=use_bias,
    kernel_init=conv_init,
    dtype=dtype,
    param_dtype=PARAM_DTYPE,
    rngs=rngs,
  )


def head_conv(
  in_ch: int, out_ch: int, *, dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs
) -> nnx.Conv:
  """The 1×1 conv with bias that ends a head, with flax's default (LeCun normal) init."""
  return nnx.Conv(in_ch, out_ch, (1, 1), dtype=dtype, param_dtype=PARAM_DTYPE, rngs=rngs)


def _float32_statistics(args, /, *, dtype=None, inexact=True):
  """nnx.BatchNorm's `promote_dtype` (flax.typing.PromoteDtypeFn): only the input takes the
  compute dtype.

  Flax's default casts the running mean and variance, scale and bias to it too, so a bfloat16
  model would normalise with bfloat16 statistics at eval time (x − mean cancels to a few bits).
  Kept float32, the statistics are computed and applied in float32 (flax computes batch
  statistics in at least float32 anyway) and only the output is cast to the compute dtype.
  """
  del inexact  # the input is a float activation
  x, *statistics = args
  return (jnp.asarray(x, dtype), *statistics)


def batch_norm(
  features: int,
  *,
  zero_init: bool = False,
  dtype: DTypeLike = jnp.float32,
  rngs: nnx.Rngs,
) -> nnx.BatchNorm:
  """BatchNorm with float32 running statistics and normalisation; its output is in `dtype`."""
  scale_init = nnx.initializers.zeros if zero_init else nnx.initializers.ones
  return nnx.BatchNorm(
    features,
    momentum=BN_MOMENTUM,
    epsilon=BN_EPSILON,
    scale_init=scale_init,
    dtype=dtype,
    param_dtype=PARAM_DTYPE,
    promote_dtype=_float32_statistics,
    rngs=rngs,
  )


class ConvBNReLU(nnx.Module):
  """conv → BatchNorm → ReLU, the unit of ASPP and the decoders."""

  def __init__(
    self,
    in_ch: int,
    out_ch: int,
    kernel: int = 3,
    *,
    dilation: int = 1,
    dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.conv = conv(in_ch, out_ch, kernel, dilation=dilation, dtype=dtype, rngs=rngs)
    self.bn = batch_norm(out_ch, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return nnx.relu(self.bn(self.conv(x)))


def resize_bilinear(x: jax.Array, size: Sequence[int]) -> jax.Array:
  """Bilinear resize of NHWC `x` to spatial `size` (half-pixel centres: align_corners=False)."""
  if tuple(x.shape[1:3]) == tuple(size):
    return x
  return jax.image.resize(x, (x.shape[0], *size, x.shape[-1]), method='bilinear')


def max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  """torch MaxPool2d(3, stride=2, padding=1): pads with -inf so padding never wins."""
  return nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


def normalize_image(image: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
  """uint8 NHWC → float32 with per-channel ImageNet-style normalisation (done on device)."""
  x = image.astype(jnp.float32) / 255.0
  return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
