"""Each architecture of the study trains, overfits a batch and evaluates with its tiny preset."""

import pathlib

import jax
import numpy as np
import optax
import pytest

from mtl_jax import configuration, evaluate, steps, trainer, writers

REPO = pathlib.Path(__file__).resolve().parents[1]
ARCHS = {  # id → (config file, preset)
    'joint': ('joint', 'tiny'),
    'branched': ('branched', 'tiny'),
    'distilled': ('distilled', 'tiny'),
    'distilled_deep': ('distilled', 'deep,tiny'),
    'semseg_only': ('single_task', 'semseg,tiny'),
    'depth_only': ('single_task', 'depth,tiny'),
    'joint_plain': ('joint', 'plain,tiny'),
}


def _config(name):
  path, preset = ARCHS[name]
  return configuration.load_config_file(REPO / 'configs' / f'{path}.py', preset)


@pytest.mark.parametrize('name', ARCHS)
def test_overfits_one_batch(name, scene_batch):
  config = _config(name)
  config.optim.learning_rate = 1e-2
  graphdef, state, _, _ = trainer.create_state(config, total_steps=1)
  tx = optax.adam(1e-2)
  state = state.replace(opt_state=tx.init(state.params))
  step = jax.jit(lambda s, b: steps.train_step(s, b, graphdef=graphdef, tx=tx,
                                               spec=configuration.task_spec(config)))
  batch = scene_batch
  first = None
  for _ in range(40):
    state, scalars = step(state, batch)
    first = float(scalars['loss/total']) if first is None else first
  assert float(scalars['loss/total']) < 0.5 * first, (first, float(scalars['loss/total']))


@pytest.mark.parametrize('name', ['branched', 'distilled_deep', 'semseg_only', 'depth_only'])
def test_trains_and_evaluates(name, data_dir, tmp_path):
  config = _config(name)
  config.data.data_dir = str(data_dir)
  config.train.num_epochs = 1
  final = trainer.train_and_evaluate(config, str(tmp_path))
  tasks = set(config.model.tasks)
  assert ('miou' in final) == ('semseg' in tasks)
  assert ('silog' in final) == ('depth' in tasks)
  assert ('total' in final) == (len(tasks) == 2)
  assert {f'loss/{t}' for t in tasks} <= set(final)
  record = writers.read_records(tmp_path / 'metrics.jsonl')[-1]
  result = evaluate.evaluate_run(str(tmp_path))
  for key in ('miou', 'silog'):
    if key in result:
      assert result[key] == record[key]


def test_training_state_starts_from_converted_imagenet_encoder(tmp_path, monkeypatch):
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from mtl_jax.models import resnet, torchvision_convert  # pylint: disable=g-import-not-at-top
  source = resnet.ResNetTiny(rngs=nnx.Rngs(123))
  torchvision_convert.save_pretrained_encoder(source, tmp_path / 'pretrained' / 'resnet_tiny')
  monkeypatch.chdir(tmp_path)
  config = configuration.load_config_file(REPO / 'configs' / 'joint.py', 'tiny,pretrained')
  configuration.validate(config)
  _, state, _, _ = trainer.create_state(config, total_steps=1, load_pretrained=True)
  _, fresh, _, _ = trainer.create_state(config, total_steps=1, load_pretrained=False)
  expected = nnx.state(source, nnx.Param)
  loaded = state.params['encoder']
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(loaded), strict=True):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(fresh.params['encoder']), jax.tree.leaves(loaded)))
