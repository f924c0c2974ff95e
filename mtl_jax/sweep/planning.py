"""A sweep's plan: which runs, their workdir names and their train commands (pure functions; the
SLURM script's writing is the one that touches the disk).

A sweep is the product of a sweep file's list of override dicts (`get_sweep()`), each `--grid
key=v1,v2` and the seeds, seeds outermost (every combination runs once before any repeats).
Every run's config is built the way `train` builds it — config_flags parsing `--config.key=text`
by the type of the key's value — and validated before anything is launched, so a typo fails the
sweep at once, not an hour into it.

A run's workdir under the root is named by its overrides, in the order given, seed last:
`optim.name=adam,optim.learning_rate=1e-4,seed=0`. Values are written canonically from the
parsed config (`value_text`: 1e-4, 0.5, true), so `1e-4`, `0.0001` and a sweep file's 1e-4 name
the same run; characters a filename should not hold become `_`. A name depends on its run's own
overrides only, so adding values to a grid keeps the names of the runs already done. Overrides
given to the sweep as `--config.key=v` apply to every run and are not part of the names.
"""

import dataclasses
import difflib
import hashlib
import inspect
import itertools
import math
import re
import shlex
import traceback
from pathlib import Path
from typing import Any

import ml_collections
from absl import flags
from ml_collections import config_flags

from mtl_jax import cli
from mtl_jax.config import files, schema
from mtl_jax.data.sample import TASKS
from mtl_jax.runtime import atomic
from mtl_jax.runtime.errors import UserError
from mtl_jax.workdir import layout, run_config

SEED = 'seed'
_MAX_NAME = 200  # filesystems allow 255 bytes per name; leave room for temporary suffixes


@dataclasses.dataclass(frozen=True)
class PlannedRun:
  """One run of a sweep: its overrides as (key, canonical text), seed last."""

  overrides: tuple[tuple[str, str], ...]
  num_epochs: int  # what its config asks for (the sweep's ETA counts epochs)

  @property
  def name(self) -> str:
    return run_name(self.overrides)

  @property
  def args(self) -> list[str]:
    return [f'--config.{key}={text}' for key, text in self.overrides]


def _knob(key: str, source: str) -> str:
  """`key` without a leading 'config.' (big_vision's sweeps write it), if the schema has it."""
  key = key.removeprefix('config.')
  if key not in schema.KNOBS:
    close = difflib.get_close_matches(key, schema.KNOBS, n=1)
    hint = f'; did you mean {close[0]}?' if close else ' (mtl_jax/config/schema.py lists them)'
    raise UserError(f'{source}: {key!r} is not a config key{hint}')
  return key


# Knobs that only mean something together: the task weights (30/70 is semseg 0.3 and depth 0.7).
# A run that sweeps one without the others would keep them at the config's values (0.3/0.5), so
# `plan` refuses it unless --config.<key>= fixes them for every run.
PAIRED_KNOBS = tuple(f'loss.{task}_weight' for task in TASKS)
PAIR_SEPARATOR = ':'  # between a paired grid's values: loss.semseg_weight,loss.depth_weight=0.3:0.7

Grid = list[tuple[tuple[str, ...], list[tuple[str, ...]]]]  # (keys, the values of each point)


def _grid_values(spec: str, keys: tuple[str, ...], values: str) -> list[tuple[str, ...]]:
  """`v1,v2` → [(v1,), (v2,)]; for two or more keys `a:b,c:d` → [(a, b), (c, d)]."""
  items = values.split(',')
  if not values or not all(items):
    raise UserError(f'--grid {spec}: empty value in the list (an empty string needs a sweep file)')
  if len(keys) == 1:
    return [(item,) for item in items]
  points = [tuple(item.split(PAIR_SEPARATOR)) for item in items]
  for point in points:
    if len(point) != len(keys) or not all(point):
      example = PAIR_SEPARATOR.join(['v'] * len(keys))
      raise UserError(
        f'--grid {spec}: each value must give one value per key ({len(keys)}) joined by '
        f"'{PAIR_SEPARATOR}', like {example}; {PAIR_SEPARATOR.join(point)!r} does not"
      )
  return points


