"""ResNet encoders mirroring torchvision's layout, returning named multi-scale features.

Attribute names follow torchvision's state-dict keys (conv1, bn1, layer1..layer4, blocks with
conv1/bn1/conv2/bn2[/conv3/bn3] and downsample[0]/downsample[1]) so that weights map one to one.
Output stride 16 or 8 replaces the stride of the last one or two stages with dilation, as
torchvision's `replace_stride_with_dilation`. `resnet_from_torchvision` builds one holding a
torchvision state dict's weights (see `convert` for the key mapping).
"""

import functools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import DTypeLike

from mtl_jax.models import convert, layers
from mtl_jax.runtime.errors import UserError, lookup

FEATURE_NAMES = ('stride4', 'stride8', 'stride16', 'stride32')


class BasicBlock(nnx.Module):
  expansion = 1

  def __init__(
    self,
    in_ch: int,
    planes: int,
    *,
    stride: int,
    dilations: tuple[int, int],
    zero_init_residual: bool,
    dtype: DTypeLike,
    rngs: nnx.Rngs,
  ):
    """dilations: of conv1 and conv2, the two 3×3 convs (see BLOCK_DILATIONS)."""
    out_ch = planes * self.expansion
    conv = functools.partial(layers.conv, dtype=dtype, rngs=rngs)
    batch_norm = functools.partial(layers.batch_norm, dtype=dtype, rngs=rngs)
    self.conv1 = conv(in_ch, planes, 3, stride=stride, dilation=dilations[0])
    self.bn1 = batch_norm(planes)
    self.conv2 = conv(planes, out_ch, 3, dilation=dilations[1])
    self.bn2 = batch_norm(out_ch, zero_init=zero_init_residual)
    self.downsample = _downsample(in_ch, out_ch, stride, dtype, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return nnx.relu(y + _shortcut(self.downsample, x))


class Bottleneck(nnx.Module):
  expansion = 4

  def __init__(
    self,
    in_ch: int,
    planes: int,
    *,
    stride: int,
    dilations: tuple[int, int],
    zero_init_residual: bool,
    dtype: DTypeLike,
    rngs: nnx.Rngs,
  ):
    """dilations: as BasicBlock's; conv2 is the one 3×3 conv and takes the second (conv1 is 1×1)."""
    out_ch = planes * self.expansion
    conv = functools.partial(layers.conv, dtype=dtype, rngs=rngs)
    batch_norm = functools.partial(layers.batch_norm, dtype=dtype, rngs=rngs)
    self.conv1 = conv(in_ch, planes, 1)
    self.bn1 = batch_norm(planes)
    self.conv2 = conv(planes, planes, 3, stride=stride, dilation=dilations[1])
    self.bn2 = batch_norm(planes)
    self.conv3 = conv(planes, out_ch, 1)
    self.bn3 = batch_norm(out_ch, zero_init=zero_init_residual)
    self.downsample = _downsample(in_ch, out_ch, stride, dtype, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.bn1(self.conv1(x)))
    y = nnx.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    return nnx.relu(y + _shortcut(self.downsample, x))


def _downsample(
  in_ch: int, out_ch: int, stride: int, dtype: DTypeLike, rngs: nnx.Rngs
) -> nnx.List | None:
  """torchvision's `downsample` (1×1 conv + BN) where the shortcut changes shape, else None."""
  if stride == 1 and in_ch == out_ch:
    return None
  return nnx.List(
    [
      layers.conv(in_ch, out_ch, 1, stride=stride, dtype=dtype, rngs=rngs),
      layers.batch_norm(out_ch, dtype=dtype, rngs=rngs),
    ]
  )


def _shortcut(downsample: nnx.List | None, x: jax.Array) -> jax.Array:
  if downsample is None:
    return x
  conv, bn = downsample
  return bn(conv(x))


def _torchvision_dilations(first: bool, previous: int, current: int, dilated: bool):
  """torchvision's rule (its Bottleneck's, here for both 3×3 convs): the first block of a stage
  keeps the previous stage's dilation, the others take the stage's."""
  d = previous if first else current
  return d, d


def _template_dilations(first: bool, previous: int, current: int, dilated: bool):
  """The course template's BasicBlockWithDilation and Encoder: conv1 is never dilated; conv2
  takes the stage's dilation, and 2 in the first block of a dilated stage."""
  return 1, (2 if first and dilated else previous if first else current)


# model.block_dilation → (first block?, previous stage's dilation, this stage's, stage dilated?)
#   → (dilation of conv1, dilation of conv2).
BLOCK_DILATIONS = {'template': _template_dilations, 'both': _torchvision_dilations}


def stage_dilations(output_stride: int) -> tuple[bool, bool, bool]:
  """torchvision's replace_stride_with_dilation flags for layer2..layer4."""
  flags = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}
  if output_stride not in flags:
    raise ValueError(f'output_stride must be one of 32, 16, 8; got {output_stride}')
  return flags[output_stride]


