"""Every head piece and whole architecture has the parameter count of its PyTorch equivalent.

The reference counts are computed live from the torch modules below, which mirror our layer
definitions one to one: 1×1 vs 3×3 kernels, channel widths, no bias on a conv followed by
BatchNorm (nor on the self-attention convs, as PAD-Net's), a bias on every final 1×1 prediction
conv, BatchNorm scale + bias trainable and mean + var as running statistics. The encoder is
torchvision's ResNet with `replace_stride_with_dilation` for the output stride and no `fc`.
Torch attributes are named like ours, so counts are compared module by module and a mismatch
names the layer. Torch builds on the meta device and ours under `nnx.eval_shape`: nothing is
allocated, so even the full presets count in well under a second each.
"""

import collections
import math

import pytest
import seed_torch
from conftest import model_cases
from flax import nnx
from torch_resnets import DILATIONS, DilatedBasicBlock

from mtl_jax import experiment
from mtl_jax.config import files
from mtl_jax.models import context, decoder, distillation, mtl

torch = pytest.importorskip('torch')
torchvision = pytest.importorskip('torchvision')
tv_resnet = pytest.importorskip('torchvision.models.resnet')
tv_deeplabv3 = pytest.importorskip('torchvision.models.segmentation.deeplabv3')
nn = torch.nn

BASIC_BLOCK_LAYERS = {'resnet18': [2, 2, 2, 2], 'resnet34': [3, 4, 6, 3]}
# Every distinct full-size and :cpu model of the shipped configs.
CASES = model_cases() + model_cases('cpu')  # pytest.param(config path, preset)


# --- torch equivalents (parameter containers: only the layers matter for counting) -------------


def torch_encoder(name: str, output_stride: int) -> nn.Module:
  flags = DILATIONS[output_stride]
  if any(flags) and name in BASIC_BLOCK_LAYERS:
    encoder = tv_resnet.ResNet(
      DilatedBasicBlock, BASIC_BLOCK_LAYERS[name], replace_stride_with_dilation=flags
    )
  else:
    encoder = getattr(torchvision.models, name)(replace_stride_with_dilation=flags)
  del encoder.fc
  return encoder


