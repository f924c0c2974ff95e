"""A run's resolved config: `config.json` in its workdir, written when training starts, and the
same record inside every checkpoint.

config.json is plain JSON (never executed): its keys and value types are checked against the
schema's table as it loads, so a hand edit gets one line naming the key. Runs written by older
versions still load: renamed knobs are mapped to their new keys (`RENAMED`, `_upgrade`) and knobs
added since take their defaults. Keys a newer version wrote are a warning line where a run is only
read, and refused where it would train (`load(strict=True)`).

A resumed run keeps its record: `for_resume` refuses any change but `CHANGEABLE_ON_RESUME`, in one
line naming the first differing keys. A missing or unreadable config.json is restored from the
newest checkpoint's record, with a line saying so; without a record nothing is guessed.
"""

import json
import sys
from pathlib import Path

import ml_collections

from mtl_jax.config.schema import (
  KNOBS,
  ConfigError,
  base_config,
  expected_type,
  get,
  type_problem,
  validate,
)
from mtl_jax.runtime import atomic, progress
from mtl_jax.workdir import checkpoints, layout
from mtl_jax.workdir.layout import CONFIG_FILE

# Old dotted key → new one.
RENAMED = {
  'data.dataset_seed': 'data.seed',
  'data.train_size': 'data.num_train',
  'data.validation_size': 'data.num_validation',
  'data.test_size': 'data.num_test',
  'loss.depth': 'loss.depth_loss',
}

# What a resumed run may change: how long it trains (to extend it), how it is logged, saved and
# scored, and where its data lives. Any other change would train another model than the record
# says (the learning rate, the batch, the data's size or workers, the model, the parallel mode).
CHANGEABLE_ON_RESUME = frozenset(
  {
    'train.num_epochs',
    'train.epoch_scale',
    'train.eval_batch_size',
    'train.log_every_steps',
    'train.keep_checkpoints',
    'train.checkpoint_every_steps',
    'train.max_nonfinite_steps',
    'data.data_dir',
  }
)
# Resolved when a run starts ('auto' → the ImageNet weights found then), so the record stands.
RESOLVED_AT_START = frozenset({'model.pretrained'})


class Unreadable(ConfigError):
  """config.json is not a JSON object of config keys (torn, garbled, or not JSON at all)."""


def as_record(config: ml_collections.ConfigDict) -> dict:
  """The config as config.json and checkpoints record it: plain JSON values."""
  return json.loads(config.to_json())


def save(config: ml_collections.ConfigDict, workdir: str | Path) -> None:
  _write(Path(workdir) / CONFIG_FILE, as_record(config))


def _write(path: Path, record: dict) -> None:
  atomic.write_text(path, json.dumps(record, indent=2, sort_keys=True) + '\n')


def load(workdir: str | Path, *, strict: bool = False) -> ml_collections.ConfigDict:
  """The resolved config a run in `workdir` was trained with. A missing or unreadable
  config.json is read from the newest checkpoint's record instead, with a warning line (a
  reader writes nothing). strict: keys a newer version wrote are refused, not ignored."""
  if not Path(workdir).is_dir():
    raise ConfigError(f'workdir {workdir} does not exist')
  record, source = _record(Path(workdir), restore=False)
  return from_record(record, source=source, strict=strict)


def _record(workdir: Path, *, restore: bool) -> tuple[dict, str | Path]:
  """(record, where it was read) of config.json; when that is missing or unreadable, of the
  newest checkpoint's record: restore=True (train) writes it back to config.json with a line,
  else (a reader, which writes nothing) a warning line says so. Unreadable when no checkpoint
  records the config either."""
  path = workdir / CONFIG_FILE
  try:
    return _read(path), path
  except Unreadable as problem:
    found = checkpoint_record(workdir)
    if found is None:
      raise
    step, record = found
    if not restore:
      print(
        f'warning: {problem}; read the config recorded in checkpoint {step} instead',
        file=sys.stderr,
        flush=True,
      )
      return record, f'checkpoint {step} in {workdir}'
    what = problem if path.exists() else f'{path} was missing'
    if progress.is_primary():
      _write(path, record)
    progress.say(f'{what}; restored it from the config recorded in checkpoint {step}')
    return record, path


def _read(path: Path) -> dict:
  if not path.is_file():
    raise Unreadable(f'{path} not found: is {path.parent} a training workdir?')
  try:
    saved = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise Unreadable(f'{path} is not valid JSON ({e})') from None
  if not isinstance(saved, dict):
    raise Unreadable(f'{path} holds a JSON {type(saved).__name__}, not an object of config keys')
  return saved


