"""Schedules and optimizers: values of the poly schedule, where weight decay applies."""

import jax.numpy as jnp
import optax
import pytest

from mtl_jax import optim


def test_poly_schedule_values():
  schedule = optim.learning_rate_schedule('poly', 0.1, total_steps=100)
  assert float(schedule(0)) == pytest.approx(0.1)
  assert float(schedule(50)) == pytest.approx(0.1 * 0.5**0.9, rel=1e-5)
  assert float(schedule(100)) == pytest.approx(0.0)


def test_warmup_then_decay():
  schedule = optim.learning_rate_schedule('cosine', 1.0, total_steps=110, warmup_steps=10)
  assert float(schedule(5)) == pytest.approx(0.5)
  assert float(schedule(10)) == pytest.approx(1.0)
  assert float(schedule(60)) == pytest.approx(0.5, abs=1e-5)


@pytest.mark.parametrize('name', optim.OPTIMIZERS)
def test_weight_decay_touches_kernels_not_biases_or_bn(name):
  params = {'kernel': jnp.ones((3, 3, 1, 1)), 'bias': jnp.ones((1,)), 'scale': jnp.ones((1,))}
  zero_grads = {k: jnp.zeros_like(v) for k, v in params.items()}
  tx = optim.make_optimizer(name, optax.constant_schedule(0.1), weight_decay=0.5)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  assert float(jnp.abs(updates['kernel']).max()) > 0
  assert float(jnp.abs(updates['bias']).max()) == 0
  assert float(jnp.abs(updates['scale']).max()) == 0


def test_sgd_step_is_lr_times_gradient():
  tx = optim.make_optimizer('sgd', optax.constant_schedule(0.1), momentum=0.9)
  params = {'kernel': jnp.ones((2, 2))}
  updates, _ = tx.update({'kernel': jnp.full((2, 2), 2.0)}, tx.init(params), params)
  assert jnp.allclose(updates['kernel'], -0.2)


def test_unknown_names_are_listed():
  with pytest.raises(ValueError, match="unknown optimizer 'lamb'; valid names: sgd, adam, adamw"):
    optim.make_optimizer('lamb', optax.constant_schedule(0.1))
  with pytest.raises(ValueError, match="unknown schedule 'step'; valid names: poly"):
    optim.learning_rate_schedule('step', 0.1, 10)
