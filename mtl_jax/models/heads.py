"""Task heads: decoder features → each task's outputs, and their shape at input resolution.

A head is a 1×1 conv to the task's channels (C class logits for semseg, one raw depth channel);
the joint model's single head has C + 1 outputs that `split_joint` separates. Predictions are
upsampled bilinearly to the input size; depth loses its channel axis.
"""

from collections.abc import Sequence

import jax
from flax import nnx

from mtl_jax.models import layers

OTHER_TASK = {'semseg': 'depth', 'depth': 'semseg'}


def task_channels(task: str, num_classes: int) -> int:
  return num_classes if task == 'semseg' else 1


def task_head(in_ch: int, task: str, num_classes: int, *, rngs: nnx.Rngs) -> nnx.Conv:
  """The 1×1 conv that turns decoder features into `task`'s outputs."""
  return nnx.Conv(in_ch, task_channels(task, num_classes), (1, 1), rngs=rngs)


def joint_head(in_ch: int, num_classes: int, *, rngs: nnx.Rngs) -> nnx.Conv:
  """One 1×1 conv for both tasks: C class logits, then the depth channel."""
  return nnx.Conv(in_ch, num_classes + 1, (1, 1), rngs=rngs)


def to_prediction(task: str, x: jax.Array, size: Sequence[int]) -> jax.Array:
  """Head output at any stride → the task's prediction at input resolution."""
  x = layers.resize_bilinear(x, size)
  return x if task == 'semseg' else x[..., 0]


def split_joint(x: jax.Array, num_classes: int, size: Sequence[int]) -> dict[str, jax.Array]:
  """The joint head's C + 1 outputs → {'semseg': logits, 'depth': raw} at input resolution."""
  x = layers.resize_bilinear(x, size)
  return {'semseg': x[..., :num_classes], 'depth': x[..., num_classes]}
