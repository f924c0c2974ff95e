"""`train_and_evaluate`: data, model, compiled steps, the loop, eval, checkpoints and resume."""

import functools
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections

from mtl_jax import (checkpointing, configuration, evaluation, optim, parallel, progress, steps,
                     writers)
from mtl_jax.data import augment, pipeline

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
  return pipeline.eval_batches(source, batch_size=config.train.eval_batch_size // jax.process_count(),
                               shard_index=jax.process_index(), shard_count=jax.process_count())


def _run_meta(epoch: int, wall_time_s: float) -> dict:
  return {'epoch': epoch, 'wall_time_s': wall_time_s, 'jax_version': jax.__version__}


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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains per `config` in `workdir`, resuming from its latest checkpoint.

  Returns the last eval record (metrics plus step, epoch, split, wall_time_s) and `best_step`.
  """
  configuration.validate(config)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  configuration.save(config, workdir)
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
  manager = checkpointing.make_manager(
      ckpt_dir, keep_latest=config.train.keep_checkpoints,
      best_metric=checkpointing.best_metric_for(config.model.tasks))
  log = writers.MetricsLog(workdir)
  wall_time_s, start_step = 0.0, 0
  if manager.latest_step() is not None:
    start_step = manager.latest_step()
    state, meta = checkpointing.restore(manager, start_step, state_template=state,
                                        data_iterator=train_iter)
    wall_time_s = meta['wall_time_s']
    log.drop_records_after(start_step)
    print(f'resumed from step {start_step} (epoch {meta["epoch"]}) in {ckpt_dir}', flush=True)

  train_step = jax.jit(functools.partial(steps.train_step, graphdef=graphdef, tx=tx, spec=spec),
                       donate_argnums=0)
  eval_step = evaluation.make_eval_step(graphdef, spec)
  meter = progress.Progress(total_steps, start_step, config.train.batch_size)
  pending, epoch_sums, summed_steps, final = None, None, 0, {}
  t_start = time.perf_counter() - wall_time_s
  for step in range(start_step, total_steps):
    batch = parallel.shard_batch(next(train_iter), mesh)
    state, step_metrics = train_step(state, batch)
    if pending is not None and (step % config.train.log_every_steps == 0):
      # Fetch the previous step's scalars: this step is already dispatched, so no stall.
      scalars = jax.device_get(pending)
      log.scalars(step, {**scalars, 'learning_rate': schedule(step)}, prefix='train/')
      print(meter.line(step, scalars), flush=True)
    pending = step_metrics
    # Summed on device (no host sync) for the epoch-mean losses in the eval record.
    epoch_sums = step_metrics if epoch_sums is None else jax.tree.map(
        jnp.add, epoch_sums, step_metrics)
    summed_steps += 1
    if (step + 1) % steps_per_epoch == 0:
      epoch = (step + 1) // steps_per_epoch
      scores = evaluation.evaluate(
          eval_step, state, make_eval_batches(config, sources[config.train.eval_split]), mesh,
          num_classes=config.model.num_classes, tasks=spec.tasks)
      wall_time_s = time.perf_counter() - t_start
      record = {'step': step + 1, 'epoch': epoch, 'split': config.train.eval_split, **scores,
                **{k: float(v) / summed_steps for k, v in jax.device_get(epoch_sums).items()},
                'wall_time_s': wall_time_s}
      log.record(record)
      log.scalars(step + 1, scores, prefix=f'{config.train.eval_split}/')
      checkpointing.save(manager, step + 1, state=state, data_iterator=train_iter,
                         meta=_run_meta(epoch, wall_time_s), metrics=scores)
      label = f'epoch {epoch}/{config.train.num_epochs} {config.train.eval_split}'
      print(progress.eval_line(label, scores), flush=True)
      final, epoch_sums, summed_steps = record, None, 0
  manager.wait_until_finished()
  log.close()
  best_step = manager.best_step()
  if not final:  # the run had already finished: report its last recorded eval
    final = writers.read_records(log.jsonl_path)[-1]
  return {**final, 'best_step': best_step}
