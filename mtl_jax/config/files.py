"""Config files in and out: `configs/<arch>.py[:preset]`, and a run's resolved `config.json`.

A run directory's config.json is plain JSON (never executed). Runs written by older versions
still load: renamed knobs are mapped to their new keys (`RENAMED`, `_upgrade`) and knobs added
since take their defaults.
"""

import importlib.util
import json
from pathlib import Path

import ml_collections

from mtl_jax.config.schema import ConfigError, base_config, get

CONFIG_FILE = 'config.json'

# Old dotted key → new one.
RENAMED = {
  'data.dataset_seed': 'data.seed',
  'data.train_size': 'data.num_train',
  'data.validation_size': 'data.num_validation',
  'data.test_size': 'data.num_test',
  'loss.depth': 'loss.depth_loss',
}


def load_config_file(path: str | Path, preset: str | None = None) -> ml_collections.ConfigDict:
  """`get_config(preset)` of a config file, as `--config path:preset` does (for scripts/tests)."""
  spec = importlib.util.spec_from_file_location(Path(path).stem + '_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset)


def save(config: ml_collections.ConfigDict, workdir: str | Path) -> None:
  (Path(workdir) / CONFIG_FILE).write_text(config.to_json(indent=2, sort_keys=True) + '\n')


def load(workdir: str | Path) -> ml_collections.ConfigDict:
  """The resolved config a run in `workdir` was trained with."""
  path = Path(workdir) / CONFIG_FILE
  if not Path(workdir).is_dir():
    raise ConfigError(f'workdir {workdir} does not exist')
  if not path.is_file():
    raise ConfigError(f'{path} not found: is {workdir} a training workdir?')
  try:
    saved = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ConfigError(f'{path} is not valid JSON ({e})') from None
  config = base_config()
  for key, value in _upgrade(_flatten(saved)).items():
    _set(config, key, value)
  return config


def _flatten(tree: dict, prefix: str = '') -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def _upgrade(flat: dict) -> dict:
  """Dotted keys of an older config.json under today's names."""
  flat = {RENAMED.get(key, key): value for key, value in flat.items()}
  if 'data.jitter' in flat:  # one strength for all four bounds, hue a tenth of it
    strength = flat.pop('data.jitter')
    flat.update(
      {
        'data.jitter.brightness': strength,
        'data.jitter.contrast': strength,
        'data.jitter.saturation': strength,
        'data.jitter.hue': strength / 10,
      }
    )
  return flat


def _set(config: ml_collections.ConfigDict, key: str, value) -> None:
  group, _, name = key.rpartition('.')
  (get(config, group) if group else config)[name] = value
