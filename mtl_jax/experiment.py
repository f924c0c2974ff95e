"""A run's parts, built from its config — or from a workdir's config.json and checkpoint.

    config ──validate──▶ Experiment(config, spec, mesh)
       ├─ sources(splits) ─▶ train_iterator(source) / evaluator(graphdef, source)
       ├─ optimizer(total_steps) ─▶ Optimizer(tx, schedule)
       ├─ init_state(optimizer) ─▶ (graphdef, TrainState replicated over the mesh)
       └─ train_step(graphdef, tx) / predict_step(graphdef): compiled once per run; the train
          step's state and batch layout is placement()'s (config.parallel.mode)
    workdir ─▶ open_run(workdir, step) ─▶ RestoredRun(experiment, graphdef, state, step, classes)

The trainer (the loop and its resume policy), evaluate, predict, reports and scripts all build
from here; nothing here knows about the loop. Batch sizes in the config are global: each process
reads its share (`batch_size // jax.process_count()`).
"""

import dataclasses
import functools
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections
import optax
from jax.sharding import Mesh

from mtl_jax import depth_codec, metrics, optim, parallel, steps
from mtl_jax.balancing import training as balancing
from mtl_jax.config import schema
from mtl_jax.config.schema import ConfigError
from mtl_jax.data import augment, labels, pipeline, registry
from mtl_jax.models import mtl
from mtl_jax.runtime import progress
from mtl_jax.workdir import checkpoints, layout, restoring, run_config, run_meta


def task_spec(config: ml_collections.ConfigDict) -> steps.TaskSpec:
  """What the steps need to turn model outputs into losses and predictions."""
  tasks = tuple(config.model.tasks)
  return steps.TaskSpec(
    tasks=tasks,
    weights=tuple(schema.task_weight(config, t) for t in tasks),
    depth_loss=config.loss.depth_loss,
    codec=depth_codec.DepthCodec(config.depth.mode, config.depth.mean, config.depth.std),
  )


# Each balancing method's options (as `balancing.training` names them) and the config.loss knobs
# that set them.
BALANCING_OPTIONS = {
  'uncertainty': {'form': 'uncertainty_form'},
  'dwa': {'temperature': 'dwa_temperature'},
  'famo': {'lr': 'famo_lr', 'weight_decay': 'famo_weight_decay'},
  'gradnorm': {'alpha': 'gradnorm_alpha', 'lr': 'gradnorm_lr'},
  'stch': {'mu': 'stch_mu', 'warmup_epochs': 'stch_warmup_epochs'},
  'cagrad': {'c': 'cagrad_c'},
  'nash_mtl': {'max_norm': 'nash_mtl_max_norm'},
}


def balancer(config: ml_collections.ConfigDict, steps_per_epoch: int = 1) -> balancing.Balancer:
  """The task-balancing method config.loss.balancing names, with its options."""
  method = config.loss.balancing
  knobs = BALANCING_OPTIONS.get(method, {})
  return balancing.Balancer(
    method=method,
    tasks=tuple(config.model.tasks),
    options=tuple((option, config.loss[knob]) for option, knob in knobs.items()),
    shared=mtl.SHARED_MODULES[config.model.arch],
    norm_layer=_gradnorm_layer(config) if method == 'gradnorm' else None,
    steps_per_epoch=steps_per_epoch,
    seed=config.seed,
  )


def _gradnorm_layer(config: ml_collections.ConfigDict) -> tuple[str, ...] | None:
  """The parameters GradNorm's norms are taken on (loss.gradnorm_layer): the model's last
  shared layer, or None for every shared parameter."""
  if config.loss.gradnorm_layer == 'shared':
    return None
  options = model_options(config.model)
  return mtl.last_shared_layer(config.model.arch, config.model.encoder, options['head'])


def model_options(m: ml_collections.ConfigDict) -> dict:
  """Constructor arguments of the architecture `m.arch` names (each takes its own)."""
  options = dict(
    encoder=mtl.EncoderOptions(
      name=m.encoder,
      output_stride=m.output_stride,
      block_dilation=m.block_dilation,
      zero_init_residual=m.zero_init_residual,
    ),
    head=mtl.HeadOptions(
      family=m.heads,
      use_aspp=m.use_aspp,
      aspp_rates=tuple(m.aspp_rates),
      aspp_channels=m.aspp_channels,
      decoder=m.decoder,
      decoder_channels=m.decoder_channels,
      skip_channels=m.skip_channels,
      second_stage=m.second_stage,
    ),
    num_classes=m.num_classes,
    dtype=m.dtype,
  )
  if m.arch == 'single_task':
    options['tasks'] = tuple(m.tasks)
  return options


