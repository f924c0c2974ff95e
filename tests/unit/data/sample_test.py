"""Tests for mtl_jax.data.sample: the paired resize, batch dtypes and padding fill values."""

import numpy as np
import pytest
from PIL import Image
from sample_fixture import random_sample

from mtl_jax import parallel
from mtl_jax.data import augment, labels, miniscapes, sample

# ----------------------------------------------------------------------------- resize


@pytest.mark.parametrize('size', [(5, 7), (17, 30), (8, 12)])
def test_resize_labels_and_depth_nearest(size):
  s = random_sample()
  out = sample.resize(s, size)
  assert out['image'].shape == size + (3,) and out['image'].dtype == np.uint8
  assert out['semseg'].shape == size and out['semseg'].dtype == np.uint8
  assert out['depth'].shape == size and out['depth'].dtype == np.float32
  assert set(np.unique(out['semseg'])) <= set(np.unique(s['semseg']))
  assert set(np.unique(out['depth'])) <= set(np.unique(s['depth']))


def test_resize_to_double_repeats_pixels():
  s = random_sample(2, 2)
  out = sample.resize(s, (4, 4))
  np.testing.assert_array_equal(out['depth'], np.repeat(np.repeat(s['depth'], 2, 0), 2, 1))
  np.testing.assert_array_equal(out['semseg'], np.repeat(np.repeat(s['semseg'], 2, 0), 2, 1))


def test_resize_samples_pixel_centres_when_shrinking():
  # 3 -> 2: output centres 0.75 and 2.25 fall in source rows/columns 0 and 2.
  s = random_sample(3, 3)
  s['semseg'] = np.arange(9, dtype=np.uint8).reshape(3, 3)
  s['depth'] = np.arange(9, dtype=np.float32).reshape(3, 3) + 4
  out = sample.resize(s, (2, 2))
  np.testing.assert_array_equal(out['semseg'], [[0, 2], [6, 8]])
  np.testing.assert_array_equal(out['depth'], [[4, 6], [10, 12]])


def test_resize_image_is_pillow_bilinear():
  s = random_sample(8, 12)
  out = sample.resize(s, (11, 5))
  want = Image.fromarray(s['image']).resize((5, 11), Image.Resampling.BILINEAR)
  np.testing.assert_array_equal(out['image'], np.asarray(want))
  # A hard edge upscaled gets intermediate values (interpolated), unlike the labels.
  s['image'] = np.zeros((2, 2, 3), np.uint8)
  s['image'][:, 1] = 200
  s['semseg'], s['depth'] = s['semseg'][:2, :2], s['depth'][:2, :2]
  values = np.unique(sample.resize(s, (2, 8))['image'])
  assert values[0] == 0 and values[-1] == 200 and len(values) > 2


def test_resize_passes_other_keys_through():
  s = {**random_sample(), 'extra': object()}
  out = sample.resize(s, (4, 6))
  assert out['index'] is s['index'] and out['extra'] is s['extra']


# ----------------------------------------------------------------------------- batches


def test_to_batch_dtypes_and_keys():
  out = sample.to_batch({**random_sample(), 'extra': 1})
  assert {k: v.dtype for k, v in out.items()} == {
    'image': np.uint8,
    'semseg': np.int32,
    'depth': np.float32,
    'index': np.int64,
  }


def test_padding_has_the_contract_fill_values():
  s = random_sample(3, 4)
  pad = sample.padding_like(s)
  assert pad.keys() == {'image', 'semseg', 'depth', 'index'}
  for key in ('image', 'semseg', 'depth'):
    assert pad[key].shape == s[key].shape and pad[key].dtype == s[key].dtype
  assert (pad['image'] == 0).all() and (pad['depth'] == 0).all()
  assert (pad['semseg'] == sample.IGNORE_LABEL).all() and sample.IGNORE_LABEL == 255
  assert pad['index'] == -1 and pad['index'].dtype == np.int64


def test_crop_padding_uses_the_same_fill_values():
  s = random_sample(2, 3)
  out = augment.pad_to(s, (4, 5))
  pad = sample.padding_like(s)
  for key in ('image', 'semseg', 'depth'):
    np.testing.assert_array_equal(out[key][2:, :], np.full_like(out[key][2:, :], pad[key][0, 0]))
    np.testing.assert_array_equal(out[key][:, 3:], np.full_like(out[key][:, 3:], pad[key][0, 0]))
    np.testing.assert_array_equal(out[key][:2, :3], s[key])


# ----------------------------------------------------------------------------- one definition


def test_constants_are_defined_once():
  assert labels.IGNORE_LABEL is sample.IGNORE_LABEL
  assert parallel.DEVICE_KEYS is sample.DEVICE_KEYS == ('image', 'semseg', 'depth', 'mask')
  assert (miniscapes.MIN_DEPTH_M, miniscapes.MAX_DEPTH_M) == sample.DEPTH_RANGE_M == (4.0, 300.0)
  # The 8-bit codec spans exactly the data's depth range.
  np.testing.assert_allclose(miniscapes.decode_depth(np.array([1, 255])), [300.0, 4.0], rtol=1e-6)
