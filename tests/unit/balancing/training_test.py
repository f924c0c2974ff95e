"""Balancing inside the train step: each method's update equals the same method applied by hand
to the per-task gradients (computed here independently, one jax.grad per task), task-specific
parameters keep their own task's gradient, and the methods' states advance as their formulas say.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import pixel_model, tiny_joint_model
from flax import nnx

from mtl_jax import balancing as aggregation
from mtl_jax import steps
from mtl_jax.balancing import training as balancing
from mtl_jax.balancing import weighting
from mtl_jax.models import mtl

TX = optax.sgd(1.0)  # the update is minus the gradient: read the gradient off the parameters
SPEC = steps.TaskSpec()


def tiny_branched_model(seed: int = 0):
  return mtl.build_model(
    'branched',
    seed=seed,
    encoder=mtl.EncoderOptions('resnet_tiny'),
    head=mtl.HeadOptions(aspp_channels=8, decoder_channels=8, skip_channels=4),
  )


def _stepper(model, balancer, tx=TX, **options):
  """(fresh state, the jitted train step) of `model` under `balancer`."""
  graphdef, state = steps.create_train_state(model, tx, balancer)
  step = functools.partial(
    steps.train_step, graphdef=graphdef, tx=tx, spec=SPEC, balancer=balancer, **options
  )
  return state, jax.jit(step)


def _step(model, batch, balancer, state=None, tx=TX):
  graphdef, fresh = steps.create_train_state(model, tx, balancer)
  state = fresh if state is None else state
  step = jax.jit(
    functools.partial(steps.train_step, graphdef=graphdef, tx=tx, spec=SPEC, balancer=balancer)
  )
  return graphdef, state, step(state, batch)


def _gradient_applied(before, after):
  """The gradient SGD(lr 1) applied: before - after, per parameter."""
  return jax.tree.map(lambda b, a: b - a, before.params, after.params)


def _per_task_gradients(model, batch):
  """{task: gradient tree} by one jax.grad per task's loss (train-mode BatchNorm)."""
  graphdef, state = steps.create_train_state(model, TX)

  def task_loss(params, task):
    outputs, _ = steps._forward(graphdef, params, state.batch_stats, batch['image'], train=True)
    return steps.task_losses(outputs, batch, SPEC)[f'loss/{task}']

  return {t: jax.grad(task_loss)(state.params, t) for t in SPEC.tasks}


def _flat(tree, mask=None):
  leaves = jax.tree.leaves(tree)
  mask = mask or [True] * len(leaves)
  return jnp.concatenate([x.ravel() for x, m in zip(leaves, mask) if m])


def _close(a, b, rtol=1e-4, atol=1e-6):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def _near(a, b, tol=1e-4):
  """‖a - b‖ ≤ tol·‖b‖: gradients summed in another order differ elementwise by rounding."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert np.linalg.norm(a - b) <= tol * np.linalg.norm(b), np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.fixture
def batch(scene_batch):
  return {k: jnp.asarray(v) for k, v in scene_batch.items()}


def test_mean_through_the_jacobian_equals_fixed_half_weights(batch):
  """The Jacobian path (one backward pass per task, split into shared and task rows, combined,
  unflattened) gives the fixed 0.5/0.5 step's gradient to rounding."""
  _, state, (fixed, fixed_metrics) = _step(tiny_joint_model(), batch, balancing.Balancer())
  mean = balancing.Balancer(method='mean', shared=mtl.SHARED_MODULES['joint'])
  _, _, (through_jacobian, metrics) = _step(tiny_joint_model(), batch, mean)
  _near(_flat(_gradient_applied(state, through_jacobian)), _flat(_gradient_applied(state, fixed)))
  assert float(metrics['loss/total']) == float(fixed_metrics['loss/total'])
  _close([metrics['weight/semseg'], metrics['weight/depth']], [0.5, 0.5], rtol=1e-3)
  assert float(fixed_metrics['weight/semseg']) == 0.5


