"""Pure, jit-compiled train / eval / predict steps over an explicit `TrainState` pytree.

The model's structure (`graphdef`) is static; its parameters and BatchNorm statistics travel in
the state, so every step is a pure function of (state, batch) that XLA compiles once. BatchNorm
runs in training mode (batch statistics, running averages updated) in `train_step` and in eval
mode (running averages) in `eval_step` / `predict_step`.

`train_step` runs unchanged under `jax.jit` (one program over the device mesh; XLA inserts the
cross-device reductions) and under `jax.pmap` (one copy per device; `axis_name` names the mapped
axis, over which gradients, losses and BatchNorm statistics are averaged explicitly).
"""

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mtl_jax import losses, metrics
from mtl_jax.balancing import training as balancing
from mtl_jax.data import sample
from mtl_jax.data.sample import TASKS
from mtl_jax.depth_codec import DepthCodec

# Optional train-batch entry, float32 [B]: 1.0 on every row of a process asked to stop. The step
# reports its maximum over the global batch as `stop_vote`, so all processes learn of a stop
# request at the same step; it never reaches the model or the gradients.
STOP_KEY = 'stop'


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State
  batch_stats: nnx.State
  opt_state: optax.OptState
  nonfinite_streak: jax.Array  # consecutive steps skipped for a non-finite loss or gradient
  balancing: Any = None  # the task-balancing method's state (None for 'fixed' and stateless ones)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """Everything static the steps need to turn model outputs into losses and predictions."""

  tasks: tuple[str, ...] = TASKS
  weights: tuple[float, ...] = (0.5, 0.5)
  depth_loss: str = 'l1'
  codec: DepthCodec = DepthCodec()
  ignore_label: int = sample.IGNORE_LABEL


def create_train_state(
  model: nnx.Module,
  tx: optax.GradientTransformation,
  balancer: balancing.Balancer = balancing.FIXED_WEIGHTS,
):
  """Splits `model` into (graphdef, TrainState) with a fresh optimizer and balancing state."""
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  state = TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    batch_stats=batch_stats,
    opt_state=tx.init(params),
    nonfinite_streak=jnp.zeros((), jnp.int32),
    balancing=balancing.init_state(balancer, tx),
  )
  return graphdef, state


def _forward(graphdef, params, batch_stats, image, *, train: bool, axis_name=None):
  model = nnx.merge(graphdef, params, batch_stats, copy=True)
  model.train() if train else model.eval()
  if axis_name is not None:
    # Under pmap each device sees only its rows: averaging BatchNorm's batch statistics over the
    # mapped axis makes them the global batch's, as the jit path computes them.
    model.set_attributes(nnx.BatchNorm, axis_name=axis_name, raise_if_not_found=False)
  outputs = model(image)
  return outputs, nnx.state(model, nnx.BatchStat)


def _single_stage_losses(
  outputs: dict[str, jax.Array], batch: dict[str, jax.Array], spec: TaskSpec, axis_name
) -> dict[str, jax.Array]:
  per_task = {}
  if 'semseg' in spec.tasks:
    per_task['semseg'] = losses.semseg_cross_entropy(
      outputs['semseg'], batch['semseg'], spec.ignore_label, axis_name
    )
  if 'depth' in spec.tasks:
    per_task['depth'] = losses.depth_loss(spec.depth_loss)(
      outputs['depth'], batch['depth'], spec.codec, axis_name
    )
  return per_task


def task_losses(
  outputs: dict[str, jax.Array], batch: dict[str, jax.Array], spec: TaskSpec, axis_name=None
) -> dict[str, jax.Array]:
  """Per-task losses and their weighted sum under `loss/<task>` and `loss/total`; under pmap
  (`axis_name`) the global batch's, on every device (`losses`).

  A model with auxiliary first-stage predictions (`outputs['aux']`, the distilled model) has
  each task's loss averaged over both stages.
  """
  per_task = _single_stage_losses(outputs, batch, spec, axis_name)
  if 'aux' in outputs:
    aux = _single_stage_losses(outputs['aux'], batch, spec, axis_name)
    per_task = {t: 0.5 * (per_task[t] + aux[t]) for t in per_task}
  total = sum(w * per_task[t] for t, w in zip(spec.tasks, spec.weights))
  return {**{f'loss/{t}': v for t, v in per_task.items()}, 'loss/total': total}


