"""mtl_jax.balancing.weighting against numpy transcriptions of each paper's / LibMTL's formula on
2- and 3-task cases, the methods' edge cases, jit and bad options. Expected numbers never come from
the functions under test."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.balancing import weighting as wt

LOSSES = {2: np.array([0.8, 2.5]), 3: np.array([1.3, 0.4, 3.0])}
CLOSE = {'rtol': 1e-5, 'atol': 1e-6}


def softmax(x):
  e = np.exp(x - np.max(x))
  return e / e.sum()


# Uncertainty weighting.


@pytest.mark.parametrize('tasks', [2, 3])
def test_uncertainty_libmtl_form(tasks):
  L, s = LOSSES[tasks], np.linspace(-0.5, 0.7, tasks)
  total, weights = wt.uncertainty(L, jnp.asarray(s))
  np.testing.assert_allclose(total, np.sum(L / (2 * np.exp(s)) + s / 2), **CLOSE)  # LibMTL UW
  np.testing.assert_allclose(weights, 1 / (2 * np.exp(s)), **CLOSE)


def test_uncertainty_kendall_forms():
  L, s = np.array([1.3, 0.4, 3.0]), np.array([0.2, -0.3, 1.1])
  total, weights = wt.uncertainty(L, jnp.asarray(s), ('classification', 'regression', 'regression'))
  sigma2 = np.exp(s)  # s = log σ²; eq. 10 (1/σ²·L + log σ) and eq. 7 (1/(2σ²)·L + log σ)
  expected = L[0] / sigma2[0] + np.log(np.sqrt(sigma2[0]))
  expected += np.sum(L[1:] / (2 * sigma2[1:]) + np.log(np.sqrt(sigma2[1:])))
  np.testing.assert_allclose(total, expected, **CLOSE)
  np.testing.assert_allclose(weights, [1 / sigma2[0], *(0.5 / sigma2[1:])], **CLOSE)


def test_uncertainty_log_vars_are_learned():
  L, s = np.array([0.8, 2.5]), jnp.array([0.0, 0.4])
  grad = jax.grad(lambda s: wt.uncertainty(L, s, ('classification', 'regression'))[0])(s)
  np.testing.assert_allclose(grad, [-L[0] + 0.5, -0.5 * np.exp(-0.4) * L[1] + 0.5], **CLOSE)
  assert np.allclose(wt.uncertainty_init(3), -0.5)


# DWA.


def test_dwa_first_two_epochs_are_ones():
  state = wt.dwa_init(3)
  np.testing.assert_array_equal(wt.dwa(state), np.ones(3))
  state = wt.dwa_end_epoch(state, [1.0, 2.0, 3.0])
  np.testing.assert_array_equal(wt.dwa(state), np.ones(3))


@pytest.mark.parametrize('tasks', [2, 3])
def test_dwa_after_two_epochs(tasks):
  epoch0, epoch1 = LOSSES[tasks], LOSSES[tasks] * np.linspace(0.5, 1.1, tasks)
  state = wt.dwa_end_epoch(wt.dwa_end_epoch(wt.dwa_init(tasks), epoch0), epoch1)
  for T in (2.0, 0.5):
    r = epoch1 / epoch0  # LibMTL: buffer[:, epoch-1] / buffer[:, epoch-2]
    expected = tasks * np.exp(r / T) / np.sum(np.exp(r / T))
    np.testing.assert_allclose(wt.dwa(state, temperature=T), expected, **CLOSE)
  state = wt.dwa_end_epoch(state, epoch0)  # the window slides: now epoch0 / epoch1
  np.testing.assert_allclose(wt.dwa(state), tasks * softmax(epoch0 / epoch1 / 2), **CLOSE)


# RLW.


def test_rlw_is_softmax_of_a_normal_draw():
  key = jax.random.key(3)
  weights = wt.rlw(key, 3)
  np.testing.assert_allclose(weights, softmax(np.asarray(jax.random.normal(key, (3,)))), **CLOSE)
  assert np.isclose(weights.sum(), 1.0) and (weights > 0).all()
  assert not np.allclose(weights, wt.rlw(jax.random.key(4), 3))


# FAMO.


def famo_reference(L, xi, min_losses=0.0):
  """LibMTL FAMO.backward: the loss and, by hand, its derivative in L with c constant."""
  z, D = softmax(xi), L - min_losses + 1e-8
  c = np.sum(z / D)
  return np.sum(np.log(D) * z / c), z / (c * D)


def torch_adam(p, g, m, v, t, lr, wd, b1=0.9, b2=0.999, eps=1e-8):
  """torch.optim.Adam's step (L2 weight decay added to the gradient)."""
  g = g + wd * p
  m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
  denom = np.sqrt(v) / np.sqrt(1 - b2**t) + eps
  return p - lr / (1 - b1**t) * m / denom, m, v