class ResNet(nnx.Module):
  """ResNet trunk (no classifier); `__call__` returns {'stride4', ..., 'stride32'} features.

  The key names give the nominal stride of layer1..layer4; with dilation the actual resolution of
  the dilated stages stays at the output stride.
  """

  def __init__(
    self,
    block: type[BasicBlock] | type[Bottleneck],
    stage_sizes: Sequence[int],
    *,
    width: int = 64,
    output_stride: int = 32,
    block_dilation: str = 'both',
    zero_init_residual: bool = False,
    dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
  ):
    """dtype: the compute dtype (see `layers`); parameters are float32 whatever it is."""
    block_dilations = lookup(BLOCK_DILATIONS, block_dilation, 'block_dilation')
    self.conv1 = layers.conv(3, width, 7, stride=2, dtype=dtype, rngs=rngs)
    self.bn1 = layers.batch_norm(width, dtype=dtype, rngs=rngs)
    dilate = (False, *stage_dilations(output_stride))
    in_ch, dilation = width, 1
    stages = []
    for i, (num_blocks, use_dilation) in enumerate(zip(stage_sizes, dilate)):
      planes, stride = width * 2**i, (1 if i == 0 else 2)
      previous_dilation = dilation
      if use_dilation:
        dilation, stride = dilation * stride, 1
      blocks = []
      for b in range(num_blocks):
        blocks.append(
          block(
            in_ch,
            planes,
            stride=stride if b == 0 else 1,
            dilations=block_dilations(b == 0, previous_dilation, dilation, use_dilation),
            zero_init_residual=zero_init_residual,
            dtype=dtype,
            rngs=rngs,
          )
        )
        in_ch = planes * block.expansion
      stages.append(nnx.List(blocks))
    self.layer1, self.layer2, self.layer3, self.layer4 = stages
    self.channels = {name: width * 2**i * block.expansion for i, name in enumerate(FEATURE_NAMES)}

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    x = layers.max_pool_3x3_s2(nnx.relu(self.bn1(self.conv1(x))))
    features = {}
    for name, stage in zip(FEATURE_NAMES, (self.layer1, self.layer2, self.layer3, self.layer4)):
      for block in stage:
        x = block(x)
      features[name] = x
    return features


ResNet18 = functools.partial(ResNet, BasicBlock, (2, 2, 2, 2))
ResNet34 = functools.partial(ResNet, BasicBlock, (3, 4, 6, 3))
ResNet50 = functools.partial(ResNet, Bottleneck, (3, 4, 6, 3))
ResNet101 = functools.partial(ResNet, Bottleneck, (3, 4, 23, 3))
# A few-thousand-parameter trunk that keeps tests fast while exercising every code path.
ResNetTiny = functools.partial(ResNet, BasicBlock, (1, 1, 1, 1), width=8)

ENCODERS = {
  'resnet18': ResNet18,
  'resnet34': ResNet34,
  'resnet50': ResNet50,
  'resnet101': ResNet101,
  'resnet_tiny': ResNetTiny,
}