def parse_grid(specs: list[str]) -> Grid:
  """`['key=v1,v2', 'k1,k2=a:b,c:d', ...]` → [((key,), [(v1,), (v2,)]), ((k1, k2), [(a, b),
  (c, d)]), ...] in the order given: one axis of the product per spec, its keys varying together.
  """
  grid: Grid = []
  for spec in specs:
    keys_text, eq, values = spec.partition('=')
    if not eq:
      raise UserError(f'--grid {spec}: expected key=value1,value2,... or k1,k2=a:b,c:d,...')
    keys = tuple(_knob(key, f'--grid {spec}') for key in keys_text.split(','))
    for key in keys:
      if key in [k for swept, _ in grid for k in swept] or keys.count(key) > 1:
        raise UserError(f'--grid {spec}: {key} is swept by another --grid already')
    grid.append((keys, _grid_values(spec, keys, values)))
  return grid


def load_sweep_file(path: str | Path) -> list[dict[str, Any]]:
  """The list of override dicts `get_sweep()` returns in a Python file, keys and values checked.
  The file is the user's code: whatever it raises, loaded or in get_sweep(), is one UserError
  line naming the file and line."""
  sweep = _call_get_sweep(path, _load_module(path))
  if not isinstance(sweep, (list, tuple)) or not sweep:
    raise UserError(
      f'{path}: get_sweep() must return a non-empty list of dicts, not {_short(sweep)}'
    )
  for entry in sweep:
    if not isinstance(entry, dict):
      raise UserError(f'{path}: get_sweep() returned {_short(entry)}, not a dict of overrides')
  entries = [{_knob(str(k), str(path)): v for k, v in entry.items()} for entry in sweep]
  for number, entry in enumerate(entries, 1):
    for key, value in entry.items():
      problem = _value_problem(key, value)
      if problem:
        raise UserError(f'{path}: get_sweep() entry {number}: {key}={_short(value)} {problem}')
  return entries


def _load_module(path: str | Path) -> dict[str, Any]:
  """The namespace of the sweep file run as a module."""
  namespace = {'__file__': str(path), '__name__': Path(path).stem + '_sweep'}
  try:
    source = Path(path).read_text()
  except (OSError, UnicodeDecodeError):
    raise UserError(f'cannot read sweep file {str(path)!r} (no such file, or unreadable)') from None
  try:
    exec(compile(source, str(path), 'exec'), namespace)  # pylint: disable=exec-used
  except SyntaxError as e:
    raise UserError(f'{e.filename}:{e.lineno}: {e.msg}') from None
  except Exception as e:  # pylint: disable=broad-except  # the user's code: theirs to fix
    raise UserError(_raised(path, e, 'raised while loading the file')) from None
  return namespace


def _call_get_sweep(path: str | Path, namespace: dict[str, Any]):
  get_sweep = namespace.get('get_sweep')
  if not callable(get_sweep):
    raise UserError(f'{path} does not define get_sweep()')
  required = _required_parameters(get_sweep)
  if required:
    raise UserError(
      f'{path}: get_sweep() must take no arguments; it requires {", ".join(required)}'
    )
  try:
    return get_sweep()
  except Exception as e:  # pylint: disable=broad-except  # the user's code: theirs to fix
    raise UserError(_raised(path, e, 'raised by get_sweep()')) from None


def _short(value, limit: int = 80) -> str:
  text = repr(value)
  return text if len(text) <= limit else text[: limit - 3] + '...'


def _raised(path: str | Path, error: Exception, when: str) -> str:
  """'path:line: ErrorType: message (raised when)': the line of the sweep file's deepest frame,
  and the message's first line (one line, however long the error's text)."""
  frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
  where = f'{path}:{frames[-1].lineno}' if frames else str(path)
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  message = f': {lines[0]}' + (' ...' if len(lines) > 1 else '') if lines else ''
  return f'{where}: {type(error).__name__}{message} ({when})'


def _required_parameters(function) -> list[str]:
  """The names of `function`'s parameters that have no default (*args and **kwargs have one)."""
  try:
    parameters = inspect.signature(function).parameters.values()
  except (TypeError, ValueError):  # a callable without a signature: calling it tells
    return []
  optional = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
  return [p.name for p in parameters if p.default is p.empty and p.kind not in optional]


def _value_problem(key: str, value) -> str | None:
  """Why a sweep file's value cannot be key's, or None. Text is parsed as the command line's
  (`--config.key=text`), so only other values are checked here: of the knob's type, and finite
  (validation refuses nan too, but could not name the file)."""
  if isinstance(value, str):
    return None
  numbers = value if isinstance(value, (list, tuple)) else [value]
  if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
    return 'must be a finite number'
  return schema.type_problem(key, value)