def build_model(config: ml_collections.ConfigDict, *, load_pretrained: bool = False):
  """The config's model; with `load_pretrained`, its encoder takes config.model.pretrained."""
  model = mtl.build_model(config.model.arch, seed=config.seed, **model_options(config.model))
  if load_pretrained:
    from mtl_jax.models import pretrained  # pylint: disable=g-import-not-at-top  # orbax reads

    directory, _ = pretrained.resolve(config.model.pretrained, config.model.encoder)
    if directory:
      report = pretrained.load_pretrained_encoder(model.encoder, directory)
      progress.say(f'ImageNet encoder: {report}')
  return model


def dataset_options(data: ml_collections.ConfigDict) -> dict:
  """What `registry.prepare` takes for this dataset (split sizes and seed are the synthetic
  dataset's; the others are prepared by `mtl_jax.prepare_data`)."""
  size = dict(height=data.height, width=data.width)
  if data.name != 'synthetic':
    return size
  return dict(
    size,
    seed=data.seed,
    num_train=data.num_train,
    num_validation=data.num_validation,
    num_test=data.num_test,
  )


def jitter(data: ml_collections.ConfigDict) -> augment.Jitter | None:
  bounds = augment.Jitter(**data.jitter)
  return bounds if any(dataclasses.astuple(bounds)) else None


@dataclasses.dataclass(frozen=True)
class Optimizer:
  tx: optax.GradientTransformation
  schedule: optax.Schedule


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """The learning rate at each step of a run of `total_steps` steps (config.optim)."""
  o = config.optim
  return optim.learning_rate_schedule(o.schedule, o.learning_rate, total_steps, o.warmup_steps)


