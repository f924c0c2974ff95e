"""Every shipped config and preset loads, validates and builds its model; registries resolve."""

import json
import pathlib

import jax.numpy as jnp
import pytest
from flax import nnx

from mtl_jax import configuration, config_base

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / 'configs').glob('*.py'))
SHARED_PRESETS = ('', 'tiny', 'cpu', 'plain', 'pretrained', 'dilated', 'aspp', 'plain,cpu')
EXTRA_PRESETS = {'distilled': ('deep', 'deep,tiny'), 'single_task': ('depth', 'depth,tiny')}


def _cases():
  for path in CONFIGS:
    for preset in SHARED_PRESETS + EXTRA_PRESETS.get(path.stem, ()):
      yield pytest.param(path, preset, id=f'{path.stem}:{preset or "full"}')


@pytest.mark.parametrize('path, preset', list(_cases()))
def test_config_validates_and_builds(path, preset, tmp_path, monkeypatch):
  config = configuration.load_config_file(path, preset)
  docstring_first_line = path.read_text().split('\n')[0]
  assert docstring_first_line.startswith(f'"""python -m mtl_jax.train --config configs/{path.name}')
  if config.model.pretrained:  # ladder rows name a converted-weights directory; fake one
    monkeypatch.chdir(tmp_path)
    (tmp_path / config.model.pretrained).mkdir(parents=True)
  configuration.validate(config)
  # Abstract build + forward: checks every shape without allocating full-size weights.
  out = nnx.eval_shape(
      lambda: configuration.build_model(config)(jnp.zeros((1, 64, 128, 3), jnp.uint8)))
  assert set(out) - {'aux'} == set(config.model.tasks)
  assert configuration.task_spec(config).tasks == tuple(config.model.tasks)


def test_ladder_rows_add_one_change_each():
  rows = [config_base.apply_preset(config_base.base_config(), p)
          for p in ('plain', 'pretrained', 'dilated', 'aspp')]
  assert [(r.model.output_stride, r.model.use_aspp, r.model.decoder, bool(r.model.pretrained))
          for r in rows] == [(32, False, 'seed', False), (32, False, 'seed', True),
                             (16, False, 'seed', True), (16, True, 'deeplabv3plus', True)]


def test_missing_pretrained_directory_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = configuration.load_config_file(REPO / 'configs' / 'joint.py', 'pretrained')
  with pytest.raises(configuration.ConfigError,
                     match="config.model.pretrained='pretrained/resnet34' is not a directory"):
    configuration.validate(config)


def test_single_task_arch_needs_exactly_one_task():
  config = configuration.load_config_file(REPO / 'configs' / 'single_task.py', 'tiny')
  config.model.tasks = ('semseg', 'depth')
  with pytest.raises(configuration.ConfigError, match='needs one task'):
    configuration.validate(config)


def test_config_json_of_an_older_run_takes_defaults_for_newer_keys(tmp_path):
  config = configuration.load_config_file(REPO / 'configs' / 'branched.py', 'tiny')
  saved = json.loads(config.to_json())
  del saved['train']['max_nonfinite_steps'], saved['train']['checkpoint_every_steps']
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  loaded = configuration.load(tmp_path)
  assert loaded.train.max_nonfinite_steps == 10 and loaded.train.checkpoint_every_steps == 200
  assert loaded.model.arch == 'branched' and loaded.model.encoder == 'resnet_tiny'
  configuration.validate(loaded)
