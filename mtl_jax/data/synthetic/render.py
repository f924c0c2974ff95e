"""One sample of the synthetic street-scene dataset as a pure function of (seed, split, index)."""

import numpy as np

from mtl_jax.data import labels, sample
from mtl_jax.data.synthetic import builder, palettes, populate, raycast, shading
from mtl_jax.data.synthetic import camera as camera_lib
from mtl_jax.data.synthetic import layout as layout_lib
from mtl_jax.data.synthetic.defaults import SYNTHETIC_DEFAULTS as _DEFAULTS

SPLITS = ('train', 'validation', 'test')
MAX_DEPTH = sample.DEPTH_RANGE_M[1]  # farther surfaces count as invalid depth


def _split_code(split: str) -> int:
  if split not in SPLITS:
    raise ValueError(f'unknown split {split!r}; valid splits: {", ".join(SPLITS)}')
  return SPLITS.index(split)


def sample_camera(rng, lay, height, width) -> camera_lib.Camera:
  """A forward-looking camera in one of the right-hand lanes."""
  lanes = [x for x in lay.lane_centers() if x > 0] or lay.lane_centers()
  x = lanes[rng.integers(len(lanes))] + rng.normal(0, 0.25)
  return camera_lib.make_camera(
    position=(x, rng.uniform(1.15, 1.9), 0.0),
    yaw=rng.uniform(-0.15, 0.15),
    pitch=rng.uniform(-0.03, 0.1),
    roll=rng.normal(0, 0.012),
    focal_ratio=rng.uniform(0.75, 1.25),
    height=height,
    width=width,
    principal_offset=rng.normal(0, 0.01, 2),
  )


def sample_env(rng, sky) -> dict:
  """Sun, sky light, haze and camera response for one scene."""
  horizon, zenith = sky
  elev, az = rng.uniform(0.15, 1.2), rng.uniform(0, 2 * np.pi)
  sunny = rng.random() < 0.55
  warm = np.array([1.0, 0.95, 0.85]) * (1 + rng.uniform(-0.08, 0.08, 3))
  if sunny:
    sun, ambient = warm * rng.uniform(1.8, 3.0), np.asarray(zenith) * rng.uniform(0.35, 0.7)
  else:
    sun, ambient = warm * rng.uniform(0.0, 0.35), np.asarray(horizon) * rng.uniform(0.9, 1.3)
  return dict(
    sun_dir=(np.cos(elev) * np.sin(az), np.sin(elev), np.cos(elev) * np.cos(az)),
    sun_color=tuple(sun),
    ambient=tuple(ambient),
    horizon=horizon,
    zenith=zenith,
    cloud_cover=rng.uniform(0, 0.8) if sunny else rng.uniform(0.3, 1.0),
    cloud_color=palettes.grey(rng, 0.75, 1.0) if sunny else palettes.grey(rng, 0.45, 0.85),
    clouds_grid=rng.random((5, 9)),
    visibility=float(np.exp(rng.uniform(np.log(200), np.log(3000)))),  # metres
    haze=palettes.jitter(rng, horizon, 0.08),
    key=rng.uniform(0.1, 0.3),  # mean linear brightness auto-exposure aims for
    white_balance=tuple(1 + rng.normal(0, 0.06, 3)),
    saturation=rng.uniform(0.6, 1.25),
    vignette=rng.uniform(0, 0.5),
    noise=rng.uniform(1.0, 5.0),
    blur=rng.uniform(0, 1),
  )


def sample_scene(rng, height, width):
  """(Scene, Camera) for one sample; everything random is drawn from `rng` here."""
  lay = layout_lib.sample_layout(rng)
  cam = sample_camera(rng, lay, height, width)
  sky = palettes.sky(rng)
  b = builder.SceneBuilder()
  street = layout_lib.road_markings(rng, lay)
  layout_lib.add_ground(b, rng, lay)
  plant = populate.add_trees(b, rng, lay)
  walls = layout_lib.add_buildings(b, rng, lay, sky, plant)
  layout_lib.add_backdrop(b, rng, lay, sky)
  populate.add_poles(b, rng, lay)
  populate.add_clutter(b, rng, lay)
  populate.add_people(b, rng, lay, street['zebra_z'])
  populate.add_traffic(b, rng, lay, cam.position[0], street['zebra_z'])
  return b.build(street, sample_env(rng, sky), dict(walls=walls)), cam


def render_scene(scene, cam, rng) -> dict:
  """Ray casts and shades `scene`; `rng` only adds sensor noise."""
  d = camera_lib.camera_rays(cam)
  depth, ids = raycast.trace(scene, cam, d)
  lut = np.append(scene.label, [labels.TRAIN_ID['road'], labels.TRAIN_ID['sky']]).astype(
    np.uint8
  )  # ids -2 (ground) and -1 (sky) index the last two entries
  semseg = lut[ids]
  image = shading.shade(scene, cam, d, depth, ids, rng)
  depth = np.where((ids == raycast.SKY) | (depth > MAX_DEPTH), 0, depth).astype(np.float32)
  return dict(image=image, semseg=semseg, depth=depth)


def scene_for(
  index: int,
  *,
  split: str = 'train',
  seed: int = _DEFAULTS.seed,
  height: int = _DEFAULTS.height,
  width: int = _DEFAULTS.width,
):
  """(Scene, Camera, sensor-noise Generator) behind `render_sample` with the same arguments."""
  scene_seq, noise_seq = np.random.SeedSequence([seed, _split_code(split), index]).spawn(2)
  scene, cam = sample_scene(np.random.default_rng(scene_seq), height, width)
  return scene, cam, np.random.default_rng(noise_seq)


def render_sample(
  index: int,
  *,
  split: str = 'train',
  seed: int = _DEFAULTS.seed,
  height: int = _DEFAULTS.height,
  width: int = _DEFAULTS.width,
) -> dict:
  """Sample `index` of `split`: dict(image uint8 [H, W, 3], semseg uint8 [H, W], depth f32).

  semseg holds Cityscapes train ids (255 = void); depth is z-depth in metres, 0 for sky. The
  scene does not depend on the image size: other sizes render the same street (the focal length
  scales with the width).
  """
  return render_scene(*scene_for(index, split=split, seed=seed, height=height, width=width))