@pytest.mark.parametrize(
  'method,options',
  [('upgrad', {}), ('mgda', {}), ('cagrad', {'c': 0.4}), ('imtl_g', {}), ('aligned_mtl', {})],
)
def test_gradient_methods_combine_the_shared_rows_and_leave_task_parameters_their_own(
  batch, method, options
):
  """Branched: the encoder's update is aggregate(method, J) of the tasks' encoder gradients;
  each task's branch and head get that task's gradient alone."""
  model = tiny_branched_model()
  per_task = _per_task_gradients(model, batch)
  b = balancing.Balancer(
    method=method, options=tuple(options.items()), shared=mtl.SHARED_MODULES['branched']
  )
  _, state, (new_state, metrics) = _step(tiny_branched_model(), batch, b)
  applied = _gradient_applied(state, new_state)

  J = jnp.stack([_flat(per_task[t]['encoder']) for t in SPEC.tasks])
  expected = aggregation.aggregate(method, J, **options)
  _near(_flat(applied['encoder']), expected)
  for task in SPEC.tasks:
    for module in ('branches', 'heads'):
      _near(_flat(applied[module][task]), _flat(per_task[task][module][task]))
  # The logged weights reproduce the combined direction from the rows.
  w = jnp.asarray([metrics['weight/semseg'], metrics['weight/depth']])
  _near(w @ J, expected, 1e-3)


def test_random_aggregators_draw_a_new_key_each_step_and_the_same_on_a_rerun(batch):
  b = balancing.Balancer(method='pcgrad', shared=mtl.SHARED_MODULES['joint'], seed=3)
  keys = [balancing._key(b, jnp.int32(s)) for s in (0, 1)]
  assert not np.array_equal(jax.random.key_data(keys[0]), jax.random.key_data(keys[1]))
  _, _, (first, _) = _step(tiny_joint_model(), batch, b)
  _, _, (again, _) = _step(tiny_joint_model(), batch, b)
  for x, y in zip(jax.tree.leaves(first.params), jax.tree.leaves(again.params)):
    np.testing.assert_array_equal(x, y)


def test_rlw_weights_the_one_backward_pass_as_its_formula_says(batch):
  """The loss-based path (one VJP with the weights as cotangent) = Σ w_t ∇L_t by hand."""
  per_task = _per_task_gradients(tiny_joint_model(), batch)
  b = balancing.Balancer(method='rlw', seed=5)
  _, state, (new_state, metrics) = _step(tiny_joint_model(), batch, b)
  w = weighting.rlw(balancing._key(b, jnp.int32(0)), 2)
  _close([metrics['weight/semseg'], metrics['weight/depth']], w, rtol=1e-6)
  expected = w[0] * _flat(per_task['semseg']) + w[1] * _flat(per_task['depth'])
  _near(_flat(_gradient_applied(state, new_state)), expected)


def test_uncertainty_trains_its_log_variances_with_the_run_optimizer(batch):
  b = balancing.Balancer(method='uncertainty', options=(('form', 'kendall'),))
  tx = optax.adam(0.1)
  _, state, (new_state, metrics) = _step(tiny_joint_model(), batch, b, tx=tx)
  s0 = state.balancing['log_vars']
  L = jnp.asarray([metrics['loss/semseg'], metrics['loss/depth']])
  # Kendall's forms: e^-s on the cross-entropy, ½e^-s on depth.
  _close([metrics['weight/semseg'], metrics['weight/depth']], [np.exp(0.5), 0.5 * np.exp(0.5)])
  grad = -jnp.asarray([1.0, 0.5]) * jnp.exp(-s0) * L + 0.5
  updates, _ = tx.update(grad, tx.init(s0), s0)
  _close(new_state.balancing['log_vars'], s0 + updates, rtol=1e-5)


