"""Multi-task architectures of the course study, all from the same parts.

Every model maps uint8 NHWC images to {'semseg': logits [N,H,W,C], 'depth': raw [N,H,W]} (only
the tasks it has); the distilled model adds its first-stage predictions under 'aux', which the
loss supervises too. `depth` is the raw depth channel; `mtl_jax.depth_codec` gives metres.

- joint: one encoder, context module and decoder shared by both tasks; one 1×1 head, C + 1 outputs.
- branched: shared encoder; a context module + decoder + head per task.
- distilled: branched first stage, then per task SA(x) = conv3×3(x)·sigmoid(conv3×3(x)); each
  task's second decoder reads its own first-stage features + the other task's SA features.
- single_task: the branched model with one task (the baselines for Δm).

Two head families (`HeadOptions.family`): 'seed', the study's own listings (its decoder's one
3×3 conv goes straight to the outputs; self-attention reads the decoder's concatenated input),
and 'deeplabv3plus', the DeepLabV3+ paper's (decoder features, then 1×1 task heads).

`dtype` is the compute dtype: with 'bfloat16' (mixed precision) convolutions and activations run
in bfloat16, while parameters, BatchNorm statistics (`layers`), the input normalisation and the
outputs (`heads`) stay float32.
"""

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from mtl_jax.data.sample import TASKS
from mtl_jax.models import context, distillation, heads, layers, resnet
from mtl_jax.models import decoder as decoder_lib  # `decoder` names a HeadOptions field
from mtl_jax.runtime.errors import lookup

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEAD_FAMILIES = ('seed', 'deeplabv3plus')


@dataclasses.dataclass(frozen=True)
class EncoderOptions:
  """The ResNet trunk: see `resnet.ResNet` (and `resnet.BLOCK_DILATIONS`)."""

  name: str = 'resnet34'
  output_stride: int = 16
  block_dilation: str = 'both'
  zero_init_residual: bool = False

  def build(self, dtype: DTypeLike, rngs: nnx.Rngs) -> resnet.ResNet:
    return lookup(resnet.ENCODERS, self.name, 'encoder')(
      output_stride=self.output_stride,
      block_dilation=self.block_dilation,
      zero_init_residual=self.zero_init_residual,
      dtype=dtype,
      rngs=rngs,
    )


@dataclasses.dataclass(frozen=True)
class HeadOptions:
  """Everything after the encoder. decoder, decoder_channels and skip_channels are the
  'deeplabv3plus' family's; the seed decoder has none (its conv goes straight to the outputs)."""

  family: str = 'deeplabv3plus'
  use_aspp: bool = True
  aspp_rates: tuple[int, ...] = (3, 6, 9)
  aspp_channels: int = 256
  decoder: str = 'deeplabv3plus'
  decoder_channels: int = 256
  skip_channels: int = 48
  second_stage: str = 'simple'  # distilled only

  def __post_init__(self):
    lookup(dict.fromkeys(HEAD_FAMILIES), self.family, 'head family')

  @property
  def seed(self) -> bool:
    return self.family == 'seed'

  def context(self, in_ch: int, dtype: DTypeLike, rngs: nnx.Rngs) -> nnx.Module:
    """ASPP (the seed's image pooling has no ReLU) or the plain 1×1 context module."""
    if not self.use_aspp:
      return context.PlainContext(in_ch, self.aspp_channels, dtype=dtype, rngs=rngs)
    return context.ASPP(
      in_ch,
      self.aspp_channels,
      self.aspp_rates,
      pooling_relu=not self.seed,
      dtype=dtype,
      rngs=rngs,
    )


class Branch(nnx.Module):
  """'deeplabv3plus': context module + decoder: deepest and stride-4 features → stride-4
  features (task heads turn them into outputs)."""

  def __init__(
    self,
    encoder_channels: dict[str, int],
    options: HeadOptions,
    *,
    dtype: DTypeLike,
    rngs: nnx.Rngs,
  ):
    self.context = options.context(encoder_channels['stride32'], dtype, rngs)
    variant = lookup(decoder_lib.DECODERS, options.decoder, 'decoder')
    self.decoder = decoder_lib.DeepLabV3PlusDecoder(
      options.aspp_channels,
      encoder_channels['stride4'],
      out_ch=options.decoder_channels,
      dtype=dtype,
      rngs=rngs,
      **{'skip_channels': options.skip_channels, **variant},
    )
    self.out_ch = options.decoder_channels

  def __call__(self, features: dict[str, jax.Array]) -> jax.Array:
    return self.decoder(self.context(features['stride32']), features['stride4'])