@pytest.mark.parametrize('tasks', [2, 3])
def test_famo_loss_and_weights(tasks):
  L, xi = LOSSES[tasks], np.linspace(-0.3, 0.4, tasks)
  state = wt.famo_init(tasks)._replace(logits=jnp.asarray(xi))
  for min_losses in (0.0, 0.1):
    total, weights = wt.famo(state, L, min_losses)
    expected_total, expected_weights = famo_reference(L, xi, min_losses)
    np.testing.assert_allclose(total, expected_total, **CLOSE)
    np.testing.assert_allclose(weights, expected_weights, **CLOSE)
    np.testing.assert_allclose(weights.sum(), 1.0, **CLOSE)
  # initial logits 0: z uniform, weights ∝ 1/L
  _, weights = wt.famo(wt.famo_init(tasks), L)
  np.testing.assert_allclose(weights, (1 / L) / np.sum(1 / L), **CLOSE)


@pytest.mark.parametrize('tasks', [2, 3])
def test_famo_update_is_libmtl_update_w(tasks):
  rng = np.random.default_rng(tasks)
  lr, wd = 0.025, 1e-3
  state, xi = wt.famo_init(tasks), np.zeros(tasks)
  m, v = np.zeros(tasks), np.zeros(tasks)
  for t in range(1, 4):  # three steps: bias correction and decay both exercised
    before = rng.uniform(0.5, 3.0, tasks)
    after = before * rng.uniform(0.7, 1.1, tasks)
    delta = np.log(before + 1e-8) - np.log(after + 1e-8)
    z = softmax(xi)
    grad = (np.diag(z) - np.outer(z, z)) @ delta  # softmax Jacobian (symmetric) times δ
    xi, m, v = torch_adam(xi, grad, m, v, t, lr, wd)
    state = wt.famo_update(state, before, after, lr=lr, weight_decay=wd)
    np.testing.assert_allclose(state.logits, xi, rtol=1e-4, atol=1e-7)
  assert int(state.count) == 3


def test_famo_favours_the_task_that_improves_least():
  state = wt.famo_update(wt.famo_init(2), np.array([1.0, 1.0]), np.array([0.5, 0.99]))
  z = jax.nn.softmax(state.logits)
  assert z[1] > z[0]


# GradNorm.


def gradnorm_reference(w, g, L, L0, alpha, lr):
  """Chen et al. 2018 Algorithm 1: G = w·g; target Ḡ·r^α constant; d|G-target|/dw = sign·g."""
  G = w * g
  ratios = L / L0
  r = ratios / ratios.mean()
  target = G.mean() * r**alpha
  loss = np.abs(G - target).sum()
  stepped = w - lr * np.sign(G - target) * g
  return len(w) * stepped / stepped.sum(), loss


@pytest.mark.parametrize('tasks', [2, 3])
@pytest.mark.parametrize('alpha', [0.0, 1.5])
def test_gradnorm_step(tasks, alpha):
  w = np.linspace(0.6, 1.4, tasks) * tasks / np.linspace(0.6, 1.4, tasks).sum()
  g, L = np.linspace(3.0, 0.5, tasks), LOSSES[tasks]
  L0 = L * np.linspace(1.2, 3.0, tasks)
  result = wt.gradnorm(w, g, L, L0, alpha=alpha, lr=0.05)
  expected_w, expected_loss = gradnorm_reference(w, g, L, L0, alpha, 0.05)
  np.testing.assert_allclose(result.weights, expected_w, **CLOSE)
  np.testing.assert_allclose(result.loss, expected_loss, **CLOSE)
  np.testing.assert_allclose(result.weights.sum(), tasks, **CLOSE)


def test_gradnorm_renormalises_and_moves_toward_balance():
  # equal training rates, task 0's gradient 4x larger: its weight goes down, the sum stays K
  w, g, L = np.ones(2), np.array([4.0, 1.0]), np.array([1.0, 1.0])
  result = wt.gradnorm(w, g, L, L, alpha=1.5, lr=0.1)
  # G = (4, 1), Ḡ = 2.5: grad (4, -1); stepped (0.6, 1.1); renormalised 2·(0.6, 1.1)/1.7
  np.testing.assert_allclose(result.weights, [1.2 / 1.7, 2.2 / 1.7], **CLOSE)
  np.testing.assert_allclose(result.loss, 3.0, **CLOSE)


# STCH.


def stch_reference(L, nadir, mu, lam):
  """The authors' STCH.backward after warm-up (+ its detached max, to give the paper's value),
  and its derivative in L by hand."""
  x = lam * np.log(L / nadir + 1e-20) / mu
  p = softmax(x)
  value = len(L) * mu * (np.log(np.sum(np.exp(x - x.max()))) + x.max())
  return value, len(L) * p * lam / (L + 1e-20 * nadir)


