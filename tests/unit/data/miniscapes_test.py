"""The miniscapes layout: depth codec, decoded values, and every hostile-input check."""

import os

import miniscapes_fixture
import numpy as np
import pytest
from PIL import Image

from mtl_jax.data import file_checks, layouts, miniscapes
from mtl_jax.runtime.errors import UserError


@pytest.fixture
def root(tmp_path):
  return miniscapes_fixture.write_miniscapes(tmp_path / 'miniscapes')


def _first(root, split='train'):
  return miniscapes.find_samples(root)[split][0]


def test_decode_matches_the_spec_formula():
  codes = np.arange(256, dtype=np.uint8)
  np.testing.assert_allclose(
    miniscapes.decode_depth(codes), miniscapes_fixture.expected_depth(codes), rtol=1e-6
  )
  assert miniscapes.decode_depth(np.uint8(1)) == pytest.approx(300)
  assert miniscapes.decode_depth(np.uint8(255)) == pytest.approx(4)


def test_encode_inverts_decode_on_every_code():
  codes = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(miniscapes.encode_depth(miniscapes.decode_depth(codes)), codes)


def test_round_trip_is_within_one_quantisation_step():
  depth = np.geomspace(4, 300, 10_000)
  decoded = miniscapes.decode_depth(miniscapes.encode_depth(depth)).astype(np.float64)
  step = (1 / 4 - 1 / 300) / 254  # in disparity, where the code is uniform
  assert np.max(np.abs(1 / decoded - 1 / depth)) <= step / 2 + 1e-9


def test_encode_clips_range_and_marks_invalid():
  codes = miniscapes.encode_depth(np.array([0.0, -1.0, np.nan, np.inf, 1.0, 1000.0]))
  np.testing.assert_array_equal(codes, [0, 0, 0, 0, 255, 1])


def test_find_samples_maps_val_to_validation_and_sorts_numerically(tmp_path):
  root = miniscapes_fixture.write_miniscapes(tmp_path, splits={'train': 12, 'validation': 1})
  samples = miniscapes.find_samples(root)
  assert set(samples) == {'train', 'validation'}
  assert [f.image.name for f in samples['train']][:3] == ['0.jpg', '1.jpg', '2.jpg']
  assert samples['train'][10].image.name == '10.jpg'


def test_load_sample_decodes_labels_and_depth(root):
  sample = miniscapes.load_sample(_first(root))
  assert sample['image'].shape == (32, 64, 3) and sample['image'].dtype == np.uint8
  np.testing.assert_array_equal(
    sample['semseg'], np.asarray(Image.open(root / 'train/semseg/0.png'))
  )
  codes = miniscapes_fixture.read_depth_codes(root, 'train', 0)
  np.testing.assert_allclose(sample['depth'], miniscapes_fixture.expected_depth(codes), rtol=1e-6)
  assert sample['depth'].dtype == np.float32


def test_test_split_without_labels_is_ignored_and_invalid(root):
  sample = miniscapes.load_sample(_first(root, 'test'))
  assert np.all(sample['semseg'] == 255) and np.all(sample['depth'] == 0)


def test_missing_manual_dir_names_the_layout(tmp_path):
  with pytest.raises(UserError, match=r'nowhere not found\. Expected the miniscapes layout'):
    miniscapes.find_samples(tmp_path / 'nowhere')


def test_missing_split_names_the_folder(root):
  os.rename(root / 'val', root / 'validation')
  with pytest.raises(UserError, match=r'val/rgb not found\. Expected the miniscapes layout'):
    miniscapes.find_samples(root)


# ----------------------------------------------------------------------------- hostile files


def _bad(files, match):
  with pytest.raises(file_checks.BadFile, match=match):
    miniscapes.load_sample(files)


def test_zero_byte_image(root):
  (root / 'train/rgb/0.jpg').write_bytes(b'')
  _bad(_first(root), r'train/rgb/0\.jpg: empty file \(0 bytes\)')


def test_truncated_image(root):
  path = root / 'train/semseg/0.png'
  path.write_bytes(path.read_bytes()[:60])
  _bad(_first(root), r'train/semseg/0\.png: truncated or corrupt image')


def test_non_image_file(root):
  (root / 'train/depth/0.png').write_text('depth,values\n1,2\n')
  _bad(_first(root), r'train/depth/0\.png: not an image \(expected 8-bit greyscale')


def test_missing_counterpart(root):
  (root / 'train/depth/0.png').unlink()
  _bad(_first(root), r'train/rgb/0\.jpg: missing depth file \(expected .*train/depth/0\.png\)')


def test_label_size_mismatch(root):
  Image.fromarray(np.zeros((16, 64), np.uint8)).save(root / 'train/semseg/0.png')
  _bad(_first(root), r'train/semseg/0\.png: size 64x16 does not match its image .*\(64x32\)')


def test_label_ids_out_of_range(root):
  labels = np.zeros((32, 64), np.uint8)
  labels[0, :3] = (19, 40, 255)
  Image.fromarray(labels).save(root / 'train/semseg/0.png')
  _bad(_first(root), r'semseg/0\.png: label ids 19, 40 are outside 0\.\.18 and not the ignore')


def test_depth_png_of_the_wrong_bit_depth(root):
  Image.fromarray(np.zeros((32, 64), np.uint16)).save(root / 'train/depth/0.png')
  _bad(
    _first(root),
    r'depth/0\.png: expected 8-bit greyscale inverse-depth PNG \(mode L\), '
    r'got mode I;16',
  )


def test_depth_png_in_colour(root):
  Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(root / 'train/depth/0.png')
  _bad(_first(root), r'depth/0\.png: .* got mode RGB')


def test_image_over_the_pixel_limit(root):
  with pytest.raises(
    file_checks.BadFile,
    match=r'rgb/0\.jpg: 64x32 = 2048 pixels is over the '
    r'limit of 1000 \(a decompression bomb\?\)',
  ):
    miniscapes.load_sample(_first(root), max_pixels=1000)


def test_symlink_escaping_the_root(root, tmp_path):
  outside = tmp_path / 'elsewhere.jpg'
  os.replace(root / 'train/rgb/0.jpg', outside)
  os.symlink(outside, root / 'train/rgb/0.jpg')
  _bad(_first(root), r'train/rgb/0\.jpg: path escapes the dataset root')


def test_files_inside_root_accepts_normal_samples(root):
  for files in miniscapes.find_samples(root)['train']:
    layouts.files_inside_root(files)  # raises on failure
