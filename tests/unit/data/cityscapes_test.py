"""Tests for mtl_jax.data.cityscapes on a tiny dataset in the official layout.

Expected values are computed here by hand from the written files, and label mapping is checked
against cityscapesScripts' table directly, not through mtl_jax.data.labels.
"""

import json
import shutil

import cityscapes_fixture
import numpy as np
import pytest
from cityscapesscripts.helpers import labels as cs_labels
from PIL import Image

from mtl_jax.data import cityscapes
from mtl_jax.data.file_checks import BadFile
from mtl_jax.runtime.errors import UserError

H, W = 8, 16
SPLITS = {'train': 3, 'validation': 2, 'test': 2}


def _write(root, **kwargs):
  return cityscapes_fixture.write_cityscapes(root, splits=SPLITS, height=H, width=W, **kwargs)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  """A shared, never modified dataset: (root, find_samples(root))."""
  root = _write(tmp_path_factory.mktemp('cityscapes'))
  return root, cityscapes.find_samples(root)


@pytest.fixture
def sample(tmp_path):
  """A fresh dataset's first train sample, to damage."""
  return cityscapes.find_samples(_write(tmp_path))['train'][0]


def _load(files, max_pixels=10_000):
  return cityscapes.load_sample(files, max_pixels=max_pixels)


def _bad(files, *message_parts, path=None):
  """Loads `files` expecting a BadFile on `path` whose message holds every part."""
  with pytest.raises(BadFile) as error:
    _load(files)
  message = str(error.value)
  if path is not None:
    assert error.value.path == str(path)
  for part in message_parts:
    assert part in message, message
  return message


def _save(path, array):
  Image.fromarray(array).save(path)


# --- Reading a valid dataset ---


def test_samples_sorted_by_city_and_stem(dataset):
  root, samples = dataset
  assert set(samples) == {'train', 'validation', 'test'}
  names = {
    split: [f.image.name.removesuffix('_leftImg8bit.png') for f in files]
    for split, files in samples.items()
  }
  assert names == {
    'train': ['aachen_000001_000019', 'bochum_000000_000019', 'bochum_000002_000019'],
    'validation': ['frankfurt_000001_000019', 'lindau_000000_000019'],
    'test': ['berlin_000001_000019', 'bielefeld_000000_000019'],
  }
  first = samples['validation'][0]
  assert first.image == root / 'leftImg8bit/val/frankfurt/frankfurt_000001_000019_leftImg8bit.png'
  assert first.semseg == root / 'gtFine/val/frankfurt/frankfurt_000001_000019_gtFine_labelIds.png'
  assert first.depth == root / 'disparity/val/frankfurt/frankfurt_000001_000019_disparity.png'
  assert first.extra == {
    'camera': root / 'camera/val/frankfurt/frankfurt_000001_000019_camera.json'
  }


def test_image_and_dtypes(dataset):
  files = dataset[1]['train'][1]
  out = _load(files)
  np.testing.assert_array_equal(out['image'], np.asarray(Image.open(files.image)))
  assert out['image'].dtype == np.uint8 and out['image'].shape == (H, W, 3)
  assert out['semseg'].dtype == np.uint8 and out['semseg'].shape == (H, W)
  assert out['depth'].dtype == np.float32 and out['depth'].shape == (H, W)


