"""`train_and_evaluate`: data, model, compiled steps, the loop, eval, checkpoints and resume."""

import dataclasses
import functools
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections

from mtl_jax import (checkpointing, configuration, environment, evaluation, optim, parallel,
                     preemption, progress, steps, writers)
from mtl_jax.data import augment, pipeline
from mtl_jax.errors import UserError

DEFAULT_DATA_DIR = '~/tensorflow_datasets'


def data_dir(config: ml_collections.ConfigDict) -> str:
  return os.path.expanduser(config.data.data_dir or DEFAULT_DATA_DIR)


def prepare_sources(config: ml_collections.ConfigDict, splits: tuple[str, ...]):
  """The splits' sample sources, after checking the dataset fits the config."""
  builder = pipeline.prepare(config.data.name, data_dir(config),
                             **configuration.dataset_fields(config.data))
  num_classes = len(pipeline.class_names(builder))
  if num_classes != config.model.num_classes:
    raise configuration.ConfigError(
        f'dataset {config.data.name} has {num_classes} classes but config.model.num_classes='
        f'{config.model.num_classes}; set --config.model.num_classes={num_classes}')
  for split in splits:
    if split not in builder.info.splits:
      raise configuration.ConfigError(f'dataset {config.data.name} has no {split!r} split; it '
                                      f'has {", ".join(builder.info.splits)}')
  return {split: pipeline.data_source(builder, split) for split in splits}


def make_train_iterator(config: ml_collections.ConfigDict, source):
  d = config.data
  jitter = (augment.Jitter(brightness=d.jitter, contrast=d.jitter, saturation=d.jitter,
                           hue=d.jitter / 10) if d.jitter > 0 else None)
  return pipeline.train_iterator(
      source, batch_size=config.train.batch_size // jax.process_count(), seed=config.seed,
      crop_size=(d.crop_height, d.crop_width), scale_range=(d.scale_min, d.scale_max),
      flip=d.flip, jitter=jitter, shard_index=jax.process_index(),
      shard_count=jax.process_count(), worker_count=d.worker_count)


def make_eval_batches(config: ml_collections.ConfigDict, source):
  return pipeline.eval_batches(source,
                               batch_size=config.train.eval_batch_size // jax.process_count(),
                               shard_index=jax.process_index(), shard_count=jax.process_count())


def build_model(config: ml_collections.ConfigDict, *, load_pretrained: bool):
  """The config's model; with `load_pretrained`, its encoder takes config.model.pretrained."""
  model = configuration.build_model(config)
  if load_pretrained and config.model.pretrained:
    from mtl_jax.models import torchvision_convert  # pylint: disable=g-import-not-at-top
    report = torchvision_convert.load_pretrained_encoder(model.encoder, config.model.pretrained)
    print(f'ImageNet encoder: {report}', flush=True)
  return model


def create_state(config: ml_collections.ConfigDict, total_steps: int, *,
                 load_pretrained: bool = False):
  """A freshly initialised (graphdef, TrainState, lr schedule, optax transform) for `config`."""
  schedule = optim.learning_rate_schedule(config.optim.schedule, config.optim.learning_rate,
                                          total_steps, config.optim.warmup_steps)
  tx = optim.make_optimizer(config.optim.name, schedule, momentum=config.optim.momentum,
                            weight_decay=config.optim.weight_decay,
                            grad_clip_norm=config.optim.grad_clip_norm)
  model = build_model(config, load_pretrained=load_pretrained)
  graphdef, state = steps.create_train_state(model, tx)
  return graphdef, state, schedule, tx


class TrainingDiverged(UserError):
  """Too many consecutive steps with a non-finite loss or gradient."""


