"""The folder layout: dataset.json, split lists, decoded values and every hostile-input check."""

import json
import os

import folder_fixture
import numpy as np
import pytest
from PIL import Image

from mtl_jax.data import file_checks, folder, layouts
from mtl_jax.runtime.errors import UserError


@pytest.fixture
def root(tmp_path):
  return folder_fixture.write_folder(tmp_path / 'mine')


def _first(root, split='train'):
  return folder.find_samples(root)[split][0]


def _edit_spec(root, **changes):
  """Rewrites dataset.json with `changes` (None deletes a key)."""
  spec = json.loads((root / 'dataset.json').read_text())
  spec.update(changes)
  spec = {k: v for k, v in spec.items() if v is not None}
  (root / 'dataset.json').write_text(json.dumps(spec))


def _set_split(root, split, entries):
  spec = json.loads((root / 'dataset.json').read_text())
  (root / 'dataset.json').write_text(json.dumps({**spec, 'splits': {split: entries}}))


def _png(array, path):
  Image.fromarray(array).save(path)


# ---------------------------------------------------------------------------- dataset.json


def test_read_spec_gives_classes_colors_and_scale(root):
  spec = folder.read_spec(root)
  assert spec.classes == tuple(f'class_{i}' for i in range(19))
  assert spec.num_classes == len(folder.class_names(root)) == 19
  assert len(spec.colors) == 19 and all(len(c) == 3 for c in spec.colors)
  assert folder.class_colors(root) == spec.colors
  assert spec.ignore_label == 255 and spec.depth_scale == 0.001
  assert spec.path == (root / 'dataset.json').absolute()


def test_read_spec_defaults_and_rereads_an_edited_file(root):
  folder.read_spec(root)
  _edit_spec(root, colors=None, ignore_label=None, classes=['a', 'b'])
  spec = folder.read_spec(root)
  assert spec.classes == ('a', 'b') and spec.colors is None and spec.ignore_label == 255
  assert folder.class_colors(root) is None


def test_missing_root_names_the_layout(tmp_path):
  with pytest.raises(UserError, match=r'nowhere not found\. Expected the folder layout'):
    folder.find_samples(tmp_path / 'nowhere')


def test_missing_dataset_json_names_the_layout(root):
  (root / 'dataset.json').unlink()
  with pytest.raises(UserError, match=r'mine/dataset\.json not found\. Expected the folder layout'):
    folder.find_samples(root)


def test_dataset_json_linking_out_of_the_root(root, tmp_path):
  os.replace(root / 'dataset.json', tmp_path / 'shared.json')
  os.symlink(tmp_path / 'shared.json', root / 'dataset.json')
  with pytest.raises(UserError, match=r'dataset\.json: links to .*shared\.json, outside the '):
    folder.find_samples(root)


@pytest.mark.parametrize(
  'text, match',
  [
    ('{"classes": [', r'invalid JSON: Expecting value at line 1 column 14'),
    (b'{"classes": ["caf\xe9"]}', r'not UTF-8 text \(invalid continuation byte at byte 17\)'),
    ('["road"]', r'must hold a JSON object'),
    ('{"classes": ["a"], "depth_scales": 1}', r'unknown key "depth_scales" \(the keys are'),
  ],
)
def test_unreadable_dataset_json(root, text, match):
  path = root / 'dataset.json'
  path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
  with pytest.raises(UserError, match=r'dataset\.json: ' + match):
    folder.find_samples(root)


