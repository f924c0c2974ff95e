"""Runs started and read from any directory: the default workdir, shipped configs, ImageNet
weights chosen when a run starts ('auto') and never needed again."""

import json
import subprocess
import sys

from conftest import CONFIG_DIR
from flax import nnx

from mtl_jax import evaluate, trainer
from mtl_jax.config import files
from mtl_jax.models import pretrained, pretrained_cache, resnet
from mtl_jax.workdir import run_config


def _one_epoch(preset: str, data_dir):
  config = files.load_config_file(CONFIG_DIR / 'joint.py', preset)
  config.data.data_dir = str(data_dir)
  config.train.num_epochs = 1
  return config


def _convert_fake_imagenet_encoder(directory):
  pretrained.save_pretrained_encoder(resnet.ResNetTiny(rngs=nnx.Rngs(7)), directory)


def test_train_runs_outside_the_repository_without_a_workdir(data_dir, tmp_path):
  result = subprocess.run(
    [
      sys.executable,
      '-m',
      'mtl_jax.train',
      '--config',
      'configs/distilled.py:tiny',  # not under tmp_path: the shipped config
      f'--config.data.data_dir={data_dir}',
      '--config.train.num_epochs=1',
    ],
    cwd=tmp_path,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr
  workdir = tmp_path / 'runs' / 'distilled-tiny'
  assert result.stdout.startswith(f'workdir: {workdir} (no --workdir given)\n'), result.stdout
  assert json.loads((workdir / 'config.json').read_text())['model']['arch'] == 'distilled'


def test_auto_pretrained_is_recorded_at_the_start_and_kept_on_resume(
  data_dir, tmp_path, monkeypatch, capsys
):
  monkeypatch.setenv(pretrained_cache.CACHE_ENV, str(tmp_path / 'cache'))
  config = _one_epoch('tiny', data_dir)
  config.model.pretrained = 'auto'
  run = tmp_path / 'run'
  trainer.train_and_evaluate(config, str(run))
  assert 'random init' in capsys.readouterr().out
  assert run_config.load(run).model.pretrained == ''
  _convert_fake_imagenet_encoder(tmp_path / 'cache' / 'resnet_tiny')
  trainer.train_and_evaluate(config, str(run))  # resumes: weights come from the checkpoint
  assert run_config.load(run).model.pretrained == ''  # and the record still says random init
  trainer.train_and_evaluate(config, str(tmp_path / 'fresh'))
  assert run_config.load(tmp_path / 'fresh').model.pretrained == str(
    tmp_path / 'cache' / 'resnet_tiny'
  )


def test_a_ladder_run_is_evaluated_from_another_directory(data_dir, tmp_path, monkeypatch):
  home, elsewhere = tmp_path / 'home', tmp_path / 'elsewhere'
  elsewhere.mkdir()
  monkeypatch.setenv(pretrained_cache.CACHE_ENV, str(home / 'cache'))
  _convert_fake_imagenet_encoder(home / 'cache' / 'resnet_tiny')
  monkeypatch.chdir(home)
  final = trainer.train_and_evaluate(_one_epoch('tiny,pretrained', data_dir), 'run')
  monkeypatch.chdir(elsewhere)
  result = evaluate.evaluate_run(str(home / 'run'))
  assert result['step'] == final['best_step'] and result['miou'] == final['miou']
