"""Task balancing inside the compiled train step: the chosen method, its state, and the gradient it
makes of the per-task losses L [tasks] or of the per-task gradients (the Jacobian).

`Balancer` is static (hashable, part of the compiled step); its state is a pytree in the train
state (checkpointed, restored, kept unchanged by a non-finite step). A method is one of:

- 'fixed': Σ w_t L_t with the config's weights; the step is compiled exactly as before balancing
  existed (`steps.train_step`), so runs are bit-identical to earlier versions.
- loss-based (`LOSS_METHODS`): weights from the losses and the method's state
  (`weighting`), the gradient Σ w_t ∇L_t in one backward pass (a VJP with cotangent w).
- 'gradnorm': weights updated from each task's gradient norm on the last shared layer
  (`Balancer.norm_layer`; or on every shared parameter), so it needs the Jacobian (one backward
  pass per task).
- gradient-based (`aggregators`): the shared parameters' Jacobian rows combined by
  `balancing.aggregate`; every other parameter gets Σ_t ∇L_t, i.e. its own task's gradient
  (`models.mtl.SHARED_MODULES` says which parameters are shared).

With gradient accumulation every method but 'fixed' sums the per-task gradients over the
micro-batches and balances once, on the full batch's mean losses: the step's update is the one
the whole batch would give. Under pmap the Jacobian and losses are the global batch's.

The weight logged for each task (`weight/<task>`) is ∂total/∂L_t for loss-based methods and, for
gradient methods, the least-squares weights w with wᵀJ = the combined direction d on the shared
parameters (w = (JJᵀ)⁺Jd; exact whenever d lies in the rows' span, as every method's d does
except GradDrop's and PCGrad's).
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtl_jax.balancing import METHODS as AGGREGATORS
from mtl_jax.balancing import aggregate, aggregators, weighting

FIXED = 'fixed'
# Weights from the losses alone: one backward pass with the weights as cotangent.
LOSS_METHODS = ('uncertainty', 'dwa', 'rlw', 'famo', 'stch')
JACOBIAN_LOSS_METHODS = ('gradnorm',)
GRADIENT_METHODS = tuple(AGGREGATORS)
METHODS = (FIXED, *LOSS_METHODS, *JACOBIAN_LOSS_METHODS, *GRADIENT_METHODS)
RANDOM_AGGREGATORS = ('pcgrad', 'graddrop')  # drawn from a key per step
EPOCH_METHODS = ('dwa', 'stch')  # read the previous epochs' mean losses
GRADNORM_LAYERS = ('last', 'shared')  # loss.gradnorm_layer: models.mtl.last_shared_layer or all
# Uncertainty weighting's form per task in Kendall et al. 2018: a softmax cross-entropy scaled by
# 1/σ², a regression loss by 1/(2σ²). 'regression' is LibMTL's (1/(2σ²) for every task).
UNCERTAINTY_FORMS = {
  'kendall': {'semseg': 'classification', 'depth': 'regression'},
  'regression': {'semseg': 'regression', 'depth': 'regression'},
}


@dataclasses.dataclass(frozen=True)
class Balancer:
  """What the step needs to know about the method, all static (`experiment.balancer` builds it
  from a config; 'fixed''s weights are the steps' `TaskSpec.weights`)."""

  method: str = FIXED
  tasks: tuple[str, ...] = ('semseg', 'depth')
  options: tuple[tuple[str, Any], ...] = ()  # (option, value) of the method, from the config
  shared: tuple[str, ...] | None = None  # the model's top-level modules shared by the tasks
  # gradnorm: the path of the parameters its gradient norms are taken on (models.mtl.
  # last_shared_layer); None = every shared parameter (LibMTL's choice)
  norm_layer: tuple[str, ...] | None = None
  steps_per_epoch: int = 1  # for DWA's and STCH's epoch means
  seed: int = 0  # of the random methods' per-step keys

  def option(self, name: str):
    return dict(self.options)[name]

  @property
  def needs_jacobian(self) -> bool:
    return self.method in JACOBIAN_LOSS_METHODS or self.method in GRADIENT_METHODS


FIXED_WEIGHTS = Balancer()  # the steps' default: 'fixed'


# --------------------------------------------------------------------------- state


class EpochLosses(NamedTuple):
  """Sums of the applied steps' losses since the epoch began (DWA, STCH), and epochs done."""

  sums: jax.Array
  steps: jax.Array
  epochs: jax.Array