def combinations(sweep: list[dict[str, Any]], grid: Grid, seeds: list[str]) -> list[dict[str, Any]]:
  """Every sweep-file entry × grid point × seed, seeds outermost, the grid's first axis slowest."""
  points = [
    {key: value for (keys, _), values in zip(grid, choice) for key, value in zip(keys, values)}
    for choice in itertools.product(*(values for _, values in grid))
  ]
  for entry, point in itertools.product(sweep, points):
    shared = entry.keys() & point.keys()
    if shared:
      raise UserError(f'{", ".join(sorted(shared))} is set by both the sweep file and --grid')
    if seeds and SEED in {**entry, **point}:
      raise UserError('seed is swept by --grid or the sweep file and by --seeds: give it once')
  per_seed = [{**entry, **point} for entry in sweep for point in points]
  return [{**combo, SEED: seed} for seed in seeds for combo in per_seed] if seeds else per_seed


def float_text(value: float) -> str:
  """Below 0.1 the shortest exact scientific form unless repr is shorter (1e-2, 3e-4, 0.015),
  else repr (0.5, 27.07): learning rates read alike in a listing. nan and inf as repr writes
  them, which config_flags reads back (and validation refuses)."""
  if not math.isfinite(value):
    return repr(value)
  for digits in range(17):
    scientific = f'{value:.{digits}e}'
    if float(scientific) == value:
      break
  mantissa, _, exponent = scientific.partition('e')
  scientific = f'{mantissa}e{int(exponent)}'
  small = int(exponent) < -1 and len(scientific) <= len(repr(value))
  return scientific if small else repr(value)


def value_text(value) -> str:
  """A typed config value as command-line text config_flags parses back to the same value."""
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, float):
    return float_text(value)
  if isinstance(value, (tuple, list)):
    parts = [repr(v) if isinstance(v, str) else value_text(v) for v in value]
    return f'({",".join(parts)}{"," if len(parts) == 1 else ""})'
  return str(value)


def run_name(overrides: tuple[tuple[str, str], ...]) -> str:
  """`k=v,k=v,...`, filename-safe; a hash of the full text ends a name cut to _MAX_NAME."""
  safe = lambda text: re.sub(r'[^A-Za-z0-9_.+-]', '_', re.sub(r'[()\'"]', '', text))
  name = ','.join(f'{key}={safe(text)}' for key, text in overrides)
  if len(name) <= _MAX_NAME:
    return name
  digest = hashlib.sha1(name.encode()).hexdigest()[:10]
  return f'{name[: _MAX_NAME - 11]}~{digest}'


def load_config(config_ref: str, args: list[str]) -> ml_collections.ConfigDict:
  """The config `train --config=config_ref *args` would train with, parsed by config_flags in a
  private flag set; a bad key or value is a UserError with the line train would print."""
  argv = ['sweep', f'--config={files.resolve_config_ref(config_ref)}', *args]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', flag_values=flag_values, sys_argv=argv)
  try:
    flag_values(argv)
    config = flag_values.config
    config.keys()  # config_flags defers a file's load error to first access
  except Exception as e:  # pylint: disable=broad-except  # a bug is re-raised below
    message = cli.config_error_message(e, argv)
    if message is None:
      raise
    raise UserError(message) from None
  schema.validate(config)
  return config


@dataclasses.dataclass(frozen=True)
class Sweep:
  """The runs of one config file under one root, and the overrides every run shares."""

  config_ref: str  # the --config value: path[:presets]
  fixed: tuple[str, ...]  # --config.key=text args of every run
  root: Path
  runs: tuple[PlannedRun, ...]

  def workdir(self, run: PlannedRun) -> Path:
    return self.root / run.name

  def command(self, run: PlannedRun, python: str = 'python') -> list[str]:
    """The run's train command."""
    return [
      python,
      '-m',
      'mtl_jax.train',
      f'--config={self.config_ref}',
      f'--workdir={self.workdir(run)}',
      *self.fixed,
      *run.args,
    ]


def _check_paired(combo: dict[str, Any], fixed: list[str]) -> None:
  """A UserError when `combo` sweeps some of PAIRED_KNOBS and neither it nor `fixed` sets the
  others."""
  swept = [k for k in PAIRED_KNOBS if k in combo]
  unset = [k for k in PAIRED_KNOBS if k not in combo and not _fixes(fixed, k)]
  if swept and unset:
    example = PAIR_SEPARATOR.join(['0.3', '0.7', *(['0'] * (len(PAIRED_KNOBS) - 2))])
    raise UserError(
      f'{", ".join(swept)} is swept without {", ".join(unset)}, which would keep the '
      f"config's value: the task weights come in pairs, so sweep them together (--grid "
      f'{",".join(PAIRED_KNOBS)}={example},..., or every key in each sweep-file entry) or set '
      f'the others for every run with --config.{unset[0]}=...'
    )


