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

from mtl_jax.data.sample import TASKS
from mtl_jax.errors import lookup
from mtl_jax.models import context, distillation, heads, layers, resnet
from mtl_jax.models import decoder as decoder_lib  # `decoder` names Branch's variant argument

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Branch(nnx.Module):
  """Context module (ASPP or plain) + decoder: deepest and stride-4 features → stride-4 features."""

  def __init__(
    self,
    encoder_channels: dict[str, int],
    *,
    use_aspp: bool = True,
    aspp_rates: Sequence[int] = (3, 6, 9),
    aspp_channels: int = 256,
    decoder: str = 'deeplabv3plus',
    decoder_channels: int = 256,
    skip_channels: int = 48,
    rngs: nnx.Rngs,
  ):
    deepest = encoder_channels['stride32']
    self.context = (
      context.ASPP(deepest, aspp_channels, aspp_rates, rngs=rngs)
      if use_aspp
      else context.PlainContext(deepest, aspp_channels, rngs=rngs)
    )
    options = {'skip_channels': skip_channels, **lookup(decoder_lib.DECODERS, decoder, 'decoder')}
    self.decoder = decoder_lib.DeepLabV3PlusDecoder(
      aspp_channels, encoder_channels['stride4'], out_ch=decoder_channels, rngs=rngs, **options
    )
    self.out_ch = decoder_channels

  def __call__(self, features: dict[str, jax.Array]) -> jax.Array:
    return self.decoder(self.context(features['stride32']), features['stride4'])


class _Base(nnx.Module):
  """Encoder construction and input normalisation shared by every architecture."""

  def __init__(self, encoder: str, output_stride: int, zero_init_residual: bool, rngs: nnx.Rngs):
    self.encoder = lookup(resnet.ENCODERS, encoder, 'encoder')(
      output_stride=output_stride, zero_init_residual=zero_init_residual, rngs=rngs
    )

  def features(self, image: jax.Array) -> dict[str, jax.Array]:
    return self.encoder(layers.normalize_image(image, IMAGENET_MEAN, IMAGENET_STD))


class JointDeepLab(_Base):
  """Both tasks share every layer but the last channel split of one 1×1 head."""

  def __init__(
    self,
    *,
    encoder: str = 'resnet34',
    num_classes: int = 19,
    output_stride: int = 16,
    zero_init_residual: bool = False,
    rngs: nnx.Rngs,
    **branch_options,
  ):
    super().__init__(encoder, output_stride, zero_init_residual, rngs)
    self.branch = Branch(self.encoder.channels, rngs=rngs, **branch_options)
    self.head = heads.joint_head(self.branch.out_ch, num_classes, rngs=rngs)
    self.num_classes = num_classes

  def __call__(self, image: jax.Array) -> dict[str, jax.Array]:
    features = self.head(self.branch(self.features(image)))
    return heads.split_joint(features, self.num_classes, image.shape[1:3])


class BranchedDeepLab(_Base):
  """A shared encoder and, per task, its own context module, decoder and 1×1 head."""

  def __init__(
    self,
    *,
    encoder: str = 'resnet34',
    num_classes: int = 19,
    output_stride: int = 16,
    zero_init_residual: bool = False,
    tasks: Sequence[str] = TASKS,
    rngs: nnx.Rngs,
    **branch_options,
  ):
    super().__init__(encoder, output_stride, zero_init_residual, rngs)
    self.tasks = tuple(tasks)
    self.branches = nnx.Dict(
      {t: Branch(self.encoder.channels, rngs=rngs, **branch_options) for t in tasks}
    )
    self.heads = nnx.Dict(
      {t: heads.task_head(self.branches[t].out_ch, t, num_classes, rngs=rngs) for t in tasks}
    )

  def __call__(self, image: jax.Array) -> dict[str, jax.Array]:
    features = self.features(image)
    return {
      t: heads.to_prediction(t, self.heads[t](self.branches[t](features)), image.shape[1:3])
      for t in self.tasks
    }


class DistilledDeepLab(_Base):
  """PAD-Net-style distillation over a branched first stage; both stages are supervised."""

  def __init__(
    self,
    *,
    encoder: str = 'resnet34',
    num_classes: int = 19,
    output_stride: int = 16,
    zero_init_residual: bool = False,
    second_stage: str = 'simple',
    rngs: nnx.Rngs,
    **branch_options,
  ):
    super().__init__(encoder, output_stride, zero_init_residual, rngs)
    second_decoder = lookup(distillation.SECOND_STAGE_DECODERS, second_stage, 'second_stage')
    self.branches = nnx.Dict(
      {t: Branch(self.encoder.channels, rngs=rngs, **branch_options) for t in TASKS}
    )
    ch = self.branches['semseg'].out_ch
    self.first_heads = nnx.Dict({t: heads.task_head(ch, t, num_classes, rngs=rngs) for t in TASKS})
    self.attention = nnx.Dict({t: distillation.SelfAttention(ch, rngs=rngs) for t in TASKS})
    self.second_decoders = nnx.Dict(
      {t: second_decoder(ch, heads.task_channels(t, num_classes), rngs=rngs) for t in TASKS}
    )

  def __call__(self, image: jax.Array) -> dict[str, jax.Array]:
    features = self.features(image)
    size = image.shape[1:3]
    first = {t: self.branches[t](features) for t in TASKS}
    attended = {t: self.attention[t](first[t]) for t in TASKS}
    outputs = {
      t: heads.to_prediction(
        t, self.second_decoders[t](first[t] + attended[heads.OTHER_TASK[t]]), size
      )
      for t in TASKS
    }
    outputs['aux'] = {t: heads.to_prediction(t, self.first_heads[t](first[t]), size) for t in TASKS}
    return outputs


ARCHITECTURES = {
  'joint': JointDeepLab,
  'branched': BranchedDeepLab,
  'distilled': DistilledDeepLab,
  'single_task': BranchedDeepLab,  # with tasks=('semseg',) or ('depth',)
}


def build_model(arch: str, *, seed: int, **options) -> nnx.Module:
  """Architecture `arch` (see ARCHITECTURES) with parameters drawn from `seed`; `options` are
  its constructor's keyword arguments."""
  return lookup(ARCHITECTURES, arch, 'architecture')(rngs=nnx.Rngs(seed), **options)
