"""Multi-task architectures: one image in, {'semseg': logits [N,H,W,C], 'depth': raw [N,H,W]} out.

`depth` is the network's raw depth channel; `mtl_jax.depth_codec` turns it into metres. Images
come in as uint8 NHWC and are normalised on device.
"""

from collections.abc import Sequence

import jax
from flax import nnx

from mtl_jax.models import aspp as aspp_lib
from mtl_jax.models import deeplab, layers, resnet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class JointDeepLab(nnx.Module):
  """ResNet encoder → ASPP → DeepLabV3+ decoder → one 1×1 head with C + 1 channels, split.

  The course study's `joint` model: both tasks share every layer but the last channel split.
  """

  def __init__(self, *, encoder: str = 'resnet34', num_classes: int = 19, output_stride: int = 16,
               aspp_rates: Sequence[int] = (3, 6, 9), aspp_channels: int = 256,
               decoder_channels: int = 256, skip_channels: int = 48,
               zero_init_residual: bool = False, rngs: nnx.Rngs):
    if encoder not in resnet.ENCODERS:
      raise ValueError(f'unknown encoder {encoder!r}; valid names: {", ".join(resnet.ENCODERS)}')
    self.encoder = resnet.ENCODERS[encoder](output_stride=output_stride,
                                            zero_init_residual=zero_init_residual, rngs=rngs)
    channels = self.encoder.channels
    self.aspp = aspp_lib.ASPP(channels['stride32'], aspp_channels, aspp_rates, rngs=rngs)
    self.decoder = deeplab.DeepLabV3PlusDecoder(
        aspp_channels, channels['stride4'], skip_reduced_ch=skip_channels,
        out_ch=decoder_channels, rngs=rngs)
    self.head = nnx.Conv(decoder_channels, num_classes + 1, (1, 1), rngs=rngs)
    self.num_classes = num_classes

  def __call__(self, image: jax.Array) -> dict[str, jax.Array]:
    x = layers.normalize_image(image, IMAGENET_MEAN, IMAGENET_STD)
    features = self.encoder(x)
    context = self.aspp(features['stride32'])
    decoded = self.decoder(context, features['stride4'])
    out = layers.resize_bilinear(self.head(decoded), image.shape[1:3])
    return {'semseg': out[..., :self.num_classes], 'depth': out[..., self.num_classes]}


ARCHITECTURES = {
    'joint': JointDeepLab,
}


def build_model(arch: str, *, seed: int, **kwargs) -> nnx.Module:
  """Looks `arch` up in ARCHITECTURES and builds it with the given keyword arguments."""
  if arch not in ARCHITECTURES:
    raise ValueError(f'unknown architecture {arch!r}; valid names: {", ".join(ARCHITECTURES)}')
  return ARCHITECTURES[arch](rngs=nnx.Rngs(seed), **kwargs)
