"""ResNet encoders mirroring torchvision's layout, returning named multi-scale features.

Attribute names follow torchvision's state-dict keys (conv1, bn1, layer1..layer4, blocks with
conv1/bn1/conv2/bn2[/conv3/bn3] and downsample[0]/downsample[1]) so that weights map one to one.
Output stride 16 or 8 replaces the stride of the last one or two stages with dilation, as
torchvision's `replace_stride_with_dilation`.
"""

import functools
from collections.abc import Sequence

import jax
from flax import nnx

from mtl_jax.models import layers

FEATURE_NAMES = ('stride4', 'stride8', 'stride16', 'stride32')


class BasicBlock(nnx.Module):
  expansion = 1

  def __init__(self, in_ch: int, planes: int, *, stride: int, dilation: int,
               zero_init_residual: bool, rngs: nnx.Rngs):
    out_ch = planes * self.expansion
    self.conv1 = layers.conv(in_ch, planes, 3, stride=stride, dilation=dilation, rngs=rngs)
    self.bn1 = layers.batch_norm(planes, rngs=rngs)
    self.conv2 = layers.conv(planes, out_ch, 3, dilation=dilation, rngs=rngs)
    self.bn2 = layers.batch_norm(out_ch, zero_init=zero_init_residual, rngs=rngs)
    self.downsample = _downsample(in_ch, out_ch, stride, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return nnx.relu(y + _shortcut(self.downsample, x))


class Bottleneck(nnx.Module):
  expansion = 4

  def __init__(self, in_ch: int, planes: int, *, stride: int, dilation: int,
               zero_init_residual: bool, rngs: nnx.Rngs):
    out_ch = planes * self.expansion
    self.conv1 = layers.conv(in_ch, planes, 1, rngs=rngs)
    self.bn1 = layers.batch_norm(planes, rngs=rngs)
    self.conv2 = layers.conv(planes, planes, 3, stride=stride, dilation=dilation, rngs=rngs)
    self.bn2 = layers.batch_norm(planes, rngs=rngs)
    self.conv3 = layers.conv(planes, out_ch, 1, rngs=rngs)
    self.bn3 = layers.batch_norm(out_ch, zero_init=zero_init_residual, rngs=rngs)
    self.downsample = _downsample(in_ch, out_ch, stride, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.bn1(self.conv1(x)))
    y = nnx.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    return nnx.relu(y + _shortcut(self.downsample, x))


def _downsample(in_ch: int, out_ch: int, stride: int, rngs: nnx.Rngs) -> nnx.List | None:
  """torchvision's `downsample` (1×1 conv + BN) where the shortcut changes shape, else None."""
  if stride == 1 and in_ch == out_ch:
    return None
  return nnx.List([layers.conv(in_ch, out_ch, 1, stride=stride, rngs=rngs),
                   layers.batch_norm(out_ch, rngs=rngs)])


def _shortcut(downsample: nnx.List | None, x: jax.Array) -> jax.Array:
  if downsample is None:
    return x
  conv, bn = downsample
  return bn(conv(x))


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

  def __init__(self, block: type[BasicBlock] | type[Bottleneck], stage_sizes: Sequence[int], *,
               width: int = 64, output_stride: int = 32, zero_init_residual: bool = False,
               rngs: nnx.Rngs):
    self.conv1 = layers.conv(3, width, 7, stride=2, rngs=rngs)
    self.bn1 = layers.batch_norm(width, rngs=rngs)
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
        blocks.append(block(in_ch, planes, stride=stride if b == 0 else 1,
                            dilation=previous_dilation if b == 0 else dilation,
                            zero_init_residual=zero_init_residual, rngs=rngs))
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

def resnet_from_torchvision(path, depth: int | None = 34, output_stride: int = 16) -> ResNet:
  """A ResNet with torchvision weights (`.pth` state dict or `.safetensors`); SPEC's entry point.

  See `mtl_jax.models.torchvision_convert`; the encoder comes back in training mode, like a fresh
  torchvision model: call `.eval()` to use the running BatchNorm statistics.
  """
  from mtl_jax.models import torchvision_convert  # pylint: disable=g-import-not-at-top  # imports us
  return torchvision_convert.resnet_from_torchvision(path, depth, output_stride)


ENCODERS = {
    'resnet18': ResNet18,
    'resnet34': ResNet34,
    'resnet50': ResNet50,
    'resnet101': ResNet101,
    'resnet_tiny': ResNetTiny,
}
