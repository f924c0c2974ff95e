"""Reading checkpoints back: the newest that restores (to resume), one by step, and the best or
a chosen one for a reader (evaluate, reports, predict) while training may be writing.

A checkpoint whose arrays do not match the model (another architecture, depth or class count) is
a `mismatch.CheckpointMismatch` naming the keys and shapes — never a cast, pad or partial load. A
checkpoint that fails to restore otherwise (truncated or missing files) is moved to
`<dir>/../checkpoints_unreadable/` with a warning once an older one restores; if none does,
nothing is moved and the error says so.
"""

import dataclasses
import itertools
import shutil
import sys
from pathlib import Path
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from mtl_jax.runtime.errors import UserError
from mtl_jax.workdir import checkpoints, layout, mismatch
from mtl_jax.workdir.run_meta import RunMeta


def abstract_like(state: Any) -> Any:
  """ShapeDtypeStructs (with shardings) that tell orbax what to restore into."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


class CheckpointUnreadable(UserError):
  """No checkpoint of the run restores; nothing was moved or deleted."""


def _set_aside(manager: ocp.CheckpointManager, step: int) -> Path:
  """Moves an unreadable step out of the manager's sight (kept for inspection, not deleted)."""
  source = Path(manager.directory) / str(step)
  unreadable = Path(manager.directory).parent / layout.UNREADABLE_DIR
  target = unreadable / str(step)
  for n in itertools.count(1):  # never overwrite an earlier set-aside copy
    if not target.exists():
      break
    target = unreadable / f'{step}.{n}'
  target.parent.mkdir(parents=True, exist_ok=True)
  shutil.move(str(source), str(target))
  manager.reload()
  return target


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
    except mismatch.CheckpointMismatch:
      raise
    except Exception as e:  # pylint: disable=broad-except  # truncated, missing or garbled files
      failed.append((step, checkpoints.failure_reason(e)))
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
  saved = mismatch.array_specs(manager.item_metadata(step)['state'])
  if not saved:  # a checkpoint without array metadata is damaged, not another model
    raise ValueError(f'checkpoint {step} lists no arrays (its state metadata is missing)')
  problem = mismatch.mismatch(saved, mismatch.array_specs(state_template))
  if problem:
    raise mismatch.mismatch_error(manager, step, problem)
  target = _saved_fields(state_template, manager.item_metadata(step)['state'])
  items = {
    'state': ocp.args.StandardRestore(abstract_like(target)),
    'meta': ocp.args.JsonRestore(),
  }
  if data_iterator is not None and (Path(manager.directory) / str(step) / 'data').exists():
    items['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
  restored = manager.restore(step, args=ocp.args.Composite(**items))
  state = restored['state']
  if target is not state_template:
    state = state_template.replace(**state)
  return state, RunMeta.from_json(restored['meta'])


def _saved_fields(state_template: Any, saved_tree) -> Any:
  """The template, or, for a checkpoint older than a state field that holds no arrays here
  (TrainState.balancing under 'fixed'), a dict of the fields it has: orbax restores only the
  tree it saved."""
  if not dataclasses.is_dataclass(state_template):
    return state_template
  fields = {f.name: getattr(state_template, f.name) for f in dataclasses.fields(state_template)}
  absent = [name for name, value in fields.items() if value is None and name not in saved_tree]
  if not absent:
    return state_template
  return {name: value for name, value in fields.items() if name not in absent}


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
) -> tuple[int, Any, RunMeta]:
  """(step, state, meta) of checkpoint `step` (None: the best, else the newest) in `directory` for a
  reader (evaluate, reports, predict), while a training run may be writing there.

  Only complete checkpoints are listed (orbax commits a step by renaming its temporary folder).
  The run's retention may delete a step while it is listed or read: the listing is then made
  again and the choice with it, so a reader never fails on a checkpoint that was just replaced.
  """
  for _ in range(attempts):
    try:
      manager = checkpoints.make_manager(directory, tasks=tasks, read_only=True)
    except FileNotFoundError:  # a step deleted between listing the folder and reading its info
      continue
    chosen = _step_to_read(manager, step)
    try:
      state, meta = restore(manager, chosen, state_template=state_template)
      return chosen, state, meta
    except mismatch.CheckpointMismatch:
      raise
    except Exception as e:  # pylint: disable=broad-except  # deleted under us, or damaged
      if (Path(manager.directory) / str(chosen)).is_dir():  # still there: damaged, not replaced
        reason = checkpoints.failure_reason(e)
        raise CheckpointUnreadable(
          f'checkpoint {chosen} in {manager.directory} cannot be restored ({reason})'
        ) from e
  raise CheckpointUnreadable(
    f'the checkpoints in {directory} were replaced {attempts} times while reading; '
    'try again, or pass --step of one that is kept'
  )
