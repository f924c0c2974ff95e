"""A PyTorch transcription of the study's networks: its report's Listings 1–8 on the course
template's encoder (`BasicBlockWithDilation`, `Encoder`) and `SelfAttention`.

Written from the listings (../shared/seed/), module names as there, so a state dict of these
models is what a course-template checkpoint holds. Import it as `import seed_torch` (tests/support
is on sys.path when pytest runs); it skips the importing test module without torchvision.
"""

import numpy as np
import pytest
from torch_resnets import BasicBlockWithDilation

from mtl_jax.models import mtl

torch = pytest.importorskip('torch')
tv_resnet = pytest.importorskip('torchvision.models.resnet')
F = torch.nn.functional
nn = torch.nn

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
DILATE = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}


class Encoder(nn.Module):
  """The template's Encoder: torchvision's ResNet as `self.encoder`; the first block of each
  dilated stage gets conv2.dilation = conv2.padding = 2. Returns {scale: features}."""

  def __init__(self, depth, output_stride, zero_init_residual=False):
    super().__init__()
    block = tv_resnet.Bottleneck if depth == 50 else BasicBlockWithDilation
    dilate = DILATE[output_stride]
    self.encoder = tv_resnet.ResNet(
      block,
      list(BLOCKS[depth]),
      replace_stride_with_dilation=list(dilate),
      zero_init_residual=zero_init_residual,
    )
    stages = (self.encoder.layer2, self.encoder.layer3, self.encoder.layer4)
    for stage, dilated in zip(stages, dilate):
      if dilated:
        stage[0].conv2.dilation = stage[0].conv2.padding = (2, 2)

  def forward(self, x):
    e = self.encoder
    x = e.maxpool(e.relu(e.bn1(e.conv1(x))))
    features = {}
    for scale, stage in zip((4, 8, 16, 32), (e.layer1, e.layer2, e.layer3, e.layer4)):
      x = stage(x)
      features[scale] = x
    return features


class ASPPpart(nn.Sequential):
  def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation):
    super().__init__(
      nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False),
      nn.BatchNorm2d(out_channels),
      nn.ReLU(),
    )


class ImagePooling(nn.Sequential):  # Listing 1
  def __init__(self, in_channels, out_channels):
    super().__init__(
      nn.AdaptiveAvgPool2d(1),
      nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0, bias=False),
      nn.BatchNorm2d(out_channels),
    )


class ASPP(nn.Module):  # Listing 1
  def __init__(self, in_channels, out_channels, rates=(3, 6, 9)):
    super().__init__()
    self.conv1 = ASPPpart(in_channels, out_channels, kernel_size=1, stride=1, padding=0, dilation=1)
    self.conv_r1 = ASPPpart(in_channels, out_channels, 3, 1, rates[0], rates[0])
    self.conv_r2 = ASPPpart(in_channels, out_channels, 3, 1, rates[1], rates[1])
    self.conv_r3 = ASPPpart(in_channels, out_channels, 3, 1, rates[2], rates[2])
    self.im_pool = ImagePooling(in_channels=in_channels, out_channels=out_channels)
    self.conv_out = ASPPpart(
      out_channels * 5, out_channels, kernel_size=1, stride=1, padding=0, dilation=1
    )

  def forward(self, x):
    h, w = x.shape[2], x.shape[3]
    ip = F.interpolate(self.im_pool(x), size=(h, w), mode='bilinear', align_corners=False)
    concat = torch.cat((self.conv1(x), self.conv_r1(x), self.conv_r2(x), self.conv_r3(x), ip), 1)
    return self.conv_out(concat)


class DecoderDeeplabV3p(nn.Module):  # Listing 2
  def __init__(self, bottleneck_ch, skip_4x_ch, num_out_ch):
    super().__init__()
    self.conv_3x3 = nn.Conv2d(
      bottleneck_ch + skip_4x_ch, num_out_ch, kernel_size=3, stride=1, padding=1
    )

  def forward(self, features_bottleneck, features_skip_4x):
    features_4x = F.interpolate(
      features_bottleneck, size=features_skip_4x.shape[2:], mode='bilinear', align_corners=False
    )
    concat = torch.cat((features_4x, features_skip_4x), 1)
    return self.conv_3x3(concat), features_4x


