"""The study's sweep files reproduce its settings at the full scale, and `lite` keeps them with
the study's epochs a quarter long (every run's config built and validated as the sweep does)."""

import pathlib

import pytest
from conftest import REPO

from mtl_jax.config import schema
from mtl_jax.study import experiments
from mtl_jax.sweep import planning

RUNS = {'learning_rates': 8, 'batch_size': 6, 'task_weights': 10, 'ladder': 20, 'second_stage': 4}


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch):
  monkeypatch.chdir(REPO)  # sweep files and configs are named from the repository's root


def _configs(name: str, scale: str = 'full') -> list:
  experiment = next(e for e in experiments.EXPERIMENTS if e.name == name)
  sweep = experiment.plan(scale, 'runs/study')
  return [planning.load_config(sweep.config_ref, run.args) for run in sweep.runs]


def _rows(configs, *keys: str) -> list[tuple]:
  return [tuple(schema.get(c, k) for k in keys) for c in configs]


@pytest.mark.parametrize('scale', experiments.SCALES)
def test_every_experiment_plans_its_runs(scale):
  counts = {e.name: len(e.plan(scale, 'runs/study').runs) for e in experiments.EXPERIMENTS}
  assert counts == RUNS


def test_each_sweep_file_opens_with_the_command_that_runs_it():
  for experiment in experiments.EXPERIMENTS:
    docstring = pathlib.Path(experiment.sweep_file).read_text().split('"""')[1]
    # The source writes the line break as '\\' (an escaped backslash) before the newline.
    command = ' '.join(docstring.split('#')[0].replace('\\\\\n', ' ').split())
    flags = dict(zip(*[iter(experiment.sweep_args('full', 'runs/study'))] * 2))
    assert dict(zip(*[iter(command.split()[3:])] * 2)) == flags, experiment.name


def test_learning_rates_are_figures_1_to_3():
  configs = _configs('learning_rates')
  assert _rows(configs, 'optim.name', 'optim.learning_rate') == [
    ('sgd', 1e-1),
    ('sgd', 1e-2),
    ('sgd', 1e-3),
    ('sgd', 1e-4),
    ('adam', 1e-2),
    ('adam', 1e-3),
    ('adam', 1e-4),
    ('adam', 1e-5),
  ]
  assert set(_rows(configs, 'train.batch_size', 'train.num_epochs', 'model.output_stride')) == {
    (4, 16, 32)
  }
  assert set(_rows(configs, 'model.use_aspp', 'model.pretrained', 'model.heads')) == {
    (False, '', 'seed')
  }


def test_batch_sizes_keep_the_steps_of_figure_4():
  configs = _configs('batch_size')
  assert _rows(configs, 'optim.name', 'train.batch_size', 'train.num_epochs') == [
    (name, batch, epochs)
    for name in ('sgd', 'adam')
    for batch, epochs in ((2, 8), (4, 16), (8, 32))
  ]


def test_task_weights_come_in_the_pairs_of_figures_5_and_6():
  configs = _configs('task_weights')
  pairs = [(0.3, 0.7), (0.4, 0.6), (0.5, 0.5), (0.6, 0.4), (0.7, 0.3)]
  assert _rows(configs, 'optim.name', 'loss.semseg_weight', 'loss.depth_weight') == [
    (name, *pair) for name in ('sgd', 'adam') for pair in pairs
  ]


def test_the_ladder_is_table_4_with_two_seeds():
  configs = _configs('ladder')
  keys = ('optim.name', 'model.arch', 'model.pretrained', 'model.output_stride')
  keys += ('model.use_aspp', 'train.num_epochs')
  rows = [
    ('sgd', 'joint', '', 32, False, 16),
    ('adam', 'joint', '', 32, False, 16),
    ('sgd', 'joint', 'imagenet', 32, False, 32),
    ('adam', 'joint', 'imagenet', 32, False, 32),
    ('sgd', 'joint', 'imagenet', 16, False, 32),
    ('adam', 'joint', 'imagenet', 16, False, 32),
    ('adam', 'joint', 'imagenet', 16, True, 64),
    ('adam', 'branched', 'imagenet', 16, True, 64),
    ('sgd', 'distilled', 'imagenet', 16, True, 64),
    ('adam', 'distilled', 'imagenet', 16, True, 64),
  ]
  assert _rows(configs, *keys) == rows + rows
  assert [c.seed for c in configs] == [0] * 10 + [1] * 10
  assert {c.optim.learning_rate for c in configs if c.optim.name == 'sgd'} == {1e-2}


def test_the_second_stage_is_figure_11():
  configs = _configs('second_stage')
  keys = ('optim.name', 'model.second_stage', 'train.batch_size', 'train.num_epochs')
  assert _rows(configs, *keys) == [
    (name, decoder, 2, 32) for name in ('sgd', 'adam') for decoder in ('simple', 'deep')
  ]
  assert {(c.model.arch, c.model.pretrained, c.model.use_aspp) for c in configs} == {
    ('distilled', 'imagenet', True)
  }


def test_lite_keeps_each_run_and_trains_a_quarter_of_its_epochs():
  for experiment in experiments.EXPERIMENTS:
    full = _configs(experiment.name)
    lite = _configs(experiment.name, 'lite')
    assert [c.train.num_epochs for c in lite] == [c.train.num_epochs for c in full]
    assert [schema.epochs(c) for c in lite] == [c.train.num_epochs // 4 for c in full]
    for ours, theirs in zip(lite, full):
      assert _rows([ours], 'optim.name', 'optim.learning_rate', 'train.batch_size') == _rows(
        [theirs], 'optim.name', 'optim.learning_rate', 'train.batch_size'
      )
      assert (ours.model.encoder, ours.model.heads) == ('resnet18', 'seed')


def test_an_unknown_scale_is_refused():
  with pytest.raises(ValueError, match="unknown scale 'huge'; valid: full, lite"):
    experiments.EXPERIMENTS[0].config_ref('huge')