@pytest.mark.parametrize('tasks', [2, 3])
@pytest.mark.parametrize('mu', [1.0, 0.1])
def test_stch(tasks, mu):
  L = LOSSES[tasks]
  nadir = L * np.linspace(1.5, 0.8, tasks)
  total, weights = wt.stch(L, jnp.asarray(nadir), mu=mu)
  expected_total, expected_weights = stch_reference(L, nadir, mu, np.ones(tasks))
  np.testing.assert_allclose(total, expected_total, **CLOSE)
  np.testing.assert_allclose(weights, expected_weights, **CLOSE)
  lam = np.linspace(0.5, 1.0, tasks)
  total, weights = wt.stch(L, jnp.asarray(nadir), mu=mu, preference=tuple(lam))
  expected_total, expected_weights = stch_reference(L, nadir, mu, lam)
  np.testing.assert_allclose(total, expected_total, **CLOSE)
  np.testing.assert_allclose(weights, expected_weights, **CLOSE)


def test_stch_warm_up_is_sum_of_logs():
  L = LOSSES[3]
  total, weights = wt.stch(L)
  np.testing.assert_allclose(total, np.sum(np.log(L)), **CLOSE)
  np.testing.assert_allclose(weights, 1 / L, **CLOSE)


# jit and options.


def test_every_method_jits():
  L = jnp.asarray(LOSSES[3])
  calls = [
    (jax.jit(functools.partial(wt.uncertainty, forms=('classification',) * 3)), (L, jnp.zeros(3))),
    (jax.jit(wt.dwa), (wt.dwa_init(3),)),
    (jax.jit(wt.rlw, static_argnums=1), (jax.random.key(0), 3)),
    (jax.jit(wt.famo), (wt.famo_init(3), L)),
    (jax.jit(wt.famo_update), (wt.famo_init(3), L, L * jnp.array([0.9, 0.5, 1.0]))),
    (jax.jit(functools.partial(wt.gradnorm, lr=0.1)), (jnp.ones(3), L, L, 2 * L)),
    (jax.jit(functools.partial(wt.stch, mu=0.5)), (L, 2 * L)),
  ]
  for fn, args in calls:
    jitted, eager = jax.tree.leaves(fn(*args)), jax.tree.leaves(fn.__wrapped__(*args))
    for a, b in zip(jitted, eager):
      np.testing.assert_allclose(a, b, **CLOSE)


@pytest.mark.parametrize(
  ('call', 'option'),
  [
    (lambda: wt.dwa(wt.dwa_init(2), temperature=0.0), 'temperature'),
    (lambda: wt.dwa(wt.dwa_init(2), temperature=-1), 'temperature'),
    (lambda: wt.gradnorm(np.ones(2), np.ones(2), np.ones(2), np.ones(2), -0.1, 0.1), 'alpha'),
    (lambda: wt.gradnorm(np.ones(2), np.ones(2), np.ones(2), np.ones(2), 1.5, 0.0), 'lr'),
    (lambda: wt.gradnorm(np.ones(2), np.ones(2), np.ones(2), np.ones(2), 1.5), 'lr'),
    (lambda: wt.famo_update(wt.famo_init(2), np.ones(2), np.ones(2), lr=-1.0), 'lr'),
    (
      lambda: wt.famo_update(wt.famo_init(2), np.ones(2), np.ones(2), weight_decay=-1),
      'weight_decay',
    ),
    (lambda: wt.uncertainty(np.ones(2), np.zeros(2), ('regression',)), 'forms'),
    (lambda: wt.uncertainty(np.ones(2), np.zeros(2), ('regression', 'ordinal')), 'forms'),
    (lambda: wt.stch(np.ones(2), np.ones(2), mu=0.0), 'mu'),
    (lambda: wt.stch(np.ones(2), np.ones(2)), 'mu'),
    (lambda: wt.stch(np.ones(2), np.ones(2), mu=1.0, preference=(1.0,)), 'preference'),
  ],
)
def test_bad_options_name_the_option(call, option):
  with pytest.raises(ValueError, match=repr(option)):
    call()


def test_losses_must_be_a_vector():
  with pytest.raises(ValueError, match=r'\[tasks\]'):
    wt.famo(wt.famo_init(2), np.ones((2, 1)))


def test_weights_are_the_gradient_the_model_gets():
  """Differentiating the total in the train step gives the returned weights; FAMO's logits get
  no gradient from it (they move only through famo_update)."""
  L = jnp.asarray(LOSSES[3])
  famo_state = wt.famo_init(3)._replace(logits=jnp.array([0.2, -0.1, 0.4]))
  totals = {
    'uncertainty': lambda L: wt.uncertainty(L, jnp.array([0.1, -0.2, 0.3])),
    'famo': lambda L: wt.famo(famo_state, L),
    'stch': lambda L: wt.stch(L, jnp.array([2.0, 0.5, 4.0]), mu=0.3),
  }
  for name, fn in totals.items():
    gradient = jax.grad(lambda L, fn=fn: fn(L)[0])(L)
    np.testing.assert_allclose(gradient, fn(L)[1], **CLOSE, err_msg=name)
  logit_grad = jax.grad(lambda xi: wt.famo(famo_state._replace(logits=xi), L)[0])(jnp.zeros(3))
  np.testing.assert_array_equal(logit_grad, np.zeros(3))
