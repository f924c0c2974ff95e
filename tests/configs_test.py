"""Every shipped config and preset loads, validates and builds its model; registries resolve."""

import json
import pathlib

import jax.numpy as jnp
import pytest
from conftest import config_presets
from flax import nnx

from mtl_jax import experiment
from mtl_jax.config import files, presets, schema

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / 'configs').glob('*.py'))


def _cases():
  """Every config file alone and with each of its presets, alone and followed by `tiny`."""
  for path in CONFIGS:
    for preset in config_presets(path):
      for full in dict.fromkeys([preset, ','.join(p for p in (preset, 'tiny') if p)]):
        yield pytest.param(path, full, id=f'{path.stem}:{full or "full"}')


@pytest.mark.parametrize('path, preset', list(_cases()))
def test_config_validates_and_builds(path, preset, tmp_path, monkeypatch):
  config = files.load_config_file(path, preset)
  docstring_first_line = path.read_text().split('\n')[0]
  assert docstring_first_line.startswith(f'"""python -m mtl_jax.train --config configs/{path.name}')
  if config.model.pretrained:  # ladder rows name a converted-weights directory; fake one
    monkeypatch.chdir(tmp_path)
    (tmp_path / config.model.pretrained).mkdir(parents=True)
  schema.validate(config)
  # Abstract build + forward: checks every shape without allocating full-size weights.
  out = nnx.eval_shape(
    lambda: experiment.build_model(config)(jnp.zeros((1, 64, 128, 3), jnp.uint8))
  )
  assert set(out) - {'aux'} == set(config.model.tasks)
  assert experiment.task_spec(config).tasks == tuple(config.model.tasks)


def test_ladder_rows_add_one_change_each():
  rows = [
    presets.apply(schema.base_config(), p) for p in ('plain', 'pretrained', 'dilated', 'aspp')
  ]
  assert [
    (r.model.output_stride, r.model.use_aspp, r.model.decoder, bool(r.model.pretrained))
    for r in rows
  ] == [
    (32, False, 'seed', False),
    (32, False, 'seed', True),
    (16, False, 'seed', True),
    (16, True, 'deeplabv3plus', True),
  ]


def test_missing_pretrained_directory_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = files.load_config_file(REPO / 'configs' / 'joint.py', 'pretrained')
  with pytest.raises(
    schema.ConfigError, match="config.model.pretrained='pretrained/resnet34' is not a directory"
  ):
    schema.validate(config)


def test_single_task_arch_needs_exactly_one_task():
  config = files.load_config_file(REPO / 'configs' / 'single_task.py', 'tiny')
  config.model.tasks = ('semseg', 'depth')
  with pytest.raises(schema.ConfigError, match='needs one task'):
    schema.validate(config)


def test_config_json_of_an_older_run_takes_defaults_for_newer_keys(tmp_path):
  config = files.load_config_file(REPO / 'configs' / 'branched.py', 'tiny')
  saved = json.loads(config.to_json())
  del saved['train']['max_nonfinite_steps'], saved['train']['checkpoint_every_steps']
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  loaded = files.load(tmp_path)
  assert loaded.train.max_nonfinite_steps == 10 and loaded.train.checkpoint_every_steps == 200
  assert loaded.model.arch == 'branched' and loaded.model.encoder == 'resnet_tiny'
  schema.validate(loaded)


def test_config_json_of_a_run_before_the_knob_renames_loads_under_the_new_names(tmp_path):
  config = files.load_config_file(REPO / 'configs' / 'distilled.py', 'tiny')
  saved = json.loads(config.to_json())
  data = saved['data']
  del data['seed'], data['num_train'], data['num_validation'], data['num_test'], data['jitter']
  data.update(dataset_seed=3, train_size=16, validation_size=8, test_size=4, jitter=0.4)
  saved['loss']['depth'] = saved['loss'].pop('depth_loss').replace('l1', 'silog')
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  loaded = files.load(tmp_path)
  assert (
    loaded.data.seed,
    loaded.data.num_train,
    loaded.data.num_validation,
    loaded.data.num_test,
  ) == (3, 16, 8, 4)
  assert loaded.data.jitter.to_dict() == {
    'brightness': 0.4,
    'contrast': 0.4,
    'saturation': 0.4,
    'hue': 0.04,
  }
  assert loaded.loss.depth_loss == 'silog'
  schema.validate(loaded)


def test_every_knob_has_a_meaning_and_its_default_validates():
  assert all(knob.meaning for knob in schema.KNOBS.values())
  schema.validate(schema.base_config())
  config = schema.base_config()
  config.data.jitter.hue = -0.1
  with pytest.raises(schema.ConfigError, match=r'config.data.jitter.hue=-0.1 must be >= 0'):
    schema.validate(config)