class DecoderDeeplabV3pSA(DecoderDeeplabV3p):  # Listing 7: returns the concat for the SA
  def forward(self, features_bottleneck, features_skip_4x):
    features_4x = F.interpolate(
      features_bottleneck, size=features_skip_4x.shape[2:], mode='bilinear', align_corners=False
    )
    concat = torch.cat((features_4x, features_skip_4x), 1)
    return self.conv_3x3(concat), concat


class DecoderDeeplabSA(nn.Module):  # Listing 7
  def __init__(self, num_in_ch, num_out_ch):
    super().__init__()
    self.conv_3x3 = nn.Conv2d(num_in_ch, num_out_ch, kernel_size=3, stride=1, padding=1)

  def forward(self, features_4x_decoder, features_4x_sa, output_resolution=None):
    return self.conv_3x3(features_4x_decoder + features_4x_sa)


class DecoderConvUpscaleLayer(nn.Sequential):  # Listing 8
  def __init__(self, in_channels, out_channels, kernel_size, stride, padding):
    super().__init__(
      nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        bias=False,
      ),
      nn.BatchNorm2d(out_channels),
      nn.ReLU(),
    )


class DecoderDeeplabSADeeper(nn.Module):  # Listing 8
  def __init__(self, num_in_ch, num_out_ch):
    super().__init__()
    self.conv_upscale1 = DecoderConvUpscaleLayer(num_in_ch, int(num_in_ch / 2), 3, 1, 1)
    self.conv_upscale2 = DecoderConvUpscaleLayer(int(num_in_ch / 2), int(num_in_ch / 4), 3, 1, 1)
    self.conv_3x3 = nn.Conv2d(int(num_in_ch / 4), num_out_ch, kernel_size=3, stride=1, padding=1)

  def forward(self, features_4x_decoder, features_4x_sa, output_resolution):
    out = features_4x_decoder + features_4x_sa
    half = (int(output_resolution[0] / 2), int(output_resolution[1] / 2))
    out = F.interpolate(self.conv_upscale1(out), size=half, mode='bilinear', align_corners=False)
    out = F.interpolate(
      self.conv_upscale2(out), size=output_resolution, mode='bilinear', align_corners=False
    )
    return self.conv_3x3(out)


class SelfAttention(nn.Module):
  """The template's: conv3x3(x) * sigmoid(attention3x3(x)), the attention conv zero-initialised."""

  def __init__(self, in_channels, out_channels):
    super().__init__()
    self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
    self.attention = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
    with torch.no_grad():
      self.attention.weight.copy_(torch.zeros_like(self.attention.weight))

  def forward(self, x):
    return self.conv(x) * torch.sigmoid(self.attention(x))


def _up(x, size):
  return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


def _channels(depth):
  """(bottleneck, 4x) encoder channels, as the template's get_encoder_channel_counts."""
  return (2048, 256) if depth == 50 else (512, 64)


class ModelDeepLabV3Plus(nn.Module):
  """The template's joint model with the study's ASPP and decoder: one decoder, C + 1 outputs."""

  def __init__(self, depth, output_stride, num_classes=19):
    super().__init__()
    self.num_classes = num_classes
    self.encoder = Encoder(depth, output_stride, zero_init_residual=True)
    bottleneck, skip = _channels(depth)
    self.aspp = ASPP(bottleneck, 256)
    self.decoder = DecoderDeeplabV3p(256, skip, num_classes + 1)

  def forward(self, x):
    features = self.encoder(x)
    predictions_4x, _ = self.decoder(self.aspp(features[max(features)]), features[4])
    out = _up(predictions_4x, x.shape[2:])
    return {'semseg': out[:, : self.num_classes], 'depth': out[:, self.num_classes :]}


