"""Orbax checkpoints of a run: train state, input-pipeline position and run metadata, together.

Each step directory holds three items (an `args.Composite`):
- `state`: the TrainState pytree (params, BatchNorm statistics, optimizer state, step,
  non-finite streak);
- `data`: the grain iterator state, so a resumed run continues mid-epoch with the same samples;
- `meta`: JSON, a `RunMeta`: epoch, steps per epoch, accumulated wall time, the epoch's partial
  loss sums, the eval history and the software versions.
Retention keeps the newest `keep_latest` checkpoints plus the best one by eval `total`.
Nothing is pickled and no config is executed from a checkpoint (config.json is plain JSON).

Resuming (`restore_newest`): a save killed half-way leaves a `*.orbax-checkpoint-tmp*` folder,
which orbax never lists as a step and `remove_unfinished` deletes. A checkpoint whose arrays do
not match the model (another architecture, depth or class count) is a `CheckpointMismatch`
naming the keys and shapes — never a cast, pad or partial load. A checkpoint that fails to
restore otherwise (truncated or missing files) is moved to `<dir>/../checkpoints_unreadable/`
with a warning once an older one restores; if none does, nothing is moved and the error says so.
"""

import contextlib
import dataclasses
import errno
import io
import itertools
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from mtl_jax.runtime.errors import DiskFull, UserError
from mtl_jax.workdir import environment


@dataclasses.dataclass(frozen=True)
class RunMeta:
  """What a checkpoint records about the run beside its arrays (saved as JSON)."""

  epoch: int  # completed epochs at this step
  steps_per_epoch: int  # a resume must count epochs the same way
  wall_time_s: float  # training time so far, across resumes
  epoch_sums: dict  # the running epoch's partial step-metric sums (trainer.EpochSums)
  history: list[dict]  # every eval record so far (metrics.jsonl is rewritten from it)
  environment: dict[str, str]  # software versions (mtl_jax.workdir.environment.describe())

  @classmethod
  def start(cls) -> 'RunMeta':
    """A run's step 0, before any training: nothing counted, nothing scored."""
    return cls(
      epoch=0,
      steps_per_epoch=0,
      wall_time_s=0.0,
      epoch_sums={},
      history=[],
      environment=environment.describe(),
    )

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, saved: dict) -> 'RunMeta':
    return cls(**{f.name: saved[f.name] for f in dataclasses.fields(cls)})


# Checkpoint selection: `total` = mIoU − SI-log for two-task models (as the course "grader");
# single-task baselines rank by their own task's metric.
BEST_METRIC_MODES = {'total': 'max', 'miou': 'max', 'silog': 'min'}


def best_metric_for(tasks) -> str:
  tasks = tuple(tasks)
  return 'total' if len(tasks) > 1 else {'semseg': 'miou', 'depth': 'silog'}[tasks[0]]


def remove_unfinished(directory: Path) -> list[Path]:
  """Deletes temporary folders left by a save that never committed; returns what was removed."""
  directory = Path(directory)
  leftovers = sorted(directory.glob('*.orbax-checkpoint-tmp*')) if directory.exists() else []
  for path in leftovers:
    shutil.rmtree(path, ignore_errors=True)
  return leftovers


def make_manager(
  directory: Path, *, tasks=('semseg', 'depth'), keep_latest: int = 2, read_only: bool = False
):
  """Keeps the newest `keep_latest` steps plus the best by `best_metric_for(tasks)`."""
  best_metric = best_metric_for(tasks)
  mode = BEST_METRIC_MODES[best_metric]
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
  meta: RunMeta,
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
        f'warning: could not remove old checkpoint {path} ({_reason(error)}); it stays on disk '
        '(delete it by hand to free the space) and training continues',
        file=sys.stderr,
        flush=True,
      )


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


def abstract_like(state: Any) -> Any:
  """ShapeDtypeStructs (with shardings) that tell orbax what to restore into."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


class CheckpointMismatch(UserError):
  """The checkpoint holds another model's arrays."""


def _key_name(key) -> str:
  return str(getattr(key, 'key', getattr(key, 'name', getattr(key, 'idx', key))))


