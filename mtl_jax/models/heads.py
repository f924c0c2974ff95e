"""Task heads: decoder features → each task's outputs, and their shape at input resolution.

A head is a 1×1 conv to the task's channels (C class logits for semseg, one raw depth channel);
the joint model's single head has C + 1 outputs that `split_joint` separates. Predictions are
upsampled bilinearly to the input size (in the compute dtype), depth loses its channel axis, and
they leave the model in float32 whatever it computed in: losses, softmax, argmax and metrics
read them.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from mtl_jax.models import layers

OTHER_TASK = {'semseg': 'depth', 'depth': 'semseg'}


def task_channels(task: str, num_classes: int) -> int:
  return num_classes if task == 'semseg' else 1


def task_head(
  in_ch: int, task: str, num_classes: int, *, dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs
) -> nnx.Conv:
  """The 1×1 conv that turns decoder features into `task`'s outputs."""
  return layers.head_conv(in_ch, task_channels(task, num_classes), dtype=dtype, rngs=rngs)


def joint_head(
  in_ch: int, num_classes: int, *, dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs
) -> nnx.Conv:
  """One 1×1 conv for both tasks: C class logits, then the depth channel."""
  return layers.head_conv(in_ch, num_classes + 1, dtype=dtype, rngs=rngs)


def _upsampled_float32(x: jax.Array, size: Sequence[int]) -> jax.Array:
  """Upsampled to the input size, then float32 (see the module docstring)."""
  return layers.resize_bilinear(x, size).astype(jnp.float32)


def to_prediction(task: str, x: jax.Array, size: Sequence[int]) -> jax.Array:
  """Head output at any stride → the task's prediction at input resolution."""
  x = _upsampled_float32(x, size)
  return x if task == 'semseg' else x[..., 0]


def split_joint(x: jax.Array, num_classes: int, size: Sequence[int]) -> dict[str, jax.Array]:
  """The joint head's C + 1 outputs → {'semseg': logits, 'depth': raw} at input resolution."""
  x = _upsampled_float32(x, size)
  return {'semseg': x[..., :num_classes], 'depth': x[..., num_classes]}
