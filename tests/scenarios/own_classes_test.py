"""A folder dataset's own classes and colours reach every output of a run trained on it: the
checkpoint records them, predict colours with them, the export's model card names them."""

import json

import folder_fixture
import numpy as np
import pytest
from commands import run
from conftest import REPO
from PIL import Image

from mtl_jax import experiment, trainer
from mtl_jax.config import files
from mtl_jax.data import registry

NAMES = ('road', 'tree', 'sky')
COLORS = ((250, 10, 10), (10, 250, 10), (10, 10, 250))


@pytest.fixture(scope='module')
def three_class_run(tmp_path_factory):
  """A 1-epoch :tiny run on a 3-class folder dataset with its own colours (none Cityscapes')."""
  tmp = tmp_path_factory.mktemp('own_classes')
  root = folder_fixture.write_folder(tmp / 'f', num_classes=len(NAMES))
  spec = json.loads((root / 'dataset.json').read_text())
  spec.update(classes=NAMES, colors=COLORS)
  (root / 'dataset.json').write_text(json.dumps(spec))
  registry.prepare('folder', tmp / 'data', height=0, width=0, manual_dir=root)
  config = files.load_config_file(REPO / 'configs' / 'joint.py', 'tiny')
  config.data.name, config.data.data_dir = 'folder', str(tmp / 'data')
  config.data.height, config.data.width = 32, 64
  config.model.num_classes = len(NAMES)
  config.train.num_epochs, config.train.batch_size, config.train.eval_batch_size = 1, 2, 2
  workdir = tmp / 'run'
  trainer.train_and_evaluate(config, str(workdir))
  photo = tmp / 'photo.png'
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 72, 3), np.uint8)).save(photo)
  return workdir, photo


def test_the_checkpoint_records_the_datasets_classes(three_class_run):
  workdir, _ = three_class_run
  opened = experiment.open_run(workdir)
  assert opened.classes.names == NAMES
  assert opened.classes.colors == COLORS


def test_predict_colours_with_the_datasets_colours_only(three_class_run, tmp_path):
  workdir, photo = three_class_run
  result = run(
    'mtl_jax.predict', '--workdir', str(workdir), '--input', str(photo), '--output', str(tmp_path)
  )
  assert result.returncode == 0, result.stderr
  assert 'warning' not in result.stderr
  semseg = np.asarray(Image.open(tmp_path / 'semseg' / 'photo.png').convert('RGB'))
  labels = np.asarray(Image.open(tmp_path / 'labels' / 'photo.png'))
  used = {tuple(c) for c in semseg.reshape(-1, 3)}
  assert used <= set(COLORS)
  assert used == {COLORS[i] for i in np.unique(labels)}  # each pixel's colour is its class's


def test_the_model_card_names_the_datasets_classes_and_colours(three_class_run, tmp_path):
  workdir, _ = three_class_run
  out = tmp_path / 'export'
  result = run(
    'mtl_jax.export', '--workdir', str(workdir), '--output', str(out), '--format', 'stablehlo'
  )
  assert result.returncode == 0, result.stderr
  card = json.loads((out / 'model_card.json').read_text())
  assert card['class_names'] == list(NAMES)
  assert card['palette'] == [list(c) for c in COLORS]