@pytest.mark.parametrize(
  'changes, match',
  [
    (dict(classes=None), r'"classes" is required'),
    (dict(classes='road'), r'"classes" must be a list of 1 to 255 class names'),
    (dict(classes=[]), r'"classes" must be a list of 1 to 255 class names'),
    (dict(classes=['a', 2]), r'"classes" must be a list of 1 to 255 class names'),
    (
      dict(classes=[f'c{i}' for i in range(256)], colors=None),
      r'"classes" must be a list of 1 to 255 class names',
    ),
    (dict(classes=['a', 'b', 'a'], colors=None), r'"classes" lists "a" more than once'),
    (dict(colors=[[0, 0, 0]]), r'"colors" must be a list of one \[r, g, b\] per class \(19\)'),
    (dict(classes=['a', 'b'], colors=[[0, 0, 0], [0, 0]]), r'"colors\[1\]" must be \[r, g, b\]'),
    (dict(classes=['a'], colors=[[0, 0, 256]]), r'"colors\[0\]" must be \[r, g, b\] with integ'),
    (
      dict(ignore_label=3),
      r'"ignore_label" 3 is a class id \(classes are 0\.\.18\); use an id '
      r'from 19 to 255',
    ),
    (dict(ignore_label=300), r'"ignore_label" must be an integer 0\.\.255, got 300'),
    (dict(ignore_label=True), r'"ignore_label" must be an integer 0\.\.255, got true'),
    (dict(depth_scale=None), r'"depth_scale" is required: metres per unit'),
    (dict(depth_scale=0), r'"depth_scale" must be a positive number .*got 0'),
    (dict(depth_scale='0.001'), r'"depth_scale" must be a positive number .*got "0\.001"'),
    (dict(splits=None), r'"splits" is required'),
    (
      dict(splits={'train': 'train.txt', 'val': []}),
      r'"splits" has unknown split "val" '
      r'\(splits are train, validation, test\)',
    ),
    (
      dict(splits={'validation': ['images/validation/0.png']}),
      r'"splits" lacks the required split "train"',
    ),
    (dict(splits={'train': {'a': 1}}), r'"splits\.train" must be a list of image paths or '),
    (dict(splits={'train': ['']}), r'"splits\.train" must be a list of image paths or '),
    (dict(splits={'train': []}), r'"splits\.train" lists no images'),
    (
      dict(splits={'train': ['images/a.png', 'images/a.png']}),
      r'"splits\.train" lists "images/a\.png" more than once',
    ),
    (
      dict(splits={'train': 'lists/train.txt'}),
      r'"splits\.train" names .*lists/train\.txt, which '
      r'does not exist',
    ),
    (
      dict(splits={'train': '../train.txt'}),
      r'"splits\.train" names \.\./train\.txt: path '
      r'escapes the dataset root',
    ),
    (
      dict(splits={'train': 'images/train/0.png'}),
      r'"splits\.train" names .*0\.png, which is not '
      r'a UTF-8 text file',
    ),
  ],
)
def test_bad_dataset_json_names_the_key(root, changes, match):
  _edit_spec(root, **changes)
  with pytest.raises(UserError, match=r'dataset\.json: ' + match):
    folder.find_samples(root)


def test_empty_split_file(root):
  (root / 'train.txt').write_text('# nothing yet\n\n')
  with pytest.raises(UserError, match=r'dataset\.json: "splits\.train" lists no images'):
    folder.find_samples(root)


# -------------------------------------------------------------------------------- splits


def test_find_samples_reads_split_file_and_inline_list(root):
  samples = folder.find_samples(root)
  assert set(samples) == {'train', 'validation'}
  assert [f.image.relative_to(root).as_posix() for f in samples['train']] == [
    'images/train/0.png',
    'images/train/1.png',
    'images/train/2.png',
  ]
  files = samples['validation'][1]
  assert files.image == root / 'images/validation/1.png'
  assert files.semseg == root / 'semseg/validation/1.png'
  assert files.depth == root / 'depth/validation/1.png'
  assert files.extra['spec'] == (root / 'dataset.json').absolute()
  for files in samples['train'] + samples['validation']:
    layouts.files_inside_root(files)  # raises on failure


def test_split_file_skips_comments_blank_lines_crlf_and_bom(root):
  text = (
    '\ufeff# header\r\n\r\n  images/train/2.png  \r\n   # indented comment\r\n'
    'images/train/0.png\r\n'
  )
  (root / 'train.txt').write_text(text, encoding='utf-8', newline='')
  names = [f.image.name for f in folder.find_samples(root)['train']]
  assert names == ['2.png', '0.png']


