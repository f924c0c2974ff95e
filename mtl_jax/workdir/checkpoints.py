"""Orbax checkpoints of a run: the manager, its retention, saving, and a full disk.

Each step directory holds three items (an `args.Composite`):
- `state`: the TrainState pytree (params, BatchNorm statistics, optimizer state, step,
  non-finite streak);
- `data`: the grain iterator state, so a resumed run continues mid-epoch with the same samples;
- `meta`: JSON, a `run_meta.RunMeta`: epoch, steps per epoch, accumulated wall time, the epoch's
  partial loss sums, the eval history and the software versions.
Retention keeps the newest `keep_latest` checkpoints plus the best one by eval `total`.
Nothing is pickled and no config is executed from a checkpoint (config.json is plain JSON).

A save killed half-way leaves a `*.orbax-checkpoint-tmp*` folder, which orbax never lists as a
step and `remove_unfinished` deletes. Reading back is `restoring` (resume, readers); a
checkpoint whose arrays do not match the model is `mismatch`'s one-line error.
"""

import contextlib
import errno
import io
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import grain
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from mtl_jax.data.sample import TASKS
from mtl_jax.runtime.errors import DiskFull
from mtl_jax.workdir import run_meta


def remove_unfinished(directory: Path) -> list[Path]:
  """Deletes temporary folders left by a save that never committed; returns what was removed."""
  directory = Path(directory)
  leftovers = sorted(directory.glob('*.orbax-checkpoint-tmp*')) if directory.exists() else []
  for path in leftovers:
    shutil.rmtree(path, ignore_errors=True)
  return leftovers


def make_manager(directory: Path, *, tasks=TASKS, keep_latest: int = 2, read_only: bool = False):
  """Keeps the newest `keep_latest` steps plus the best by `run_meta.best_metric_for(tasks)`."""
  best_metric = run_meta.best_metric_for(tasks)
  mode = run_meta.BEST_METRIC_MODES[best_metric]
  worst = -math.inf if mode == 'max' else math.inf

  def best_fn(metrics: dict) -> float:
    # A NaN or missing score (an unlabelled split, a diverged model) ranks last, never first:
    # comparisons with NaN are all False, which would leave its rank to sort order.
    value = metrics.get(best_metric)
    return worst if value is None or math.isnan(value) else value

  options = ocp.CheckpointManagerOptions(
    create=not read_only,
    read_only=read_only,
    best_fn=best_fn,
    best_mode=mode,
    preservation_policy=pp.AnyPreservationPolicy(
      [
        pp.LatestN(n=keep_latest),
        pp.BestN(
          get_metric_fn=best_fn,
          reverse=(mode == 'min'),
          n=1,
          keep_checkpoints_without_metrics=False,
        ),
      ]
    ),
    enable_async_checkpointing=False,
  )
  # Handlers named up front, so a fresh manager can read a step's metadata before restoring it.
  handlers = {
    'state': ocp.StandardCheckpointHandler(),
    'data': grain.checkpoint.CheckpointHandler(),
    'meta': ocp.JsonCheckpointHandler(),
  }
  return ocp.CheckpointManager(Path(directory).absolute(), item_handlers=handlers, options=options)


def save(
  manager: ocp.CheckpointManager,
  step: int,
  *,
  state: Any,
  data_iterator: Any | None,
  meta: run_meta.RunMeta,
  metrics: dict[str, float] | None = None,
) -> None:
  """data_iterator None: a run's starting point (a converted model), which has no input
  position yet; resuming from it starts the data at the beginning."""
  items = {'state': ocp.args.StandardSave(state), 'meta': ocp.args.JsonSave(meta.to_json())}
  if data_iterator is not None:
    items['data'] = grain.checkpoint.CheckpointSave(data_iterator)
  kept_before = manager.all_steps()
  held = io.StringIO()  # orbax's writer threads retell a failure on stderr, hundreds of times
  try:
    with contextlib.redirect_stderr(held):
      saved = manager.save(step, args=ocp.args.Composite(**items), metrics=metrics)
  except Exception as e:  # pylint: disable=broad-except  # orbax wraps ENOSPC in several types
    if is_disk_full(e):  # one line instead of the retelling
      # The process ends on this error, and TensorStore callbacks that arrive after the save
      # returned still retell it ("Event loop is closed" tracebacks against orbax's closed
      # loop): stderr stays held until the exit, which reports on sys.__stderr__.
      sys.stderr = held
      raise disk_full(f'while saving checkpoint {step} in {manager.directory}', manager) from e
    sys.stderr.write(held.getvalue())
    if not (Path(manager.directory) / str(step)).is_dir():  # not committed: the save failed
      raise
    # Committed (orbax renames a finished save into place), then retention failed to delete an
    # old step (read-only, say): the new checkpoint is good, so keep training.
    _remove_or_warn(manager, [s for s in kept_before if s not in manager.all_steps()], e)
    return
  sys.stderr.write(held.getvalue())
  if not saved:  # orbax declines quietly, e.g. for a step not after the latest one
    raise RuntimeError(
      f'orbax did not save checkpoint {step} in {manager.directory} (latest: '
      f'{manager.latest_step()})'
    )


def _remove_or_warn(manager: ocp.CheckpointManager, dropped: list[int], error: Exception):
  """Deletes the old steps retention dropped but could not delete, warning for each that stays.
  The manager no longer lists them, so it will not retry (and fail) at every save."""
  for step in dropped:
    path = Path(manager.directory) / str(step)
    try:
      shutil.rmtree(path)
    except FileNotFoundError:
      continue
    except OSError as e:
      error = e
    if path.exists():
      print(
        f'warning: could not remove old checkpoint {path} ({failure_reason(error)}); it stays on '
        'disk (delete it by hand to free the space) and training continues',
        file=sys.stderr,
        flush=True,
      )


def read_meta(manager: ocp.CheckpointManager, step: int) -> dict:
  """A checkpoint's `meta` item alone (no arrays are read); {} when it cannot be read, so a
  caller looking for a record moves on to an older checkpoint."""
  try:
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']
  except Exception:  # pylint: disable=broad-except  # truncated, missing or garbled files
    return {}
  return meta if isinstance(meta, dict) else {}


def is_disk_full(error: BaseException) -> bool:
  """Whether ENOSPC caused `error`: orbax raises it as OSError, or as a ValueError from
  TensorStore ("RESOURCE_EXHAUSTED: … No space left on device"), depending on which write hit
  it first."""
  while error is not None:
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or os.strerror(
      errno.ENOSPC
    ) in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


def last_complete(manager: ocp.CheckpointManager) -> str:
  """'the last complete checkpoint is step N' (or that there is none), as it is on disk now."""
  manager.reload()
  step = manager.latest_step()
  return (
    'no checkpoint is complete yet'
    if step is None
    else f'the last complete checkpoint is step {step}'
  )


def disk_full(where: str, manager: ocp.CheckpointManager) -> DiskFull:
  return DiskFull(
    f'no space left on device {where}; {last_complete(manager)}. Free space and run the same '
    'command again: it resumes there'
  )


def failure_reason(error: Exception) -> str:
  """The error's type and first line, for a one-line warning or error."""
  text = str(error).strip()
  return f'{type(error).__name__}: {text.splitlines()[0][:300] if text else ""}'