@dataclasses.dataclass
class EpochSums:
  """Sums of the step metrics since the epoch began, kept on device (no host sync per step)
  and saved in mid-epoch checkpoints so a resumed epoch reports the same means."""
  sums: dict | None = None
  steps: int = 0

  def add(self, step_metrics: dict) -> None:
    metrics = {k: v for k, v in step_metrics.items() if k != 'nonfinite_streak'}
    self.sums = metrics if self.sums is None else jax.tree.map(jnp.add, self.sums, metrics)
    self.steps += 1

  def means(self) -> dict[str, float]:
    """Epoch means over the steps that were applied, plus how many were skipped."""
    sums = {k: float(v) for k, v in jax.device_get(self.sums).items()}
    skipped = int(sums.pop('nonfinite'))
    applied = self.steps - skipped
    return {**{k: v / applied if applied else math.nan for k, v in sums.items()},
            'nonfinite_steps': skipped}

  def to_json(self) -> dict:
    sums = None if self.sums is None else {k: float(v) for k, v in
                                           jax.device_get(self.sums).items()}
    return {'sums': sums, 'steps': self.steps}

  @classmethod
  def from_json(cls, saved: dict, mesh) -> 'EpochSums':
    # float32 → JSON float64 → float32 is exact, so the resumed sums continue bit-identically.
    sums = saved['sums'] and parallel.replicate(
        {k: jnp.float32(v) for k, v in saved['sums'].items()}, mesh)
    return cls(sums, saved['steps'])


def _check_finite(step_metrics: dict, limit: int, last_good_step: int | None) -> None:
  streak = int(jax.device_get(step_metrics['nonfinite_streak']))
  if streak >= limit:
    raise TrainingDiverged(
        f'the loss or gradients were NaN/Inf for {streak} consecutive steps (limit '
        f'config.train.max_nonfinite_steps={limit}); stopped without saving. The last good '
        f'checkpoint is step {last_good_step}. Lower config.optim.learning_rate, set '
        'config.optim.grad_clip_norm, or check the data')


def _meta(epoch: int, steps_per_epoch: int, wall_time_s: float, sums: EpochSums,
          history: list[dict]) -> dict:
  return {'epoch': epoch, 'steps_per_epoch': steps_per_epoch, 'wall_time_s': wall_time_s,
          'epoch_sums': sums.to_json(), 'history': history, 'environment': environment.describe()}


def _check_layout(meta: dict, step: int, steps_per_epoch: int, total_steps: int) -> None:
  """A resumed run must count epochs as it did (same batch size and train split size) and
  still have its step ahead of it or at its end."""
  if meta['steps_per_epoch'] != steps_per_epoch:
    raise configuration.ConfigError(
        f'the run was trained with {meta["steps_per_epoch"]} steps per epoch, this config gives '
        f'{steps_per_epoch} (train.batch_size or the train split changed); resume with the '
        'config in the workdir\'s config.json or use a new --workdir')
  if step > total_steps or (step == total_steps and not meta['history']):
    raise configuration.ConfigError(
        f'the run is at step {step}, beyond the {total_steps} steps of this config '
        '(train.num_epochs too small); raise it or use a new --workdir')


