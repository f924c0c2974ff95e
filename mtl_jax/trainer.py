"""`train_and_evaluate`: the training loop and its resume policy.

Everything the loop runs (data, model, optimizer, compiled steps, evaluator) comes from
`mtl_jax.experiment`; this module decides when to log, evaluate, save and stop, and how a
resumed run continues exactly where it was. No other module imports it.
"""

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mtl_jax import metrics, parallel, steps
from mtl_jax.config import schema
from mtl_jax.config.schema import ConfigError
from mtl_jax.data import labels, pipeline
from mtl_jax.experiment import Experiment
from mtl_jax.reports import samples
from mtl_jax.runtime import locks, preemption, progress
from mtl_jax.runtime.errors import DiskFull, UserError
from mtl_jax.workdir import (
  checkpoints,
  environment,
  layout,
  restoring,
  run_config,
  run_meta,
  run_status,
  writers,
)


class TrainingDiverged(UserError):
  """Too many consecutive non-finite steps, or NaN/Inf model outputs at an eval."""


# Step metrics that are states of the loop, not per-step values to average over an epoch.
_NOT_SUMMED = ('nonfinite_streak', 'stop_vote')


@dataclasses.dataclass
class EpochSums:
  """Sums of the step metrics since the epoch began, kept on device (no host sync per step)
  and saved in mid-epoch checkpoints so a resumed epoch reports the same means."""

  sums: dict | None = None
  steps: int = 0

  def add(self, step_metrics: dict) -> None:
    metrics = {k: v for k, v in step_metrics.items() if k not in _NOT_SUMMED}
    self.sums = metrics if self.sums is None else jax.tree.map(jnp.add, self.sums, metrics)
    self.steps += 1

  def means(self) -> dict[str, float]:
    """Epoch means over the steps that were applied, plus how many were skipped."""
    sums = {k: float(v) for k, v in jax.device_get(self.sums).items()}
    skipped = int(sums.pop('nonfinite'))
    applied = self.steps - skipped
    return {
      **{k: v / applied if applied else math.nan for k, v in sums.items()},
      'nonfinite_steps': skipped,
    }

  def to_json(self) -> dict:
    sums = (
      None if self.sums is None else {k: float(v) for k, v in jax.device_get(self.sums).items()}
    )
    return {'sums': sums, 'steps': self.steps}

  @classmethod
  def from_json(cls, saved: dict, mesh) -> 'EpochSums':
    # float32 → JSON float64 → float32 is exact, so the resumed sums continue bit-identically.
    # {} (a run's step 0, `RunMeta.start`) has summed nothing.
    sums = saved.get('sums') and parallel.replicate(
      {k: jnp.float32(v) for k, v in saved['sums'].items()}, mesh
    )
    return cls(sums, saved.get('steps', 0))


def _diverged(what: str, last_good_step: int | None) -> TrainingDiverged:
  last_good = (
    'no checkpoint was saved yet'
    if last_good_step is None
    else f'the last good checkpoint is step {last_good_step}'
  )
  return TrainingDiverged(
    f'{what}; stopped without saving, {last_good}. Lower config.optim.learning_rate, set '
    'config.optim.grad_clip_norm, or check the data'
  )


def _check_finite(step_metrics: dict, limit: int, last_good_step: int | None) -> bool:
  """Raises TrainingDiverged after `limit` non-finite steps in a row; else returns whether the
  step's stop vote says that some process was asked to stop (read in the same transfer)."""
  flags = jax.device_get({k: step_metrics[k] for k in _NOT_SUMMED})
  streak = int(flags['nonfinite_streak'])
  if streak >= limit:
    raise _diverged(
      f'the loss, gradients or updated weights were NaN/Inf for {streak} consecutive steps '
      f'(limit config.train.max_nonfinite_steps={limit})',
      last_good_step,
    )
  return bool(flags['stop_vote'])