def test_famo_steps_its_logits_from_the_last_and_this_steps_losses(batch):
  b = balancing.Balancer(method='famo', options=(('lr', 0.025), ('weight_decay', 1e-3)))
  state, step = _stepper(tiny_joint_model(), b)
  state, first = step(state, batch)
  np.testing.assert_array_equal(state.balancing['famo'].logits, [0.0, 0.0])  # no "before" yet
  _close([first['weight/semseg'], first['weight/depth']], weighting.famo(
    weighting.famo_init(2), jnp.asarray([first['loss/semseg'], first['loss/depth']])
  )[1], rtol=1e-5)  # fmt: skip
  state, second = step(state, batch)
  L1 = jnp.asarray([first['loss/semseg'], first['loss/depth']])
  L2 = jnp.asarray([second['loss/semseg'], second['loss/depth']])
  expected = weighting.famo_update(weighting.famo_init(2), L1, L2, lr=0.025, weight_decay=1e-3)
  _close(state.balancing['famo'].logits, expected.logits, rtol=1e-5, atol=1e-8)


LAST_CONV = ('encoder', 'layer4', '0', 'conv2')  # tiny_branched_model's last shared layer


@pytest.mark.parametrize('norm_layer', [None, LAST_CONV])
def test_gradnorm_updates_its_weights_from_the_gradient_norms_on_its_layer(batch, norm_layer):
  model = tiny_branched_model()
  per_task = _per_task_gradients(model, batch)
  b = balancing.Balancer(
    method='gradnorm',
    options=(('alpha', 1.5), ('lr', 0.1)),
    shared=mtl.SHARED_MODULES['branched'],
    norm_layer=norm_layer,
  )
  _, state, (new_state, metrics) = _step(tiny_branched_model(), batch, b)
  on = (
    (lambda g: g['encoder'])
    if norm_layer is None
    else (lambda g: g['encoder']['layer4'][0]['conv2'])
  )
  norms = jnp.asarray([jnp.linalg.norm(_flat(on(per_task[t]))) for t in SPEC.tasks])
  L = jnp.asarray([metrics['loss/semseg'], metrics['loss/depth']])
  expected = weighting.gradnorm(jnp.ones(2), norms, L, L, alpha=1.5, lr=0.1).weights
  _close(new_state.balancing['weights'], expected, rtol=1e-4)
  _close([metrics['weight/semseg'], metrics['weight/depth']], [1.0, 1.0])
  assert not np.allclose(expected, 1.0)  # the update moved them


def test_the_norm_layer_picks_its_parameters_and_one_the_model_lacks_is_named():
  params = nnx.state(tiny_branched_model(), nnx.Param)
  names = ['.'.join(map(str, p)) for p, _ in nnx.to_flat_state(params)]
  picked = [n for n, m in zip(names, balancing.layer_mask(LAST_CONV, params)) if m]
  assert picked == ['encoder.layer4.0.conv2.kernel']
  with pytest.raises(ValueError, match='the model has no parameters under encoder.layer9'):
    balancing.layer_mask(('encoder', 'layer9'), params)


def test_dwa_and_stch_roll_their_epoch_means_at_each_epochs_last_step(batch):
  for method, options in (
    ('dwa', (('temperature', 2.0),)),
    ('stch', (('mu', 1.0), ('warmup_epochs', 1))),
  ):
    b = balancing.Balancer(method=method, options=options, steps_per_epoch=2)
    state, step = _stepper(tiny_joint_model(), b, optax.sgd(0.0))
    losses = []
    for _ in range(5):
      state, m = step(state, batch)
      losses.append([m['loss/semseg'], m['loss/depth']])
    epoch = state.balancing['epoch']
    assert int(epoch.epochs) == 2 and int(epoch.steps) == 1, (method, epoch)
    if method == 'dwa':
      _close(state.balancing['dwa'].last, np.mean(losses[2:4], axis=0), rtol=1e-6)
      _close(state.balancing['dwa'].before_last, np.mean(losses[0:2], axis=0), rtol=1e-6)
      assert int(state.balancing['dwa'].epochs) == 2
    else:  # the nadir is set by the last warm-up epoch (the first) only
      _close(state.balancing['nadir'], np.mean(losses[0:2], axis=0), rtol=1e-6)
      _close([m['weight/semseg'], m['weight/depth']], weighting.stch(
        jnp.asarray(losses[4]), state.balancing['nadir'], 1.0)[1], rtol=1e-5)  # fmt: skip


