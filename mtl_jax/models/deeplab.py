"""DeepLabV3+ decoder: fuse the upsampled ASPP output with the stride-4 skip features."""

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models import layers


class DeepLabV3PlusDecoder(nnx.Module):
  """Upsample context to the skip's resolution, concat with the (1×1-reduced) skip, 3×3 convs.

  Returns decoder features at stride 4; task heads turn them into predictions.
  """

  def __init__(self, context_ch: int, skip_ch: int, *, skip_reduced_ch: int = 48,
               out_ch: int = 256, num_convs: int = 2, rngs: nnx.Rngs):
    self.skip_reduce = layers.ConvBNReLU(skip_ch, skip_reduced_ch, 1, rngs=rngs)
    in_ch = context_ch + skip_reduced_ch
    convs = []
    for _ in range(num_convs):
      convs.append(layers.ConvBNReLU(in_ch, out_ch, 3, rngs=rngs))
      in_ch = out_ch
    self.convs = nnx.List(convs)
    self.out_ch = out_ch

  def __call__(self, context: jax.Array, skip: jax.Array) -> jax.Array:
    context = layers.resize_bilinear(context, skip.shape[1:3])
    x = jnp.concatenate([context, self.skip_reduce(skip)], axis=-1)
    for conv in self.convs:
      x = conv(x)
    return x