def test_images_ending_in_jpg_map_to_png_labels(root):
  Image.open(root / 'images/train/0.png').save(root / 'images/train/0.jpg', quality=95)
  _set_split(root, 'train', ['images/./train/0.jpg'])
  files = _first(root)
  assert files.image == root / 'images/train/0.jpg'
  assert files.semseg == root / 'semseg/train/0.png'
  assert folder.load_sample(files)['image'].shape == (32, 64, 3)


def test_unlabeled_split_has_ignore_labels_and_invalid_depth(tmp_path):
  root = folder_fixture.write_folder(tmp_path, splits={'train': 1, 'test': 2})
  files = _first(root, 'test')
  assert files.semseg is None and files.depth is None
  sample = folder.load_sample(files)
  assert sample['image'].shape == (32, 64, 3)
  assert np.all(sample['semseg'] == 255) and np.all(sample['depth'] == 0)
  assert _first(root).semseg is not None


# ------------------------------------------------------------------------ decoded values


def test_load_sample_decodes_depth_in_metres_and_keeps_labels(root):
  sample = folder.load_sample(_first(root))
  assert sample['image'].dtype == np.uint8 and sample['image'].shape == (32, 64, 3)
  np.testing.assert_array_equal(
    sample['image'], np.asarray(Image.open(root / 'images/train/0.png'))
  )
  labels = np.asarray(Image.open(root / 'semseg/train/0.png'))
  assert sample['semseg'].dtype == np.uint8
  np.testing.assert_array_equal(sample['semseg'], labels)
  assert set(np.unique(labels)) <= set(range(19)) | {255}
  values = np.asarray(Image.open(root / 'depth/train/0.png'))
  assert values.dtype == np.uint16 and (values == 0).any()
  depth = sample['depth']
  assert depth.dtype == np.float32
  for y, x in [(0, 0), (5, 17), (31, 63)] + [tuple(np.argwhere(values == 0)[0])]:
    assert depth[y, x] == pytest.approx(values[y, x] * 0.001, rel=1e-6)
  np.testing.assert_array_equal(depth == 0, values == 0)


def test_depth_scale_is_applied(root):
  _edit_spec(root, depth_scale=1 / 256)
  values = np.array([[0, 1, 256, 65535]], np.uint16).repeat(32, 0).repeat(16, 1)
  _png(values, root / 'depth/train/0.png')
  depth = folder.load_sample(_first(root))['depth']
  np.testing.assert_allclose(depth[0, ::16], [0, 1 / 256, 1, 65535 / 256], rtol=1e-6)


def test_ignore_label_maps_to_255_and_class_ids_are_kept(root):
  _edit_spec(root, classes=['a', 'b', 'c'], colors=None, ignore_label=3)
  labels = np.tile(np.array([0, 1, 2, 3], np.uint8), (32, 16))
  _png(labels, root / 'semseg/train/0.png')
  semseg = folder.load_sample(_first(root))['semseg']
  np.testing.assert_array_equal(semseg[0, :4], [0, 1, 2, 255])
  np.testing.assert_array_equal(semseg == 255, labels == 3)


def test_palette_labels_are_read_as_ids(root):
  labels = Image.fromarray(np.full((32, 64), 7, np.uint8)).convert('P')
  labels.putpalette([0, 0, 0] * 256)
  labels.save(root / 'semseg/train/0.png')
  assert Image.open(root / 'semseg/train/0.png').mode == 'P'
  assert np.all(folder.load_sample(_first(root))['semseg'] == 7)


# -------------------------------------------------------------------------- hostile files


def _bad(files, match, **kwargs):
  with pytest.raises(file_checks.BadFile, match=match):
    folder.load_sample(files, **kwargs)


def test_missing_counterpart(root):
  (root / 'semseg/train/0.png').unlink()
  _bad(
    _first(root),
    r'images/train/0\.png: missing semseg file \(expected '
    r'.*semseg/train/0\.png\)',
  )


def test_listed_image_that_does_not_exist(root):
  _set_split(root, 'train', ['images/train/9.png'])
  _bad(_first(root), r'images/train/9\.png: no such file')


def test_zero_byte_image(root):
  (root / 'images/train/0.png').write_bytes(b'')
  _bad(_first(root), r'images/train/0\.png: empty file \(0 bytes\)')


