"""The command line: user mistakes get one clear line on stderr, exit code 2, no traceback."""

import pytest
from commands import assert_one_line_error, run


@pytest.mark.parametrize(
  'override, fragments',
  [
    ('--config.model.nokey=3', ('unknown config key', '--config.model.nokey=3')),
    ('--config.model.encoder=resnet99', ("config.model.encoder='resnet99'", 'resnet34')),
    ('--config.data.name=imagenet', ("config.data.name='imagenet'", 'synthetic')),
    ('--config.optim.learning_rate=-1', ('config.optim.learning_rate=-1', '> 0')),
    ('--config.model.output_stride=abc', ('--config.model.output_stride=abc',)),
  ],
)
def test_train_rejects_bad_config_values(tmp_path, override, fragments):
  result = run(
    'mtl_jax.train',
    '--config',
    'configs/joint.py:tiny',
    '--workdir',
    str(tmp_path / 'run'),
    override,
  )
  assert_one_line_error(result, 'train', *fragments)
  assert not (tmp_path / 'run').exists()  # nothing is created before the config is checked


def test_train_rejects_unknown_preset_and_missing_config_file(tmp_path):
  result = run('mtl_jax.train', '--config', 'configs/joint.py:huge', '--workdir', str(tmp_path))
  assert_one_line_error(result, 'train', "unknown preset 'huge'", 'tiny', 'cpu')
  result = run('mtl_jax.train', '--config', 'configs/nope.py', '--workdir', str(tmp_path))
  assert_one_line_error(result, 'train', "cannot load config file 'configs/nope.py'")


def test_evaluate_rejects_missing_workdir_and_non_run_dir(tmp_path):
  assert_one_line_error(
    run('mtl_jax.evaluate', '--workdir', str(tmp_path / 'missing')), 'evaluate', 'does not exist'
  )
  assert_one_line_error(
    run('mtl_jax.evaluate', '--workdir', str(tmp_path)), 'evaluate', 'config.json not found'
  )


def test_evaluate_rejects_unknown_step(tiny_run):
  _, workdir, _ = tiny_run
  assert_one_line_error(
    run('mtl_jax.evaluate', '--workdir', str(workdir), '--step', '3'),
    'evaluate',
    'no checkpoint for step 3',
    '[4, 8]',
  )
