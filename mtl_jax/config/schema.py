"""Every config knob: its default, what it means and what values it takes, side by side.

`base_config()` builds the ConfigDict every `configs/<arch>.py` starts from; `validate(config)`
checks a loaded config against the same table before anything is built or written, and reports
the first wrong value as one `ConfigError` line naming its key. A value must have the type of its
knob's default (`type_problem`, which checks a hand-edited config.json too) and a float must be
finite. A wrong key is already caught by ml_collections (configs are locked). Valid names come
from the registries themselves, imported only when validating so loading a config file stays
light. model.pretrained is checked only where it is read, when a run starts
(`Experiment.from_config(config, training=True)`).

The defaults are the full presets: the study's final setting (its Table 4) — Adam at 1e-4, batch
4, tasks weighted 50/50, output stride 16, an ImageNet encoder when converted weights are present,
64 epochs.
"""

import dataclasses
import importlib
import math
from typing import Any

import ml_collections

from mtl_jax.data.registry import SYNTHETIC_DEFAULTS
from mtl_jax.data.sample import TASKS
from mtl_jax.models.pretrained_cache import AUTO as PRETRAINED_AUTO
from mtl_jax.runtime.errors import UserError

EVAL_SPLITS = ('validation', 'test')


class ConfigError(UserError):
  """A config value (or run directory) a user must fix."""


@dataclasses.dataclass(frozen=True)
class OneOf:
  """The value is a key of a registry ('module:NAME', resolved when validating) or in a tuple."""

  choices: str | tuple

  def valid(self) -> tuple:
    if isinstance(self.choices, tuple):
      return self.choices
    module, name = self.choices.split(':')
    return tuple(getattr(importlib.import_module(module), name))

  def problem(self, value) -> str | None:
    valid = self.valid()
    return None if value in valid else f'is not valid; choose one of: {", ".join(map(str, valid))}'


@dataclasses.dataclass(frozen=True)
class Bound:
  """The value is > 0 (`strict`) or >= 0."""

  strict: bool

  def problem(self, value) -> str | None:
    ok = value > 0 if self.strict else value >= 0
    return None if ok else f'must be {">" if self.strict else ">="} 0'


POSITIVE, NON_NEGATIVE = Bound(strict=True), Bound(strict=False)


@dataclasses.dataclass(frozen=True)
class Knob:
  default: Any
  meaning: str
  check: OneOf | Bound | None = None


