"""Each architecture of the study trains, overfits a batch and evaluates with its tiny preset."""

import jax
import numpy as np
import optax
import pytest
from conftest import REPO, model_cases

from mtl_jax import evaluate, experiment, steps, trainer
from mtl_jax.config import files, schema
from mtl_jax.models import pretrained_cache
from mtl_jax.workdir import writers

# Every distinct tiny model of the shipped configs; `dilated` only moves the output stride.
CASES = model_cases('tiny', skip=('tiny', 'cpu', 'dilated'))
# The study's networks (the full presets' heads and encoder) at tiny size, per architecture.
STUDY_CASES = model_cases(
  'tiny,study', skip=('study', 'tiny', 'cpu', 'plain', 'pretrained', 'dilated', 'aspp')
)
# Training end to end is slower: one run per architecture and task set.
TRAINED = ('branched:tiny', 'distilled:deep,tiny', 'single_task:tiny', 'single_task:depth,tiny')


@pytest.mark.parametrize('path, preset', CASES + STUDY_CASES)
def test_overfits_one_batch(path, preset, scene_batch):
  config = files.load_config_file(path, preset)
  config.optim.learning_rate = 1e-2
  tx = optax.adam(1e-2)
  graphdef, state = steps.create_train_state(experiment.build_model(config), tx)
  step = jax.jit(
    lambda s, b: steps.train_step(s, b, graphdef=graphdef, tx=tx, spec=experiment.task_spec(config))
  )
  batch = scene_batch
  first = None
  for _ in range(40):
    state, scalars = step(state, batch)
    first = float(scalars['loss/total']) if first is None else first
  assert float(scalars['loss/total']) < 0.5 * first, (first, float(scalars['loss/total']))


def test_trained_cases_are_generated_cases():
  assert set(TRAINED) <= {case.id for case in CASES}


@pytest.mark.parametrize('path, preset', [c for c in CASES if c.id in TRAINED])
def test_trains_and_evaluates(path, preset, data_dir, tmp_path):
  config = files.load_config_file(path, preset)
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

  from mtl_jax.models import pretrained, resnet  # pylint: disable=g-import-not-at-top

  source = resnet.ResNetTiny(rngs=nnx.Rngs(123))
  pretrained.save_pretrained_encoder(source, tmp_path / 'resnet_tiny')
  monkeypatch.setenv(pretrained_cache.CACHE_ENV, str(tmp_path))  # where the ladder reads it
  config = files.load_config_file(REPO / 'configs' / 'joint.py', 'tiny,pretrained')
  schema.validate(config)
  loaded = nnx.state(experiment.build_model(config, load_pretrained=True).encoder, nnx.Param)
  fresh = nnx.state(experiment.build_model(config, load_pretrained=False).encoder, nnx.Param)
  expected = nnx.state(source, nnx.Param)
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(loaded), strict=True):
    np.testing.assert_array_equal(a, b)
  assert any(
    not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(loaded))
  )