def last_conv(name: str) -> tuple[str, ...]:
  """The path, in the parameters, of encoder `name`'s last conv: layer4's last block's conv2
  (BasicBlock) or conv3 (Bottleneck)."""
  block, stage_sizes = lookup(ENCODERS, name, 'encoder').args
  return ('layer4', str(stage_sizes[-1] - 1), 'conv3' if block is Bottleneck else 'conv2')


# ----------------------------------------------------------------------------- torchvision weights


def depth_of(encoder: ResNet) -> int:
  """torchvision's depth name: 2 (stem + fc) plus 2 or 3 weighted layers per block."""
  stages = (encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4)
  per_block = 3 if hasattr(encoder.layer1[0], 'conv3') else 2
  return 2 + per_block * sum(len(stage) for stage in stages)


def infer_depth(keys: Iterable[str]) -> int | None:
  """The ResNet depth a torchvision state dict's keys describe (None if it has no blocks)."""
  keys = list(keys)
  blocks = {
    k.split('.')[0] + '.' + k.split('.')[1]
    for k in keys
    if k.startswith(('layer1.', 'layer2.', 'layer3.', 'layer4.'))
  }
  if not blocks:
    return None
  per_block = 3 if any('.conv3.' in k for k in keys) else 2
  return 2 + per_block * len(blocks)


def check_depth(encoder: ResNet, depth: int | None, source: str) -> None:
  if depth is not None and depth != depth_of(encoder):
    raise UserError(
      f'{source} holds ResNet-{depth} weights but the encoder is a ResNet-{depth_of(encoder)}'
    )


def _is_ignorable(key: str) -> bool:
  """torchvision's `fc.*` classifier and BatchNorm counters have no counterpart in the trunk."""
  return key.startswith('fc.') or convert.is_bn_counter(key)


def load_torchvision_state(
  encoder: ResNet, state_dict: Mapping[str, np.ndarray], *, source: str = 'state dict'
) -> convert.LoadReport:
  """Loads a torchvision ResNet state dict (numpy arrays, torch layout) into `encoder` in place."""
  check_depth(encoder, infer_depth(state_dict), source)
  return convert.load_state_dict(
    encoder, state_dict, source=source, target='encoder', ignorable=_is_ignorable
  )


def abstract_encoder(depth: int, output_stride: int = 32) -> ResNet:
  """An unallocated torchvision-sized ResNet; a strict load then fills every variable."""
  valid = [n[len('resnet') :] for n in ENCODERS if n[len('resnet') :].isdigit()]
  if str(depth) not in valid:
    raise UserError(f'unsupported ResNet depth {depth}; valid depths: {", ".join(valid)}')
  return nnx.eval_shape(
    lambda: ENCODERS[f'resnet{depth}'](output_stride=output_stride, rngs=nnx.Rngs(0))
  )


def load_torchvision_file(
  path: str | Path, depth: int | None = 34, output_stride: int = 16
) -> tuple[ResNet, convert.LoadReport]:
  """(encoder, report) for a torchvision `.pth`/`.safetensors` state dict; depth=None infers it."""
  state_dict = convert.read_state_dict(path)
  depth = infer_depth(state_dict) if depth is None else depth
  if depth is None:
    raise UserError(f'{path}: no layer1..layer4 keys; not a torchvision ResNet state dict')
  encoder = abstract_encoder(depth, output_stride)
  report = load_torchvision_state(encoder, state_dict, source=str(path))
  if not all(isinstance(x, jax.Array) for x in jax.tree.leaves(nnx.state(encoder))):
    raise AssertionError('the encoder has variables that no state-dict key provides')
  return encoder, report


def resnet_from_torchvision(
  path: str | Path, depth: int | None = 34, output_stride: int = 16
) -> ResNet:
  """A ResNet encoder holding torchvision weights; it returns {'stride4', ..., 'stride32'}.

  Like a fresh torchvision model it is in training mode; call `.eval()` to use running stats.
  """
  return load_torchvision_file(path, depth, output_stride)[0]