class ModelDeepLabV3PlusBranched(nn.Module):  # Listings 3 and 4
  def __init__(self, depth, output_stride, num_classes=19):
    super().__init__()
    self.encoder = Encoder(depth, output_stride, zero_init_residual=True)
    bottleneck, skip = _channels(depth)
    self.aspp_segm = ASPP(bottleneck, 256)
    self.decoder_segm = DecoderDeeplabV3p(256, skip, num_classes)
    self.aspp_depth = ASPP(bottleneck, 256)
    self.decoder_depth = DecoderDeeplabV3p(256, skip, 1)

  def forward(self, x):
    features = self.encoder(x)
    lowest = features[max(features)]
    segm, _ = self.decoder_segm(self.aspp_segm(lowest), features[4])
    depth, _ = self.decoder_depth(self.aspp_depth(lowest), features[4])
    return {'semseg': _up(segm, x.shape[2:]), 'depth': _up(depth, x.shape[2:])}


class ModelDeepLabV3PlusBranchedSA(nn.Module):  # Listings 5 and 6 (deeper: Listing 8)
  def __init__(self, depth, output_stride, num_classes=19, deeper=False):
    super().__init__()
    self.encoder = Encoder(depth, output_stride, zero_init_residual=True)
    bottleneck, skip = _channels(depth)
    second = DecoderDeeplabSADeeper if deeper else DecoderDeeplabSA
    self.aspp_segm = ASPP(bottleneck, 256)
    self.decoder_1_segm = DecoderDeeplabV3pSA(256, skip, num_classes)
    self.sa_segm = SelfAttention(256 + skip, 256 + skip)
    self.decoder_2_segm = second(256 + skip, num_classes)
    self.aspp_depth = ASPP(bottleneck, 256)
    self.decoder_1_depth = DecoderDeeplabV3pSA(256, skip, 1)
    self.sa_depth = SelfAttention(256 + skip, 256 + skip)
    self.decoder_2_depth = second(256 + skip, 1)

  def forward(self, x):
    size = (x.shape[2], x.shape[3])
    features = self.encoder(x)
    lowest = features[max(features)]
    segm_1, features_4x_segm = self.decoder_1_segm(self.aspp_segm(lowest), features[4])
    sa_segm = self.sa_segm(features_4x_segm)
    depth_1, features_4x_depth = self.decoder_1_depth(self.aspp_depth(lowest), features[4])
    sa_depth = self.sa_depth(features_4x_depth)
    segm_2 = self.decoder_2_segm(features_4x_segm, sa_depth, size)
    depth_2 = self.decoder_2_depth(features_4x_depth, sa_segm, size)
    return {
      'semseg': [_up(segm_1, size), _up(segm_2, size)],
      'depth': [_up(depth_1, size), _up(depth_2, size)],
    }


def model(arch, depth, output_stride, num_classes=19):
  """The study's model for one of our architecture names ('distilled_deep' = Listing 8)."""
  if arch == 'joint':
    return ModelDeepLabV3Plus(depth, output_stride, num_classes)
  if arch == 'branched':
    return ModelDeepLabV3PlusBranched(depth, output_stride, num_classes)
  return ModelDeepLabV3PlusBranchedSA(
    depth, output_stride, num_classes, deeper=arch == 'distilled_deep'
  )


def randomize(module, seed=0):
  """Random weights everywhere (the zero-initialised attention too) and non-trivial BatchNorm
  statistics, so a mapping mistake cannot hide behind identity or zero layers."""
  torch.manual_seed(seed)
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, nn.Conv2d):
        m.weight.normal_(0.0, (2.0 / (m.weight[0].numel())) ** 0.5)
        if m.bias is not None:
          m.bias.normal_(0.0, 0.1)
      elif isinstance(m, nn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5)
        m.bias.normal_(0.0, 0.2)
        m.running_mean.normal_(0.0, 0.2)
        m.running_var.uniform_(0.5, 2.0)
  return module.eval()


def relative_l2(a, b) -> float:
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def images(n=2, h=64, w=96):
  """The same random images as uint8 NHWC (ours) and ImageNet-normalised NCHW (torch)."""
  rng = np.random.default_rng(0)
  uint8 = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
  mean, std = np.float32(mtl.IMAGENET_MEAN), np.float32(mtl.IMAGENET_STD)
  normalised = (uint8.astype(np.float32) / 255.0 - mean) / std
  return uint8, torch.from_numpy(normalised.transpose(0, 3, 1, 2).copy())
