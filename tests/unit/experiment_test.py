"""`experiment.run_classes`: the classes a run's checkpoint records, and the fallbacks (with a
line) for a checkpoint written before they were recorded."""

import json

import folder_fixture
from conftest import REPO

from mtl_jax import experiment
from mtl_jax.config import files
from mtl_jax.data import labels, registry

NAMES = ('road', 'tree', 'sky')
COLORS = ((10, 20, 30), (40, 50, 60), (70, 80, 90))


def _folder_config(data_dir):
  config = files.load_config_file(REPO / 'configs' / 'joint.py', 'tiny')
  config.data.name, config.data.data_dir = 'folder', str(data_dir)
  config.data.height, config.data.width = 32, 64
  config.model.num_classes = len(NAMES)
  return config


def test_a_recorded_table_is_used_as_it_is_without_a_line(tmp_path, capsys):
  recorded = labels.Classes(NAMES, COLORS)
  found = experiment.run_classes(_folder_config(tmp_path), recorded.to_json(), 'checkpoint 4')
  assert found == recorded
  assert capsys.readouterr().err == ''


def test_an_older_checkpoint_gets_its_prepared_datasets_classes_with_a_line(tmp_path, capsys):
  root = folder_fixture.write_folder(tmp_path / 'f', num_classes=len(NAMES))
  spec = json.loads((root / 'dataset.json').read_text())
  spec.update(classes=NAMES, colors=COLORS)
  (root / 'dataset.json').write_text(json.dumps(spec))
  registry.prepare('folder', tmp_path / 'd', height=32, width=64, manual_dir=root)
  capsys.readouterr()
  found = experiment.run_classes(_folder_config(tmp_path / 'd'), None, 'checkpoint 4 of r')
  assert found == labels.Classes(NAMES, COLORS)
  assert capsys.readouterr().err.splitlines() == [
    'warning: checkpoint 4 of r records no class names or colours (an older version wrote it); '
    f"using dataset folder's, as prepared in {tmp_path / 'd'}"
  ]


def test_without_the_dataset_an_older_checkpoint_gets_cityscapes_colours_with_a_line(
  tmp_path, capsys
):
  found = experiment.run_classes(_folder_config(tmp_path / 'none'), None, 'checkpoint 4 of r')
  assert found == labels.Classes.default(3)
  assert found.colors == tuple(c.color for c in labels.TRAIN_CLASSES[:3])
  assert capsys.readouterr().err.splitlines() == [
    'warning: checkpoint 4 of r records no class names or colours (an older version wrote it); '
    f"using Cityscapes' (no 3-class folder dataset prepared in {tmp_path / 'none'})"
  ]
