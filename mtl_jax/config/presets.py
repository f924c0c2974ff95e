"""Presets shared by every `configs/<arch>.py`: functions that change a config in place.

`--config configs/<arch>.py:a,b` applies a then b (left to right); no preset (or 'full') is the
full model for GPUs with the study's final training setting (the schema's defaults, its Table 4).
A config file may add its own presets (e.g. distilled's `deep`).

`tiny` and `cpu` pin every training and model knob they rely on rather than inherit it, so the
demo and the tests stay the same when the full setting changes (tests/unit/config/configs_test.py
checks).
"""

from collections.abc import Callable

import ml_collections

from mtl_jax.config import schema
from mtl_jax.models.pretrained_cache import AUTO as PRETRAINED_AUTO
from mtl_jax.models.pretrained_cache import IMAGENET

Preset = Callable[[ml_collections.ConfigDict], ml_collections.ConfigDict]


def tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Seconds-long runs for tests: a model of about 0.1 M parameters (docs/models.md counts
  them) on 32×64 images."""
  c.data.height, c.data.width = 32, 64
  c.data.crop_height, c.data.crop_width = 32, 64
  c.data.num_train, c.data.num_validation, c.data.num_test = 16, 8, 8
  c.model.encoder = 'resnet_tiny'
  c.model.aspp_channels = c.model.decoder_channels = 8
  c.model.skip_channels = 4
  c.train.batch_size = c.train.eval_batch_size = 4
  c.train.num_epochs = 2
  c.train.log_every_steps = 2
  if c.depth.mode == 'linear':  # the normalisation tiny runs were tuned with
    c.depth.mean, c.depth.std = 20.0, 20.0
  return deeplabv3plus(_pin_demo(c, learning_rate=1e-3))


def cpu(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The laptop demo (minutes on 2 cores; docs/performance.md has measured times): the study's
  networks (`study`) on ResNet-18 with 128-channel heads, 96×192 training crops (evaluated at
  the full 128×256), L1 on normalised log-depth, 7 epochs of 2,000 images, Adam at 1e-2: at
  1e-3 the study's one-conv heads trained from random weights end well short of the demo's
  level (docs/models.md has the measurements)."""
  c.model.encoder = 'resnet18'
  c.model.aspp_channels = c.model.decoder_channels = 128
  c.data.crop_height, c.data.crop_width = 96, 192
  c.data.scale_min, c.data.scale_max = 0.75, 1.25
  c.depth.mode, c.depth.mean, c.depth.std = 'log', 3.0, 1.0
  c.train.batch_size = c.train.eval_batch_size = 8
  c.train.num_epochs = 7
  return study(_pin_demo(c, learning_rate=1e-2))


def _pin_demo(c: ml_collections.ConfigDict, learning_rate: float) -> ml_collections.ConfigDict:
  """What tiny and cpu share besides their networks: Adam (at each one's rate), random init
  unless a ladder row asked for ImageNet weights."""
  c.optim.name, c.optim.learning_rate = 'adam', learning_rate
  if c.model.pretrained == PRETRAINED_AUTO:
    c.model.pretrained = ''
  return c


# The study's ladder (its Table 4, the Adam rows), each row adding one thing to the previous
# one and training for that row's epochs.
def plain(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Row 1: no ImageNet weights, no dilation (output stride 32), no ASPP, the seed's decoder;
  16 epochs."""
  c.model.pretrained = ''
  c.model.output_stride = 32
  c.model.use_aspp = False
  c.model.decoder = 'seed'
  c.train.num_epochs = 16
  return c


def pretrained(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Row 2: + the ImageNet encoder from the converted cache of whichever encoder the config
  ends up with ('imagenet': a run that starts without it stops with the command that converts
  torchvision's weights); 32 epochs."""
  c = plain(c)
  c.model.pretrained = IMAGENET
  c.train.num_epochs = 32
  return c


def dilated(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Row 3: + dilated last stage (output stride 16); 32 epochs."""
  c = pretrained(c)
  c.model.output_stride = 16
  return c


def aspp(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Row 4: + ASPP and the DeepLabV3+ decoder; 64 epochs."""
  c = dilated(c)
  c.model.use_aspp = True
  c.model.decoder = 'deeplabv3plus'
  c.train.num_epochs = 64
  return c


def study(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The study's own networks at any size: its listings' heads on the course template's encoder
  (what the full presets, `cpu` and `lite` build), e.g. `tiny,study` after a size preset."""
  c.model.heads, c.model.block_dilation = 'seed', 'template'
  c.model.zero_init_residual = True
  return c


def deeplabv3plus(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`study`'s counterpart: the DeepLabV3+ paper's heads on torchvision's dilation rule,
  residual BNs initialised as usual. `tiny` builds them (its tests' reference runs were made
  with them), and `cpu` did until it became the study's networks (`cpu,deeplabv3plus` with
  Adam at 1e-3 is the demo before that, which the task-balancing comparison trained)."""
  c.model.heads, c.model.block_dilation = 'deeplabv3plus', 'both'
  c.model.zero_init_residual = False
  return c


def lite(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The whole study in under 3 hours on a 2-core CPU (docs/study.md): its own networks
  (`study`) on ResNet-18 with 128-channel heads, 96×192 crops of the synthetic 128×256 scenes,
  scored on 100 whole validation scenes. Epochs are of 192 images and a run trains a quarter of
  its `num_epochs` (`train.epoch_scale`), so a sweep entry keeps the study's own schedule (8 to
  64 epochs, batch 2 to 8) and every run sees num_epochs × 48 images in as many steps, in
  proportion, as the study's. The optimiser stays the full preset's (or the entry's); depth is
  L1 on normalised log-depth, as at `cpu`, since the full preset's linear normalisation is
  Cityscapes' (27 m ± 29 m)."""
  c = study(c)
  c.model.encoder = 'resnet18'
  c.model.aspp_channels = c.model.decoder_channels = 128
  c.data.crop_height, c.data.crop_width = 96, 192
  c.data.num_train, c.data.num_validation = 192, 100
  c.depth.mode, c.depth.mean, c.depth.std = 'log', 3.0, 1.0
  c.train.epoch_scale = 0.25
  c.train.eval_batch_size = 20
  return c


# In the order docs/models.md lists the networks they build (a row per distinct network).
SHARED: dict[str, Preset] = {
  'tiny': tiny,
  'cpu': cpu,
  'lite': lite,
  'study': study,
  'deeplabv3plus': deeplabv3plus,
  'plain': plain,
  'pretrained': pretrained,
  'dilated': dilated,
  'aspp': aspp,
}


def changes(name: str, own: dict[str, Preset] | None = None) -> dict:
  """{dotted key: value} that preset `name` sets differently from the schema's defaults: a
  preset as a sweep entry (the study's ladder rows are presets)."""
  before, after = schema.base_config(), apply(schema.base_config(), name, own)
  return {
    key: schema.get(after, key)
    for key in schema.KNOBS
    if schema.get(after, key) != schema.get(before, key)
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