def test_a_nonfinite_step_leaves_the_methods_state_as_it_was(batch):
  b = balancing.Balancer(method='famo', options=(('lr', 0.025), ('weight_decay', 1e-3)))
  state, step = _stepper(tiny_joint_model(), b)
  state, _ = step(state, batch)
  kept = state.balancing
  nan_params = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), state.params)
  state, metrics = step(state.replace(params=nan_params), batch)
  assert float(metrics['nonfinite']) == 1.0
  for x, y in zip(jax.tree.leaves(kept), jax.tree.leaves(state.balancing)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize('method', ['famo', 'upgrad', 'gradnorm'])
def test_accumulated_micro_batches_balance_the_whole_batch(method):
  """Two micro-batches of a BatchNorm-free model with every pixel valid: the accumulated per-task
  gradients and mean losses are the whole batch's, so the step (and FAMO's one-VJP path against
  the accumulated Jacobian) agree to rounding."""
  options = {
    'famo': (('lr', 0.025), ('weight_decay', 1e-3)),
    'gradnorm': (('alpha', 1.5), ('lr', 0.1)),
  }.get(method, ())
  b = balancing.Balancer(method=method, options=options)
  rng = np.random.default_rng(0)
  batch = {
    'image': jnp.asarray(rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)),
    'semseg': jnp.asarray(rng.integers(0, 19, (4, 8, 8)).astype(np.int32)),
    'depth': jnp.asarray(rng.uniform(4, 80, (4, 8, 8)).astype(np.float32)),
  }
  results = []
  for micro_batches in (1, 2):
    state, step = _stepper(pixel_model(), b, micro_batches=micro_batches)
    for _ in range(2):
      state, metrics = step(state, batch)
    results.append((state, metrics))
  (whole, whole_metrics), (accumulated, accumulated_metrics) = results
  _near(_flat(accumulated.params), _flat(whole.params), 1e-6)
  if method != 'upgrad':  # stateless
    _near(_flat(accumulated.balancing), _flat(whole.balancing), 1e-5)
  for key in ('loss/semseg', 'loss/depth', 'weight/semseg', 'weight/depth'):
    _close(accumulated_metrics[key], whole_metrics[key], rtol=1e-5)


def test_a_gradient_method_trains_a_bfloat16_model():
  model = mtl.build_model(
    'branched',
    seed=0,
    encoder=mtl.EncoderOptions('resnet_tiny'),
    head=mtl.HeadOptions(aspp_channels=8, decoder_channels=8, skip_channels=4),
    dtype='bfloat16',
  )
  b = balancing.Balancer(method='upgrad', shared=mtl.SHARED_MODULES['branched'])
  rng = np.random.default_rng(1)
  batch = {
    'image': jnp.asarray(rng.integers(0, 256, (2, 32, 64, 3), dtype=np.uint8)),
    'semseg': jnp.asarray(rng.integers(0, 19, (2, 32, 64)).astype(np.int32)),
    'depth': jnp.asarray(rng.uniform(4, 80, (2, 32, 64)).astype(np.float32)),
  }
  _, state, (new_state, metrics) = _step(model, batch, b)
  assert float(metrics['nonfinite']) == 0.0
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(new_state.params))
  assert 0.0 < float(metrics['weight/semseg']) and 0.0 < float(metrics['weight/depth'])
  assert not np.array_equal(_flat(new_state.params), _flat(state.params))
