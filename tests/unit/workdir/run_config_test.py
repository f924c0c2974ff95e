"""A run's config record: what a resume may change, keys from a newer version, and config.json
files that are not an object of config keys (the restores from a checkpoint's record are in
tests/scenarios/run_config_scenario_test.py)."""

import json

import pytest
from conftest import CONFIG_DIR

from mtl_jax.config import files
from mtl_jax.config.schema import ConfigError
from mtl_jax.workdir import run_config


def _tiny():
  return files.load_config_file(CONFIG_DIR / 'joint.py', 'tiny')


def test_a_resume_may_change_only_the_listed_keys(tmp_path):
  recorded = _tiny()
  recorded.model.pretrained = '/weights/resnet_tiny'  # what 'auto' found when the run started
  run_config.save(recorded, tmp_path)
  before = (tmp_path / 'config.json').read_bytes()
  longer = _tiny()
  longer.train.num_epochs, longer.data.data_dir = 9, '/elsewhere'
  longer.train.epoch_scale = 2.0  # a lite run trained longer (the study's ranking check)
  resumed = run_config.for_resume(longer, tmp_path)
  assert resumed.train.num_epochs == 9 and resumed.data.data_dir == '/elsewhere'
  assert resumed.train.epoch_scale == 2.0
  assert resumed.model.pretrained == '/weights/resnet_tiny'  # the record stands
  changed = _tiny()
  changed.optim.learning_rate, changed.train.batch_size = 1e-2, 8
  with pytest.raises(ConfigError) as refused:
    run_config.for_resume(changed, tmp_path)
  message = str(refused.value)
  assert message.startswith(
    f'the run in {tmp_path} was trained with another config (optim.learning_rate: 0.001 there, '
    '0.01 here; train.batch_size: 4 there, 8 here); a resumed run may change only '
    'data.data_dir, train.checkpoint_every_steps, train.epoch_scale, train.eval_batch_size, '
  )
  assert message.endswith(f'in {tmp_path / "config.json"}, or train this config in a new --workdir')
  assert '\n' not in message
  assert (tmp_path / 'config.json').read_bytes() == before


def test_a_new_run_takes_its_config_as_given(tmp_path):
  config = _tiny()
  assert run_config.for_resume(config, tmp_path / 'new') is config


def test_differences_are_listed_in_schema_order_with_a_count_beyond_three():
  a, b = _tiny(), _tiny()
  b.seed, b.optim.name, b.optim.momentum, b.train.batch_size = 5, 'sgd', 0.5, 8
  changed = run_config.differences(
    a, b, ['seed', 'optim.name', 'optim.momentum', 'train.batch_size']
  )
  assert [key for key, _, _ in changed] == [
    'seed',
    'optim.name',
    'optim.momentum',
    'train.batch_size',
  ]
  assert run_config.difference_text(changed).endswith('and 1 more')
  assert run_config.differences(a, _tiny(), ['model.aspp_rates']) == []  # tuple vs list alike


def test_keys_from_a_newer_version_are_ignored_when_reading_and_refused_for_training(
  tmp_path, capsys
):
  record = {**run_config.as_record(_tiny()), 'future': {'knob': 1}}
  record['optim']['new_rate'] = 3
  config = run_config.from_record(record, source='config.json')
  assert config.optim.name == _tiny().optim.name
  assert capsys.readouterr().err == (
    'warning: config.json: ignored keys this version of mtl_jax does not know '
    '(future.knob, optim.new_rate): a typo, or a newer version wrote them\n'
  )
  newer = r'^config.json has keys this version of mtl_jax does not know \(future.knob, optim.'
  with pytest.raises(
    ConfigError, match=newer + r'new_rate\): a typo, or a newer version wrote them; fix them'
  ):
    run_config.from_record(record, source='config.json', strict=True)
  (tmp_path / 'config.json').write_text(json.dumps(record))
  with pytest.raises(ConfigError, match='has keys this version of mtl_jax does not know'):
    run_config.for_resume(_tiny(), tmp_path)


@pytest.mark.parametrize(
  'text, problem',
  [
    ('[1, 2]', 'holds a JSON list, not an object of config keys'),
    ('"joint"', 'holds a JSON str, not an object of config keys'),
    ('{"optim": {"name": "sgd"', 'is not valid JSON'),
  ],
)
def test_a_config_json_that_is_no_object_is_one_error_without_a_checkpoint(tmp_path, text, problem):
  (tmp_path / 'config.json').write_text(text)
  with pytest.raises(ConfigError, match=problem):
    run_config.load(tmp_path)
  with pytest.raises(ConfigError, match=f"{problem}.*, and no checkpoint records the run's config"):
    run_config.for_resume(_tiny(), tmp_path)
  assert (tmp_path / 'config.json').read_text() == text  # nothing guessed, nothing written