def make_eval_step(graphdef: Any, spec: steps.TaskSpec) -> Callable:
  """(state, metric totals, batch) → totals; the totals stay on device between batches."""
  return jax.jit(functools.partial(steps.eval_step, graphdef=graphdef, spec=spec), donate_argnums=1)


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """Scores a state on one whole split: `metrics.compute`'s metrics, per-class IoUs under
  `iou/<class>`."""

  eval_step: Callable  # make_eval_step's
  batches: Iterable[dict]  # padded, masked eval batches (pipeline.eval_batches)
  mesh: Mesh
  class_names: tuple[str, ...]
  tasks: tuple[str, ...]

  def __call__(self, state: steps.TrainState) -> dict[str, float]:
    totals = parallel.replicate(metrics.empty(len(self.class_names), self.tasks), self.mesh)
    for batch in self.batches:
      totals = self.eval_step(state, totals, parallel.shard_batch(batch, self.mesh))
    return metrics.compute(jax.device_get(totals), self.class_names)


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A validated config and what follows from it: the task spec and the device mesh."""

  config: ml_collections.ConfigDict
  spec: steps.TaskSpec
  mesh: Mesh

  @classmethod
  def from_config(
    cls, config: ml_collections.ConfigDict, *, training: bool = False
  ) -> 'Experiment':
    """training: a run starts from `config`, so model.pretrained is resolved too ('auto' → the
    cached ImageNet encoder or '', said in one line) and a named directory must exist; the
    experiment's config records the choice. Otherwise (evaluation) it is never read."""
    schema.validate(config)
    if training:
      from mtl_jax.models import pretrained  # pylint: disable=g-import-not-at-top  # orbax

      config = config.copy_and_resolve_references()
      config.model.pretrained, line = pretrained.resolve(
        config.model.pretrained, config.model.encoder
      )
      if line:
        progress.say(line)
    mesh = parallel.make_mesh()
    if training:  # readers (predict, export) run on any device count; `evaluator` checks its own
      parallel.check_batch_size(
        config.train.batch_size,
        mesh,
        'config.train.batch_size',
        micro_batches=config.train.grad_accum_steps,
      )
    return cls(config, task_spec(config), mesh)

  @property
  def tasks(self) -> tuple[str, ...]:
    return self.spec.tasks

  # --------------------------------------------------------------------------- data

  def sources(self, splits: Sequence[str]) -> dict[str, pipeline.SampleSource]:
    """The splits' sample sources, after checking the dataset fits the config."""
    data = self.config.data
    builder = registry.prepare(
      data.name, registry.resolve_data_dir(data.data_dir), **dataset_options(data)
    )
    num_classes = len(registry.class_names(builder))
    if num_classes != self.config.model.num_classes:
      raise ConfigError(
        f'dataset {data.name} has {num_classes} classes but config.model.num_classes='
        f'{self.config.model.num_classes}; set --config.model.num_classes={num_classes}'
      )
    for split in splits:
      if split not in builder.info.splits:
        raise ConfigError(
          f'dataset {data.name} has no {split!r} split; it has {", ".join(builder.info.splits)}'
        )
    return {split: pipeline.data_source(builder, split) for split in splits}

  def train_iterator(self, source: pipeline.SampleSource):
    """This process's infinite, augmented, checkpointable train batches."""
    data = self.config.data
    return pipeline.train_iterator(
      source,
      batch_size=self.config.train.batch_size // jax.process_count(),
      seed=self.config.seed,
      crop_size=(data.crop_height, data.crop_width),
      scale_range=(data.scale_min, data.scale_max),
      flip=data.flip,
      jitter=jitter(data),
      shard_index=jax.process_index(),
      shard_count=jax.process_count(),
      worker_count=data.worker_count,
    )

  def steps_per_epoch(self, train_source: pipeline.SampleSource) -> int:
    """Full batches per epoch; a ConfigError if not even one fits in the train split (the
    trainer asks before it writes anything to the workdir)."""
    batch_size, num_samples = self.config.train.batch_size, len(train_source)
    if batch_size > num_samples:
      raise ConfigError(
        f'config.train.batch_size={batch_size} is larger than the {num_samples} samples of the '
        f'train split of dataset {self.config.data.name}; lower it, or use a larger train split'
      )
    return pipeline.steps_per_epoch(num_samples, batch_size)

  # --------------------------------------------------------------------------- model

  def optimizer(self, total_steps: int) -> Optimizer:
    o = self.config.optim
    schedule = learning_rate_schedule(self.config, total_steps)
    tx = optim.make_optimizer(
      o.name,
      schedule,
      momentum=o.momentum,
      weight_decay=o.weight_decay,
      grad_clip_norm=o.grad_clip_norm,
    )
    return Optimizer(tx, schedule)

  def init_state(self, tx: optax.GradientTransformation, *, load_pretrained: bool = False):
    """(graphdef, fresh TrainState replicated over the mesh)."""
    graphdef, state = steps.create_train_state(
      build_model(self.config, load_pretrained=load_pretrained), tx, balancer(self.config)
    )
    return graphdef, parallel.replicate(state, self.mesh)

  # --------------------------------------------------------------------------- steps

  def placement(self) -> parallel.Placement:
    """How config.parallel.mode lays the train step's state, batches and metrics out."""
    return parallel.placement(self.config.parallel.mode, self.mesh)

  def train_step(
    self, graphdef: Any, tx: optax.GradientTransformation, steps_per_epoch: int = 1
  ) -> Callable:
    """(state, batch) → (state, metrics) in `placement()`'s layout (for jit: mesh-replicated
    state, `parallel.shard_batch` batches, scalar metrics); the state's buffers are donated.
    Each step accumulates config.train.grad_accum_steps micro-batches and balances the tasks
    by config.loss.balancing (whose epoch-wise methods need `steps_per_epoch`)."""
    step = functools.partial(
      steps.train_step,
      graphdef=graphdef,
      tx=tx,
      spec=self.spec,
      micro_batches=self.config.train.grad_accum_steps,
      balancer=balancer(self.config, steps_per_epoch),
    )
    return self.placement().compile(step)

  def predict_step(self, graphdef: Any) -> Callable:
    """(state, uint8 images) → {'semseg': labels, 'depth': metres}."""
    return jax.jit(functools.partial(steps.predict_step, graphdef=graphdef, spec=self.spec))

  def evaluator(self, graphdef: Any, source: pipeline.SampleSource) -> Evaluator:
    """Scores a whole split; metric states stay on device between batches."""
    parallel.check_batch_size(
      self.config.train.eval_batch_size, self.mesh, 'config.train.eval_batch_size'
    )
    batches = pipeline.eval_batches(
      source,
      batch_size=self.config.train.eval_batch_size // jax.process_count(),
      shard_index=jax.process_index(),
      shard_count=jax.process_count(),
    )
    return Evaluator(
      make_eval_step(graphdef, self.spec), batches, self.mesh, source.class_names, self.tasks
    )


