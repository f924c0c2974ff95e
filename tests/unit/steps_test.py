"""The pure steps: compiled once, BatchNorm modes, losses that reach the parameters, gradient
accumulation."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from conftest import pixel_model, tiny_joint_model

from mtl_jax import steps
from mtl_jax.depth_codec import DepthCodec


def _tiny_state(tx):
  model = tiny_joint_model()
  return steps.create_train_state(model, tx)


def _batch(seed, n=4, h=32, w=64):
  rng = np.random.default_rng(seed)
  return {
    'image': jnp.asarray(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)),
    'semseg': jnp.asarray(rng.integers(0, 19, (n, h, w)).astype(np.int32)),
    'depth': jnp.asarray(rng.uniform(4, 80, (n, h, w)).astype(np.float32)),
  }


def test_train_step_compiles_once_and_overfits_one_batch(scene_batch):
  tx = optax.adam(1e-2)
  graphdef, state = _tiny_state(tx)
  spec = steps.TaskSpec()

  @chex.assert_max_traces(n=1)
  def train_step(state, batch):
    return steps.train_step(state, batch, graphdef=graphdef, tx=tx, spec=spec)

  step = jax.jit(train_step, donate_argnums=0)
  batch = scene_batch
  losses = []
  for _ in range(40):
    state, scalars = step(state, batch)  # a second trace would raise
    losses.append(float(scalars['loss/total']))
  assert int(state.step) == 40
  assert losses[-1] < 0.5 * losses[0], losses


def test_train_step_updates_running_stats_and_eval_uses_them():
  tx = optax.sgd(0.0)  # no parameter change: isolate the BatchNorm statistics
  graphdef, state = _tiny_state(tx)
  spec = steps.TaskSpec()
  before = jax.tree.leaves(state.batch_stats)
  new_state, _ = steps.train_step(state, _batch(1), graphdef=graphdef, tx=tx, spec=spec)
  after = jax.tree.leaves(new_state.batch_stats)
  assert any(not np.array_equal(a, b) for a, b in zip(before, after))
  # Eval mode reads the running statistics: one image alone or among others gives the same.
  images = _batch(2)['image']
  alone = steps.predict_step(new_state, images[:1], graphdef=graphdef, spec=spec)['depth']
  among = steps.predict_step(new_state, images, graphdef=graphdef, spec=spec)['depth'][:1]
  np.testing.assert_allclose(alone, among, rtol=1e-5, atol=1e-5)


def test_task_weights_scale_the_total_loss():
  outputs = {'semseg': jnp.zeros((1, 2, 2, 19)), 'depth': jnp.zeros((1, 2, 2))}
  batch = {'semseg': jnp.zeros((1, 2, 2), jnp.int32), 'depth': jnp.full((1, 2, 2), 30.0)}
  codec = DepthCodec('linear', mean=20.0, std=20.0)  # gt 30 m encodes to 0.5
  spec = steps.TaskSpec(weights=(0.25, 0.75), codec=codec)
  out = steps.task_losses(outputs, batch, spec)
  np.testing.assert_allclose(out['loss/semseg'], np.log(19), rtol=1e-6)  # uniform logits
  np.testing.assert_allclose(out['loss/depth'], 0.5, rtol=1e-6)  # L1 |0 - 0.5|
  np.testing.assert_allclose(out['loss/total'], 0.25 * np.log(19) + 0.75 * 0.5, rtol=1e-6)


# ----------------------------------------------------------------------------- accumulation


def _jit_step(graphdef, tx, micro_batches=1):
  return jax.jit(
    functools.partial(
      steps.train_step,
      graphdef=graphdef,
      tx=tx,
      spec=steps.TaskSpec(),
      micro_batches=micro_batches,
    )
  )


def test_accumulated_step_equals_the_whole_batch_without_batchnorm():
  """4 micro-batches of 2 = one batch of 8, step after step (every pixel valid, so the mean of
  micro-batch losses is the batch's mean)."""
  tx = optax.sgd(0.1, momentum=0.9)
  graphdef, whole = steps.create_train_state(pixel_model(), tx)
  accumulated = whole
  batch = _batch(3, n=8, h=8, w=8)
  plain, accumulating = _jit_step(graphdef, tx), _jit_step(graphdef, tx, micro_batches=4)
  for _ in range(3):
    whole, whole_metrics = plain(whole, batch)
    accumulated, metrics = accumulating(accumulated, batch)
  for a, b in zip(jax.tree.leaves(accumulated.params), jax.tree.leaves(whole.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  for key in ('loss/total', 'grad_norm'):
    np.testing.assert_allclose(metrics[key], whole_metrics[key], rtol=1e-5, err_msg=key)


def test_accumulation_normalises_each_micro_batch_and_updates_statistics_in_turn():
  """PyTorch's accumulation with BatchNorm: micro-batch j (rows j, j+4, ... of 8) is
  normalised by its own statistics, the running averages take the micro-batches in order, the
  update is the mean of the micro-batch updates and the losses their mean."""
  tx = optax.sgd(0.1)  # no momentum: one update is linear in the gradient
  graphdef, start = _tiny_state(tx)
  batch = _batch(4, n=8)
  accumulated, metrics = _jit_step(graphdef, tx, micro_batches=4)(start, batch)
  plain = _jit_step(graphdef, tx)
  micro = [jax.tree.map(lambda x, j=j: x[j::4], batch) for j in range(4)]
  alone = [plain(start, m) for m in micro]  # each micro-batch's step from the same start
  mean_params = jax.tree.map(lambda *p: sum(p) / 4, *(s.params for s, _ in alone))
  for a, b in zip(jax.tree.leaves(accumulated.params), jax.tree.leaves(mean_params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  mean_loss = np.mean([m['loss/total'] for _, m in alone])
  np.testing.assert_allclose(metrics['loss/total'], mean_loss, rtol=1e-6)
  in_turn = start  # the statistics of micro-batches 0..3 in order, parameters held fixed
  for m in micro:
    in_turn = plain(in_turn, m)[0].replace(params=start.params, opt_state=start.opt_state)
  for a, b in zip(jax.tree.leaves(accumulated.batch_stats), jax.tree.leaves(in_turn.batch_stats)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