def _check_layout(
  meta: run_meta.RunMeta, step: int, steps_per_epoch: int, total_steps: int
) -> None:
  """A resumed run must count epochs as it did (same batch size and train split size) and
  still have its step ahead of it or at its end. A step-0 checkpoint (a converted model) has
  counted nothing yet."""
  if step and meta.steps_per_epoch != steps_per_epoch:
    raise ConfigError(
      f'the run was trained with {meta.steps_per_epoch} steps per epoch, this config gives '
      f'{steps_per_epoch} (train.batch_size or the train split changed); resume with the '
      "config in the workdir's config.json or use a new --workdir"
    )
  if step > total_steps or (step == total_steps and not meta.history):
    raise ConfigError(
      f'the run is at step {step}, beyond the {total_steps} steps of this config '
      '(train.num_epochs × train.epoch_scale too small); raise it or use a new --workdir'
    )


def _resume(manager, state, train_iter, mesh, ckpt_dir, steps_per_epoch: int, total_steps: int):
  """(start step, state, wall time, epoch sums, eval history) from the newest good checkpoint."""
  resumed = restoring.restore_newest(manager, state_template=state, data_iterator=train_iter)
  if resumed is None:
    return 0, state, 0.0, EpochSums(), []
  step, state, meta = resumed
  _check_layout(meta, step, steps_per_epoch, total_steps)
  for difference in environment.differences(meta.environment) if progress.is_primary() else ():
    print(
      f'warning: resuming under different software ({difference}); the run may not '
      'match an uninterrupted one bit for bit',
      file=sys.stderr,
      flush=True,
    )
  progress.say(f'resumed from step {step} (epoch {meta.epoch}) in {ckpt_dir}')
  return step, state, meta.wall_time_s, EpochSums.from_json(meta.epoch_sums, mesh), meta.history


def train_and_evaluate(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  batch_hook: Callable[[int, dict], None] | None = None,
) -> dict:
  """Trains per `config` in `workdir`, resuming from its newest complete checkpoint.

  Saves every config.train.checkpoint_every_steps steps, at each epoch end, and when SIGTERM or
  SIGINT asks it to stop. Returns the last eval record (metrics plus step, epoch, split,
  wall_time_s) and `best_step`; after a stop request, {'stopped_by': signal name, 'step',
  'best_step'}. batch_hook(step, host_batch) sees every training batch (tests, debugging).

  Only one process trains in a workdir at a time (`run_status.train_lock`); a second one is
  refused with a line naming the holder. Everything that can be checked without writing (the
  config, the data, the batch against the split) is checked before the workdir is touched.
  """
  experiment = Experiment.from_config(run_config.for_resume(config, workdir), training=True)
  eval_split = experiment.config.train.eval_split
  sources = experiment.sources(('train', eval_split))
  if not pipeline.is_labelled(sources[eval_split]):  # else every epoch scores mIoU 0, SI-log NaN
    raise UserError(
      f'the {eval_split} split of dataset {experiment.config.data.name} has no labels, so '
      'training cannot be scored on it; set --config.train.eval_split to a labelled split '
      '(validation)'
    )
  steps_per_epoch = experiment.steps_per_epoch(sources['train'])
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  lock = run_status.train_lock(workdir, jax.process_index(), jax.process_count())
  with locks.exclusive(lock, what=f'the run in {workdir}'):
    try:
      return _train(experiment, sources, steps_per_epoch, workdir, batch_hook)
    except DiskFull:
      raise
    except Exception as e:  # pylint: disable=broad-except  # metrics, events: any write
      if not checkpoints.is_disk_full(e):
        raise
      manager = checkpoints.make_manager(layout.checkpoints_dir(workdir), read_only=True)
      raise checkpoints.disk_full(f'in {workdir}', manager) from e


