"""Checking a run's config before any work starts, and turning it into typed objects.

A wrong key is caught by ml_collections (configs are locked); a wrong *value* is caught here and
reported as one `ConfigError` line naming the key, so nothing is built or written first.
"""

import importlib.util
import json
from pathlib import Path

import ml_collections

from mtl_jax import config_base, depth_codec, losses, optim
from mtl_jax.errors import UserError
from mtl_jax.data import pipeline
from mtl_jax.models import deeplab, heads, mtl, resnet
from mtl_jax.steps import TaskSpec

CONFIG_FILE = 'config.json'
EVAL_SPLITS = ('validation', 'test')


class ConfigError(UserError):
  """A config value (or run directory) a user must fix."""


def _choices():
  """config key → the valid names, from the registries themselves."""
  return {
      'data.name': tuple(pipeline.DATASETS),
      'model.arch': tuple(mtl.ARCHITECTURES),
      'model.encoder': tuple(resnet.ENCODERS),
      'model.output_stride': (8, 16, 32),
      'model.decoder': tuple(deeplab.DECODERS),
      'model.second_stage': tuple(heads.SECOND_STAGE_DECODERS),
      'depth.mode': depth_codec.MODES,
      'loss.depth': tuple(losses.DEPTH_LOSSES),
      'optim.name': optim.OPTIMIZERS,
      'optim.schedule': optim.SCHEDULES,
      'train.eval_split': EVAL_SPLITS,
  }


POSITIVE = ('data.height', 'data.width', 'data.crop_height', 'data.crop_width',
            'data.train_size', 'data.validation_size', 'data.test_size', 'model.num_classes',
            'model.aspp_channels', 'model.decoder_channels', 'model.skip_channels',
            'optim.learning_rate', 'depth.std', 'train.batch_size', 'train.eval_batch_size',
            'train.num_epochs', 'train.log_every_steps', 'train.keep_checkpoints',
            'train.max_nonfinite_steps')
NON_NEGATIVE = ('loss.semseg_weight', 'loss.depth_weight', 'optim.weight_decay',
                'optim.warmup_steps', 'optim.grad_clip_norm', 'data.jitter', 'data.worker_count',
                'train.checkpoint_every_steps')


def _get(config, dotted: str):
  value = config
  for part in dotted.split('.'):
    value = value[part]
  return value


def validate(config: ml_collections.ConfigDict) -> None:
  for key, valid in _choices().items():
    value = _get(config, key)
    if value not in valid:
      raise ConfigError(f'config.{key}={value!r} is not valid; choose one of: '
                        f'{", ".join(map(str, valid))}')
  for key in POSITIVE:
    if not _get(config, key) > 0:
      raise ConfigError(f'config.{key}={_get(config, key)!r} must be > 0')
  for key in NON_NEGATIVE:
    if not _get(config, key) >= 0:
      raise ConfigError(f'config.{key}={_get(config, key)!r} must be >= 0')
  if not 0 < config.data.scale_min <= config.data.scale_max:
    raise ConfigError(f'config.data.scale_min={config.data.scale_min} and scale_max='
                      f'{config.data.scale_max} must satisfy 0 < scale_min <= scale_max')
  if config.model.pretrained and not Path(config.model.pretrained).is_dir():
    raise ConfigError(f'config.model.pretrained={config.model.pretrained!r} is not a directory; '
                      'create it with scripts/convert_torchvision_resnet.py from torchvision '
                      'ImageNet weights')
  tasks = tuple(config.model.tasks)
  if not tasks or set(tasks) - set(mtl.TASKS) or len(set(tasks)) != len(tasks):
    raise ConfigError(f'config.model.tasks={tasks!r} must be distinct names from: '
                      f'{", ".join(mtl.TASKS)}')
  if config.model.arch != 'single_task' and tasks != mtl.TASKS:
    raise ConfigError(f'config.model.arch={config.model.arch!r} predicts both tasks; set '
                      f'config.model.tasks={mtl.TASKS!r} or use arch single_task')
  if config.model.arch == 'single_task' and len(tasks) != 1:
    raise ConfigError(f'config.model.arch=\'single_task\' needs one task in config.model.tasks, '
                      f'got {tasks!r}')
  if sum(_task_weight(config, t) for t in tasks) <= 0:
    raise ConfigError('the loss weights of config.model.tasks must sum to > 0')


def _task_weight(config: ml_collections.ConfigDict, task: str) -> float:
  return config.loss[f'{task}_weight']


def task_spec(config: ml_collections.ConfigDict) -> TaskSpec:
  codec = depth_codec.DepthCodec(config.depth.mode, config.depth.mean, config.depth.std)
  tasks = tuple(config.model.tasks)
  return TaskSpec(tasks=tasks, weights=tuple(_task_weight(config, t) for t in tasks),
                  depth_loss=config.loss.depth, codec=codec)


def model_kwargs(m: ml_collections.ConfigDict) -> dict:
  """Constructor arguments of the model `m.arch` names (each architecture takes its own)."""
  kwargs = dict(encoder=m.encoder, num_classes=m.num_classes, output_stride=m.output_stride,
                zero_init_residual=m.zero_init_residual, use_aspp=m.use_aspp,
                aspp_rates=tuple(m.aspp_rates), aspp_channels=m.aspp_channels,
                decoder=m.decoder, decoder_channels=m.decoder_channels,
                skip_channels=m.skip_channels)
  if m.arch == 'single_task':
    kwargs['tasks'] = tuple(m.tasks)
  if m.arch == 'distilled':
    kwargs['second_stage'] = m.second_stage
  return kwargs


def build_model(config: ml_collections.ConfigDict):
  return mtl.build_model(config.model.arch, seed=config.seed, **model_kwargs(config.model))


def dataset_fields(data_config: ml_collections.ConfigDict) -> dict:
  """The options `pipeline.prepare` takes for this dataset (the split sizes and seed only
  exist for the synthetic one; the others are prepared by `mtl_jax.prepare_data`)."""
  size = dict(height=data_config.height, width=data_config.width)
  if data_config.name != 'synthetic':
    return size
  return dict(size, seed=data_config.dataset_seed, num_train=data_config.train_size,
              num_validation=data_config.validation_size, num_test=data_config.test_size)


def load_config_file(path: str | Path, preset: str | None = None) -> ml_collections.ConfigDict:
  """`get_config(preset)` of a config file, as `--config path:preset` does (for scripts/tests)."""
  spec = importlib.util.spec_from_file_location(Path(path).stem + '_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset)


def save(config: ml_collections.ConfigDict, workdir: Path) -> None:
  (Path(workdir) / CONFIG_FILE).write_text(config.to_json(indent=2, sort_keys=True) + '\n')


def load(workdir: Path) -> ml_collections.ConfigDict:
  path = Path(workdir) / CONFIG_FILE
  if not Path(workdir).is_dir():
    raise ConfigError(f'workdir {workdir} does not exist')
  if not path.is_file():
    raise ConfigError(f'{path} not found: is {workdir} a training workdir?')
  try:
    saved = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ConfigError(f'{path} is not valid JSON ({e})') from None
  # Keys added since the run was written take their defaults, so an older run still loads.
  return _overlay(config_base.base_config(), saved)


def _overlay(defaults: ml_collections.ConfigDict, saved: dict) -> ml_collections.ConfigDict:
  for key, value in saved.items():
    if isinstance(value, dict) and isinstance(defaults.get(key), ml_collections.ConfigDict):
      _overlay(defaults[key], value)
    else:
      defaults[key] = value
  return defaults
