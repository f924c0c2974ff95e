"""A run's resolved config: `config.json` in its workdir, written when training starts.

config.json is plain JSON (never executed): its keys and value types are checked against the
schema's table as it loads, so a hand edit gets one line naming the key. Runs written by older
versions still load: renamed knobs are mapped to their new keys (`RENAMED`, `_upgrade`) and knobs
added since take their defaults.
"""

import json
from pathlib import Path

import ml_collections

from mtl_jax.config.schema import KNOBS, ConfigError, base_config, expected_type, get, type_problem
from mtl_jax.workdir.layout import CONFIG_FILE

# Old dotted key → new one.
RENAMED = {
  'data.dataset_seed': 'data.seed',
  'data.train_size': 'data.num_train',
  'data.validation_size': 'data.num_validation',
  'data.test_size': 'data.num_test',
  'loss.depth': 'loss.depth_loss',
}


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
    problem = _entry_problem(key, value)
    if problem:
      raise ConfigError(f'{path}: {problem}')
    _set(config, key, value)
  return config


def with_recorded_pretrained(
  config: ml_collections.ConfigDict, workdir: str | Path
) -> ml_collections.ConfigDict:
  """`config` with the model.pretrained the run in `workdir` recorded, if there is one: the
  encoder is initialised only when a run starts (a resumed run's weights come from its
  checkpoint), so its record stays — a run begun from random init never claims ImageNet weights
  converted since."""
  if not (Path(workdir) / CONFIG_FILE).is_file():
    return config
  config = config.copy_and_resolve_references()
  config.model.pretrained = load(workdir).model.pretrained
  return config


def _entry_problem(key: str, value) -> str | None:
  """What is wrong with one flattened config.json entry: a value of the wrong type, a group where
  a value belongs or the reverse, or a key the schema does not have."""
  if key in KNOBS:
    problem = type_problem(key, value)
    return problem and f'{key}={json.dumps(value)} {problem}'
  knob = next((k for k in KNOBS if key.startswith(f'{k}.')), None)
  if knob:
    return f'{knob} must be {expected_type(knob)}, not a group of keys'
  members = [k.removeprefix(f'{key}.') for k in KNOBS if k.startswith(f'{key}.')]
  if members:
    return f'{key}={json.dumps(value)} must be a group of keys ({", ".join(members)})'
  return f'{key} is not a config key (mtl_jax/config/schema.py lists them all)'


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
  if isinstance(flat.get('data.jitter'), (int, float)):  # one strength for all four, hue a tenth
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