_S = SYNTHETIC_DEFAULTS
KNOBS: dict[str, Knob] = {
  'seed': Knob(0, 'parameter initialisation and the order and augmentation of train samples'),
  # data: which dataset, at which stored size, and how training samples are augmented
  'data.name': Knob('synthetic', 'dataset', OneOf('mtl_jax.data.registry:DATASETS')),
  'data.data_dir': Knob(
    '',
    "where prepared datasets live; '' = the TFDS default (mtl_jax.data.registry.DEFAULT_DATA_DIR)",
  ),
  'data.height': Knob(_S.height, 'stored image height of the dataset to open', POSITIVE),
  'data.width': Knob(_S.width, 'stored image width', POSITIVE),
  'data.seed': Knob(
    _S.seed,
    'synthetic only: the dataset seed (sample i is a pure function of seed, split and i)',
    NON_NEGATIVE,
  ),
  'data.num_train': Knob(_S.num_train, 'synthetic only: train samples rendered', POSITIVE),
  'data.num_validation': Knob(_S.num_validation, 'synthetic only: validation samples', POSITIVE),
  'data.num_test': Knob(_S.num_test, 'synthetic only: test samples', POSITIVE),
  'data.crop_height': Knob(128, 'training crop height (after random scaling)', POSITIVE),
  'data.crop_width': Knob(256, 'training crop width', POSITIVE),
  'data.scale_min': Knob(0.75, 'random scale range of training samples, lower end', POSITIVE),
  'data.scale_max': Knob(1.5, 'random scale range, upper end (>= scale_min)', POSITIVE),
  'data.flip': Knob(True, 'random horizontal flips of training samples'),
  'data.jitter.brightness': Knob(
    0.2,
    'photometric jitter of the image only: brightness '
    'factor drawn from U(1 - a, 1 + a); all four 0 = off',
    NON_NEGATIVE,
  ),
  'data.jitter.contrast': Knob(0.2, 'contrast factor bound a, as brightness', NON_NEGATIVE),
  'data.jitter.saturation': Knob(0.2, 'saturation factor bound a, as brightness', NON_NEGATIVE),
  'data.jitter.hue': Knob(0.02, 'largest hue rotation, in turns (0.05 = ±18°)', NON_NEGATIVE),
  'data.worker_count': Knob(0, 'grain worker processes; 0 = in the training process', NON_NEGATIVE),
  # model: see mtl_jax.models.mtl
  'model.arch': Knob('joint', 'architecture', OneOf('mtl_jax.models.mtl:ARCHITECTURES')),
  'model.tasks': Knob(TASKS, 'tasks predicted; single_task: one of them'),
  'model.encoder': Knob('resnet34', 'ResNet trunk', OneOf('mtl_jax.models.resnet:ENCODERS')),
  'model.output_stride': Knob(16, '32 (no dilation), 16 or 8', OneOf((8, 16, 32))),
  'model.block_dilation': Knob(
    'template',
    "where a dilated BasicBlock dilates: 'template' = conv2 only, the first block of a dilated "
    "stage at dilation 2 (the course template's encoder); 'both' = both 3×3 convs, the first "
    "block at the previous stage's dilation (torchvision's rule for Bottleneck)",
    OneOf('mtl_jax.models.resnet:BLOCK_DILATIONS'),
  ),
  'model.heads': Knob(
    'seed',
    "head family: 'seed' = the study's listings (ASPP pooling without ReLU; one 3×3 conv with "
    'bias from [context, raw 1/4 skip] straight to the outputs; self-attention over that '
    "concat); 'deeplabv3plus' = the DeepLabV3+ paper's (model.decoder, decoder_channels, "
    'skip_channels, 1×1 task heads)',
    OneOf('mtl_jax.models.mtl:HEAD_FAMILIES'),
  ),
  'model.use_aspp': Knob(
    True, 'ASPP context module; False = a plain 1×1 conv over the deepest features'
  ),
  'model.aspp_rates': Knob((3, 6, 9), 'dilation rates of the three 3×3 ASPP branches'),
  'model.aspp_channels': Knob(256, 'context module (ASPP or plain) output channels', POSITIVE),
  'model.decoder': Knob(
    'deeplabv3plus',
    "decoder variant; 'seed' = one 3×3 conv over [context, raw 1/4 skip]",
    OneOf('mtl_jax.models.decoder:DECODERS'),
  ),
  'model.decoder_channels': Knob(256, 'decoder output channels', POSITIVE),
  'model.skip_channels': Knob(48, '1×1 reduction of the 1/4 skip (deeplabv3plus only)', POSITIVE),
  'model.second_stage': Knob(
    'simple',
    'distilled only: second-stage decoder',
    OneOf('mtl_jax.models.distillation:SECOND_STAGE_DECODERS'),
  ),
  'model.zero_init_residual': Knob(
    True, "zero-init each residual block's last BN scale (the study's encoder, its Listing 3)"
  ),
  'model.pretrained': Knob(
    PRETRAINED_AUTO,
    'ImageNet encoder weights, read when a run starts: a directory from '
    "python -m mtl_jax.convert torchvision; 'auto' = the converted cache "
    "(pretrained_cache_dir) if present, else random init; 'imagenet' = that cache, required (a "
    "run without it stops; the study's ImageNet rows); '' = random init. The run records the "
    'directory used',
  ),
  'model.num_classes': Knob(19, "semantic classes (must equal the dataset's)", POSITIVE),
  'model.dtype': Knob(
    'float32',
    "compute dtype of convolutions and activations; 'bfloat16' = mixed precision (parameters, "
    'optimizer state, BatchNorm statistics, losses, softmax and metrics stay float32)',
    OneOf(('float32', 'bfloat16')),
  ),
  # depth: raw network output ↔ metres, see mtl_jax.depth_codec
  'depth.mode': Knob('linear', 'depth parametrisation', OneOf('mtl_jax.depth_codec:MODES')),
  'depth.mean': Knob(
    27.0727,
    'normalisation mean (of depth, or of log-depth in log mode); the default is the course '
    "template's linear-depth mean, in metres",
  ),
  'depth.std': Knob(29.1264, "normalisation std (the course template's)", POSITIVE),
  # loss
  'loss.semseg_weight': Knob(0.5, 'weight of the semseg loss in the total', NON_NEGATIVE),
  'loss.depth_weight': Knob(0.5, 'weight of the depth loss in the total', NON_NEGATIVE),
  'loss.depth_loss': Knob(
    'l1',
    "'l1' on normalised depth (course template) or 'silog'",
    OneOf('mtl_jax.losses:DEPTH_LOSSES'),
  ),
  'loss.balancing': Knob(
    'fixed',
    "how the task losses are balanced: 'fixed' = the weights above; else a loss-weighting or "
    'gradient method (docs/models.md#task-balancing); its options are the loss.<method>_* knobs',
    OneOf('mtl_jax.balancing.training:METHODS'),
  ),
  'loss.uncertainty_form': Knob(
    'kendall',
    "uncertainty only: 'kendall' = 1/σ² on the cross-entropy, 1/(2σ²) on depth (the paper's); "
    "'regression' = 1/(2σ²) on both (LibMTL's)",
    OneOf('mtl_jax.balancing.training:UNCERTAINTY_FORMS'),
  ),
  'loss.dwa_temperature': Knob(2.0, 'dwa only: softmax temperature T', POSITIVE),
  'loss.famo_lr': Knob(0.025, 'famo only: the Adam step size of the task logits', POSITIVE),
  'loss.famo_weight_decay': Knob(1e-3, 'famo only: L2 on the task logits (γ)', NON_NEGATIVE),
  'loss.gradnorm_alpha': Knob(1.5, 'gradnorm only: the asymmetry α', NON_NEGATIVE),
  'loss.gradnorm_lr': Knob(0.025, 'gradnorm only: the SGD step size of the weights', POSITIVE),
  'loss.gradnorm_layer': Knob(
    'last',
    "gradnorm only: the parameters whose gradient norms it balances: 'last' = the last shared "
    "layer (the paper's; docs/models.md#task-balancing says which per architecture), 'shared' = "
    "every shared parameter (LibMTL's)",
    OneOf('mtl_jax.balancing.training:GRADNORM_LAYERS'),
  ),
  'loss.stch_mu': Knob(1.0, 'stch only: the smoothing μ', POSITIVE),
  'loss.stch_warmup_epochs': Knob(
    1, 'stch only: epochs of Σ log L before the last one sets the nadir', POSITIVE
  ),
  'loss.cagrad_c': Knob(0.4, 'cagrad only: the conflict radius c', NON_NEGATIVE),
  'loss.nash_mtl_max_norm': Knob(
    1.0, "nash_mtl only: the combined gradient's largest norm; 0 = unclipped", NON_NEGATIVE
  ),
  # optim: see mtl_jax.optim
  'optim.name': Knob('adam', 'optimizer', OneOf('mtl_jax.optim:OPTIMIZERS')),
  'optim.learning_rate': Knob(1e-4, 'peak learning rate', POSITIVE),
  'optim.schedule': Knob('poly', 'learning-rate schedule', OneOf('mtl_jax.optim:SCHEDULES')),
  'optim.warmup_steps': Knob(0, 'linear warm-up steps from 0', NON_NEGATIVE),
  'optim.weight_decay': Knob(1e-4, 'L2 on conv/dense kernels', NON_NEGATIVE),
  'optim.momentum': Knob(0.9, 'sgd only'),
  'optim.grad_clip_norm': Knob(0.0, 'global gradient-norm clip; 0 = none', NON_NEGATIVE),
  # train: the loop
  'train.batch_size': Knob(4, 'global train batch (split over devices and processes)', POSITIVE),
  'train.num_epochs': Knob(64, 'epochs (full batches over the train split)', POSITIVE),
  'train.epoch_scale': Knob(
    1.0,
    'a run trains max(1, round(num_epochs × epoch_scale)) epochs: `lite` shortens the '
    "study's schedules in proportion, so a sweep entry keeps the study's num_epochs",
    POSITIVE,
  ),
  'train.eval_batch_size': Knob(4, 'global eval batch', POSITIVE),
  'train.log_every_steps': Knob(25, 'train-loss log interval', POSITIVE),
  'train.keep_checkpoints': Knob(
    2, 'newest checkpoints kept, besides the best by `total`', POSITIVE
  ),
  'train.checkpoint_every_steps': Knob(
    200, 'mid-epoch saves (epoch ends always save); 0 = off', NON_NEGATIVE
  ),
  'train.max_nonfinite_steps': Knob(10, 'stop after this many consecutive NaN/Inf steps', POSITIVE),
  'train.eval_split': Knob('validation', 'split scored after each epoch', OneOf(EVAL_SPLITS)),
  'train.grad_accum_steps': Knob(
    1,
    'micro-batches per optimizer step: gradients of batch_size/k samples averaged over k; '
    'BatchNorm statistics come from each micro-batch, as in PyTorch',
    POSITIVE,
  ),
  # parallel: how the train step runs over devices, see mtl_jax.parallel
  'parallel.mode': Knob(
    'jit',
    "'jit' = one program over a device mesh (XLA places the collectives); 'pmap' = the classic "
    'per-device step with gradients and BatchNorm statistics averaged by lax.pmean',
    OneOf(('jit', 'pmap')),
  ),
}


