"""torchvision ResNet pieces the parity and parameter-count tests share.

Import it as `import torch_resnets` (tests/support is on sys.path: tests/conftest.py); it skips the
importing test module when torchvision is missing.
"""

import pytest

tv_resnet = pytest.importorskip('torchvision.models.resnet')

# torchvision's replace_stride_with_dilation for layer2..layer4, written out (not taken from
# resnet.stage_dilations) so the tests also check our mapping.
DILATIONS = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}


class BasicBlockWithDilation(tv_resnet.BasicBlock):
  """The course template's block: conv1 never dilated, conv2 takes the block's dilation.

  torchvision raises for dilation > 1 in BasicBlock, so ResNet-18/34 at output stride 16/8 have
  no stock reference; these blocks accept it (padding = dilation keeps the resolution).
  """

  conv1_dilated = False

  def __init__(
    self,
    inplanes,
    planes,
    stride=1,
    downsample=None,
    groups=1,
    base_width=64,
    dilation=1,
    norm_layer=None,
  ):
    super().__init__(inplanes, planes, stride, downsample, groups, base_width, 1, norm_layer)
    conv1_dilation = dilation if self.conv1_dilated else 1
    self.conv1 = tv_resnet.conv3x3(inplanes, planes, stride, dilation=conv1_dilation)
    self.conv2 = tv_resnet.conv3x3(planes, planes, dilation=dilation)


class DilatedBasicBlock(BasicBlockWithDilation):
  """Both 3×3 convs take the block's dilation: our 'both' rule, the one torchvision's
  Bottleneck applies to its single 3×3 conv."""

  conv1_dilated = True
