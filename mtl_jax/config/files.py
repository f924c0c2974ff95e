"""Config files: `configs/<arch>.py[:preset]`, found from any directory.

The configs ship inside the package (`mtl_jax/configs/`; the repository's `configs` links there),
so `--config configs/joint.py` works from any directory (`resolve_config_path`). A run's resolved
config.json is `mtl_jax.workdir.run_config`.
"""

import importlib.util
import json
import re
from pathlib import Path

import ml_collections

from mtl_jax.config.schema import (
  ConfigError,
)

SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / 'configs'


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
