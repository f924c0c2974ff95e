"""Defaults and presets shared by every `configs/<arch>.py` (kept in the package so a config
file loads from any working directory)."""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = 'synthetic'          # see mtl_jax.data.pipeline.DATASETS
  c.data.data_dir = ''               # '' = TFDS default (~/tensorflow_datasets)
  c.data.height = 128                # stored resolution of the synthetic dataset
  c.data.width = 256
  c.data.dataset_seed = 0
  c.data.train_size = 2000           # synthetic only: samples rendered per split
  c.data.validation_size = 250
  c.data.test_size = 250
  c.data.crop_height = 128           # training crop (after random scaling)
  c.data.crop_width = 256
  c.data.scale_min = 0.75
  c.data.scale_max = 1.5
  c.data.flip = True
  c.data.jitter = 0.2                # photometric jitter strength on the image only; 0 = off
  c.data.worker_count = 0            # grain worker processes; 0 = in the training process

  c.model = ml_collections.ConfigDict()
  c.model.arch = 'joint'             # see mtl_jax.models.mtl.ARCHITECTURES
  c.model.tasks = ('semseg', 'depth')  # single_task: one of them
  c.model.encoder = 'resnet34'       # see mtl_jax.models.resnet.ENCODERS
  c.model.output_stride = 16         # 32 (no dilation), 16 or 8
  c.model.use_aspp = True            # False: a plain 1×1 conv over the deepest features
  c.model.aspp_rates = (3, 6, 9)
  c.model.aspp_channels = 256        # context (ASPP or plain) output channels
  c.model.decoder = 'deeplabv3plus'  # or 'seed': one 3×3 conv over [context, raw 1/4 skip]
  c.model.decoder_channels = 256
  c.model.skip_channels = 48         # 1×1 reduction of the 1/4 skip (deeplabv3plus only)
  c.model.second_stage = 'simple'    # distilled only: 'simple' or 'deep'
  c.model.zero_init_residual = False
  c.model.pretrained = ''            # a directory from scripts/convert_torchvision_resnet.py
  c.model.num_classes = 19

  c.depth = ml_collections.ConfigDict()
  c.depth.mode = 'linear'            # raw output ↔ metres; see mtl_jax.depth_codec
  c.depth.mean = 20.0
  c.depth.std = 20.0

  c.loss = ml_collections.ConfigDict()
  c.loss.semseg_weight = 0.5
  c.loss.depth_weight = 0.5
  c.loss.depth = 'l1'                # 'l1' on normalised depth (course template) or 'silog'

  c.optim = ml_collections.ConfigDict()
  c.optim.name = 'adam'              # sgd | adam | adamw
  c.optim.learning_rate = 1e-3
  c.optim.schedule = 'poly'          # poly | cosine | constant
  c.optim.warmup_steps = 0
  c.optim.weight_decay = 1e-4
  c.optim.momentum = 0.9             # sgd only
  c.optim.grad_clip_norm = 0.0       # 0 = no clipping

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 8
  c.train.num_epochs = 16
  c.train.eval_batch_size = 8
  c.train.log_every_steps = 25
  c.train.keep_checkpoints = 2           # newest N, plus the best by eval `total`
  c.train.checkpoint_every_steps = 200   # mid-epoch saves (epoch ends always save); 0 = off
  c.train.max_nonfinite_steps = 10       # stop after this many consecutive NaN/Inf steps
  c.train.eval_split = 'validation'
  return c


def tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Seconds-long runs for tests: a few-thousand-parameter model on 32×64 images."""
  c.data.height, c.data.width = 32, 64
  c.data.crop_height, c.data.crop_width = 32, 64
  c.data.train_size, c.data.validation_size, c.data.test_size = 16, 8, 8
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


PRESETS = {'tiny': tiny, 'cpu': cpu, 'plain': plain, 'pretrained': pretrained,
           'dilated': dilated, 'aspp': aspp}


def apply_preset(c: ml_collections.ConfigDict, preset: str | None,
                 own_presets: dict | None = None) -> ml_collections.ConfigDict:
  """Applies comma-separated presets left to right, e.g. 'plain,cpu'; '' or 'full' = none.

  own_presets: a config file's own presets (name → function), offered beside the shared ones.
  """
  presets = {**PRESETS, **(own_presets or {})}
  for name in (preset or '').split(','):
    if name in ('', 'full'):
      continue
    if name not in presets:
      raise ValueError(f'unknown preset {name!r}; valid presets: full, {", ".join(presets)}')
    c = presets[name](c)
  return c