def all_finite(tree) -> jax.Array:
  """Whether every float in `tree` is finite (a norm would overflow on large finite values)."""
  leaves = [
    jnp.isfinite(x).all() for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)
  ]
  return jnp.stack(leaves).all() if leaves else jnp.bool_(True)


def micro_batch_split(batch: dict[str, jax.Array], micro_batches: int) -> dict[str, jax.Array]:
  """[B, ...] → [k, B/k, ...]: micro-batch j holds the rows i with i % k == j.

  Strided, not contiguous: sharded over D devices on axis 0 with B % (k·D) == 0
  (`parallel.check_batch_size`), each device's B/D rows are whole groups of k consecutive rows,
  so this reshape splits every device's own rows and each micro-batch stays spread over all the
  devices; no data moves. Contiguous blocks would put micro-batch j on devices j·D/k onwards
  only. Under pmap the same rule on a device's rows picks the same global rows.
  """
  split = lambda x: x.reshape(x.shape[0] // micro_batches, micro_batches, *x.shape[1:])
  return jax.tree.map(lambda x: split(x).swapaxes(0, 1), batch)


def _accumulated(grad_fn, params, batch_stats, batch, micro_batches: int):
  """grad_fn's (gradients, (losses, statistics)) over the micro-batches in sequence: the mean
  gradient, the mean losses and the statistics after the last. A scan inside the one compiled
  step, so memory holds one micro-batch's activations. BatchNorm normalises each micro-batch by
  its own statistics and updates its running averages once per micro-batch, as PyTorch does when
  it accumulates."""

  def accumulate(carry, micro):
    grad_sum, stats = carry
    grads, (task, stats) = grad_fn(params, stats, micro)
    return (jax.tree.map(jnp.add, grad_sum, grads), stats), task

  micro = micro_batch_split(batch, micro_batches)
  first = jax.tree.map(lambda x: x[0], micro)
  zeros = jax.tree.map(
    lambda g: jnp.zeros(g.shape, g.dtype), jax.eval_shape(grad_fn, params, batch_stats, first)[0]
  )
  (grad_sum, stats), tasks = jax.lax.scan(accumulate, (zeros, batch_stats), micro)
  mean_grads = jax.tree.map(lambda g: g / micro_batches, grad_sum)
  return mean_grads, (jax.tree.map(lambda t: t.mean(0), tasks), stats)


def _gradients(grad_fn, state: TrainState, batch, micro_batches: int, axis_name):
  """(gradients, losses, new BatchNorm statistics) from grad_fn(params, batch_stats, batch) ->
  (gradients, (losses, statistics)), as `train_step` describes them. The gradients may be any
  tree (the per-task Jacobian too): they are averaged over micro-batches and summed over devices."""
  if micro_batches == 1:  # the plain step, compiled exactly as without accumulation
    grads, (task, new_stats) = grad_fn(state.params, state.batch_stats, batch)
  else:
    grads, (task, new_stats) = _accumulated(
      grad_fn, state.params, state.batch_stats, batch, micro_batches
    )
  if axis_name is not None:
    # Each device's gradient is its pixels' share of the global one (`losses`): their sum is
    # the jit step's gradient. The losses are already the global batch's on every device.
    grads = jax.lax.psum(grads, axis_name)
  return grads, task, new_stats


def _stop_vote(stop: jax.Array, axis_name) -> jax.Array:
  """1.0 if any row of the global batch asks to stop (under jit `stop` is the global array)."""
  vote = jnp.max(stop)
  return vote if axis_name is None else jax.lax.pmax(vote, axis_name)


def train_step(
  state: TrainState,
  batch: dict[str, jax.Array],
  *,
  graphdef: Any,
  tx: optax.GradientTransformation,
  spec: TaskSpec,
  micro_batches: int = 1,
  axis_name: Any = None,
  balancer: balancing.Balancer = balancing.FIXED_WEIGHTS,
):
  """One optimizer step; returns (new state, scalar metrics).

  A step is non-finite when its loss, gradients, update (a huge learning rate turns finite
  gradients into Inf updates) or new BatchNorm statistics are. Norms check the gradients and the
  update, one reduction each: an Inf or NaN anywhere, or an element whose square overflows, makes
  the norm non-finite, and with finite gradients and update the new parameters and optimizer
  slots are finite too. A non-finite step changes nothing but `step` and `nonfinite_streak`:
  the state stays as it was (optax.apply_if_finite would guard the update but not the
  statistics, and it applies the bad update anyway after its error budget). Its losses are
  reported as 0 with `nonfinite` = 1, so epoch means can leave it out.

  micro_batches = k (gradient accumulation): the gradient is the mean of the gradients of k
  micro-batches of B/k rows (`micro_batch_split`, `_accumulated`), the losses their means.

  axis_name: the mapped axis under pmap, where `batch` is one device's rows. The losses are
  means over the global batch's valid pixels (their sums and counts summed over the axis, not a
  mean of per-device means, which would weigh a device's pixels by how few it holds), each
  device's gradient share is summed over it, and BatchNorm's batch statistics are averaged over
  it: every device computes the jit step's losses and gradient and applies the same update.

  balancer: the task-balancing method (`balancing.training`; 'fixed' is `spec.weights`), its
  weights reported as `weight/<task>`; `loss/total` is Σ spec.weights·L for every method.

  With batch[STOP_KEY], metrics['stop_vote'] is its maximum over the global batch.
  """
  stop = batch.get(STOP_KEY)
  batch = {k: v for k, v in batch.items() if k != STOP_KEY}

  def outputs_and_losses(params, batch_stats, batch):
    outputs, new_stats = _forward(
      graphdef, params, batch_stats, batch['image'], train=True, axis_name=axis_name
    )
    return task_losses(outputs, batch, spec, axis_name), new_stats

  grads, task, new_stats, weights, new_balancing = _step_gradients(
    outputs_and_losses, state, batch, spec, balancer, tx, micro_batches, axis_name
  )
  new_state, finite, grad_norm = _guarded_update(state, grads, task, new_stats, tx, new_balancing)
  new_state = new_state.replace(
    balancing=balancing.at_step_end(balancer, new_state.balancing, new_state.step)
  )
  step_metrics = {
    **_reported(task, grad_norm, weights, spec.tasks, finite),
    'nonfinite': 1.0 - finite.astype(jnp.float32),
    'nonfinite_streak': new_state.nonfinite_streak,
  }
  if stop is not None:
    step_metrics['stop_vote'] = _stop_vote(stop, axis_name)
  return new_state, step_metrics


def _step_gradients(
  outputs_and_losses, state: TrainState, batch, spec, balancer, tx, micro_batches, axis_name
):
  """(gradients, losses, statistics, weights [tasks], balancing state) of the step."""
  if balancer.method == balancing.FIXED:  # compiled exactly as before balancing existed
    grads, task, new_stats = _fixed_gradients(
      outputs_and_losses, state, batch, micro_batches, axis_name
    )
    return grads, task, new_stats, jnp.asarray(spec.weights, jnp.float32), state.balancing
  return _balanced_gradients(
    outputs_and_losses, state, batch, spec.tasks, balancer, tx, micro_batches, axis_name
  )


def _reported(task: dict, grad_norm, weights, tasks, finite) -> dict:
  """The step's losses, gradient norm and task weights (`weight/<task>`); 0 if not finite."""
  named_weights = {f'weight/{t}': weights[i] for i, t in enumerate(tasks)}
  metrics_ = {**task, 'grad_norm': grad_norm, **named_weights}
  return {k: jnp.where(finite, v, 0.0) for k, v in metrics_.items()}


def _fixed_gradients(outputs_and_losses, state: TrainState, batch, micro_batches, axis_name):
  """The gradient of `loss/total` (Σ spec.weights·L), as `_gradients` returns it."""

  def loss_fn(params, batch_stats, batch):
    task, new_stats = outputs_and_losses(params, batch_stats, batch)
    return task['loss/total'], (task, new_stats)

  grad_fn = jax.grad(loss_fn, has_aux=True)
  return _gradients(grad_fn, state, batch, micro_batches, axis_name)


def _task_jacobian(outputs_and_losses, tasks: tuple[str, ...]):
  """grad_fn (see `_gradients`) whose gradients are the per-task ones: each leaf [tasks, ...],
  one backward pass per task (a vmap of the VJP over the rows of the identity)."""

  def jacobian_fn(params, batch_stats, batch):
    def loss_vector(p):
      task, new_stats = outputs_and_losses(p, batch_stats, batch)
      return jnp.stack([task[f'loss/{t}'] for t in tasks]), (task, new_stats)

    task_losses_, vjp, aux = jax.vjp(loss_vector, params, has_aux=True)
    (jacobian,) = jax.vmap(vjp)(jnp.eye(len(tasks), dtype=task_losses_.dtype))
    return jacobian, aux

  return jacobian_fn


def _balanced_gradients(
  outputs_and_losses, state: TrainState, batch, tasks, balancer, tx, micro_batches, axis_name
):
  """(gradients, losses, statistics, weights [tasks], balancing state) of a method other than
  'fixed' (`balancing.training`). A loss-based method on a whole batch takes one backward pass
  with its weights as the cotangent; otherwise the per-task gradients are summed over the
  micro-batches and devices first, and balanced once."""
  loss_vector = lambda task: jnp.stack([task[f'loss/{t}'] for t in tasks])
  if balancer.needs_jacobian or micro_batches > 1:
    jacobian, task, new_stats = _gradients(
      _task_jacobian(outputs_and_losses, tasks), state, batch, micro_batches, axis_name
    )
    losses_ = loss_vector(task)
    if balancer.needs_jacobian:
      grads, weights, new_balancing = balancing.from_jacobian(
        balancer, state.balancing, losses_, jacobian, state.step
      )
    else:
      weights, new_balancing = balancing.loss_weights(
        balancer, state.balancing, losses_, state.step
      )
      grads = balancing.weighted_sum(weights, jacobian)
  else:

    def weighted(p):
      task, new_stats = outputs_and_losses(p, state.batch_stats, batch)
      return loss_vector(task), (task, new_stats)

    losses_, vjp, (task, new_stats) = jax.vjp(weighted, state.params, has_aux=True)
    weights, new_balancing = balancing.loss_weights(balancer, state.balancing, losses_, state.step)
    (grads,) = vjp(weights.astype(losses_.dtype))
    if axis_name is not None:  # each device's share, as in `_gradients`
      grads = jax.lax.psum(grads, axis_name)
  new_balancing = balancing.after_step(balancer, new_balancing, losses_, tx)
  return grads, task, new_stats, weights, new_balancing


def _guarded_update(state: TrainState, grads, task: dict, new_stats, tx, new_balancing=None):
  """(new state, whether the step was finite, gradient norm): the optimizer's update applied
  only when the loss, gradients, update, new statistics and the balancing method's new state
  are all finite (`train_step`)."""
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  grad_norm = optax.tree.norm(grads)
  finite = (
    jnp.isfinite(task['loss/total'])
    & jnp.isfinite(grad_norm)
    & jnp.isfinite(optax.tree.norm(updates))
    & all_finite(new_stats)
  )
  if new_balancing is not None:
    finite = finite & all_finite(new_balancing)
  # Decided before any new parameter exists, so XLA fuses each `where` into the update that
  # computes it: no second pass over the parameters and optimizer slots.
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
  new_state = state.replace(
    step=state.step + 1,
    params=keep(optax.apply_updates(state.params, updates), state.params),
    batch_stats=keep(new_stats, state.batch_stats),
    opt_state=keep(opt_state, state.opt_state),
    nonfinite_streak=jnp.where(finite, 0, state.nonfinite_streak + 1),
    balancing=keep(new_balancing, state.balancing),
  )
  return new_state, finite, grad_norm


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
