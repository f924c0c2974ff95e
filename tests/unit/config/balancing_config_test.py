"""config.loss.balancing and its options: refused in one line before anything compiles, and
turned into the step's `Balancer` with the options its method reads."""

import pytest
from conftest import CONFIG_DIR

from mtl_jax import experiment
from mtl_jax.balancing import training
from mtl_jax.config import files, schema


def _config(path='joint.py', **loss):
  config = files.load_config_file(CONFIG_DIR / path, 'tiny')
  config.loss.update(loss)
  return config


def test_an_unknown_method_is_one_line_listing_the_valid_ones():
  with pytest.raises(schema.ConfigError) as error:
    schema.validate(_config(balancing='uncertainity'))
  message = str(error.value)
  assert message.startswith("config.loss.balancing='uncertainity' is not valid; choose one of: ")
  assert message.endswith(', '.join(training.METHODS)) and '\n' not in message
  assert {'fixed', 'uncertainty', 'gradnorm', 'upgrad', 'pcgrad', 'famo'} <= set(training.METHODS)


def test_a_method_on_a_single_task_model_is_refused():
  config = _config('single_task.py', balancing='dwa')
  with pytest.raises(schema.ConfigError, match=r"config.loss.balancing='dwa' balances two or more"):
    schema.validate(config)
  schema.validate(_config('single_task.py'))  # 'fixed' is fine


@pytest.mark.parametrize(
  'knob,value,problem',
  [
    ('dwa_temperature', 0.0, 'must be > 0'),
    ('cagrad_c', -0.1, 'must be >= 0'),
    ('famo_lr', -1.0, 'must be > 0'),
    ('uncertainty_form', 'gaussian', 'is not valid; choose one of: kendall, regression'),
    ('gradnorm_layer', 'first', 'is not valid; choose one of: last, shared'),
  ],
)
def test_an_option_outside_its_range_is_one_line(knob, value, problem):
  with pytest.raises(schema.ConfigError, match=f'config.loss.{knob}=.* {problem}'):
    schema.validate(_config(balancing='dwa', **{knob: value}))


@pytest.mark.parametrize('path,arch_shared', [('joint.py', None), ('branched.py', ('encoder',))])
def test_the_balancer_carries_the_methods_options_and_the_shared_modules(path, arch_shared):
  b = experiment.balancer(_config(path, balancing='famo', famo_lr=0.5), steps_per_epoch=7)
  assert b.method == 'famo' and b.tasks == ('semseg', 'depth') and b.steps_per_epoch == 7
  assert dict(b.options) == {'lr': 0.5, 'weight_decay': 1e-3}
  assert b.shared == arch_shared
  cagrad = experiment.balancer(_config(path, balancing='cagrad'))
  assert dict(cagrad.options) == {'c': 0.4}
  assert experiment.balancer(_config(path)).options == ()


@pytest.mark.parametrize(
  'path,layer',
  [
    ('joint.py', ('branch', 'decoder', 'convs', '1', 'conv')),
    ('branched.py', ('encoder', 'layer4', '0', 'conv2')),  # resnet_tiny: one block per stage
    ('distilled.py', ('encoder', 'layer4', '0', 'conv2')),
  ],
)
def test_gradnorm_takes_its_norms_on_the_last_shared_layer_unless_told_every_shared_one(
  path, layer
):
  assert experiment.balancer(_config(path, balancing='gradnorm')).norm_layer == layer
  assert (
    experiment.balancer(_config(path, balancing='gradnorm', gradnorm_layer='shared')).norm_layer
    is None
  )
  assert experiment.balancer(_config(path, balancing='upgrad')).norm_layer is None
