"""Tests for the procedural synthetic street scenes (mtl_jax.data.synthetic)."""

import numpy as np
import pytest

from mtl_jax.data import labels
from mtl_jax.data.synthetic import builder, render_sample, render_scene, scene_for
from mtl_jax.data.synthetic import camera as camera_lib

H, W = 64, 128
SKY = labels.TRAIN_ID['sky']
ROAD = labels.TRAIN_ID['road']


@pytest.fixture(scope='module')
def samples():
  return [render_sample(i, height=H, width=W) for i in range(24)]


def _assert_same(a, b):
  for key in ('image', 'semseg', 'depth'):
    np.testing.assert_array_equal(a[key], b[key])


def test_deterministic_and_keyed_by_seed_split_index():
  ref = render_sample(5, split='validation', seed=3, height=H, width=W)
  _assert_same(ref, render_sample(5, split='validation', seed=3, height=H, width=W))
  for other in (
    dict(index=6, split='validation', seed=3),
    dict(index=5, split='test', seed=3),
    dict(index=5, split='validation', seed=4),
  ):
    s = render_sample(other.pop('index'), height=H, width=W, **other)
    assert not np.array_equal(ref['semseg'], s['semseg'])
    assert not np.array_equal(ref['depth'], s['depth'])


def test_unknown_split_names_the_valid_ones():
  with pytest.raises(ValueError, match='train, validation, test'):
    render_sample(0, split='val')


def test_dtypes_shapes_and_ranges(samples):
  for s in samples:
    assert s['image'].dtype == np.uint8 and s['image'].shape == (H, W, 3)
    assert s['semseg'].dtype == np.uint8 and s['semseg'].shape == (H, W)
    assert s['depth'].dtype == np.float32 and s['depth'].shape == (H, W)
    ids = np.unique(s['semseg'])
    assert np.all((ids < labels.NUM_CLASSES) | (ids == labels.IGNORE_LABEL)), ids
    assert np.all(np.isfinite(s['depth']))
    assert s['depth'].min() >= 0 and s['depth'].max() <= 300
    assert s['image'].std() > 10  # a picture, not a flat fill


def test_depth_is_zero_exactly_on_sky(samples):
  for s in samples:
    sky = s['semseg'] == SKY
    np.testing.assert_array_equal(s['depth'] == 0, sky)
    assert s['depth'][~sky].min() > 0.3  # the near plane


def test_many_classes_appear_regularly(samples):
  present = np.zeros(256)
  for s in samples:
    present[np.unique(s['semseg'])] += 1
  regular = [
    labels.CLASS_NAMES[c] for c in range(labels.NUM_CLASSES) if present[c] >= 0.2 * len(samples)
  ]
  assert len(regular) >= 12, regular
  for name in ('road', 'sidewalk', 'building', 'vegetation', 'car', 'pole'):
    assert name in regular


def test_road_depth_is_the_ray_plane_intersection():
  """Road pixels lie on y = 0: depth = camera height / downward ray slope, for the real camera."""
  for index in range(4):
    s = render_sample(index, height=H, width=W)
    _, cam, _ = scene_for(index, height=H, width=W)
    rows, cols = np.nonzero(s['semseg'] == ROAD)
    assert rows.size > 100
    expected = camera_lib.ground_depth(cam, rows, cols)
    np.testing.assert_allclose(s['depth'][rows, cols], expected, rtol=1e-4)


def _bare_scene(b=None):
  """A scene with only the primitives in `b` (ground and sky come for free)."""
  template, _, rng = scene_for(0, height=H, width=W)
  b = b or builder.SceneBuilder()
  return b.build(template.street, template.env, dict(walls=[])), rng


def test_flat_road_matches_closed_form_pitch_geometry():
  """With yaw = roll = 0, row v sees the road at h / ((v + 0.5 - cy) / f · cos θ + sin θ)."""
  height, pitch = 1.6, 0.05
  cam = camera_lib.make_camera(
    position=(0, height, 0), yaw=0, pitch=pitch, roll=0, focal_ratio=1.0, height=H, width=W
  )
  scene, rng = _bare_scene()
  out = render_scene(scene, cam, rng)
  slope = (np.arange(H) + 0.5 - cam.cy) / cam.focal * np.cos(pitch) + np.sin(pitch)
  below = slope > 1e-3
  expected = np.where(below, height / np.where(below, slope, 1), 0)
  np.testing.assert_allclose(out['depth'], np.broadcast_to(expected[:, None], (H, W)), rtol=1e-4)
  np.testing.assert_array_equal(out['semseg'][~below], SKY)
  np.testing.assert_array_equal(out['semseg'][below], ROAD)


def test_depth_is_z_depth_not_range():
  """A wall facing a level camera at z = 20 m has depth 20 everywhere, even at the borders."""
  b = builder.SceneBuilder()
  b.box(-50, 50, 0, 30, 20, 21, labels.TRAIN_ID['building'], (0.5, 0.5, 0.5))
  cam = camera_lib.make_camera(
    position=(0, 1.5, 0), yaw=0, pitch=0, roll=0, focal_ratio=0.8, height=H, width=W
  )
  scene, rng = _bare_scene(b)
  out = render_scene(scene, cam, rng)
  wall = out['semseg'] == labels.TRAIN_ID['building']
  assert wall.mean() > 0.45
  np.testing.assert_allclose(out['depth'][wall], 20.0, rtol=1e-5)
  # The wall's bottom edge projects to the row where the road reaches 20 m.
  row = int(np.argmin(wall[:, W // 2])) if not wall[-1, W // 2] else H
  assert abs(row - (cam.cy + cam.focal * 1.5 / 20)) <= 1


def test_other_sizes_render_the_same_street():
  """The scene is independent of the image size: class shares agree between sizes."""
  for index in range(3):
    small = render_sample(index, height=32, width=64)['semseg']
    large = render_sample(index, height=128, width=256)['semseg']
    share = lambda s: np.bincount(s.ravel(), minlength=256) / s.size
    assert np.abs(share(small) - share(large)).max() < 0.03
