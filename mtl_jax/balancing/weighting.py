"""Loss-based task weighting: per-task losses [tasks] → the total to differentiate, or weights.

Every method is a small pure function of the losses and an explicit state (a NamedTuple of arrays
or a plain array), so the caller keeps the state in its train state and the step stays jit-able.
Where a method returns `(total, weights)`, `weights` is ∂total/∂losses: the effective weight each
task's loss gets in the model's gradient (FAMO's and STCH's include their log transform). Options
are plain Python values checked up front (one ValueError naming the option), as in __init__.

- uncertainty (Kendall, Gal & Cipolla 2018), s = log σ²: regression ½e⁻ˢL + ½s (eq. 7's
  1/(2σ²)·L + log σ), classification e⁻ˢL + ½s (eq. 10's approximation 1/σ²·L + log σ).
  LibMTL's UW uses the regression form for every task and starts s at -0.5; `forms=None` does the
  same. For segmentation + depth the paper's choice is ('classification', 'regression'): a
  softmax cross-entropy scaled by 1/σ², a depth loss by 1/(2σ²).
- dwa (Liu, Johns & Davison 2019): w = K·softmax(r/T), r_t = L_t(k-1)/L_t(k-2) from the mean
  training losses of the previous two epochs; 1 for the first two epochs (LibMTL, MTAN).
- rlw (Lin et al. 2022): softmax of a standard normal draw each step (LibMTL's default 'Normal').
- famo (Liu et al. 2023): Algorithm 2 of the paper = the authors' famo.py = LibMTL's FAMO: loss
  Σ z log(L - L_min + ε)/c with z = softmax(ξ) and c = Σ z/(L - L_min + ε) held constant, then ξ
  stepped by Adam (torch's, with L2 `weight_decay` = the paper's γ) along the softmax VJP of
  log L_before - log L_after. Defaults lr 0.025 and γ 1e-3 (LibMTL, Algorithm 2; famo.py has 0.01).
- gradnorm (Chen et al. 2018): the paper's update (SGD on the weights, then renormalised to sum
  to K), not LibMTL's (weights K·softmax(θ), θ trained by the model's optimizer).
- stch (Lin et al. 2024, smooth Tchebycheff): the authors' STCH_MTL code (= LibMTL's STCH):
  K·μ·logsumexp(λ·log(L/nadir)/μ) after warm-up epochs of Σ log L that set `nadir`.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.balancing import options

FORMS = {'regression': 0.5, 'classification': 1.0}  # the factor on e⁻ˢ·L
UW_INITIAL_LOG_VAR = -0.5  # LibMTL's
FAMO_EPS = 1e-8  # the reference code's, inside its logs
STCH_EPS = 1e-20  # the authors' STCH code's, inside its logs


def _tasks(losses) -> int:
  if jnp.ndim(losses) != 1:
    raise ValueError(f'the losses must be [tasks], got shape {jnp.shape(losses)}')
  return jnp.shape(losses)[0]


def _value_and_weights(total_fn, losses):
  return jax.value_and_grad(total_fn)(jnp.asarray(losses, jnp.result_type(float)))


# Uncertainty weighting.


def uncertainty_init(tasks: int) -> jax.Array:
  """The learned log-variances s = log σ², one per task (a parameter: train it with the model)."""
  return jnp.full(tasks, UW_INITIAL_LOG_VAR)


def uncertainty(losses, log_vars, forms=None) -> tuple[jax.Array, jax.Array]:
  """(Σ c_t e^(-s_t) L_t + ½ s_t, weights c_t e^(-s_t)); c_t = ½ for 'regression', 1 for
  'classification'; `forms=None` is 'regression' for every task (LibMTL)."""
  tasks = _tasks(losses)
  forms = ('regression',) * tasks if forms is None else tuple(forms)
  if len(forms) != tasks or any(form not in FORMS for form in forms):
    raise ValueError(
      f"option 'forms' must hold 'regression' or 'classification' per task ({tasks}), got {forms}"
    )
  factor = jnp.asarray([FORMS[form] for form in forms])
  total = lambda L: jnp.sum(factor * jnp.exp(-log_vars) * L + 0.5 * log_vars)
  return _value_and_weights(total, losses)


# Dynamic weight average.


class DwaState(NamedTuple):
  last: jax.Array  # [tasks] mean training losses of the last finished epoch
  before_last: jax.Array  # [tasks] ... of the epoch before it
  epochs: jax.Array  # finished epochs


def dwa_init(tasks: int) -> DwaState:
  return DwaState(jnp.ones(tasks), jnp.ones(tasks), jnp.zeros((), jnp.int32))


def dwa_end_epoch(state: DwaState, mean_losses) -> DwaState:
  """The state after an epoch whose per-task mean training losses were `mean_losses`."""
  return DwaState(jnp.asarray(mean_losses, state.last.dtype), state.last, state.epochs + 1)


def dwa(state: DwaState, temperature: float = 2.0) -> jax.Array:
  """This epoch's weights: K·softmax(r/T) with r = last/before_last; ones until 2 epochs end."""
  temperature = options.number('temperature', temperature, 0.0, strict=True)
  tasks = len(state.last)
  ratio = state.last / jnp.where(state.before_last == 0, 1.0, state.before_last)
  weights = tasks * jax.nn.softmax(ratio / temperature)
  return jnp.where(state.epochs >= 2, weights, jnp.ones_like(weights))


# Random loss weighting.


def rlw(key: jax.Array, tasks: int) -> jax.Array:
  """Weights softmax(ε), ε ~ N(0, I) drawn from `key` (a fresh key every step)."""
  return jax.nn.softmax(jax.random.normal(key, (tasks,)))


