"""Pure, jit-compiled train / eval / predict steps over an explicit `TrainState` pytree.

The model's structure (`graphdef`) is static; its parameters and BatchNorm statistics travel in
the state, so every step is a pure function of (state, batch) that XLA compiles once. BatchNorm
runs in training mode (batch statistics, running averages updated) in `train_step` and in eval
mode (running averages) in `eval_step` / `predict_step`.
"""

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mtl_jax import losses, metrics
from mtl_jax.data import sample
from mtl_jax.depth_codec import DepthCodec


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State
  batch_stats: nnx.State
  opt_state: optax.OptState
  nonfinite_streak: jax.Array  # consecutive steps skipped for a non-finite loss or gradient


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """Everything static the steps need to turn model outputs into losses and predictions."""

  tasks: tuple[str, ...] = ('semseg', 'depth')
  weights: tuple[float, ...] = (0.5, 0.5)
  depth_loss: str = 'l1'
  codec: DepthCodec = DepthCodec()
  ignore_label: int = sample.IGNORE_LABEL


def create_train_state(model: nnx.Module, tx: optax.GradientTransformation):
  """Splits `model` into (graphdef, TrainState) with a fresh optimizer state."""
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  state = TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    batch_stats=batch_stats,
    opt_state=tx.init(params),
    nonfinite_streak=jnp.zeros((), jnp.int32),
  )
  return graphdef, state


def _forward(graphdef, params, batch_stats, image, *, train: bool):
  model = nnx.merge(graphdef, params, batch_stats, copy=True)
  model.train() if train else model.eval()
  outputs = model(image)
  return outputs, nnx.state(model, nnx.BatchStat)


def _single_stage_losses(
  outputs: dict[str, jax.Array], batch: dict[str, jax.Array], spec: TaskSpec
) -> dict[str, jax.Array]:
  per_task = {}
  if 'semseg' in spec.tasks:
    per_task['semseg'] = losses.semseg_cross_entropy(
      outputs['semseg'], batch['semseg'], spec.ignore_label
    )
  if 'depth' in spec.tasks:
    per_task['depth'] = losses.depth_loss(spec.depth_loss)(
      outputs['depth'], batch['depth'], spec.codec
    )
  return per_task


def task_losses(
  outputs: dict[str, jax.Array], batch: dict[str, jax.Array], spec: TaskSpec
) -> dict[str, jax.Array]:
  """Per-task losses and their weighted sum under `loss/<task>` and `loss/total`.

  A model with auxiliary first-stage predictions (`outputs['aux']`, the distilled model) has
  each task's loss averaged over both stages.
  """
  per_task = _single_stage_losses(outputs, batch, spec)
  if 'aux' in outputs:
    aux = _single_stage_losses(outputs['aux'], batch, spec)
    per_task = {t: 0.5 * (per_task[t] + aux[t]) for t in per_task}
  total = sum(w * per_task[t] for t, w in zip(spec.tasks, spec.weights))
  return {**{f'loss/{t}': v for t, v in per_task.items()}, 'loss/total': total}


def all_finite(tree) -> jax.Array:
  """Whether every float in `tree` is finite (a norm would overflow on large finite values)."""
  leaves = [
    jnp.isfinite(x).all() for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)
  ]
  return jnp.stack(leaves).all() if leaves else jnp.bool_(True)


def train_step(
  state: TrainState,
  batch: dict[str, jax.Array],
  *,
  graphdef: Any,
  tx: optax.GradientTransformation,
  spec: TaskSpec,
):
  """One optimizer step; returns (new state, scalar metrics).

  A step is non-finite when its loss or gradients are, or when its update would make any
  parameter, optimizer slot or BatchNorm statistic non-finite (a huge learning rate turns finite
  gradients into Inf parameters). It changes nothing but `step` and `nonfinite_streak`: the state
  stays as it was (optax.apply_if_finite would guard the update but not the statistics, and it
  applies the bad update anyway after its error budget). Its losses are reported as 0 with
  `nonfinite` = 1, so epoch means can leave it out.
  """

  def loss_fn(params, batch_stats):
    outputs, new_stats = _forward(graphdef, params, batch_stats, batch['image'], train=True)
    task = task_losses(outputs, batch, spec)
    return task['loss/total'], (task, new_stats)

  grads, (task, new_stats) = jax.grad(loss_fn, has_aux=True)(state.params, state.batch_stats)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  grad_norm = optax.tree.norm(grads)
  # A non-finite gradient anywhere makes the norm non-finite: one reduction checks them all.
  finite = (
    jnp.isfinite(task['loss/total'])
    & jnp.isfinite(grad_norm)
    & all_finite((params, opt_state, new_stats))
  )
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
  new_state = state.replace(
    step=state.step + 1,
    params=keep(params, state.params),
    batch_stats=keep(new_stats, state.batch_stats),
    opt_state=keep(opt_state, state.opt_state),
    nonfinite_streak=jnp.where(finite, 0, state.nonfinite_streak + 1),
  )
  reported = {k: jnp.where(finite, v, 0.0) for k, v in {**task, 'grad_norm': grad_norm}.items()}
  return new_state, {
    **reported,
    'nonfinite': 1.0 - finite.astype(jnp.float32),
    'nonfinite_streak': new_state.nonfinite_streak,
  }


def _predictions(outputs: dict[str, jax.Array], spec: TaskSpec) -> dict[str, jax.Array]:
  preds = {}  # second-stage (final) predictions only; 'aux' is a training signal
  if 'semseg' in outputs:
    preds['semseg'] = jnp.argmax(outputs['semseg'], axis=-1).astype(jnp.int32)
  if 'depth' in outputs:
    preds['depth'] = spec.codec.decode(outputs['depth'])
  return preds


def predict_step(
  state: TrainState, image: jax.Array, *, graphdef: Any, spec: TaskSpec
) -> dict[str, jax.Array]:
  """Eval-mode forward pass: semseg labels [N,H,W] int32 and depth in metres [N,H,W]."""
  outputs, _ = _forward(graphdef, state.params, state.batch_stats, image, train=False)
  return _predictions(outputs, spec)


def nonfinite_images(outputs: dict[str, jax.Array]) -> jax.Array:
  """[N] bool: images for which any final output (logits, depth) is NaN or Inf. An argmax turns
  NaN logits into a valid class id, so this must be read before predictions are made."""
  final = [v for k, v in outputs.items() if k != 'aux']
  return jnp.stack([~jnp.isfinite(v).all(axis=tuple(range(1, v.ndim))) for v in final]).any(0)


def eval_step(
  state: TrainState,
  eval_metrics: metrics.EvalState,
  batch: dict[str, jax.Array],
  *,
  graphdef: Any,
  spec: TaskSpec,
) -> metrics.EvalState:
  """Adds one (possibly padded; see batch['mask']) batch to the running split metrics."""
  outputs, _ = _forward(graphdef, state.params, state.batch_stats, batch['image'], train=False)
  preds = _predictions(outputs, spec)
  return metrics.update(
    eval_metrics,
    semseg_pred=preds.get('semseg'),
    semseg_label=batch.get('semseg'),
    depth_pred=preds.get('depth'),
    depth_gt=batch.get('depth'),
    mask=batch.get('mask'),
    nonfinite=nonfinite_images(outputs),
  )