def test_truncated_depth(root):
  path = root / 'depth/train/0.png'
  path.write_bytes(path.read_bytes()[:100])
  _bad(_first(root), r'depth/train/0\.png: truncated or corrupt image')


def test_non_image_file(root):
  (root / 'semseg/train/0.png').write_text('road,car\n0,1\n')
  _bad(_first(root), r'semseg/train/0\.png: not an image \(expected 8-bit class-id PNG\)')


def test_depth_size_mismatch(root):
  _png(np.ones((32, 32), np.uint16), root / 'depth/train/0.png')
  _bad(_first(root), r'depth/train/0\.png: size 32x32 does not match its image .*\(64x32\)')


def test_label_ids_out_of_range_and_not_ignore(root):
  labels = np.zeros((32, 64), np.uint8)
  labels[0, :4] = (18, 19, 200, 255)
  _png(labels, root / 'semseg/train/0.png')
  _bad(
    _first(root),
    r'semseg/train/0\.png: label ids 19, 200 are outside 0\.\.18 and not the '
    r'ignore label 255',
  )


def test_255_is_out_of_range_when_another_ignore_label_is_set(root):
  _edit_spec(root, ignore_label=100)
  _bad(
    _first(root),
    r'semseg/train/0\.png: label ids 255 are outside 0\.\.18 and not the ignore '
    r'label 100',
  )


def test_8_bit_depth_png(root):
  _png(np.ones((32, 64), np.uint8), root / 'depth/train/0.png')
  _bad(
    _first(root),
    r'depth/train/0\.png: expected 16-bit greyscale depth PNG \(mode I or '
    r'I;16\), got mode L',
  )


def test_rgb_depth_png(root):
  _png(np.ones((32, 64, 3), np.uint8), root / 'depth/train/0.png')
  _bad(_first(root), r'depth/train/0\.png: expected 16-bit .* got mode RGB')


def test_greyscale_image(root):
  _png(np.ones((32, 64), np.uint8), root / 'images/train/0.png')
  _bad(_first(root), r'images/train/0\.png: expected RGB JPEG or PNG \(mode RGB\), got mode L')


def test_image_over_max_pixels(root):
  _bad(
    _first(root),
    r'images/train/0\.png: 64x32 = 2048 pixels is over the limit of 1000 '
    r'\(a decompression bomb\?\)',
    max_pixels=1000,
  )


@pytest.mark.parametrize('entry', ['../outside.png', 'images/../../outside.png'])
def test_listed_path_escaping_with_dot_dot(root, entry):
  _png(np.zeros((32, 64, 3), np.uint8), root.parent / 'outside.png')  # a real image to reach
  _set_split(root, 'train', [entry])
  _bad(_first(root), r'outside\.png: path escapes the dataset root')


def test_listed_absolute_path(root, tmp_path):
  outside = tmp_path / 'outside.png'
  _png(np.zeros((32, 64, 3), np.uint8), outside)
  _set_split(root, 'train', [str(outside)])
  files = _first(root)
  assert files.image == outside
  _bad(files, r'outside\.png: path escapes the dataset root')


def test_symlink_escaping_the_root(root, tmp_path):
  outside = tmp_path / 'elsewhere.png'
  os.replace(root / 'images/train/0.png', outside)
  os.symlink(outside, root / 'images/train/0.png')
  _bad(_first(root), r'images/train/0\.png: path escapes the dataset root')


def test_symlinked_label_escaping_the_root(root, tmp_path):
  outside = tmp_path / 'elsewhere.png'
  os.replace(root / 'depth/train/0.png', outside)
  os.symlink(outside, root / 'depth/train/0.png')
  _bad(_first(root), r'depth/train/0\.png: path escapes the dataset root')


@pytest.mark.parametrize('entry', ['train.txt', 'semseg/train/0.png', 'images/../train.txt'])
def test_listed_path_outside_images(root, entry):
  _set_split(root, 'train', [entry])
  _bad(_first(root), r'mine/[a-z./0-9]*: not under .*mine/images/ \(split lists name images as')
