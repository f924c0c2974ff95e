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
  c.model.encoder = 'resnet34'       # see mtl_jax.models.resnet.ENCODERS
  c.model.output_stride = 16
  c.model.aspp_rates = (3, 6, 9)
  c.model.aspp_channels = 256
  c.model.decoder_channels = 256
  c.model.skip_channels = 48
  c.model.zero_init_residual = False
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
  c.train.keep_checkpoints = 2
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


PRESETS = {'tiny': tiny, 'cpu': cpu}


def apply_preset(c: ml_collections.ConfigDict, preset: str | None) -> ml_collections.ConfigDict:
  if preset in (None, '', 'full'):
    return c
  if preset not in PRESETS:
    raise ValueError(f'unknown preset {preset!r}; valid presets: full, {", ".join(PRESETS)}')
  return PRESETS[preset](c)