class SeedBranch(nnx.Module):
  """'seed': context module + the seed decoder → (outputs at stride 4, decoder features)."""

  def __init__(
    self,
    encoder_channels: dict[str, int],
    options: HeadOptions,
    out_ch: int,
    *,
    dtype: DTypeLike,
    rngs: nnx.Rngs,
  ):
    self.context = options.context(encoder_channels['stride32'], dtype, rngs)
    self.decoder = decoder_lib.SeedDecoder(
      options.aspp_channels, encoder_channels['stride4'], out_ch, dtype=dtype, rngs=rngs
    )
    self.features_ch = self.decoder.features_ch

  def __call__(self, features: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    return self.decoder(self.context(features['stride32']), features['stride4'])


class _Base(nnx.Module):
  """Encoder construction and input normalisation shared by every architecture."""

  def __init__(self, encoder: EncoderOptions, dtype: DTypeLike, rngs: nnx.Rngs):
    self.dtype = jnp.dtype(dtype)  # e.g. 'bfloat16' from the config
    self.encoder = encoder.build(self.dtype, rngs)

  def features(self, image: jax.Array) -> dict[str, jax.Array]:
    # Normalised in float32, then cast: bfloat16 would round the mean and std first.
    x = layers.normalize_image(image, IMAGENET_MEAN, IMAGENET_STD)
    return self.encoder(x.astype(self.dtype))


class JointDeepLab(_Base):
  """Both tasks share every layer; the last one's C + 1 outputs are split."""

  def __init__(
    self,
    *,
    encoder: EncoderOptions = EncoderOptions(),
    head: HeadOptions = HeadOptions(),
    num_classes: int = 19,
    dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
  ):
    super().__init__(encoder, dtype, rngs)
    self.num_classes = num_classes
    channels = self.encoder.channels
    if head.seed:
      self.branch = SeedBranch(channels, head, num_classes + 1, dtype=self.dtype, rngs=rngs)
      self.head = None
    else:
      self.branch = Branch(channels, head, dtype=self.dtype, rngs=rngs)
      self.head = heads.joint_head(self.branch.out_ch, num_classes, dtype=self.dtype, rngs=rngs)

  def __call__(self, image: jax.Array) -> dict[str, jax.Array]:
    decoded = self.branch(self.features(image))
    outputs = decoded[0] if self.head is None else self.head(decoded)
    return heads.split_joint(outputs, self.num_classes, image.shape[1:3])


class BranchedDeepLab(_Base):
  """A shared encoder and, per task, its own context module, decoder (and 1×1 head)."""

  def __init__(
    self,
    *,
    encoder: EncoderOptions = EncoderOptions(),
    head: HeadOptions = HeadOptions(),
    num_classes: int = 19,
    tasks: Sequence[str] = TASKS,
    dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
  ):
    super().__init__(encoder, dtype, rngs)
    self.tasks = tuple(tasks)
    channels, dtype = self.encoder.channels, self.dtype
    if head.seed:
      self.branches = nnx.Dict(
        {
          t: SeedBranch(channels, head, heads.task_channels(t, num_classes), dtype=dtype, rngs=rngs)
          for t in tasks
        }
      )
      self.heads = None
    else:
      self.branches = nnx.Dict({t: Branch(channels, head, dtype=dtype, rngs=rngs) for t in tasks})
      self.heads = nnx.Dict(
        {
          t: heads.task_head(self.branches[t].out_ch, t, num_classes, dtype=dtype, rngs=rngs)
          for t in tasks
        }
      )

  def _outputs(self, task: str, features: dict[str, jax.Array]) -> jax.Array:
    decoded = self.branches[task](features)
    return decoded[0] if self.heads is None else self.heads[task](decoded)

  def __call__(self, image: jax.Array) -> dict[str, jax.Array]:
    features = self.features(image)
    size = image.shape[1:3]
    return {t: heads.to_prediction(t, self._outputs(t, features), size) for t in self.tasks}


class DistilledDeepLab(_Base):
  """PAD-Net-style distillation over a branched first stage; both stages are supervised."""

  def __init__(
    self,
    *,
    encoder: EncoderOptions = EncoderOptions(),
    head: HeadOptions = HeadOptions(),
    num_classes: int = 19,
    dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
  ):
    super().__init__(encoder, dtype, rngs)
    self.seed = head.seed
    stages = (
      distillation.SEED_SECOND_STAGE_DECODERS if self.seed else distillation.SECOND_STAGE_DECODERS
    )
    second_decoder = lookup(stages, head.second_stage, 'second_stage')
    channels, dtype = self.encoder.channels, self.dtype
    out = {t: heads.task_channels(t, num_classes) for t in TASKS}
    if self.seed:
      self.branches = nnx.Dict(
        {t: SeedBranch(channels, head, out[t], dtype=dtype, rngs=rngs) for t in TASKS}
      )
      ch = self.branches['semseg'].features_ch
      self.first_heads = None
    else:
      self.branches = nnx.Dict({t: Branch(channels, head, dtype=dtype, rngs=rngs) for t in TASKS})
      ch = self.branches['semseg'].out_ch
      self.first_heads = nnx.Dict(
        {t: heads.task_head(ch, t, num_classes, dtype=dtype, rngs=rngs) for t in TASKS}
      )
    self.attention = nnx.Dict(
      {
        t: distillation.SelfAttention(ch, zero_init_gate=self.seed, dtype=dtype, rngs=rngs)
        for t in TASKS
      }
    )
    self.second_decoders = nnx.Dict(
      {t: second_decoder(ch, out[t], dtype=dtype, rngs=rngs) for t in TASKS}
    )

  def __call__(self, image: jax.Array) -> dict[str, jax.Array]:
    size = image.shape[1:3]
    features = self.features(image)
    decoded = {t: self.branches[t](features) for t in TASKS}
    # The features distillation reads: the seed decoder's concat, else the decoder's output.
    first = {t: decoded[t][1] for t in TASKS} if self.seed else decoded
    attended = {t: self.attention[t](first[t]) for t in TASKS}
    outputs = {
      t: heads.to_prediction(
        t, self.second_decoders[t](first[t] + attended[heads.OTHER_TASK[t]], size), size
      )
      for t in TASKS
    }
    # First-stage outputs after the second stage, as before the seed family existed: the same
    # graph order keeps XLA's float rounding, so the :cpu demo trains bit for bit as it did.
    first_outputs = (
      {t: decoded[t][0] for t in TASKS}
      if self.seed
      else {t: self.first_heads[t](first[t]) for t in TASKS}
    )
    outputs['aux'] = {t: heads.to_prediction(t, first_outputs[t], size) for t in TASKS}
    return outputs


ARCHITECTURES = {
  'joint': JointDeepLab,
  'branched': BranchedDeepLab,
  'distilled': DistilledDeepLab,
  'single_task': BranchedDeepLab,  # with tasks=('semseg',) or ('depth',)
}


# The top-level modules whose parameters serve more than one task, by architecture (None: all of
# them), for the gradient-balancing methods: the joint model shares every layer, its last conv
# included; the branched one its encoder; the distilled one its encoder and first-stage branches
# (each branch feeds its own task's heads and, through its attention module, the other task's
# second stage). Every other parameter serves one task: `attention[t]` the other task's.
SHARED_MODULES = {
  'joint': None,
  'branched': ('encoder',),
  'distilled': ('encoder', 'branches'),
  'single_task': ('encoder',),
}


def build_model(arch: str, *, seed: int, **options) -> nnx.Module:
  """Architecture `arch` (see ARCHITECTURES) with parameters drawn from `seed`; `options` are
  its constructor's keyword arguments (encoder=EncoderOptions(...), head=HeadOptions(...),
  dtype='bfloat16', ...)."""
  return lookup(ARCHITECTURES, arch, 'architecture')(rngs=nnx.Rngs(seed), **options)


def last_shared_layer(arch: str, encoder: str, head: HeadOptions) -> tuple[str, ...]:
  """GradNorm's W (Chen et al. 2018: 'the last shared layer'), as the path of its parameters.

  The joint model: its last layer before the joint head, the decoder's last conv (with the seed
  heads, the decoder's one conv, whose outputs the tasks split). The others: the encoder's last
  conv, the distilled model's included, whose first-stage branches each decode one task and meet
  the other only through distillation.
  """
  if arch != 'joint':
    return ('encoder', *resnet.last_conv(encoder))
  if head.seed:
    return ('branch', 'decoder', 'conv3x3')
  num_convs = lookup(decoder_lib.DECODERS, head.decoder, 'decoder')['num_convs']
  return ('branch', 'decoder', 'convs', str(num_convs - 1), 'conv')
