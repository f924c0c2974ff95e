"""Training, then scoring, on datasets prepared from each real layout: a tiny run on every
prepared fixture, an unlabelled split refused by evaluate in one line, and a folder dataset's own
class names reaching the metrics."""

import json

import folder_fixture
import miniscapes_fixture
import numpy as np
import pytest
from conftest import REPO

from mtl_jax import cli, evaluate, experiment, trainer
from mtl_jax.config import files
from mtl_jax.data import registry
from mtl_jax.runtime.errors import UserError


def test_tiny_training_run(prepared, tmp_path):
  name, _, data_dir, _ = prepared
  config = files.load_config_file(REPO / 'configs' / 'joint.py', 'tiny')
  config.data.name, config.data.data_dir = name, str(data_dir)
  config.train.num_epochs = 1
  config.train.batch_size = config.train.eval_batch_size = 2  # fixtures have 3 or 4 train samples
  final = trainer.train_and_evaluate(config, str(tmp_path / 'run'))
  assert final['split'] == 'validation' and final['epoch'] == 1
  assert np.isfinite(final['miou']) and np.isfinite(final['silog'])


def test_evaluating_an_unlabelled_split_is_one_line_exit_2(tmp_path, capsys):
  root = miniscapes_fixture.write_miniscapes(tmp_path / 'm')  # its test split has no labels
  registry.prepare('miniscapes', tmp_path / 'd', height=0, width=0, manual_dir=root)
  config = files.load_config_file(REPO / 'configs' / 'joint.py', 'tiny')
  config.data.name, config.data.data_dir = 'miniscapes', str(tmp_path / 'd')
  config.train.num_epochs = 1
  config.train.batch_size = config.train.eval_batch_size = 2
  workdir = str(tmp_path / 'run')
  trainer.train_and_evaluate(config, workdir)
  assert np.isfinite(evaluate.evaluate_run(workdir, 'validation')['silog'])
  capsys.readouterr()  # the build's and training's progress lines
  with pytest.raises(SystemExit) as exited, cli.user_errors('evaluate'):
    evaluate.evaluate_run(workdir, 'test')
  assert exited.value.code == 2
  assert capsys.readouterr().err.splitlines() == [
    'evaluate: error: the test split of dataset miniscapes has no labels (no labelled semseg '
    'pixel, no valid depth pixel), so there is nothing to score; to write its predictions '
    f'instead: python -m mtl_jax.convert miniscapes --workdir {workdir} --splits test '
    '--output DIR'
  ]


def test_class_names_travel_with_the_dataset_and_name_the_metrics(tmp_path):
  root = folder_fixture.write_folder(tmp_path / 'f', num_classes=5)
  spec = json.loads((root / 'dataset.json').read_text())
  names = ('road', 'car', 'person', 'tree', 'sky')
  (root / 'dataset.json').write_text(json.dumps({**spec, 'classes': names}))
  builder = registry.prepare('folder', tmp_path / 'd', height=0, width=0, manual_dir=root)
  reopened = registry.prepare('folder', tmp_path / 'd', height=32, width=64)
  assert registry.class_names(reopened) == registry.class_names(builder) == names
  config = files.load_config_file(REPO / 'configs' / 'joint.py', 'tiny')
  config.data.name, config.data.data_dir = 'folder', str(tmp_path / 'd')
  with pytest.raises(
    UserError,
    match=r'dataset folder has 5 classes but config.model.'
    r'num_classes=19; set --config.model.num_classes=5',
  ):
    experiment.Experiment.from_config(config).sources(('train',))
  config.model.num_classes = 5
  with pytest.raises(
    UserError, match="dataset folder has no 'test' split; it has train, validation"
  ):
    experiment.Experiment.from_config(config).sources(('train', 'test'))
  config.train.num_epochs, config.train.batch_size, config.train.eval_batch_size = 1, 2, 2
  final = trainer.train_and_evaluate(config, str(tmp_path / 'run'))
  assert {f'iou/{name}' for name in names} <= set(final)
  assert not any(k.startswith('iou/') and k[4:] not in names for k in final)
