"""Presets shared by every `configs/<arch>.py`: functions that change a config in place.

`--config configs/<arch>.py:a,b` applies a then b (left to right); no preset (or 'full') is the
full model for GPUs. A config file may add its own presets (e.g. distilled's `deep`).
"""

from collections.abc import Callable

import ml_collections

Preset = Callable[[ml_collections.ConfigDict], ml_collections.ConfigDict]


def tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Seconds-long runs for tests: a few-thousand-parameter model on 32×64 images."""
  c.data.height, c.data.width = 32, 64
  c.data.crop_height, c.data.crop_width = 32, 64
  c.data.num_train, c.data.num_validation, c.data.num_test = 16, 8, 8
  c.model.encoder = 'resnet_tiny'
  c.model.aspp_channels = c.model.decoder_channels = 8
  c.model.skip_channels = 4
  c.train.batch_size = c.train.eval_batch_size = 4
  c.train.num_epochs = 2
  c.train.log_every_steps = 2
  return c


def cpu(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The laptop demo (about 14 minutes on 2 cores, dataset build included): ResNet-18,
  128-channel heads, 96×192 training crops (evaluated at the full 128×256), L1 on normalised
  log-depth, 7 epochs of 2,000 images."""
  c.model.encoder = 'resnet18'
  c.model.aspp_channels = c.model.decoder_channels = 128
  c.data.crop_height, c.data.crop_width = 96, 192
  c.data.scale_min, c.data.scale_max = 0.75, 1.25
  c.depth.mode, c.depth.mean, c.depth.std = 'log', 3.0, 1.0
  c.train.num_epochs = 7
  return c


# The study's ladder (its Table 4), each row adding one thing to the previous one.
def plain(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Row 1: no ImageNet weights, no dilation (output stride 32), no ASPP, the seed's decoder."""
  c.model.output_stride = 32
  c.model.use_aspp = False
  c.model.decoder = 'seed'
  return c


def pretrained(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Row 2: + ImageNet encoder (convert torchvision weights into this directory first)."""
  c = plain(c)
  c.model.pretrained = f'pretrained/{c.model.encoder}'
  return c


def dilated(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Row 3: + dilated last stage (output stride 16)."""
  c = pretrained(c)
  c.model.output_stride = 16
  return c


def aspp(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Row 4: + ASPP and the DeepLabV3+ decoder."""
  c = dilated(c)
  c.model.use_aspp = True
  c.model.decoder = 'deeplabv3plus'
  return c


SHARED: dict[str, Preset] = {
  'tiny': tiny,
  'cpu': cpu,
  'plain': plain,
  'pretrained': pretrained,
  'dilated': dilated,
  'aspp': aspp,
}


def apply(
  c: ml_collections.ConfigDict, preset: str | None, own: dict[str, Preset] | None = None
) -> ml_collections.ConfigDict:
  """Applies comma-separated presets left to right, e.g. 'plain,cpu'; '' or 'full' = none.

  own: a config file's own presets, offered beside (and over) the shared ones.
  """
  presets = {**SHARED, **(own or {})}
  for name in (preset or '').split(','):
    if name in ('', 'full'):
      continue
    if name not in presets:
      raise ValueError(f'unknown preset {name!r}; valid presets: full, {", ".join(presets)}')
    c = presets[name](c)
  return c