def stage_channels(stage: nn.Module) -> int:
  """A ResNet stage's output channels: its last conv's (the last block has no downsample)."""
  return [m for m in stage.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


class ConvBNReLU(nn.Module):
  def __init__(self, in_ch, out_ch, kernel=3, dilation=1):
    super().__init__()
    self.conv = nn.Conv2d(
      in_ch, out_ch, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation, bias=False
    )
    self.bn = nn.BatchNorm2d(out_ch)


class ImagePooling(nn.Module):
  def __init__(self, in_ch, out_ch):
    super().__init__()
    self.proj = ConvBNReLU(in_ch, out_ch, 1)


class ASPP(nn.Module):
  """DeepLabV3's: a 1×1 branch, a 3×3 branch per rate, image pooling, 1×1 projection."""

  def __init__(self, in_ch, out_ch, rates):
    super().__init__()
    self.branches = nn.ModuleList(
      [ConvBNReLU(in_ch, out_ch, 1)] + [ConvBNReLU(in_ch, out_ch, 3, dilation=r) for r in rates]
    )
    self.pooling = ImagePooling(in_ch, out_ch)
    self.project = ConvBNReLU(out_ch * (len(rates) + 2), out_ch, 1)


class PlainContext(nn.Module):
  def __init__(self, in_ch, out_ch):
    super().__init__()
    self.proj = ConvBNReLU(in_ch, out_ch, 1)


class Decoder(nn.Module):
  """'deeplabv3plus': 1×1 skip reduction, two 3×3; 'seed': one 3×3 over [context, raw skip]."""

  def __init__(self, variant, context_ch, skip_ch, skip_channels, out_ch):
    super().__init__()
    if variant == 'deeplabv3plus':
      self.skip_reduce = ConvBNReLU(skip_ch, skip_channels, 1)
      self.convs = nn.ModuleList(
        [ConvBNReLU(context_ch + skip_channels, out_ch), ConvBNReLU(out_ch, out_ch)]
      )
    elif variant == 'seed':
      self.convs = nn.ModuleList([ConvBNReLU(context_ch + skip_ch, out_ch)])
    else:
      raise ValueError(f'no torch reference for decoder {variant!r}')


class Branch(nn.Module):
  def __init__(self, m, skip_ch, deepest_ch):
    super().__init__()
    self.context = (
      ASPP(deepest_ch, m.aspp_channels, m.aspp_rates)
      if m.use_aspp
      else PlainContext(deepest_ch, m.aspp_channels)
    )
    self.decoder = Decoder(m.decoder, m.aspp_channels, skip_ch, m.skip_channels, m.decoder_channels)


class SelfAttention(nn.Module):
  """PAD-Net's SA block: two bias-free 3×3 convs (value and sigmoid gate)."""

  def __init__(self, ch):
    super().__init__()
    self.value = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
    self.gate = nn.Conv2d(ch, ch, 3, padding=1, bias=False)


class SecondStageDecoder(nn.Module):
  def __init__(self, ch, out_ch):
    super().__init__()
    self.conv = ConvBNReLU(ch, ch)
    self.head = nn.Conv2d(ch, out_ch, 1)


class DeepSecondStageDecoder(nn.Module):
  def __init__(self, ch, out_ch):
    super().__init__()
    self.convs = nn.ModuleList(
      [ConvBNReLU(ch, ch // 2), ConvBNReLU(ch // 2, ch // 4), ConvBNReLU(ch // 4, ch // 8)]
    )
    self.head = nn.Conv2d(ch // 8, out_ch, 1)


SECOND_STAGE = {'simple': SecondStageDecoder, 'deep': DeepSecondStageDecoder}


class Model(nn.Module):
  """Any architecture of the study, from a config's `model` group."""

  def __init__(self, m):
    super().__init__()
    self.encoder = torch_encoder(m.encoder, m.output_stride)
    skip_ch, deepest_ch = (stage_channels(self.encoder.layer1), stage_channels(self.encoder.layer4))
    out_ch = {'semseg': m.num_classes, 'depth': 1}
    if m.arch == 'joint':
      self.branch = Branch(m, skip_ch, deepest_ch)
      self.head = nn.Conv2d(m.decoder_channels, m.num_classes + 1, 1)
      return
    tasks = m.tasks if m.arch == 'single_task' else ('semseg', 'depth')
    self.branches = nn.ModuleDict({t: Branch(m, skip_ch, deepest_ch) for t in tasks})
    if m.arch in ('branched', 'single_task'):
      self.heads = nn.ModuleDict({t: nn.Conv2d(m.decoder_channels, out_ch[t], 1) for t in tasks})
    elif m.arch == 'distilled':
      ch = m.decoder_channels
      self.first_heads = nn.ModuleDict({t: nn.Conv2d(ch, out_ch[t], 1) for t in tasks})
      self.attention = nn.ModuleDict({t: SelfAttention(ch) for t in tasks})
      self.second_decoders = nn.ModuleDict(
        {t: SECOND_STAGE[m.second_stage](ch, out_ch[t]) for t in tasks}
      )
    else:
      raise ValueError(f'no torch reference for architecture {m.arch!r}')


# --- counting ----------------------------------------------------------------------------------


def torch_on_meta(module_fn) -> nn.Module:
  with torch.device('meta'):  # shapes only, like nnx.eval_shape
    return module_fn()


def torch_counts(module: nn.Module, running_stats: bool = False) -> dict[str, int]:
  """Module path → trainable parameters (or BatchNorm running mean + var) it holds."""
  if running_stats:
    tensors = [
      (n, b) for n, b in module.named_buffers() if n.endswith(('.running_mean', '.running_var'))
    ]
  else:
    tensors = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
  counts = collections.Counter()
  for name, tensor in tensors:
    counts[name.rpartition('.')[0]] += tensor.numel()
  return dict(counts)


def nnx_counts(module: nnx.Module, variable=nnx.Param) -> dict[str, int]:
  """Module path → size of its `variable`s, paths spelled like torch's ('layer1.0.conv1')."""
  counts = collections.Counter()
  for path, value in nnx.to_flat_state(nnx.state(module, variable)):
    counts['.'.join(map(str, path[:-1]))] += math.prod(value.shape)
  return dict(counts)


def assert_counts_match(ours: nnx.Module, reference: nn.Module) -> None:
  """Per module and in total: parameters, then BatchNorm running statistics."""
  for ours_counts, torch_counts_ in (
    (nnx_counts(ours), torch_counts(reference)),
    (nnx_counts(ours, nnx.BatchStat), torch_counts(reference, running_stats=True)),
  ):
    assert ours_counts == torch_counts_
    assert sum(ours_counts.values()) == sum(torch_counts_.values())


# --- pieces ------------------------------------------------------------------------------------


def _abstract(module_fn) -> nnx.Module:
  return nnx.eval_shape(lambda: module_fn(nnx.Rngs(0)))


def _piece_cases():
  """id → (our builder taking rngs, torch builder), at full / cpu / distilled-cpu width."""
  cases = {}
  for ch in (256, 128, 64):
    cases[f'aspp-{ch}'] = (
      lambda r, ch=ch: context.ASPP(512, ch, (3, 6, 9), rngs=r),
      lambda ch=ch: ASPP(512, ch, (3, 6, 9)),
    )
    cases[f'plain_context-{ch}'] = (
      lambda r, ch=ch: context.PlainContext(512, ch, rngs=r),
      lambda ch=ch: PlainContext(512, ch),
    )
    for variant in decoder.DECODERS:
      cases[f'decoder_{variant}-{ch}'] = (
        lambda r, ch=ch, v=variant: decoder.DeepLabV3PlusDecoder(
          ch, 64, out_ch=ch, rngs=r, **{'skip_channels': 48, **decoder.DECODERS[v]}
        ),
        lambda ch=ch, v=variant: Decoder(v, ch, 64, 48, ch),
      )
    cases[f'self_attention-{ch}'] = (
      lambda r, ch=ch: distillation.SelfAttention(ch, rngs=r),
      lambda ch=ch: SelfAttention(ch),
    )
    for name, out in (('semseg', 19), ('depth', 1)):
      for stage in distillation.SECOND_STAGE_DECODERS:
        cases[f'second_stage_{stage}_{name}-{ch}'] = (
          lambda r, ch=ch, out=out, s=stage: distillation.SECOND_STAGE_DECODERS[s](ch, out, rngs=r),
          lambda ch=ch, out=out, s=stage: SECOND_STAGE[s](ch, out),
        )
    for name, out in (('joint', 20), ('semseg', 19), ('depth', 1)):
      cases[f'head_{name}-{ch}'] = (
        lambda r, ch=ch, out=out: nnx.Conv(ch, out, (1, 1), rngs=r),
        lambda ch=ch, out=out: nn.Conv2d(ch, out, 1),
      )
  return cases


PIECES = _piece_cases()


@pytest.mark.parametrize('name', PIECES)
def test_piece_counts_equal_torch(name):
  ours_fn, torch_fn = PIECES[name]
  assert_counts_match(_abstract(ours_fn), torch_on_meta(torch_fn))


@pytest.mark.parametrize('ch', [256, 128, 64])
def test_aspp_reference_equals_torchvision_aspp(ch):
  """Anchors our hand-written torch ASPP to torchvision's DeepLabV3 one (same layers, no names)."""
  ours = torch_on_meta(lambda: ASPP(512, ch, (3, 6, 9)))
  theirs = torch_on_meta(lambda: tv_deeplabv3.ASPP(512, (3, 6, 9), ch))
  for running_stats in (False, True):
    assert sum(torch_counts(ours, running_stats).values()) == sum(
      torch_counts(theirs, running_stats).values()
    )


def test_every_decoder_and_second_stage_has_a_torch_reference():
  for variant in decoder.DECODERS:
    torch_on_meta(lambda v=variant: Decoder(v, 8, 8, 4, 8))
  assert set(SECOND_STAGE) == set(distillation.SECOND_STAGE_DECODERS)


# --- whole architectures -----------------------------------------------------------------------


def test_cases_cover_every_architecture():
  archs = {files.load_config_file(*case.values).model.arch for case in CASES}
  assert archs == set(mtl.ARCHITECTURES)


@pytest.mark.parametrize('path, preset', CASES)
def test_architecture_counts_equal_torch(path, preset):
  config = files.load_config_file(path, preset)
  m = config.model
  ours = nnx.eval_shape(lambda: experiment.build_model(config))
  if m.heads == 'deeplabv3plus':
    assert_counts_match(ours, torch_on_meta(lambda: Model(m)))
    return
  # The study's networks: its own module names differ from ours, so totals (the conversion and
  # output parity are seed_parity_test's).
  if not m.use_aspp or m.arch == 'single_task' or m.aspp_channels != 256:
    pytest.skip('the study has no listing for this variant')
  arch = 'distilled_deep' if m.arch == 'distilled' and m.second_stage == 'deep' else m.arch
  theirs = torch_on_meta(
    lambda: seed_torch.model(arch, int(m.encoder[len('resnet') :]), m.output_stride)
  )
  theirs_counts = {  # the template's Encoder keeps torchvision's unused classifier
    k: v for k, v in torch_counts(theirs).items() if not k.startswith('encoder.encoder.fc')
  }
  assert sum(nnx_counts(ours).values()) == sum(theirs_counts.values())
  assert sum(nnx_counts(ours, nnx.BatchStat).values()) == sum(
    torch_counts(theirs, running_stats=True).values()
  )


@pytest.mark.parametrize('name', ['resnet18', 'resnet34'])
@pytest.mark.parametrize('output_stride', [32, 16, 8])
def test_dilated_torch_encoder_counts_equal_stock_torchvision(name, output_stride):
  """The dilated reference block changes no weight shape: counts stay torchvision's resnetN()."""
  stock = torch_on_meta(getattr(torchvision.models, name))
  del stock.fc
  encoder = torch_on_meta(lambda: torch_encoder(name, output_stride))
  for running_stats in (False, True):
    assert torch_counts(encoder, running_stats) == torch_counts(stock, running_stats)