def _train(experiment, sources, steps_per_epoch, workdir, batch_hook) -> dict:
  """train_and_evaluate under the workdir lock: set up, resume, then run the loop."""
  config = experiment.config  # model.pretrained resolved: what config.json records
  total_steps = steps_per_epoch * schema.epochs(config)
  optimizer = experiment.optimizer(total_steps)
  graphdef, state = experiment.init_state(optimizer.tx, load_pretrained=True)
  train_iter = experiment.train_iterator(sources['train'])
  manager = _open_checkpoints(experiment, layout.checkpoints_dir(workdir))
  start_step, state, wall_time_s, sums, history = _resume(
    manager,
    state,
    train_iter,
    experiment.mesh,
    layout.checkpoints_dir(workdir),
    steps_per_epoch,
    total_steps,
  )
  if start_step == total_steps:  # nothing to do, so write nothing (the disk may be read-only)
    progress.say(f'the run in {workdir} is already finished (step {start_step})')
    return {**history[-1], 'best_step': manager.best_step()}
  if progress.is_primary():  # only now: a mismatched resume leaves it untouched
    run_config.save(config, workdir)
  log = writers.MetricsLog(workdir) if progress.is_primary() else writers.Discard()
  log.replace_records(history)  # the checkpoint's history is the truth (drops later evals)
  eval_source = sources[config.train.eval_split]
  loop = _Loop(
    experiment=experiment,
    placement=experiment.placement(),
    steps_per_epoch=steps_per_epoch,
    total_steps=total_steps,
    optimizer=optimizer,
    train_iter=train_iter,
    manager=manager,
    log=log,
    train_step=experiment.train_step(graphdef, optimizer.tx, steps_per_epoch),
    evaluate=experiment.evaluator(graphdef, eval_source),
    sample_grid=samples.SampleGrid.of(experiment, graphdef, eval_source),
    classes=sources['train'].classes,
    meter=progress.Progress(total_steps, start_step, config.train.batch_size),
    sums=sums,
    history=history,
    last_saved=manager.latest_step(),
  )
  loop.t_start = time.perf_counter() - wall_time_s
  return loop.run(state, start_step, batch_hook)


def _open_checkpoints(experiment: Experiment, ckpt_dir: Path):
  """The run's checkpoint manager, after removing what interrupted saves left (safe under the
  lock: no live process is writing them; one process removes them)."""
  for leftover in checkpoints.remove_unfinished(ckpt_dir) if progress.is_primary() else ():
    print(f'removed unfinished checkpoint {leftover}', flush=True)
  return checkpoints.make_manager(
    ckpt_dir, tasks=experiment.tasks, keep_latest=experiment.config.train.keep_checkpoints
  )