def _epoch_losses(tasks: int) -> EpochLosses:
  return EpochLosses(jnp.zeros(tasks), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def _uncertainty_state(b: Balancer, tx):
  log_vars = weighting.uncertainty_init(len(b.tasks))
  return {'log_vars': log_vars, 'opt_state': tx.init(log_vars)}


def _famo_state(b: Balancer, tx):
  k = len(b.tasks)
  return {'famo': weighting.famo_init(k), 'previous': jnp.zeros(k), 'has_previous': jnp.bool_(0)}


def _gradnorm_state(b: Balancer, tx):
  k = len(b.tasks)
  return {'weights': jnp.ones(k), 'initial': jnp.ones(k), 'started': jnp.bool_(0)}


def _stch_state(b: Balancer, tx):
  return {'epoch': _epoch_losses(len(b.tasks)), 'nadir': jnp.ones(len(b.tasks))}


_STATES: dict[str, Callable] = {
  'uncertainty': _uncertainty_state,
  'dwa': lambda b, tx: {
    'epoch': _epoch_losses(len(b.tasks)),
    'dwa': weighting.dwa_init(len(b.tasks)),
  },
  'famo': _famo_state,
  'gradnorm': _gradnorm_state,
  'stch': _stch_state,
}


def init_state(b: Balancer, tx: optax.GradientTransformation):
  """The method's state at step 0 (None for the stateless ones). `tx` is the run's optimizer:
  uncertainty weighting trains its log-variances with it, as the paper and LibMTL do."""
  make = _STATES.get(b.method)
  # Each leaf its own buffer: the step donates the state, and a buffer twice is refused.
  return None if make is None else jax.tree.map(jnp.copy, make(b, tx))


# --------------------------------------------------------------------------- loss weights


def _key(b: Balancer, step: jax.Array) -> jax.Array:
  return jax.random.fold_in(jax.random.key(b.seed), step)


def _stch_weights(b: Balancer, state, losses):
  warm = state['epoch'].epochs < b.option('warmup_epochs')
  _, warm_w = weighting.stch(losses)
  _, w = weighting.stch(losses, state['nadir'], b.option('mu'))
  return jnp.where(warm, warm_w, w)


def _uncertainty_forms(b: Balancer) -> tuple[str, ...]:
  return tuple(UNCERTAINTY_FORMS[b.option('form')][t] for t in b.tasks)


def _famo_before(b: Balancer, state, losses):
  """The state with FAMO's logits stepped on the last step's and this step's losses (the cheap
  variant the reference code's authors and LibMTL use: the next batch stands in for the same
  batch after the update); this step's weights come from those logits."""
  stepped = weighting.famo_update(
    state['famo'], state['previous'], losses, lr=b.option('lr'),
    weight_decay=b.option('weight_decay'),
  )  # fmt: skip
  famo = jax.tree.map(
    lambda new, old: jnp.where(state['has_previous'], new, old), stepped, state['famo']
  )
  return {'famo': famo, 'previous': losses, 'has_previous': jnp.bool_(1)}


def loss_weights(b: Balancer, state, losses: jax.Array, step: jax.Array):
  """(weights [tasks], state after this step) of a loss-based method (not 'gradnorm', whose
  weights are its state's)."""
  k = len(b.tasks)
  if b.method == 'uncertainty':
    _, w = weighting.uncertainty(losses, state['log_vars'], _uncertainty_forms(b))
    return w, state
  if b.method == 'dwa':
    return weighting.dwa(state['dwa'], b.option('temperature')), state
  if b.method == 'rlw':
    return weighting.rlw(_key(b, step), k), state
  if b.method == 'famo':
    state = _famo_before(b, state, losses)
    return weighting.famo(state['famo'], losses)[1], state
  if b.method == 'stch':
    return _stch_weights(b, state, losses), state
  raise ValueError(f'{b.method!r} is not a loss-based method')


def _uncertainty_step(b: Balancer, state, losses, tx):
  """The log-variances after one step of the run's optimizer on the uncertainty loss."""
  forms = _uncertainty_forms(b)
  grad = jax.grad(lambda s: weighting.uncertainty(losses, s, forms)[0])(state['log_vars'])
  updates, opt_state = tx.update(grad, state['opt_state'], state['log_vars'])
  return {'log_vars': optax.apply_updates(state['log_vars'], updates), 'opt_state': opt_state}


def after_step(b: Balancer, state, losses: jax.Array, tx):
  """The state after an applied (finite) step whose full-batch losses were `losses`."""
  if b.method == 'uncertainty':
    return _uncertainty_step(b, state, losses, tx)
  if b.method in EPOCH_METHODS:
    e = state['epoch']
    return {**state, 'epoch': EpochLosses(e.sums + losses, e.steps + 1, e.epochs)}
  return state


def _end_epoch(b: Balancer, state):
  e = state['epoch']
  means = e.sums / jnp.maximum(e.steps, 1)
  if b.method == 'dwa':
    state = {**state, 'dwa': weighting.dwa_end_epoch(state['dwa'], means)}
  else:  # stch: the nadir is the last warm-up epoch's mean losses
    in_warmup = e.epochs < b.option('warmup_epochs')
    state = {**state, 'nadir': jnp.where(in_warmup, means, state['nadir'])}
  return {
    **state,
    'epoch': EpochLosses(jnp.zeros_like(e.sums), jnp.zeros_like(e.steps), e.epochs + 1),
  }


def at_step_end(b: Balancer, state, step: jax.Array):
  """`state` once step number `step` (1-based count of steps taken) has ended: DWA's and STCH's
  epoch means roll over at each epoch's last step, applied or skipped."""
  if b.method not in EPOCH_METHODS:
    return state
  ends_epoch = step % b.steps_per_epoch == 0
  rolled = _end_epoch(b, state)
  return jax.tree.map(lambda new, old: jnp.where(ends_epoch, new, old), rolled, state)


# --------------------------------------------------------------------------- Jacobian methods


def _keys(path) -> tuple[str, ...]:
  """A jax.tree path as the parameters' names: ('encoder', 'layer4', '1', 'conv2', ...)."""
  return tuple(str(getattr(entry, 'key', getattr(entry, 'idx', entry))) for entry in path)


def shared_mask(b: Balancer, params) -> list[bool]:
  """Per leaf of `params` (in jax.tree order): whether the tasks share it."""
  paths = [_keys(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
  if b.shared is None:
    return [True] * len(paths)
  return [path[0] in b.shared for path in paths]


def layer_mask(prefix: tuple[str, ...], params) -> list[bool]:
  """Per leaf of `params` (in jax.tree order): whether it lies under the path `prefix`; a
  ValueError when none does."""
  paths = [_keys(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
  mask = [path[: len(prefix)] == prefix for path in paths]
  if not any(mask):
    raise ValueError(f'the model has no parameters under {".".join(prefix)}')
  return mask


def least_squares_weights(J: jax.Array, d: jax.Array) -> jax.Array:
  """w minimising ‖wᵀJ - d‖: the weight the direction d gives each task's gradient."""
  G = aggregators.gramian(J)
  return jnp.matmul(aggregators.pinv(G), jnp.matmul(J, d, precision=aggregators.HIGHEST))


def _aggregator_options(b: Balancer, step) -> dict:
  given = dict(b.options)
  if b.method in RANDOM_AGGREGATORS:
    given['key'] = _key(b, step)
  return given


def weighted_sum(weights: jax.Array, jacobian):
  """Σ_t w_t·J_t per leaf of the per-task gradients (each leaf [tasks, ...])."""
  return jax.tree.map(lambda g: jnp.tensordot(weights.astype(g.dtype), g, 1), jacobian)


def _gradnorm(b: Balancer, state, losses, J):
  """(this step's weights, the state after it): Chen et al.'s update of the weights from each
  task's gradient norm, the norms of J's rows (the gradients on W); L(0) is the first step's
  losses."""
  initial = jnp.where(state['started'], state['initial'], losses)
  w = state['weights']
  norms = jnp.linalg.norm(J, axis=1)
  new = weighting.gradnorm(w, norms, losses, initial, b.option('alpha'), b.option('lr')).weights
  return w, {'weights': new, 'initial': initial, 'started': jnp.bool_(1)}


def from_jacobian(b: Balancer, state, losses: jax.Array, jacobian, step: jax.Array):
  """(gradient, weights [tasks], state) from the per-task gradients `jacobian` (the params'
  tree, each leaf [tasks, ...])."""
  leaves, treedef = jax.tree.flatten(jacobian)
  shared = shared_mask(b, jacobian)
  k = len(b.tasks)
  rows = [leaf.reshape(k, -1) for leaf, s in zip(leaves, shared) if s]
  J = jnp.concatenate(rows, axis=1)
  if b.method == 'gradnorm':
    if b.norm_layer is not None:
      on = layer_mask(b.norm_layer, jacobian)
      J = jnp.concatenate([leaf.reshape(k, -1) for leaf, m in zip(leaves, on) if m], axis=1)
    w, state = _gradnorm(b, state, losses, J)
    return weighted_sum(w, jacobian), w, state
  d = aggregate(b.method, J, **_aggregator_options(b, step))
  pieces = iter(jnp.split(d, np.cumsum([r.shape[1] for r in rows])[:-1]))
  combined = [
    next(pieces).reshape(leaf.shape[1:]) if s else leaf.sum(0) for leaf, s in zip(leaves, shared)
  ]
  return jax.tree.unflatten(treedef, combined), least_squares_weights(J, d), state
