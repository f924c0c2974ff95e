"""Faults a fault-injection pass found in building datasets (issue 11): each is handled, or refused
with one line naming its own file (exit 2), and a refused build leaves every file in the data
and manual directories as it was."""

import hashlib
import json

import folder_fixture
import miniscapes_fixture
import numpy as np
import pytest
from PIL import Image
from prepare_data_test import run_cli

from mtl_jax.data import pipeline, registry

ROTATE_90_CW = 6  # EXIF orientation: a viewer turns the stored pixels 90° clockwise


def tree_digest(*roots) -> dict[str, str]:
  """path → sha256 of every file under `roots`, lock files aside (each build records its
  holder in them)."""
  return {
    str(path): hashlib.sha256(path.read_bytes()).hexdigest()
    for root in roots
    for path in sorted(root.rglob('*'))
    if path.is_file() and path.suffix != '.lock'
  }


def assert_refused(code, capsys, ending):
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2
  assert err[-1].startswith('prepare_data: error: ') and err[-1].endswith(ending), err[-1]


def _prepared_miniscapes(tmp_path, **fixture):
  """A miniscapes manual dir, and a data dir already holding it prepared at 16x32 (which a
  refused build must leave alone)."""
  root = miniscapes_fixture.write_miniscapes(tmp_path / 'm', **fixture)
  data_dir = tmp_path / 'd'
  registry.prepare('miniscapes', data_dir, height=16, width=32, manual_dir=root, num_workers=1)
  return root, data_dir


def _save_turned(path, displayed: np.ndarray, orientation=ROTATE_90_CW):
  """A JPEG whose stored pixels a viewer turns 90° clockwise to show `displayed`."""
  exif = Image.Exif()
  exif[0x0112] = orientation
  Image.fromarray(np.ascontiguousarray(np.rot90(displayed))).save(path, quality=95, exif=exif)


# ----------------------------------------------------------------------------- EXIF orientation


def test_exif_rotated_jpeg_is_stored_as_displayed(tmp_path, capsys):
  # Square images: a turn keeps the size, so only the pixels can tell the two orientations apart.
  root = miniscapes_fixture.write_miniscapes(tmp_path / 'm', height=32, width=32)
  labels = np.zeros((32, 32), np.uint8)
  labels[:16] = 1  # as a labelling tool shows the image: class 1 on top
  displayed = np.where(labels[..., None] == 1, 230, 20).astype(np.uint8).repeat(3, axis=2)
  _save_turned(root / 'train/rgb/0.jpg', displayed)
  Image.fromarray(labels).save(root / 'train/semseg/0.png')
  code = run_cli('--dataset=miniscapes', f'--manual_dir={root}', f'--data_dir={tmp_path / "d"}')
  assert code == 0
  assert (
    f'note: 1 image(s) carry an EXIF orientation (e.g. {root}/train/rgb/0.jpg) and are stored as '
    'viewers show them, turned or mirrored; their labels and depth must fit that view'
  ) in capsys.readouterr().err.splitlines()
  builder = registry.prepare('miniscapes', tmp_path / 'd', height=32, width=32)
  sample = pipeline.data_source(builder, 'train')[0]
  np.testing.assert_array_equal(sample['semseg'], labels)
  brightness = sample['image'].mean(axis=2)
  assert brightness[labels == 1].min() > 200 and brightness[labels == 0].max() < 50


def test_labels_in_the_stored_orientation_are_refused_naming_the_turn(tmp_path, capsys):
  root, data_dir = _prepared_miniscapes(tmp_path)
  stored = np.asarray(Image.open(root / 'train/rgb/1.jpg'))  # 32x64, as its labels
  _save_turned(root / 'train/rgb/1.jpg', np.rot90(stored, k=-1))  # stored pixels kept
  before = tree_digest(root, data_dir)
  code = run_cli(
    '--dataset=miniscapes',
    f'--manual_dir={root}',
    f'--data_dir={data_dir}',
    '--height=32',
    '--width=64',
  )
  assert_refused(
    code,
    capsys,
    f'{root}/train/semseg/1.png: size 64x32 does not match its image {root}/train/rgb/1.jpg '
    '(32x64 as displayed: its EXIF orientation 6 turns the stored 64x32 pixels)',
  )
  assert tree_digest(root, data_dir) == before


# ---------------------------------------------------------------------------- split-list paths


@pytest.mark.parametrize('alias', ['./images/validation//0.png', 'images/./validation/0.png'])
def test_split_list_paths_are_compared_normalised(tmp_path, capsys, alias):
  root = folder_fixture.write_folder(tmp_path / 'f')
  data_dir = tmp_path / 'd'
  registry.prepare('folder', data_dir, height=16, width=32, manual_dir=root, num_workers=1)
  spec = json.loads((root / 'dataset.json').read_text())
  spec['splits']['validation'] = ['images/validation/0.png', 'images/validation/1.png', alias]
  (root / 'dataset.json').write_text(json.dumps(spec))
  before = tree_digest(root, data_dir)
  code = run_cli('--dataset=folder', f'--manual_dir={root}', f'--data_dir={data_dir}')
  assert_refused(
    code,
    capsys,
    f'{root}/dataset.json: "splits.validation" lists "images/validation/0.png" more than once '
    f'(as {json.dumps(alias)})',
  )
  assert tree_digest(root, data_dir) == before


# ----------------------------------------------------------------------------------- blame


@pytest.mark.parametrize('labels_too', [True, False], ids=['whole_sample', 'image_only'])
def test_an_odd_sized_first_image_is_blamed_by_its_own_name(tmp_path, capsys, labels_too):
  root, data_dir = _prepared_miniscapes(tmp_path)
  Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(root / 'train/rgb/0.jpg')
  if labels_too:  # a consistent 1x1 sample, sorted first
    for kind in ('semseg', 'depth'):
      Image.fromarray(np.zeros((1, 1), np.uint8)).save(root / f'train/{kind}/0.png')
  before = tree_digest(root, data_dir)
  code = run_cli('--dataset=miniscapes', f'--manual_dir={root}', f'--data_dir={data_dir}')
  assert_refused(
    code,
    capsys,
    f"{root}/train/rgb/0.jpg: size 1x1 differs from the dataset's 64x32 (its most common image "
    'size); pass --height and --width to resize all',
  )
  assert tree_digest(root, data_dir) == before
