"""Multi-task architectures of the course study, all from the same parts.

Every model maps uint8 NHWC images to {'semseg': logits [N,H,W,C], 'depth': raw [N,H,W]} (only
the tasks it has); the distilled model adds its first-stage predictions under 'aux', which the
loss supervises too. `depth` is the raw depth channel; `mtl_jax.depth_codec` gives metres.

- joint: one encoder, context module and decoder shared by both tasks; one 1×1 head, C + 1 outputs.
- branched: shared encoder; a context module + decoder + head per task.
- distilled: branched first stage, then per task SA(x) = conv3×3(x)·sigmoid(conv3×3(x)); each
  task's second decoder reads its own first-stage features + the other task's SA features.
- single_task: the branched model with one task (the baselines for Δm).
"""

from collections.abc import Sequence

import jax
from flax import nnx

from mtl_jax.models import heads, layers, resnet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TASKS = ('semseg', 'depth')


def _task_channels(task: str, num_classes: int) -> int:
  return num_classes if task == 'semseg' else 1


def _to_outputs(task: str, x: jax.Array, size) -> jax.Array:
  """Head output at any stride → the task's prediction at input resolution."""
  x = layers.resize_bilinear(x, size)
  return x if task == 'semseg' else x[..., 0]


class _Base(nnx.Module):
  """Encoder construction and input normalisation shared by every architecture."""

  def __init__(self, encoder: str, output_stride: int, zero_init_residual: bool,
               rngs: nnx.Rngs):
    if encoder not in resnet.ENCODERS:
      raise ValueError(f'unknown encoder {encoder!r}; valid names: {", ".join(resnet.ENCODERS)}')
    self.encoder = resnet.ENCODERS[encoder](output_stride=output_stride,
                                            zero_init_residual=zero_init_residual, rngs=rngs)

  def features(self, image: jax.Array) -> dict[str, jax.Array]:
    return self.encoder(layers.normalize_image(image, IMAGENET_MEAN, IMAGENET_STD))


def _branch(encoder: nnx.Module, rngs: nnx.Rngs, **branch_kwargs) -> heads.Branch:
  return heads.Branch(encoder.channels, rngs=rngs, **branch_kwargs)


class JointDeepLab(_Base):
  """Both tasks share every layer but the last channel split of one 1×1 head."""

  def __init__(self, *, encoder: str = 'resnet34', num_classes: int = 19,
               output_stride: int = 16, zero_init_residual: bool = False, rngs: nnx.Rngs,
               **branch_kwargs):
    super().__init__(encoder, output_stride, zero_init_residual, rngs)
    self.branch = _branch(self.encoder, rngs, **branch_kwargs)
    self.head = nnx.Conv(self.branch.out_ch, num_classes + 1, (1, 1), rngs=rngs)
    self.num_classes = num_classes

  def __call__(self, image: jax.Array) -> dict[str, jax.Array]:
    out = layers.resize_bilinear(self.head(self.branch(self.features(image))), image.shape[1:3])
    return {'semseg': out[..., :self.num_classes], 'depth': out[..., self.num_classes]}


class BranchedDeepLab(_Base):
  """A shared encoder and, per task, its own context module, decoder and 1×1 head."""

  def __init__(self, *, encoder: str = 'resnet34', num_classes: int = 19,
               output_stride: int = 16, zero_init_residual: bool = False,
               tasks: Sequence[str] = TASKS, rngs: nnx.Rngs, **branch_kwargs):
    super().__init__(encoder, output_stride, zero_init_residual, rngs)
    self.tasks = tuple(tasks)
    self.branches = nnx.Dict({t: _branch(self.encoder, rngs, **branch_kwargs) for t in tasks})
    self.heads = nnx.Dict({t: nnx.Conv(self.branches[t].out_ch, _task_channels(t, num_classes),
                                       (1, 1), rngs=rngs) for t in tasks})

  def __call__(self, image: jax.Array) -> dict[str, jax.Array]:
    features = self.features(image)
    return {t: _to_outputs(t, self.heads[t](self.branches[t](features)), image.shape[1:3])
            for t in self.tasks}


class DistilledDeepLab(_Base):
  """PAD-Net-style distillation over a branched first stage; both stages are supervised."""

  def __init__(self, *, encoder: str = 'resnet34', num_classes: int = 19,
               output_stride: int = 16, zero_init_residual: bool = False,
               second_stage: str = 'simple', rngs: nnx.Rngs, **branch_kwargs):
    super().__init__(encoder, output_stride, zero_init_residual, rngs)
    if second_stage not in heads.SECOND_STAGE_DECODERS:
      raise ValueError(f'unknown second_stage {second_stage!r}; valid names: '
                       f'{", ".join(heads.SECOND_STAGE_DECODERS)}')
    self.branches = nnx.Dict({t: _branch(self.encoder, rngs, **branch_kwargs) for t in TASKS})
    ch = self.branches['semseg'].out_ch
    self.first_heads = nnx.Dict({t: nnx.Conv(ch, _task_channels(t, num_classes), (1, 1),
                                             rngs=rngs) for t in TASKS})
    self.attention = nnx.Dict({t: heads.SelfAttention(ch, rngs=rngs) for t in TASKS})
    decoder = heads.SECOND_STAGE_DECODERS[second_stage]
    self.second_decoders = nnx.Dict({t: decoder(ch, _task_channels(t, num_classes), rngs=rngs)
                                     for t in TASKS})

  def __call__(self, image: jax.Array) -> dict[str, jax.Array]:
    features = self.features(image)
    size = image.shape[1:3]
    first = {t: self.branches[t](features) for t in TASKS}
    attended = {t: self.attention[t](first[t]) for t in TASKS}
    other = {'semseg': 'depth', 'depth': 'semseg'}
    outputs = {t: _to_outputs(t, self.second_decoders[t](first[t] + attended[other[t]]), size)
               for t in TASKS}
    outputs['aux'] = {t: _to_outputs(t, self.first_heads[t](first[t]), size) for t in TASKS}
    return outputs


ARCHITECTURES = {
    'joint': JointDeepLab,
    'branched': BranchedDeepLab,
    'distilled': DistilledDeepLab,
    'single_task': BranchedDeepLab,  # with tasks=('semseg',) or ('depth',)
}


def build_model(arch: str, *, seed: int, **kwargs) -> nnx.Module:
  """Looks `arch` up in ARCHITECTURES and builds it with the given keyword arguments."""
  if arch not in ARCHITECTURES:
    raise ValueError(f'unknown architecture {arch!r}; valid names: {", ".join(ARCHITECTURES)}')
  return ARCHITECTURES[arch](rngs=nnx.Rngs(seed), **kwargs)
