"""A run's config is never silently changed or lost: a resume with another config is refused in
one line, a longer one resumes, a lost or torn config.json comes back from the checkpoints'
record and the run ends as an uninterrupted one, and keys from a newer version are read past but
never trained on."""

import json
import shutil

import pytest
from commands import assert_one_line_error
from conftest import run_tiny_train

from mtl_jax import evaluate, trainer
from mtl_jax.config.schema import ConfigError
from mtl_jax.workdir import run_config


def _copy(tiny_run, tmp_path):
  _, workdir, _ = tiny_run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  return copy


def test_a_rerun_with_another_learning_rate_is_refused_and_config_json_kept(
  tiny_run, tmp_path, data_dir
):
  config, _, _ = tiny_run
  copy = _copy(tiny_run, tmp_path)
  before = (copy / 'config.json').read_bytes()
  rate = config.optim.learning_rate
  result = run_tiny_train(copy, data_dir, {'optim.learning_rate': rate * 10})
  assert_one_line_error(
    result,
    'train',
    f'the run in {copy} was trained with another config (optim.learning_rate: {rate} there, '
    f'{rate * 10} here); a resumed run may change only data.data_dir, ',
    'or train this config in a new --workdir',
  )
  assert (copy / 'config.json').read_bytes() == before
  assert sorted(p.name for p in (copy / 'checkpoints').iterdir()) == ['4', '8']


def test_a_rerun_with_more_epochs_resumes_and_finishes(tiny_run, tmp_path, data_dir):
  copy = _copy(tiny_run, tmp_path)
  result = run_tiny_train(copy, data_dir, {'train.num_epochs': 3})
  assert result.returncode == 0, result.stderr
  assert 'resumed from step 8 (epoch 2)' in result.stdout
  assert 'final: step 12 epoch 3 validation' in result.stdout
  assert run_config.load(copy).train.num_epochs == 3  # the record says what trained it


@pytest.mark.parametrize('damage', ['torn', 'missing', 'a list'])
def test_a_lost_config_json_is_restored_and_the_run_ends_as_an_uninterrupted_one(
  tiny_run, tmp_path, capsys, damage
):
  config, _, final = tiny_run
  copy = _copy(tiny_run, tmp_path)
  shutil.rmtree(copy / 'checkpoints' / '8')  # killed between epoch 1's save and epoch 2's
  path = copy / 'config.json'
  original = path.read_bytes()
  if damage == 'torn':
    path.write_bytes(original[: len(original) // 2])
  elif damage == 'missing':
    path.unlink()
  else:
    path.write_text('[]')
  capsys.readouterr()
  result = trainer.train_and_evaluate(config, str(copy))
  what = {
    'torn': 'is not valid JSON',
    'missing': 'was missing',
    'a list': 'holds a JSON list, not an object of config keys',
  }[damage]
  out = capsys.readouterr().out
  assert f'{path} {what}' in out
  assert 'restored it from the config recorded in checkpoint 4' in out
  assert path.read_bytes() == original
  scores = ('miou', 'silog', 'pixel_acc', 'abs_rel', 'rmse', 'loss/total', 'step', 'epoch')
  assert {k: result[k] for k in scores} == {k: final[k] for k in scores}  # bit for bit


def test_readers_use_the_checkpoints_record_when_config_json_is_torn(tiny_run, tmp_path, capsys):
  copy = _copy(tiny_run, tmp_path)
  (copy / 'config.json').write_text('{"optim": ')
  scores = evaluate.evaluate_run(str(copy), 'validation')
  assert scores['step'] == 8 and scores['miou'] == tiny_run[2]['miou']
  assert 'read the config recorded in checkpoint 8 instead' in capsys.readouterr().err
  assert (copy / 'config.json').read_text() == '{"optim": '  # a reader writes nothing


def test_keys_from_a_newer_version_are_read_past_but_not_trained_on(tiny_run, tmp_path, capsys):
  config, _, final = tiny_run
  copy = _copy(tiny_run, tmp_path)
  path = copy / 'config.json'
  path.write_text(json.dumps({**json.loads(path.read_text()), 'balancing': {'method': 'famo'}}))
  assert evaluate.evaluate_run(str(copy), 'validation')['miou'] == final['miou']
  assert 'ignored keys this version of mtl_jax does not know (balancing.method)' in (
    capsys.readouterr().err
  )
  with pytest.raises(ConfigError, match=r'has keys this version of mtl_jax does not know'):
    trainer.train_and_evaluate(config, str(copy))