def _fixes(fixed: list[str], key: str) -> bool:
  return any(arg.startswith(f'--config.{key}=') for arg in fixed)


def plan(config_ref: str, fixed: list[str], combos: list[dict[str, Any]], root: Path) -> Sweep:
  """The runs of `combos` on `config_ref` + the `fixed` args, each config validated; a run
  without a seed override gets the config's seed, so every name and command states it."""
  runs, names = [], {}
  for combo in combos:
    _check_paired(combo, fixed)
    swept = [f'--config.{k}={v if isinstance(v, str) else value_text(v)}' for k, v in combo.items()]
    clash = {k for k in combo if _fixes(fixed, k)}
    if clash:
      raise UserError(f'{", ".join(sorted(clash))} is both swept and set by --config.<key>=')
    config = load_config(config_ref, [*fixed, *swept])
    keys = [k for k in combo if k != SEED] + [SEED]
    overrides = tuple((k, value_text(schema.get(config, k))) for k in keys)
    run = PlannedRun(overrides, schema.epochs(config))
    if run.name in names:
      raise UserError(f'{names[run.name]} and {combo} are the same run ({run.name})')
    names[run.name] = combo
    runs.append(run)
  return Sweep(config_ref, tuple(fixed), root, tuple(runs))


def config_differences(sweep: Sweep, run: PlannedRun, limit: int = 3) -> str | None:
  """What differs between the config the run's workdir was trained with and the one this sweep
  gives it (the base --config or its file may have changed since), in one line; None if they
  agree or the run has not started. A workdir's name records only the run's own overrides."""
  workdir = sweep.workdir(run)
  if not (workdir / layout.CONFIG_FILE).is_file():
    return None
  recorded = run_config.load(workdir)
  planned = load_config(sweep.config_ref, [*sweep.fixed, *run.args])
  keys = [key for key in schema.KNOBS if key not in run_config.RESOLVED_AT_START]
  changed = [  # written as a --config.key=value flag takes them
    (key, value_text(schema.get(recorded, key)), value_text(schema.get(planned, key)))
    for key, _, _ in run_config.differences(recorded, planned, keys)
  ]
  return run_config.difference_text(changed, limit) if changed else None


def shell_line(command: list[str]) -> str:
  return ' '.join(shlex.quote(part) for part in command)


def slurm_script(sweep: Sweep, written_by: str) -> str:
  """A job-array script: task i runs the sweep's run i, its output appended to the run's
  train.log as the sweep's own runner does."""
  lines = [
    '#!/bin/bash',
    f'#SBATCH --job-name={shlex.quote(sweep.root.name or "sweep")}',
    f'#SBATCH --array=0-{len(sweep.runs) - 1}',
    f'#SBATCH --output={shlex.quote(str(sweep.root))}/slurm-%A_%a.out',
    "# Add your site's lines here (--partition, --gres=gpu:1, --time, ...); a limit on",
    '# simultaneous tasks goes after the range, e.g. --array=0-N%4.',
    f'# Written by: {written_by}',
    '# Submit it from the directory it was written in: its paths are relative to that.',
    'set -euo pipefail',
    'workdirs=(',
    *(f'  {shlex.quote(str(sweep.workdir(run)))}' for run in sweep.runs),
    ')',
    'commands=(',
    *(f'  {shlex.quote(shell_line(sweep.command(run)))}' for run in sweep.runs),
    ')',
    'i=$SLURM_ARRAY_TASK_ID',
    'mkdir -p "${workdirs[$i]}"',
    f'eval "${{commands[$i]}}" >> "${{workdirs[$i]}}/{layout.TRAIN_LOG_FILE}" 2>&1',
  ]
  return '\n'.join(lines) + '\n'


def write_slurm_script(path: Path, text: str) -> None:
  """Writes `text` to `path` whole or not at all (written beside it, then renamed over it). A
  UserError if `path` holds anything else: a script the user may have edited since, or another
  sweep's. The same text again is fine, so the same command can be rerun."""
  try:
    same = path.read_text() == text
  except FileNotFoundError:
    same = True
  except (OSError, UnicodeDecodeError):
    same = False
  if not same:
    raise UserError(
      f'--slurm {path} exists and holds another script (one you edited, or another '
      "sweep's); give another file name, or delete it to write this sweep's"
    )
  path.parent.mkdir(parents=True, exist_ok=True)
  atomic.write_text(path, text)
