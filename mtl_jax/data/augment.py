"""Paired train-time augmentation of samples (see `sample` for the contract), in pure numpy.

Every random function has the form `f(sample, rng, ...) -> sample`: it draws all its randomness
from `rng` once, then applies the same geometric change to image, semseg and depth (scaling with
`sample.resize`, padding with `sample.FILL`); depth values are never rescaled by flips, crops or
scaling. Photometric jitter touches the image only.

`Augment` wraps the composition as a grain `RandomMapTransform`: grain hands it a per-element
generator derived from (pipeline seed, element position), which keeps augmentation
deterministic and checkpointable.
"""

from __future__ import annotations

import dataclasses

import grain
import numpy as np

from mtl_jax.data import sample as sample_lib
from mtl_jax.data.sample import Sample

# Rec. 601 luma weights, used as the "grey" for contrast and saturation.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# ----------------------------------------------------------------------------- geometry


def random_scale(
  sample: Sample, rng: np.random.Generator, scale_range: tuple[float, float]
) -> Sample:
  """Resizes the whole sample by s ~ U(scale_range)."""
  lo, hi = scale_range
  if lo == hi == 1.0:
    return sample
  s = rng.uniform(lo, hi)
  h, w = sample['semseg'].shape
  return sample_lib.resize(sample, (max(1, round(h * s)), max(1, round(w * s))))


def pad_to(sample: Sample, size: tuple[int, int]) -> Sample:
  """Pads bottom/right up to at least size=(h, w) with the contract's fill values."""
  h, w = sample['semseg'].shape
  ph, pw = max(size[0] - h, 0), max(size[1] - w, 0)
  if ph == pw == 0:
    return sample
  out = dict(sample)
  for key in sample_lib.SPATIAL_KEYS:
    pad = ((0, ph), (0, pw)) + ((0, 0),) * (sample[key].ndim - 2)
    out[key] = np.pad(sample[key], pad, constant_values=sample_lib.FILL[key])
  return out


def crop(sample: Sample, top: int, left: int, size: tuple[int, int]) -> Sample:
  """Crops the window [top:top+h, left:left+w] out of image, semseg and depth."""
  h, w = size
  out = dict(sample)
  for key in sample_lib.SPATIAL_KEYS:
    out[key] = sample[key][top : top + h, left : left + w]
  return out


def random_crop(sample: Sample, rng: np.random.Generator, size: tuple[int, int]) -> Sample:
  """Pads if needed, then crops a uniformly placed size=(h, w) window."""
  sample = pad_to(sample, size)
  h, w = sample['semseg'].shape
  top = int(rng.integers(0, h - size[0] + 1))
  left = int(rng.integers(0, w - size[1] + 1))
  return crop(sample, top, left, size)


def hflip(sample: Sample) -> Sample:
  """Mirrors image, semseg and depth left-right."""
  out = dict(sample)
  for key in sample_lib.SPATIAL_KEYS:
    out[key] = sample[key][:, ::-1]
  return out


def random_flip(sample: Sample, rng: np.random.Generator, p: float = 0.5) -> Sample:
  return hflip(sample) if rng.uniform() < p else sample


# ----------------------------------------------------------------------------- photometric


@dataclasses.dataclass(frozen=True)
class Jitter:
  """Bounds of the photometric jitter; each factor is drawn from U(1 - a, 1 + a).

  hue: maximum rotation of the colours around the grey axis, as a fraction of a full turn
  (0.05 = ±18°).
  """

  brightness: float = 0.2
  contrast: float = 0.2
  saturation: float = 0.2
  hue: float = 0.02


def _hue_rotation(turns: float) -> np.ndarray:
  """[3, 3] rotation of RGB space around the grey axis (1, 1, 1) (Rodrigues formula)."""
  theta = 2 * np.pi * turns
  k = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], np.float64) / np.sqrt(3)
  return np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * (k @ k)


def jitter_image(image: np.ndarray, rng: np.random.Generator, jitter: Jitter) -> np.ndarray:
  """Random brightness, contrast, saturation and hue on a uint8 RGB image."""
  b, c, s = (
    rng.uniform(1 - a, 1 + a) for a in (jitter.brightness, jitter.contrast, jitter.saturation)
  )
  turns = rng.uniform(-jitter.hue, jitter.hue)
  x = image.astype(np.float32) * b
  mean = float((x @ _LUMA).mean())
  x = (x - mean) * c + mean
  grey = (x @ _LUMA)[..., None]
  x = grey + (x - grey) * s
  x = x @ _hue_rotation(turns).T.astype(np.float32)
  return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def photometric_jitter(sample: Sample, rng: np.random.Generator, jitter: Jitter) -> Sample:
  """Jitters the image only; semseg and depth are returned as they are."""
  return {**sample, 'image': jitter_image(sample['image'], rng, jitter)}


# ----------------------------------------------------------------------------- composition


def augment(
  sample: Sample,
  rng: np.random.Generator,
  *,
  crop_size: tuple[int, int] | None = None,
  scale_range: tuple[float, float] = (1.0, 1.0),
  flip: bool = True,
  jitter: Jitter | None = None,
) -> Sample:
  """Scale → crop (to crop_size, or back to the input size) → flip → jitter."""
  size = tuple(crop_size) if crop_size is not None else sample['semseg'].shape
  sample = random_scale(sample, rng, scale_range)
  if sample['semseg'].shape != size:
    sample = random_crop(sample, rng, size)
  if flip:
    sample = random_flip(sample, rng)
  if jitter is not None:
    sample = photometric_jitter(sample, rng, jitter)
  # Flips and crops leave strided views; batching copies anyway, but keep arrays contiguous.
  return {k: np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v for k, v in sample.items()}


@dataclasses.dataclass(frozen=True)
class Augment(grain.transforms.RandomMap):
  """`augment` as a grain RandomMapTransform (uses grain's per-element rng)."""

  crop_size: tuple[int, int] | None = None
  scale_range: tuple[float, float] = (1.0, 1.0)
  flip: bool = True
  jitter: Jitter | None = None

  def random_map(self, element: Sample, rng: np.random.Generator) -> Sample:
    return augment(
      element,
      rng,
      crop_size=self.crop_size,
      scale_range=self.scale_range,
      flip=self.flip,
      jitter=self.jitter,
    )