@pytest.mark.parametrize('split, index', [('train', 0), ('validation', 1)])
def test_depth_is_baseline_times_fx_over_disparity(dataset, split, index):
  files = dataset[1][split][index]
  p = np.asarray(Image.open(files.depth)).astype(np.int64)
  camera = json.loads(files.extra['camera'].read_text())
  baseline, fx = camera['extrinsic']['baseline'], camera['intrinsic']['fx']
  depth = _load(files)['depth']
  for y, x in [(1, 0), (2, 5), (H - 2, W - 1), (H - 1, W - 1)]:
    assert p[y, x] > 1
    assert depth[y, x] == pytest.approx(baseline * fx / ((p[y, x] - 1) / 256), rel=1e-6)
  assert (p[0] == 0).all() and (depth[0] == 0).all()  # p = 0: invalid
  assert (p[-1, : W // 2] == 1).all() and (depth[-1, : W // 2] == 0).all()  # d = 0: invalid
  assert (depth[1:-1] > 0).all()


def test_cameras_differ_per_city(dataset):
  cameras = {
    json.loads(f.extra['camera'].read_text())['intrinsic']['fx'] for f in dataset[1]['train']
  }
  assert len(cameras) == 2


def test_label_ids_map_like_cityscapesscripts(dataset):
  files = dataset[1]['train'][0]
  ids = np.asarray(Image.open(files.semseg))
  table = {x.id: x.trainId for x in cs_labels.labels}
  assert set(np.unique(ids)) == {i for i in table if i >= 0}  # every id is exercised
  expected = np.vectorize(
    lambda i: 255 if cs_labels.id2label[i].trainId in (255, -1) else cs_labels.id2label[i].trainId
  )(ids)
  np.testing.assert_array_equal(_load(files)['semseg'], expected)


def test_split_without_gtfine_and_disparity_is_unlabeled(tmp_path):
  root = _write(tmp_path)
  shutil.rmtree(root / 'gtFine' / 'test')
  shutil.rmtree(root / 'disparity' / 'test')
  test = cityscapes.find_samples(root)['test']
  assert all(f.semseg is None and f.depth is None and not f.extra for f in test)
  out = _load(test[0])
  np.testing.assert_array_equal(out['image'], np.asarray(Image.open(test[0].image)))
  assert (out['semseg'] == 255).all() and (out['depth'] == 0).all()


def test_test_split_is_optional(tmp_path):
  root = cityscapes_fixture.write_cityscapes(tmp_path, height=H, width=W)
  assert set(cityscapes.find_samples(root)) == {'train', 'validation'}


# --- Missing manual directory, split or package: a UserError naming the expected layout ---


def _assert_names_layout(message):
  for part in (
    'cityscapes:',
    'leftImg8bit/{train,val,test}/<city>/',
    '_gtFine_labelIds.png',
    'leftImg8bit_trainvaltest.zip',
    'gtFine_trainvaltest.zip',
    'disparity_trainvaltest.zip',
    'camera_trainvaltest.zip',
    'https://www.cityscapes-dataset.com',
    'registration',
  ):
    assert part in message, message


def test_missing_manual_dir(tmp_path):
  with pytest.raises(UserError, match='not found') as error:
    cityscapes.find_samples(tmp_path / 'nowhere')
  assert str(tmp_path / 'nowhere') in str(error.value)
  _assert_names_layout(str(error.value))


@pytest.mark.parametrize('folder', ['leftImg8bit/train', 'leftImg8bit/val', 'camera/val'])
def test_missing_split_or_package(tmp_path, folder):
  root = _write(tmp_path)
  shutil.rmtree(root / folder)
  with pytest.raises(UserError) as error:
    cityscapes.find_samples(root)
  assert f'{root / folder} not found' in str(error.value)
  _assert_names_layout(str(error.value))


def test_split_without_images(tmp_path):
  root = _write(tmp_path)
  for city in (root / 'leftImg8bit' / 'train').iterdir():
    shutil.rmtree(city)
  with pytest.raises(UserError, match=r'leftImg8bit/train/<city>/\*_leftImg8bit.png not found'):
    cityscapes.find_samples(root)


# --- Hostile files: each a BadFile naming the file and what is wrong ---


@pytest.mark.parametrize(
  'counterpart, what', [('semseg', 'gtFine labelIds'), ('depth', 'disparity'), ('camera', 'camera')]
)
def test_missing_counterpart(sample, counterpart, what):
  path = sample.extra['camera'] if counterpart == 'camera' else getattr(sample, counterpart)
  path.unlink()
  _bad(sample, f'missing {what} file (expected {path})', path=sample.image)


@pytest.mark.parametrize('field', ['image', 'semseg', 'depth'])
def test_zero_byte_file(sample, field):
  path = getattr(sample, field)
  path.write_bytes(b'')
  _bad(sample, 'empty file (0 bytes)', path=path)


@pytest.mark.parametrize('field', ['image', 'semseg', 'depth'])
def test_truncated_png(sample, field):
  path = getattr(sample, field)
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  _bad(sample, 'truncated or corrupt image', path=path)


def test_non_image_file(sample):
  sample.depth.write_text('not a png\n')
  _bad(sample, 'not an image (expected 16-bit greyscale disparity PNG)', path=sample.depth)


def test_decompression_bomb_limit(sample):
  with pytest.raises(BadFile, match='over the limit of 100'):
    _load(sample, max_pixels=100)


@pytest.mark.parametrize(
  'field, array',
  [('semseg', np.zeros((H, W + 1), np.uint8)), ('depth', np.full((H - 1, W), 1000, np.uint16))],
)
def test_size_mismatch(sample, field, array):
  path = getattr(sample, field)
  _save(path, array)
  _bad(sample, f'does not match its image {sample.image} ({W}x{H})', path=path)


@pytest.mark.parametrize('ids, shown', [([34, 200], '34, 200'), ([255], '255')])
def test_unknown_label_id(sample, ids, shown):
  label_ids = np.asarray(Image.open(sample.semseg)).copy()
  label_ids[1, : len(ids)] = ids
  _save(sample.semseg, label_ids)
  _bad(sample, f'label ids {shown} are not Cityscapes label ids', path=sample.semseg)


@pytest.mark.parametrize(
  'array, mode', [(np.full((H, W), 100, np.uint8), 'L'), (np.full((H, W, 3), 100, np.uint8), 'RGB')]
)
def test_8_bit_disparity(sample, array, mode):
  _save(sample.depth, array)
  _bad(sample, 'expected 16-bit greyscale disparity PNG', f'got mode {mode}', path=sample.depth)


def test_16_bit_disparity_as_mode_i_is_accepted(sample):
  # Older Pillow versions open 16-bit greyscale PNGs as mode 'I'.
  p = np.asarray(Image.open(sample.depth)).astype(np.int32)
  expected = _load(sample)['depth']
  tif = sample.depth.with_suffix('.tif')
  Image.fromarray(p).save(tif)  # Pillow 13 writes no PNG that reopens as 'I'; a TIFF does
  assert Image.open(tif).mode == 'I'
  tif.replace(sample.depth)
  np.testing.assert_array_equal(_load(sample)['depth'], expected)


@pytest.mark.parametrize(
  'text, message',
  [
    ('', 'empty file (0 bytes)'),
    ('{baseline: 0.2}', 'not a camera JSON file'),
    (b'\xff\xfe\x00garbage', 'not a camera JSON file'),
    ('[1, 2]', 'camera JSON lacks extrinsic.baseline'),
    ('{"intrinsic": {"fx": 2262.52}}', 'camera JSON lacks extrinsic.baseline'),
    ('{"extrinsic": {"baseline": 0.2}, "intrinsic": {}}', 'camera JSON lacks intrinsic.fx'),
    (
      '{"extrinsic": {"baseline": 0}, "intrinsic": {"fx": 2262.52}}',
      'camera extrinsic.baseline must be a positive number of metres, got 0',
    ),
    (
      '{"extrinsic": {"baseline": 0.2}, "intrinsic": {"fx": -1.5}}',
      'camera intrinsic.fx must be a positive number of pixels, got -1.5',
    ),
    (
      '{"extrinsic": {"baseline": "0.2"}, "intrinsic": {"fx": 2262.52}}',
      "camera extrinsic.baseline must be a positive number of metres, got '0.2'",
    ),
    (
      '{"extrinsic": {"baseline": true}, "intrinsic": {"fx": 2262.52}}',
      'camera extrinsic.baseline must be a positive number of metres, got True',
    ),
    (
      '{"extrinsic": {"baseline": 0.2}, "intrinsic": {"fx": NaN}}',
      'camera intrinsic.fx must be a positive number of pixels, got nan',
    ),
  ],
)
def test_bad_camera_json(sample, text, message):
  path = sample.extra['camera']
  if isinstance(text, bytes):
    path.write_bytes(text)
  else:
    path.write_text(text)
  _bad(sample, message, path=path)


def test_symlinked_image_outside_root(sample, tmp_path_factory):
  outside = tmp_path_factory.mktemp('elsewhere') / 'secret.png'
  shutil.copy(sample.image, outside)
  sample.image.unlink()
  sample.image.symlink_to(outside)
  _bad(sample, f'path escapes the dataset root {sample.root}', path=sample.image)


def test_dot_files_are_not_samples(tmp_path):
  # Unzipping on macOS leaves AppleDouble ._<name> files beside every image.
  root = _write(tmp_path)
  image = cityscapes.find_samples(root)['train'][0].image
  (image.parent / f'._{image.name}').write_bytes(b'\x00\x05\x16\x07')
  assert len(cityscapes.find_samples(root)['train']) == SPLITS['train']
