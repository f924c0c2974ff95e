"""The pure steps: compiled once, BatchNorm modes, losses that reach the parameters."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from conftest import tiny_joint_model

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