@dataclasses.dataclass
class _Loop:
  """What the training loop's named steps share: its compiled parts, writers and running
  records (epoch sums, eval history, the last saved step, the previous step's scalars)."""

  experiment: Experiment
  placement: parallel.Placement
  steps_per_epoch: int
  total_steps: int
  optimizer: Any
  train_iter: Any
  manager: Any
  log: writers.MetricsLog
  train_step: Callable
  evaluate: Callable
  sample_grid: samples.SampleGrid
  classes: labels.Classes  # the dataset's, recorded in every checkpoint
  meter: progress.Progress
  sums: EpochSums
  history: list
  last_saved: int | None
  t_start: float = 0.0
  pending: dict | None = None  # the previous step's scalars, read one step late (no stall)

  def run(self, state: steps.TrainState, start_step: int, batch_hook) -> dict:
    """Steps from `start_step` to the end, or to a stop request (saved, then returned)."""
    placed = self.placement.state_in(state)  # the train step's layout (config.parallel.mode)
    with preemption.StopRequest() as stop:
      for step in range(start_step, self.total_steps):
        placed, stopping = self._step(placed, step, stop, batch_hook)
        done = step + 1
        if self._is_save_point(done) or stopping:
          self._save_point(placed, done)
        if stopping and done < self.total_steps:  # at the end: just finish
          return self._stopped(stop, done)
    return self._finished()

  def _step(self, placed, step: int, stop: preemption.StopRequest, batch_hook):
    """One train step; returns the new placed state and whether the previous step's vote says
    to stop. Every process must stop at the same step (a save is collective), so a stop request
    rides in the batch (`steps.STOP_KEY`) and the step returns its vote over all processes; each
    process reads the vote of the previous step, like every other scalar, without a stall."""
    config = self.experiment.config
    host_batch = next(self.train_iter)
    if batch_hook is not None:
      batch_hook(step, host_batch)
    local_rows = config.train.batch_size // jax.process_count()
    host_batch[steps.STOP_KEY] = np.full(local_rows, float(stop.requested), np.float32)
    placed, step_metrics = self.train_step(placed, self.placement.batch(host_batch))
    step_metrics = self.placement.scalars(step_metrics)
    stopping = False
    if self.pending is not None:
      # The previous step's scalars: this step is already dispatched, so no stall.
      stopping = _check_finite(self.pending, config.train.max_nonfinite_steps, self.last_saved)
      if step % config.train.log_every_steps == 0:
        self._log_train(step)
    self.pending = step_metrics
    self.sums.add(step_metrics)
    return placed, stopping

  def _log_train(self, step: int) -> None:
    scalars = jax.device_get(self.pending)
    learning_rate = self.optimizer.schedule(step)
    self.log.scalars(step, {**scalars, 'learning_rate': learning_rate}, prefix='train/')
    progress.say(self.meter.line(step, scalars))

  def _is_save_point(self, done: int) -> bool:
    every = self.experiment.config.train.checkpoint_every_steps
    return done % self.steps_per_epoch == 0 or bool(every and done % every == 0)

  def _save_point(self, placed, done: int) -> None:
    """Checks the step, evaluates at an epoch end, saves. Nothing is recorded or saved if the
    step diverged."""
    limit = self.experiment.config.train.max_nonfinite_steps
    _check_finite(self.pending, limit, self.last_saved)
    state = self.placement.state_out(placed)  # mesh-replicated, whatever the mode
    scores = self._end_epoch(state, done) if done % self.steps_per_epoch == 0 else None
    self._save(done, state, scores)

  def _end_epoch(self, state: steps.TrainState, done: int) -> dict:
    """Scores the epoch's model, records it (metrics.jsonl, TensorBoard, history) and starts
    the next epoch's sums; refuses a model whose outputs are NaN/Inf."""
    config = self.experiment.config
    eval_split = config.train.eval_split
    epoch = done // self.steps_per_epoch
    scores = self.evaluate(state)
    wall_time_s = time.perf_counter() - self.t_start
    record = {
      'step': done,
      'epoch': epoch,
      'split': eval_split,
      **scores,
      **self.sums.means(),
      'wall_time_s': wall_time_s,
      'epoch_time_s': wall_time_s - (self.history[-1]['wall_time_s'] if self.history else 0),
    }
    if scores['nonfinite_images']:
      self.log.record(record)  # shown with its null scores, but neither saved nor in history
      raise _diverged(
        f'the model outputs were NaN/Inf on {scores["nonfinite_images"]} {eval_split} '
        f'images after step {done}, so it has no score',
        self.last_saved,
      )
    self.history.append(self.log.record(record))
    self.log.scalars(done, scores, prefix=f'{eval_split}/')
    self.log.image(done, f'{eval_split}/samples', self.sample_grid.grid_of(state))
    self.sums = EpochSums()
    progress.say(metrics.eval_line(f'epoch {epoch}/{schema.epochs(config)} {eval_split}', scores))
    return scores

  def _save(self, done: int, state: steps.TrainState, scores: dict | None) -> None:
    checkpoints.save(
      self.manager,
      done,
      state=state,
      data_iterator=self.train_iter,
      meta=run_meta.RunMeta(
        epoch=done // self.steps_per_epoch,
        steps_per_epoch=self.steps_per_epoch,
        wall_time_s=time.perf_counter() - self.t_start,
        epoch_sums=self.sums.to_json(),
        history=self.history,
        environment=environment.describe(),
        config=run_config.as_record(self.experiment.config),
        classes=self.classes.to_json(),
      ),
      metrics=scores,
    )
    self.last_saved = done

  def _stopped(self, stop: preemption.StopRequest, done: int) -> dict:
    self.manager.wait_until_finished()
    self.log.close()
    stopped_by = stop.signal_name or 'a stop request to another process'
    return {'stopped_by': stopped_by, 'step': done, 'best_step': self.manager.best_step()}

  def _finished(self) -> dict:
    if self.pending is not None:
      limit = self.experiment.config.train.max_nonfinite_steps
      _check_finite(self.pending, limit, self.last_saved)
    self.manager.wait_until_finished()
    self.log.close()
    return {**self.history[-1], 'best_step': self.manager.best_step()}