def base_config() -> ml_collections.ConfigDict:
  """Every knob at its default."""
  config = ml_collections.ConfigDict()
  for key, knob in KNOBS.items():
    *groups, name = key.split('.')
    node = config
    for group in groups:
      if group not in node:
        node[group] = ml_collections.ConfigDict()
      node = node[group]
    node[name] = knob.default
  return config


def get(config: ml_collections.ConfigDict, key: str):
  """The value at dotted `key`."""
  value = config
  for part in key.split('.'):
    value = value[part]
  return value


def _cross_checks(config: ml_collections.ConfigDict) -> None:
  """Constraints between knobs, each raising a ConfigError."""
  data, model = config.data, config.model
  if data.scale_min > data.scale_max:
    raise ConfigError(
      f'config.data.scale_min={data.scale_min} and scale_max='
      f'{data.scale_max} must satisfy 0 < scale_min <= scale_max'
    )
  tasks = tuple(model.tasks)
  if not tasks or set(tasks) - set(TASKS) or len(set(tasks)) != len(tasks):
    raise ConfigError(
      f'config.model.tasks={tasks!r} must be distinct names from: {", ".join(TASKS)}'
    )
  if model.arch != 'single_task' and tasks != TASKS:
    raise ConfigError(
      f'config.model.arch={model.arch!r} predicts both tasks; set '
      f'config.model.tasks={TASKS!r} or use arch single_task'
    )
  if model.arch == 'single_task' and len(tasks) != 1:
    raise ConfigError(
      f"config.model.arch='single_task' needs one task in config.model.tasks, got {tasks!r}"
    )
  if sum(task_weight(config, t) for t in tasks) <= 0:
    raise ConfigError('the loss weights of config.model.tasks must sum to > 0')
  if config.loss.balancing != 'fixed' and len(tasks) < 2:
    raise ConfigError(
      f'config.loss.balancing={config.loss.balancing!r} balances two or more tasks, and this '
      f"model has one ({tasks[0]}); use 'fixed', or train a multi-task architecture"
    )