@dataclasses.dataclass(frozen=True)
class RestoredRun:
  """A trained run: its experiment and one restored checkpoint."""

  experiment: Experiment
  graphdef: Any
  state: steps.TrainState  # replicated over experiment.mesh
  step: int
  classes: labels.Classes  # the dataset's the run trained on (`run_classes`)

  @property
  def config(self) -> ml_collections.ConfigDict:
    return self.experiment.config

  def evaluate(self, split: str) -> dict[str, float]:
    source = self.experiment.sources((split,))[split]
    return self.experiment.evaluator(self.graphdef, source)(self.state)


def open_run(workdir: str | Path, step: int | None = None) -> RestoredRun:
  """The run in `workdir` with checkpoint `step` restored (default: the best one); safe while
  the run trains (`restoring.restore_for_reading`)."""
  experiment = Experiment.from_config(run_config.load(workdir))
  graphdef, template = experiment.init_state(experiment.optimizer(total_steps=1).tx)
  step, state, meta = restoring.restore_for_reading(
    layout.checkpoints_dir(workdir), step, tasks=experiment.tasks, state_template=template
  )
  classes = run_classes(experiment.config, meta.classes, f'checkpoint {step} of {workdir}')
  return RestoredRun(experiment, graphdef, state, step, classes)


def run_classes(
  config: ml_collections.ConfigDict, recorded: dict | None, where: str
) -> labels.Classes:
  """The classes a checkpoint records (`RunMeta.classes`). One written before they were
  recorded gets its dataset's, as prepared where the config says (never built), else the
  Cityscapes train classes: with a warning line saying which."""
  if recorded:
    return labels.Classes.from_json(recorded)
  data, num_classes = config.data, config.model.num_classes
  data_dir = registry.resolve_data_dir(data.data_dir)
  found = registry.prepared_classes(data.name, data_dir, **dataset_options(data))
  if found is not None and len(found.names) == num_classes:
    classes, which = found, f"dataset {data.name}'s, as prepared in {data_dir}"
  else:
    classes = labels.Classes.default(num_classes)
    which = f"Cityscapes' (no {num_classes}-class {data.name} dataset prepared in {data_dir})"
  print(
    f'warning: {where} records no class names or colours (an older version wrote it); '
    f'using {which}',
    file=sys.stderr,
    flush=True,
  )
  return classes


def save_run_start(config: ml_collections.ConfigDict, model, workdir: str | Path) -> Path:
  """Writes `model` (e.g. converted from another framework) as step 0 of a new run in
  `workdir`: config.json and a checkpoint with a fresh optimizer state and no input position.
  `evaluate` scores it, `train --workdir` fine-tunes from it. Refuses a workdir that has one."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.model.pretrained = ''  # the weights are the checkpoint's; no ImageNet load on resume
  experiment = Experiment.from_config(config)
  workdir = Path(workdir)
  if (workdir / layout.CONFIG_FILE).exists():
    raise ConfigError(f'{workdir} already holds a run; choose a new --workdir')
  workdir.mkdir(parents=True, exist_ok=True)
  _, state = steps.create_train_state(
    model, experiment.optimizer(total_steps=1).tx, balancer(config)
  )
  manager = checkpoints.make_manager(layout.checkpoints_dir(workdir), tasks=experiment.tasks)
  checkpoints.save(
    manager,
    0,
    state=parallel.replicate(state, experiment.mesh),
    data_iterator=None,
    meta=run_meta.RunMeta.start(
      run_config.as_record(config), labels.Classes.default(config.model.num_classes).to_json()
    ),
  )
  manager.wait_until_finished()
  run_config.save(config, workdir)
  return workdir