def from_record(saved: dict, *, source, strict: bool = False) -> ml_collections.ConfigDict:
  """A config from a config.json-shaped record, checked key by key against the schema."""
  flat = _upgrade(_flatten(saved))
  unknown = sorted(key for key in flat if _is_unknown(key))
  if unknown and strict:
    raise ConfigError(
      f'{source} has keys this version of mtl_jax does not know ({", ".join(unknown)}): a typo, '
      'or a newer version wrote them; fix them, train this run with that version, or start a new '
      '--workdir'
    )
  if unknown:
    print(
      f'warning: {source}: ignored keys this version of mtl_jax does not know '
      f'({", ".join(unknown)}): a typo, or a newer version wrote them',
      file=sys.stderr,
      flush=True,
    )
  config = base_config()
  for key, value in flat.items():
    if key in unknown:
      continue
    problem = _entry_problem(key, value)
    if problem:
      raise ConfigError(f'{source}: {problem}')
    _set(config, key, value)
  return config


def checkpoint_record(workdir: str | Path) -> tuple[int, dict] | None:
  """(step, config record) of the newest checkpoint in `workdir` that records its config."""
  directory = layout.checkpoints_dir(workdir)
  if not directory.is_dir():
    return None
  manager = checkpoints.make_manager(directory, read_only=True)
  for step in sorted(manager.all_steps(), reverse=True):
    record = checkpoints.read_meta(manager, step).get('config')
    if isinstance(record, dict):
      return step, record
  return None


def for_resume(config: ml_collections.ConfigDict, workdir: str | Path) -> ml_collections.ConfigDict:
  """The config `train` runs in `workdir`: `config` itself for a new run; for a run with a
  record, `config` if it changes only CHANGEABLE_ON_RESUME (with the recorded model.pretrained),
  else a ConfigError naming the first differences. A missing or unreadable config.json is
  restored from the newest checkpoint's record first, with a line saying so."""
  validate(config)  # a value wrong in itself is named as such, resumed or not
  workdir = Path(workdir)
  recorded = _recorded_for_training(workdir)
  if recorded is None:
    return config
  fixed = [key for key in KNOBS if key not in CHANGEABLE_ON_RESUME | RESOLVED_AT_START]
  changed = differences(recorded, config, fixed)
  if changed:
    raise ConfigError(
      f'the run in {workdir} was trained with another config ({difference_text(changed)}); a '
      f'resumed run may change only {", ".join(sorted(CHANGEABLE_ON_RESUME))}. Resume it with '
      f'the values in {workdir / CONFIG_FILE}, or train this config in a new --workdir'
    )
  config = config.copy_and_resolve_references()
  config.model.pretrained = recorded.model.pretrained
  return config


def _recorded_for_training(workdir: Path) -> ml_collections.ConfigDict | None:
  """The config a run in `workdir` records (restored to config.json if it was lost), None for a
  new run (or one from before checkpoints recorded their config, without config.json)."""
  if not workdir.is_dir():
    return None
  try:
    record, source = _record(workdir, restore=True)
  except Unreadable as problem:
    if (workdir / CONFIG_FILE).exists():
      raise ConfigError(f"{problem}, and no checkpoint records the run's config") from None
    return None
  return from_record(record, source=source, strict=True)


def differences(
  recorded: ml_collections.ConfigDict, given: ml_collections.ConfigDict, keys
) -> list[tuple[str, str, str]]:
  """(key, recorded value, given value) as JSON text for each of `keys` whose values differ
  (JSON writes a tuple as a list, as config.json holds it)."""
  text = lambda config, key: json.dumps(get(config, key))
  pairs = ((key, text(recorded, key), text(given, key)) for key in keys)
  return [(key, there, here) for key, there, here in pairs if there != here]


def difference_text(changed: list[tuple[str, str, str]], limit: int = 3) -> str:
  shown = '; '.join(f'{key}: {there} there, {here} here' for key, there, here in changed[:limit])
  return shown + (f' and {len(changed) - limit} more' if len(changed) > limit else '')


def _is_unknown(key: str) -> bool:
  """Neither a knob, nor inside one, nor a group of them: a key from a newer version."""
  return key not in KNOBS and not any(
    key.startswith(f'{k}.') or k.startswith(f'{key}.') for k in KNOBS
  )


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