def array_specs(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
  """'params/encoder/conv1/kernel/value' → (shape, dtype) for arrays or orbax array metadata."""
  return {
    '/'.join(_key_name(k) for k in path): (tuple(leaf.shape), str(leaf.dtype))
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


def _model_first(key: str) -> tuple[bool, str]:
  """Sort key: parameters and statistics before their optimizer-state copies."""
  return key.startswith('opt_state/'), key


def _examples(keys, limit: int = 3) -> str:
  keys = sorted(keys, key=_model_first)
  return ', '.join(keys[:limit]) + (f' and {len(keys) - limit} more' if len(keys) > limit else '')


def mismatch(saved: dict, expected: dict) -> str | None:
  """What differs between two `array_specs` results, in one line; None if they match."""
  only_saved, only_expected = saved.keys() - expected.keys(), expected.keys() - saved.keys()
  differ = sorted(
    (k for k in saved.keys() & expected.keys() if saved[k] != expected[k]), key=_model_first
  )
  problems = []
  if only_saved:
    problems.append(f'{len(only_saved)} arrays only in the checkpoint ({_examples(only_saved)})')
  if only_expected:
    problems.append(f'{len(only_expected)} arrays only in the model ({_examples(only_expected)})')
  if differ:
    shown = '; '.join(
      f'{k}: {saved[k][1]}{list(saved[k][0])} in the checkpoint vs '
      f'{expected[k][1]}{list(expected[k][0])} in the model'
      for k in differ[:3]
    )
    more = f' and {len(differ) - 3} more' if len(differ) > 3 else ''
    problems.append(f'{len(differ)} arrays differ in shape or dtype ({shown}{more})')
  return '; '.join(problems) or None


def _mismatch_error(manager: ocp.CheckpointManager, step: int, problem: str):
  return CheckpointMismatch(
    f'checkpoint {step} in {manager.directory} was written by a different model: {problem}. '
    'Resume with the config the run was trained with (config.json there) or use a new '
    '--workdir'
  )


class CheckpointUnreadable(UserError):
  """No checkpoint of the run restores; nothing was moved or deleted."""


def _set_aside(manager: ocp.CheckpointManager, step: int) -> Path:
  """Moves an unreadable step out of the manager's sight (kept for inspection, not deleted)."""
  source = Path(manager.directory) / str(step)
  unreadable = Path(manager.directory).parent / 'checkpoints_unreadable'
  target = unreadable / str(step)
  for n in itertools.count(1):  # never overwrite an earlier set-aside copy
    if not target.exists():
      break
    target = unreadable / f'{step}.{n}'
  target.parent.mkdir(parents=True, exist_ok=True)
  shutil.move(str(source), str(target))
  manager.reload()
  return target


def _reason(error: Exception) -> str:
  text = str(error).strip()
  return f'{type(error).__name__}: {text.splitlines()[0][:300] if text else ""}'


def restore_newest(
  manager: ocp.CheckpointManager, *, state_template: Any, data_iterator: Any
) -> tuple[int, Any, RunMeta] | None:
  """(step, state, meta) of the newest checkpoint that restores completely, or None if there
  is none. Rewinds `data_iterator`.

  Newer checkpoints that failed are set aside with a warning only once an older one restored:
  when every checkpoint fails (say the input pipeline changed, so no iterator state fits),
  that is a CheckpointUnreadable and nothing is moved.
  """
  failed = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      state, meta = restore(
        manager, step, state_template=state_template, data_iterator=data_iterator
      )
    except CheckpointMismatch:
      raise
    except Exception as e:  # pylint: disable=broad-except  # truncated, missing or garbled files
      failed.append((step, _reason(e)))
      continue
    for bad_step, reason in failed:
      moved = _set_aside(manager, bad_step)
      print(
        f'warning: checkpoint {bad_step} could not be restored ({reason}); moved it to '
        f'{moved} and resumed from checkpoint {step}',
        file=sys.stderr,
        flush=True,
      )
    return step, state, meta
  if failed:
    details = '; '.join(f'step {step}: {reason}' for step, reason in failed)
    raise CheckpointUnreadable(
      f'no checkpoint in {manager.directory} restores ({details}). If config.data (e.g. '
      'worker_count) or the number of processes changed since the run started, change it '
      'back; to start afresh, move the checkpoints directory away'
    )
  return None


def restore(
  manager: ocp.CheckpointManager,
  step: int,
  *,
  state_template: Any,
  data_iterator: Any | None = None,
):
  """Restores (state, meta) of checkpoint `step` and, if given, rewinds `data_iterator` in
  place; a CheckpointMismatch if its arrays are not exactly the template's."""
  saved = array_specs(manager.item_metadata(step)['state'])
  if not saved:  # a checkpoint without array metadata is damaged, not another model
    raise ValueError(f'checkpoint {step} lists no arrays (its state metadata is missing)')
  problem = mismatch(saved, array_specs(state_template))
  if problem:
    raise _mismatch_error(manager, step, problem)
  items = {
    'state': ocp.args.StandardRestore(abstract_like(state_template)),
    'meta': ocp.args.JsonRestore(),
  }
  if data_iterator is not None and (Path(manager.directory) / str(step) / 'data').exists():
    items['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
  restored = manager.restore(step, args=ocp.args.Composite(**items))
  return restored['state'], RunMeta.from_json(restored['meta'])


def _step_to_read(manager: ocp.CheckpointManager, step: int | None) -> int:
  available = manager.all_steps()
  if not available:
    raise CheckpointUnreadable(
      f'no checkpoint in {manager.directory} yet (a run saves its first at the end of its first '
      'epoch, or after config.train.checkpoint_every_steps steps)'
    )
  if step is None:  # the best by eval score, else (a converted model, never scored) the newest
    best = manager.best_step()
    return best if best is not None else manager.latest_step()
  if step not in available:
    raise CheckpointUnreadable(f'no checkpoint for step {step}; available: {sorted(available)}')
  return step


def restore_for_reading(
  directory: Path,
  step: int | None,
  *,
  tasks: tuple[str, ...],
  state_template: Any,
  attempts: int = 5,
) -> tuple[int, Any]:
  """(step, state) of checkpoint `step` (None: the best, else the newest) in `directory` for a
  reader (evaluate, reports, predict), while a training run may be writing there.

  Only complete checkpoints are listed (orbax commits a step by renaming its temporary folder).
  The run's retention may delete a step while it is listed or read: the listing is then made
  again and the choice with it, so a reader never fails on a checkpoint that was just replaced.
  """
  for _ in range(attempts):
    try:
      manager = make_manager(directory, tasks=tasks, read_only=True)
    except FileNotFoundError:  # a step deleted between listing the folder and reading its info
      continue
    chosen = _step_to_read(manager, step)
    try:
      state, _ = restore(manager, chosen, state_template=state_template)
      return chosen, state
    except CheckpointMismatch:
      raise
    except Exception as e:  # pylint: disable=broad-except  # deleted under us, or damaged
      if (Path(manager.directory) / str(chosen)).is_dir():  # still there: damaged, not replaced
        raise CheckpointUnreadable(
          f'checkpoint {chosen} in {manager.directory} cannot be restored ({_reason(e)})'
        ) from e
  raise CheckpointUnreadable(
    f'the checkpoints in {directory} were replaced {attempts} times while reading; '
    'try again, or pass --step of one that is kept'
  )