# FAMO.


class FamoState(NamedTuple):
  logits: jax.Array  # ξ [tasks]; the task weights are softmax(ξ)
  mu: jax.Array  # Adam's first moment [tasks]
  nu: jax.Array  # Adam's second moment [tasks]
  count: jax.Array  # Adam steps taken


def famo_init(tasks: int) -> FamoState:
  zeros = jnp.zeros(tasks)
  return FamoState(zeros, zeros, zeros, jnp.zeros((), jnp.int32))


def famo(state: FamoState, losses, min_losses=0.0) -> tuple[jax.Array, jax.Array]:
  """(Σ z_t log D_t / c, weights z_t/(c·D_t)) with D = L - L_min + ε, z = softmax(ξ), c = Σ z/D
  held constant: the weights sum to 1. The logits get no gradient from this total."""
  _tasks(losses)
  z = jax.lax.stop_gradient(jax.nn.softmax(state.logits))

  def total(L):
    D = L - min_losses + FAMO_EPS
    c = jax.lax.stop_gradient(jnp.sum(z / D))
    return jnp.sum(jnp.log(D) * z / c)

  return _value_and_weights(total, losses)


def famo_update(
  state: FamoState, losses_before, losses_after, min_losses=0.0, lr=0.025, weight_decay=1e-3
) -> FamoState:
  """ξ after one step: the softmax VJP of δ = log D_before - log D_after, plus weight_decay·ξ,
  through one torch-Adam step (β 0.9/0.999, ε 1e-8). `losses_after` are the same batch's losses
  under the updated model (the reference code) or the next batch's (a cheaper variant)."""
  lr = options.number('lr', lr, 0.0, strict=True)
  weight_decay = options.number('weight_decay', weight_decay, 0.0, strict=False)
  log_d = lambda L: jnp.log(jnp.asarray(L) - min_losses + FAMO_EPS)
  delta = jax.lax.stop_gradient(log_d(losses_before) - log_d(losses_after))
  _, vjp = jax.vjp(jax.nn.softmax, state.logits)
  grad = vjp(delta)[0] + weight_decay * state.logits
  b1, b2, eps = 0.9, 0.999, 1e-8
  count = state.count + 1
  mu = b1 * state.mu + (1 - b1) * grad
  nu = b2 * state.nu + (1 - b2) * grad**2
  mu_hat, nu_hat = mu / (1 - b1**count), nu / (1 - b2**count)
  logits = state.logits - lr * mu_hat / (jnp.sqrt(nu_hat) + eps)
  return FamoState(logits, mu, nu, count)


# GradNorm.


class GradNormStep(NamedTuple):
  weights: jax.Array  # the updated weights [tasks], summing to tasks
  loss: jax.Array  # the GradNorm loss at the old weights (for logging)


def gradnorm(weights, grad_norms, losses, initial_losses, alpha=1.5, lr=None) -> GradNormStep:
  """One GradNorm update of the loss weights w (Chen et al. 2018, Algorithm 1).

  `grad_norms` are ‖∇_W L_t‖ of the *unweighted* losses on the last shared layer W, so that
  G_t = w_t·‖∇_W L_t‖ (the weighted losses' norms) and ∂G_t/∂w_t = ‖∇_W L_t‖ need no division by
  w. With r_t = L̃_t/mean(L̃), L̃ = L/L(0), the loss Σ|G_t - Ḡ·r_t^α| has its target Ḡ·r^α held
  constant; w takes one SGD step of size `lr` on it and is renormalised to sum to K.
  """
  alpha = options.number('alpha', alpha, 0.0, strict=False)
  lr = options.number('lr', lr, 0.0, strict=True)
  _tasks(losses)
  weights = jnp.asarray(weights, jnp.result_type(float))
  ratios = jnp.asarray(losses) / jnp.asarray(initial_losses)
  inverse_rate = ratios / jnp.mean(ratios)

  def loss(w):
    G = w * grad_norms
    target = jax.lax.stop_gradient(jnp.mean(G) * inverse_rate**alpha)
    return jnp.sum(jnp.abs(G - target))

  value, grad = jax.value_and_grad(loss)(weights)
  stepped = weights - lr * grad
  return GradNormStep(len(weights) * stepped / jnp.sum(stepped), value)


# Smooth Tchebycheff.


def stch(losses, nadir=None, mu=None, preference=None) -> tuple[jax.Array, jax.Array]:
  """(total, weights): K·μ·logsumexp(λ·log(L/nadir + ε)/μ) (λ = `preference`, ones by default);
  with `nadir=None` (the warm-up epochs) Σ log(L + ε). The authors' code sets the nadir to the
  mean losses over the last warm-up epoch; its total omits the detached max that logsumexp's shift
  subtracts (same gradient), this one keeps it: the paper's value, times K."""
  tasks = _tasks(losses)
  if nadir is None:
    return _value_and_weights(lambda L: jnp.sum(jnp.log(L + STCH_EPS)), losses)
  mu = options.number('mu', mu, 0.0, strict=True)
  if preference is None:
    preference = (1.0,) * tasks
  if len(preference) != tasks or any(float(p) < 0 for p in preference):
    raise ValueError(f"option 'preference' must hold one number ≥ 0 per task, got {preference}")
  lam = jnp.asarray(preference, jnp.result_type(float))
  total = lambda L: tasks * mu * jax.nn.logsumexp(lam * jnp.log(L / nadir + STCH_EPS) / mu)
  return _value_and_weights(total, losses)
