"""The runs a report covers: found under the paths given, loaded with their state, and checked
to be scored on one dataset with one class set.

A path is a run directory (it holds config.json) or a directory holding run directories at any
depth (a sweep root); a run directory is not searched further. A mistake is one `UserError`
line: a path that does not exist or holds no run, or runs whose scores cannot be compared (a
different dataset, image size, eval split or class set).

A run whose metrics.jsonl holds a corrupt line (`metrics_problem`) is left out with a warning
line naming the file and line, and the others are reported: its state and best eval come from
that file, and a record skipped could be its best, which its drawn checkpoint would contradict.
"""

import dataclasses
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import ml_collections

from mtl_jax.config import schema
from mtl_jax.runtime.errors import UserError
from mtl_jax.workdir import layout, run_config, run_status, writers

# The knobs that fix which images a run is scored on: runs differing in any of them score
# different images. The synthetic data's seed and split size define its validation images.
EVAL_DATA_KEYS = ('data.name', 'data.height', 'data.width', 'train.eval_split')
SYNTHETIC_EVAL_DATA_KEYS = ('data.seed', 'data.num_validation', 'data.num_test')
IOU_PREFIX = 'iou/'  # metrics.jsonl's per-class IoU keys: iou/<class name>


@dataclasses.dataclass(frozen=True)
class ReportRun:
  workdir: Path
  name: str  # the workdir relative to the common parent of the report's runs
  config: ml_collections.ConfigDict
  status: run_status.RunStatus

  @property
  def evals(self) -> list[dict]:
    """The scored eval records, in order."""
    return run_status.scored(self.status.records)

  @property
  def tasks(self) -> tuple[str, ...]:
    return tuple(self.config.model.tasks)

  @property
  def class_names(self) -> tuple[str, ...]:
    """From the run's eval records (the dataset's names); () before its first eval."""
    evals = self.evals
    return (
      tuple(k[len(IOU_PREFIX) :] for k in evals[0] if k.startswith(IOU_PREFIX)) if evals else ()
    )


def run_dirs(path: Path) -> list[Path]:
  """`path` if it is a run, else the runs under it in path order."""
  if not path.exists():
    raise UserError(f'{path} does not exist')
  if not path.is_dir():
    raise UserError(f'{path} is a file; give a run directory or a directory of runs')
  if (path / layout.CONFIG_FILE).is_file():
    return [path]
  found = []
  for root, dirs, names in os.walk(path):
    if layout.CONFIG_FILE in names:
      found.append(Path(root))
      dirs.clear()  # a run's own folders hold no runs
    dirs.sort()
  if not found:
    raise UserError(f'{path} is not a run (no {layout.CONFIG_FILE}) and holds no runs')
  return sorted(found)


def _names(workdirs: list[Path]) -> list[str]:
  """Each workdir relative to the common parent of all (a lone run: its folder name)."""
  resolved = [w.resolve() for w in workdirs]
  common = Path(os.path.commonpath([w.parent for w in resolved]))
  return [str(w.relative_to(common)) for w in resolved]


def load(paths: Iterable[str | Path]) -> list[ReportRun]:
  """Every run under `paths` (each once), with its config and state; a UserError if a path
  holds none, or the runs are scored on different data."""
  workdirs = []
  for path in paths:
    for workdir in run_dirs(Path(path)):
      if workdir.resolve() not in {w.resolve() for w in workdirs}:
        workdirs.append(workdir)
  if not workdirs:
    raise UserError('no run given; name run directories or directories of runs')
  runs, problems = [], []
  for workdir, name in zip(workdirs, _names(workdirs)):
    problem = metrics_problem(workdir)
    if problem:
      problems.append((name, problem))
    else:
      runs.append(ReportRun(workdir, name, run_config.load(workdir), run_status.status(workdir)))
  if not runs:
    raise UserError(f'{problems[0][1]}: repair or delete that line to report the run')
  for name, problem in problems:
    print(
      f'warning: {problem}, so run {name} is left out of the report (repair or delete that '
      'line to include it)',
      file=sys.stderr,
      flush=True,
    )
  check_comparable(runs)
  return runs


def metrics_problem(workdir: Path) -> str | None:
  """Why the run's metrics.jsonl cannot be read (`writers.read_records`' line naming the corrupt
  line), None when it can."""
  try:
    writers.read_records(Path(workdir) / layout.METRICS_FILE)
  except writers.CorruptRecords as e:
    return str(e)
  return None


def eval_data(config: ml_collections.ConfigDict) -> dict:
  """What a run's scores are measured on (`EVAL_DATA_KEYS`)."""
  keys = EVAL_DATA_KEYS + (SYNTHETIC_EVAL_DATA_KEYS if config.data.name == 'synthetic' else ())
  return {key: schema.get(config, key) for key in keys}


def _differences(a: dict, b: dict) -> tuple[str, str]:
  """The entries in which `a` and `b` differ, each as 'key=value, ...'."""
  keys = [k for k in a if a[k] != b[k]]
  return tuple(', '.join(f'{k}={d[k]}' for k in keys) for d in (a, b))


def check_comparable(runs: list[ReportRun]) -> None:
  """One UserError line if two runs were scored on different images or classes."""
  first = runs[0]
  for run in runs[1:]:
    ours, theirs = eval_data(first.config), eval_data(run.config)
    if ours.keys() != theirs.keys():  # one synthetic, one not
      ours, theirs = ({'data.name': d['data.name']} for d in (ours, theirs))
    if ours != theirs:
      ours, theirs = _differences(ours, theirs)
      raise UserError(
        f'runs of different datasets cannot share a report: {first.name} is scored on {ours}, '
        f'{run.name} on {theirs}; report them separately'
      )
  with_classes = [r for r in runs if r.class_names]
  for run in with_classes[1:]:
    first = with_classes[0]
    if run.class_names != first.class_names:
      raise UserError(
        f'runs of different class sets cannot share a report: {first.name} has '
        f'{_classes_apart(first, run)}, {run.name} has {_classes_apart(run, first)}; report '
        'them separately'
      )


def _classes_apart(run: ReportRun, other: ReportRun) -> str:
  """'19 classes, road not in the other's', or their order when both have the same."""
  only = [c for c in run.class_names if c not in other.class_names]
  apart = (
    f'{", ".join(only)} not in the other'
    if only
    else f'them in the order {", ".join(run.class_names)}'
  )
  return f'{len(run.class_names)} classes, {apart}'
