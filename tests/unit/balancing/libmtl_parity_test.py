"""mtl_jax.balancing.weighting equal to LibMTL 1.1.5's own weighting classes (UW, DWA, GradNorm),
driven the way LibMTL's Trainer drives them, on small least-squares task losses of 2 and 3 tasks:
the weights each returns, and the gradients its backward leaves on the shared parameters and on
its own parameters.

LibMTL 1.1.5 has no FAMO or STCH (weighting_test.py checks those against the authors' formulas),
and RLW draws its weights from torch's generator, so only its formula is checked there. Its
package __init__ imports torchvision.models.utils, which torchvision removed in 0.13; the
weighting modules need only torch, so they are loaded under bare parent packages.
"""

import importlib
import importlib.util
import pathlib
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.balancing import weighting as wt

torch = pytest.importorskip('torch')

CLOSE = {'rtol': 1e-5, 'atol': 1e-6}
PARAMS = 5  # shared parameters θ


@pytest.fixture(scope='module')
def libmtl():
  """name → LibMTL's weighting class of that name; sys.modules as it was afterwards."""
  spec = importlib.util.find_spec('LibMTL')
  if spec is None:
    pytest.skip('LibMTL is not installed (the test extra pins LibMTL==1.1.5)')
  root = pathlib.Path(spec.submodule_search_locations[0])
  before = set(sys.modules)
  for name, path in (('LibMTL', root), ('LibMTL.weighting', root / 'weighting')):
    package = types.ModuleType(name)
    package.__path__ = [str(path)]
    sys.modules[name] = package
  yield lambda name: getattr(importlib.import_module(f'LibMTL.weighting.{name}'), name)
  for name in set(sys.modules) - before:
    del sys.modules[name]


def problem(tasks: int, seed: int = 0):
  """(θ, A, b): task t's loss is ½‖A_t θ − b_t‖² + 0.1, so every loss is positive."""
  rng = np.random.default_rng(seed)
  theta = rng.normal(size=PARAMS).astype(np.float32)
  A = rng.normal(size=(tasks, 3, PARAMS)).astype(np.float32)
  b = rng.normal(size=(tasks, 3)).astype(np.float32)
  return theta, A, b


def jax_losses(theta, A, b):
  return 0.5 * jnp.sum((jnp.einsum('tij,j->ti', A, theta) - b) ** 2, axis=1) + 0.1


def torch_losses(theta, A, b):
  residual = torch.einsum('tij,j->ti', torch.from_numpy(A), theta) - torch.from_numpy(b)
  return 0.5 * (residual**2).sum(1) + 0.1


def libmtl_model(cls, tasks: int, theta: np.ndarray, **attributes):
  """An instance of LibMTL weighting `cls` with θ as its shared parameters, set up as LibMTL's
  Trainer sets up its model (task_num, device, rep_grad, epoch, train_loss_buffer)."""

  class Model(cls):
    def __init__(self):
      super().__init__()
      self.task_num, self.device, self.rep_grad, self.epoch = tasks, 'cpu', False, 0
      self.__dict__.update(attributes)
      self.theta = torch.nn.Parameter(torch.from_numpy(theta.copy()))
      self.init_param()

    def get_share_params(self):
      return [self.theta]

    def zero_grad_share_params(self):
      if self.theta.grad is not None:
        self.theta.grad.zero_()

  return Model()


@pytest.mark.parametrize('tasks', [2, 3])
def test_uncertainty_equals_libmtl_uw(libmtl, tasks):
  theta, A, b = problem(tasks)
  model = libmtl_model(libmtl('UW'), tasks, theta)
  log_vars = np.linspace(-0.9, 0.6, tasks).astype(np.float32)
  model.loss_scale.data = torch.from_numpy(log_vars.copy())
  weights = model.backward(torch_losses(model.theta, A, b))

  total = lambda th, s: wt.uncertainty(jax_losses(th, A, b), s)[0]
  grad_theta, grad_s = jax.grad(total, argnums=(0, 1))(jnp.asarray(theta), jnp.asarray(log_vars))
  _, ours = wt.uncertainty(jax_losses(theta, A, b), jnp.asarray(log_vars))
  np.testing.assert_allclose(ours, weights, **CLOSE)
  np.testing.assert_allclose(grad_theta, model.theta.grad.numpy(), **CLOSE)
  np.testing.assert_allclose(grad_s, model.loss_scale.grad.numpy(), **CLOSE)


def test_uncertainty_starts_where_libmtl_starts(libmtl):
  theirs = libmtl_model(libmtl('UW'), 3, problem(3)[0]).loss_scale.detach().numpy()
  np.testing.assert_array_equal(wt.uncertainty_init(3), theirs)


@pytest.mark.parametrize('tasks', [2, 3])
def test_dwa_equals_libmtl_epoch_by_epoch(libmtl, tasks):
  theta, A, b = problem(tasks)
  rng = np.random.default_rng(1)
  epoch_means = rng.uniform(0.2, 3.0, size=(4, tasks))
  model = libmtl_model(libmtl('DWA'), tasks, theta, train_loss_buffer=epoch_means.T.copy())
  state = wt.dwa_init(tasks)
  for epoch in range(4):
    model.epoch = epoch
    model.theta.grad = None
    theirs = model.backward(torch_losses(model.theta, A, b), T=2.0)
    ours = wt.dwa(state, 2.0)
    np.testing.assert_allclose(ours, theirs, **CLOSE, err_msg=f'epoch {epoch}')
    grad = jax.grad(lambda th, w: jnp.dot(w, jax_losses(th, A, b)))(jnp.asarray(theta), ours)
    np.testing.assert_allclose(grad, model.theta.grad.numpy(), **CLOSE)
    state = wt.dwa_end_epoch(state, epoch_means[epoch])
  assert not np.allclose(theirs, 1.0)  # the last epochs' weights came from the ratios


@pytest.mark.parametrize('tasks', [2, 3])
@pytest.mark.parametrize('alpha', [0.0, 1.5])
def test_gradnorm_loss_and_update_equal_libmtls(libmtl, tasks, alpha):
  """LibMTL keeps w = K·softmax(θ_w) and lets the model's optimizer train θ_w on GradNorm's loss;
  the paper (and mtl_jax) steps w itself. Both share the loss Σ|w_t‖∇L_t‖ − Ḡ·r_tᵅ| (its target
  held) and the update Σ w_t∇L_t: equal values, equal gradients through LibMTL's softmax."""
  theta, A, b = problem(tasks, seed=2)
  initial = np.linspace(1.5, 4.0, tasks)  # LibMTL: the first epoch's mean losses
  model = libmtl_model(libmtl('GradNorm'), tasks, theta, epoch=1)
  model.train_loss_buffer = initial[:, None].copy()
  scale = np.linspace(0.3, -0.4, tasks).astype(np.float32)
  model.loss_scale.data = torch.from_numpy(scale.copy())
  theirs = model.backward(torch_losses(model.theta, A, b), alpha=alpha)

  losses = jax_losses(theta, A, b)
  J = jax.jacobian(jax_losses)(jnp.asarray(theta), A, b)
  norms = jnp.linalg.norm(J, axis=1)
  weights = lambda s: tasks * jax.nn.softmax(s)
  value = lambda s: wt.gradnorm(weights(s), norms, losses, initial, alpha, lr=0.025).loss
  np.testing.assert_allclose(weights(scale), theirs, **CLOSE)
  np.testing.assert_allclose(jax.grad(value)(jnp.asarray(scale)), model.loss_scale.grad, **CLOSE)
  np.testing.assert_allclose(weights(scale) @ J, model.theta.grad.numpy(), **CLOSE)
