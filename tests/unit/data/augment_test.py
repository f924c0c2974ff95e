"""Tests for mtl_jax.data.augment: paired geometry, nearest labels/depth, image-only jitter."""

import grain
import numpy as np
import pytest
from sample_fixture import random_sample

from mtl_jax.data import augment


def _assert_samples_equal(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])


def test_hflip_mirrors_every_array():
  s = {
    'image': np.arange(9, dtype=np.uint8).reshape(1, 3, 3),
    'semseg': np.array([[1, 2, 3]], np.uint8),
    'depth': np.array([[4.0, 0.0, 7.5]], np.float32),
    'index': 3,
  }
  out = augment.hflip(s)
  np.testing.assert_array_equal(out['semseg'], [[3, 2, 1]])
  np.testing.assert_array_equal(out['depth'], [[7.5, 0.0, 4.0]])
  np.testing.assert_array_equal(out['image'], [[[6, 7, 8], [3, 4, 5], [0, 1, 2]]])
  assert out['index'] == 3


def test_random_crop_shapes_and_alignment():
  s = random_sample(8, 12)
  # Encode each pixel's position in depth so the crop window can be checked.
  s['depth'] = np.arange(96, dtype=np.float32).reshape(8, 12)
  out = augment.random_crop(s, np.random.default_rng(1), (5, 6))
  assert out['image'].shape == (5, 6, 3) and out['semseg'].shape == (5, 6)
  top, left = divmod(int(out['depth'][0, 0]), 12)
  np.testing.assert_array_equal(out['semseg'], s['semseg'][top : top + 5, left : left + 6])
  np.testing.assert_array_equal(out['image'], s['image'][top : top + 5, left : left + 6])


def test_random_crop_pads_small_samples():
  s = random_sample(4, 5)
  out = augment.random_crop(s, np.random.default_rng(0), (6, 8))
  assert out['semseg'].shape == (6, 8)
  np.testing.assert_array_equal(out['semseg'][:4, :5], s['semseg'])
  np.testing.assert_array_equal(out['depth'][:4, :5], s['depth'])
  assert (out['semseg'][4:] == 255).all() and (out['semseg'][:, 5:] == 255).all()
  assert (out['depth'][4:] == 0).all() and (out['image'][:, 5:] == 0).all()


def test_jitter_touches_only_the_image():
  s = random_sample()
  out = augment.photometric_jitter(s, np.random.default_rng(0), augment.Jitter(0.4, 0.4, 0.4, 0.1))
  assert out['semseg'] is s['semseg'] and out['depth'] is s['depth']
  assert out['image'].dtype == np.uint8 and out['image'].shape == s['image'].shape
  assert not np.array_equal(out['image'], s['image'])


def test_zero_jitter_is_identity():
  s = random_sample()
  out = augment.jitter_image(s['image'], np.random.default_rng(0), augment.Jitter(0, 0, 0, 0))
  np.testing.assert_array_equal(out, s['image'])


def test_hue_rotation_keeps_grey_and_brightness_scales():
  grey = np.full((2, 2, 3), 100, np.uint8)
  out = augment.jitter_image(grey, np.random.default_rng(0), augment.Jitter(0, 0, 0, 0.5))
  np.testing.assert_array_equal(out, grey)  # a colour rotation leaves the grey axis fixed
  rot = augment._hue_rotation(1 / 3)  # a third of a turn cycles R -> G -> B
  np.testing.assert_allclose(rot @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_augment_is_deterministic_per_seed(seed):
  kw = dict(crop_size=(6, 10), scale_range=(0.5, 2.0), flip=True, jitter=augment.Jitter())
  a = augment.augment(random_sample(), np.random.default_rng(seed), **kw)
  b = augment.augment(random_sample(), np.random.default_rng(seed), **kw)
  _assert_samples_equal(a, b)
  assert a['image'].shape == (6, 10, 3) and a['index'] == 7
  assert set(np.unique(a['depth'])) <= set(np.unique(random_sample()['depth']))
  assert set(np.unique(a['semseg'])) <= set(np.unique(random_sample()['semseg'])) | {255}


def test_augment_without_crop_size_keeps_input_size():
  out = augment.augment(random_sample(), np.random.default_rng(0), scale_range=(0.5, 1.5))
  assert out['semseg'].shape == (8, 12) and out['image'].shape == (8, 12, 3)


def test_augment_differs_across_seeds():
  kw = dict(crop_size=(6, 10), scale_range=(0.5, 2.0), jitter=augment.Jitter())
  outs = [
    augment.augment(random_sample(), np.random.default_rng(s), **kw)['image'] for s in range(4)
  ]
  assert len({o.tobytes() for o in outs}) == 4


def test_augment_transform_in_grain_is_deterministic():
  transform = augment.Augment(crop_size=(6, 10), scale_range=(0.8, 1.2), jitter=augment.Jitter())
  ds = grain.MapDataset.source([random_sample(seed=i) for i in range(4)])
  first = list(ds.random_map(transform, seed=3))
  again = list(ds.random_map(transform, seed=3))
  for a, b in zip(first, again):
    _assert_samples_equal(a, b)
  assert all(a['image'].shape == (6, 10, 3) for a in first)
