"""Config files in and out: `configs/<arch>.py[:preset]`, and a run's resolved `config.json`.

The configs ship inside the package (`mtl_jax/configs/`; the repository's `configs` links there),
so `--config configs/joint.py` works from any directory (`resolve_config_path`). A run directory's
config.json is plain JSON (never executed): its keys and value types are checked against the
schema's table as it loads, so a hand edit gets one line naming the key. Runs written by older
versions still load: renamed knobs are mapped to their new keys (`RENAMED`, `_upgrade`) and knobs
added since take their defaults.
"""

import importlib.util
import json
import re
from pathlib import Path

import ml_collections

from mtl_jax.config.schema import (
  KNOBS,
  ConfigError,
  base_config,
  expected_type,
  get,
  type_problem,
)

CONFIG_FILE = 'config.json'
SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / 'configs'

# Old dotted key → new one.
RENAMED = {
  'data.dataset_seed': 'data.seed',
  'data.train_size': 'data.num_train',
  'data.validation_size': 'data.num_validation',
  'data.test_size': 'data.num_test',
  'loss.depth': 'loss.depth_loss',
}


def resolve_config_path(path: str | Path) -> Path:
  """`path` if it is a file; else the shipped config it names: `configs/x.py`, `x.py` or `x` →
  mtl_jax/configs/x.py. Any other path, or a name nothing ships, comes back unchanged (for the
  error to name it). A JSON file (a run's config.json) is refused."""
  given = Path(path)
  if given.suffix == '.json':
    raise ConfigError(_not_a_config_file(given))
  if (
    given.is_file()
    or given.parent not in (Path(), Path('configs'))
    or given.suffix not in ('', '.py')
  ):
    return given
  shipped = SHIPPED_CONFIGS / f'{given.stem}.py'
  return shipped if shipped.is_file() else given


def _not_a_config_file(path: Path) -> str:
  """Why a JSON file cannot be --config and, for a run's config.json, what resumes that run:
  config files are Python run with presets, and config.json does not record which ones."""
  try:
    arch = json.loads(path.read_text())['model']['arch']
  except (OSError, ValueError, TypeError, KeyError):
    return f'{path} is not a config file: --config takes a Python file with get_config()'
  return (
    f'{path} is the resolved config a run saved, not a config file; to continue that run, pass '
    f'the config file and presets it started with: python -m mtl_jax.train --config '
    f'configs/{arch}.py[:presets] --workdir {path.parent} (to score it: python -m '
    f'mtl_jax.evaluate --workdir {path.parent})'
  )


def resolve_config_ref(ref: str) -> str:
  """`path[:presets]`, the value of --config, with its path resolved by `resolve_config_path`."""
  path, colon, preset = ref.partition(':')
  return f'{resolve_config_path(path)}{colon}{preset}'


def default_workdir(ref: str) -> Path:
  """runs/<config file stem>-<presets or 'full'>, commas and other odd characters as '_': e.g.
  `configs/distilled.py:deep,cpu` → runs/distilled-deep_cpu (relative to the working directory)."""
  path, _, preset = ref.partition(':')
  return Path('runs') / re.sub(r'[^\w.-]', '_', f'{Path(path).stem}-{preset or "full"}')


def load_config_file(path: str | Path, preset: str | None = None) -> ml_collections.ConfigDict:
  """`get_config(preset)` of a config file, as `--config path:preset` does (for scripts/tests)."""
  path = resolve_config_path(path)
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