def _resume(manager, state, train_iter, mesh, ckpt_dir, steps_per_epoch: int, total_steps: int):
  """(start step, state, wall time, epoch sums, eval history) from the newest good checkpoint."""
  resumed = checkpointing.restore_newest(manager, state_template=state, data_iterator=train_iter)
  if resumed is None:
    return 0, state, 0.0, EpochSums(), []
  step, state, meta = resumed
  _check_layout(meta, step, steps_per_epoch, total_steps)
  for difference in environment.differences(meta['environment']):
    print(f'warning: resuming under different software ({difference}); the run may not '
          'match an uninterrupted one bit for bit', file=sys.stderr, flush=True)
  print(f'resumed from step {step} (epoch {meta["epoch"]}) in {ckpt_dir}', flush=True)
  return (step, state, meta['wall_time_s'], EpochSums.from_json(meta['epoch_sums'], mesh),
          meta['history'])


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       batch_hook: Callable[[int, dict], None] | None = None) -> dict:
  """Trains per `config` in `workdir`, resuming from its newest complete checkpoint.

  Saves every config.train.checkpoint_every_steps steps, at each epoch end, and when SIGTERM or
  SIGINT asks it to stop. Returns the last eval record (metrics plus step, epoch, split,
  wall_time_s) and `best_step`; after a stop request, {'stopped_by': signal name, 'step',
  'best_step'}. batch_hook(step, host_batch) sees every training batch (tests, debugging).
  """
  configuration.validate(config)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.train.batch_size, mesh, 'config.train.batch_size')
  parallel.check_batch_size(config.train.eval_batch_size, mesh, 'config.train.eval_batch_size')

  sources = prepare_sources(config, ('train', config.train.eval_split))
  steps_per_epoch = pipeline.steps_per_epoch(len(sources['train']), config.train.batch_size)
  total_steps = steps_per_epoch * config.train.num_epochs
  spec = configuration.task_spec(config)
  graphdef, state, schedule, tx = create_state(config, total_steps, load_pretrained=True)
  state = parallel.replicate(state, mesh)
  train_iter = make_train_iterator(config, sources['train'])

  ckpt_dir = workdir / 'checkpoints'
  for leftover in checkpointing.remove_unfinished(ckpt_dir):
    print(f'removed unfinished checkpoint {leftover}', flush=True)
  manager = checkpointing.make_manager(ckpt_dir, tasks=config.model.tasks,
                                       keep_latest=config.train.keep_checkpoints)
  start_step, state, wall_time_s, sums, history = _resume(
      manager, state, train_iter, mesh, ckpt_dir, steps_per_epoch, total_steps)
  configuration.save(config, workdir)  # only now: a mismatched resume leaves it untouched
  log = writers.MetricsLog(workdir)
  log.replace_records(history)  # the checkpoint's history is the truth (drops later evals)

  train_step = jax.jit(functools.partial(steps.train_step, graphdef=graphdef, tx=tx, spec=spec),
                       donate_argnums=0)
  eval_step = evaluation.make_eval_step(graphdef, spec)
  meter = progress.Progress(total_steps, start_step, config.train.batch_size)
  every, limit = config.train.checkpoint_every_steps, config.train.max_nonfinite_steps
  last_saved = manager.latest_step()
  pending = None
  t_start = time.perf_counter() - wall_time_s

  def save(done: int, scores: dict | None = None) -> None:
    nonlocal last_saved
    checkpointing.save(manager, done, state=state, data_iterator=train_iter,
                       meta=_meta(done // steps_per_epoch, steps_per_epoch,
                                  time.perf_counter() - t_start, sums, history), metrics=scores)
    last_saved = done

  with preemption.StopRequest() as stop:
    for step in range(start_step, total_steps):
      host_batch = next(train_iter)
      if batch_hook is not None:
        batch_hook(step, host_batch)
      state, step_metrics = train_step(state, parallel.shard_batch(host_batch, mesh))
      if pending is not None:
        # The previous step's scalars: this step is already dispatched, so no stall.
        _check_finite(pending, limit, last_saved)
        if step % config.train.log_every_steps == 0:
          scalars = jax.device_get(pending)
          log.scalars(step, {**scalars, 'learning_rate': schedule(step)}, prefix='train/')
          print(meter.line(step, scalars), flush=True)
      pending = step_metrics
      sums.add(step_metrics)
      done = step + 1
      epoch_end = done % steps_per_epoch == 0
      if epoch_end or (every and done % every == 0) or stop.requested:
        _check_finite(step_metrics, limit, last_saved)  # nothing recorded or saved if diverged
        scores = None
        if epoch_end:
          epoch = done // steps_per_epoch
          scores = evaluation.evaluate(
              eval_step, state, make_eval_batches(config, sources[config.train.eval_split]),
              mesh, class_names=sources[config.train.eval_split].class_names, tasks=spec.tasks)
          wall_time_s = time.perf_counter() - t_start
          record = {'step': done, 'epoch': epoch, 'split': config.train.eval_split, **scores,
                    **sums.means(), 'wall_time_s': wall_time_s,
                    'epoch_time_s': wall_time_s - (history[-1]['wall_time_s'] if history else 0)}
          history.append(log.record(record))
          log.scalars(done, scores, prefix=f'{config.train.eval_split}/')
          sums = EpochSums()
          print(progress.eval_line(f'epoch {epoch}/{config.train.num_epochs} '
                                   f'{config.train.eval_split}', scores), flush=True)
        save(done, scores)
      if stop.requested and done < total_steps:  # at the end: just finish
        manager.wait_until_finished()
        log.close()
        return {'stopped_by': stop.signal_name, 'step': done, 'best_step': manager.best_step()}
  if pending is not None:
    _check_finite(pending, limit, last_saved)
  manager.wait_until_finished()
  log.close()
  return {**history[-1], 'best_step': manager.best_step()}