def epochs(config: ml_collections.ConfigDict) -> int:
  """The epochs a run trains: train.num_epochs scaled by train.epoch_scale, at least one."""
  return max(1, round(config.train.num_epochs * config.train.epoch_scale))


def task_weight(config: ml_collections.ConfigDict, task: str) -> float:
  return config.loss[f'{task}_weight']


# What a value must be, by the type of its knob's default: (one, several).
_KINDS = {
  bool: ('true or false', 'true/false values'),
  int: ('an integer', 'integers'),
  float: ('a number', 'numbers'),
  str: ('a string', 'strings'),
}


def expected_type(key: str) -> str:
  """What knob `key` takes, in words: 'an integer', 'a list of strings', ..."""
  default = KNOBS[key].default
  if isinstance(default, tuple):
    return f'a list of {_KINDS[type(default[0])][1]}'
  return _KINDS[type(default)][0]


def _is_a(value, type_: type) -> bool:
  """isinstance, except that a bool is no number and an int is a float too (1 for 1.0)."""
  if isinstance(value, bool) or type_ is bool:
    return isinstance(value, bool) and type_ is bool
  return isinstance(value, (int, float) if type_ is float else type_)


def type_problem(key: str, value) -> str | None:
  """'must be <kind>' if `value` has not the type of knob `key`'s default, else None."""
  default = KNOBS[key].default
  if isinstance(default, tuple):
    ok = isinstance(value, (list, tuple)) and all(_is_a(v, type(default[0])) for v in value)
  else:
    ok = _is_a(value, type(default))
  return None if ok else f'must be {expected_type(key)}'


def _finite_problem(value) -> str | None:
  # inf would pass a Bound (inf > 0) and nan fails it with a misleading reason.
  return (
    'must be a finite number' if isinstance(value, float) and not math.isfinite(value) else None
  )


def validate(config: ml_collections.ConfigDict) -> None:
  for key, knob in KNOBS.items():
    value = get(config, key)
    problem = (
      type_problem(key, value)
      or _finite_problem(value)
      or (knob.check and knob.check.problem(value))
    )
    if problem:
      raise ConfigError(f'config.{key}={value!r} {problem}')
  _cross_checks(config)
