"""A trained network on arbitrary images: reading, fitting to the network, mapping back, encoding.

An image of any size is scaled to fit the size the run trained at (aspect kept), padded at the
bottom and right to a multiple of the network's output stride with the ImageNet mean colour
(zero after normalisation, as the convolutions pad), predicted, cropped and resized back to its
own size: labels by nearest neighbour, depth bilinearly. Images that fit to the same padded
size share one compiled function (`Fit.padded`).

Reading refuses an image over MAX_PIXELS from its header, before decoding: predict holds the
decoded original and several full-size outputs (labels, colours, depth, the panel) at once,
so a small file claiming a huge size would take many gigabytes.
High-bit-depth images keep their brightness: 16-bit greyscale ('I;16') is shifted to its top 8
bits, and a 32-bit 'I' image likewise when every value fits 16 bits (how Pillow opens many
16-bit files), else from its whole non-negative 31-bit range; Pillow's own conversion would clip
them at 255, a white image.
"""

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mtl_jax.models.mtl import IMAGENET_MEAN
from mtl_jax.runtime.errors import UserError

# The 16-bit depth PNG: millimetres, 0 = no prediction; 65.535 m and beyond saturate.
DEPTH_PNG_SCALE = 1000.0
DEPTH_PNG_MAX = np.iinfo(np.uint16).max
# The padding colour: the normalisation's mean, so padded pixels are about 0 inside the network.
PAD_RGB = tuple(round(255 * m) for m in IMAGENET_MEAN)
# The largest image read: a 61-megapixel full-frame photo (9504×6336) fits, a 100-megapixel
# medium-format one does not (downscale it first: the network sees the trained size anyway).
MAX_PIXELS = 64_000_000
_SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N')


def read_rgb(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
  """[H, W, 3] uint8 of an image file: EXIF orientation applied; greyscale, palette and alpha
  images converted to RGB (alpha dropped), high bit depths scaled to 8 bits. A UserError naming
  the file if it is not an image or has more than `max_pixels`."""
  try:
    with warnings.catch_warnings():
      # Pillow warns from 89 megapixels on; our own lower limit names the file instead.
      warnings.simplefilter('ignore', Image.DecompressionBombWarning)
      with Image.open(path) as image:  # reads the header only
        _require_size(path, image.size, max_pixels)
        return to_rgb(ImageOps.exif_transpose(image))
  except UserError:
    raise
  except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
    raise UserError(f'{path}: not a readable image ({e})') from e


def _require_size(path: Path, size: tuple[int, int], max_pixels: int) -> None:
  width, height = size
  if width * height > max_pixels:
    raise UserError(
      f'{path}: {width}×{height} is {width * height / 1e6:.0f} megapixels, over the limit of '
      f'{max_pixels / 1e6:.0f} (MAX_PIXELS); downscale it first'
    )


def to_rgb(image: Image.Image) -> np.ndarray:
  """[H, W, 3] uint8 of a decoded image of any mode (see the module docstring for high bit
  depths)."""
  if image.mode in _SIXTEEN_BIT_MODES:
    grey = np.asarray(image).astype(np.uint16) >> 8
  elif image.mode == 'I':
    values = np.clip(np.asarray(image), 0, None)
    grey = values >> (8 if values.max(initial=0) <= 0xFFFF else 23)
  else:
    return np.asarray(image.convert('RGB'))
  return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)


@dataclasses.dataclass(frozen=True)
class Fit:
  """How one image of `original` size goes through a network trained at `trained` size."""

  original: tuple[int, int]
  resized: tuple[int, int]
  padded: tuple[int, int]

  @classmethod
  def of(
    cls,
    original: tuple[int, int],
    trained: tuple[int, int],
    stride: int,
    pad_to: tuple[int, int] | None = None,
  ) -> 'Fit':
    """Scaled to fit `trained`, then padded to a multiple of `stride` (or to `pad_to`, for a
    network of fixed input size)."""
    scale = min(trained[0] / original[0], trained[1] / original[1])
    resized = tuple(max(1, round(side * scale)) for side in original)
    padded = pad_to or tuple(math.ceil(side / stride) * stride for side in resized)
    return cls(tuple(original), resized, tuple(padded))


def fit_image(rgb: np.ndarray, fit: Fit) -> np.ndarray:
  """The network's [padded H, padded W, 3] uint8 input for `rgb`."""
  image = Image.fromarray(rgb)
  if fit.resized != fit.original:
    image = image.resize(fit.resized[::-1], Image.Resampling.BILINEAR)
  out = np.empty((*fit.padded, 3), np.uint8)
  out[...] = PAD_RGB
  out[: fit.resized[0], : fit.resized[1]] = np.asarray(image)
  return out


def _back(prediction: np.ndarray, fit: Fit, dtype, resample) -> np.ndarray:
  """A [padded] prediction without its padding, resized to the image's own size."""
  crop = np.asarray(prediction[: fit.resized[0], : fit.resized[1]], dtype)
  if fit.resized == fit.original:
    return crop
  return np.asarray(Image.fromarray(crop).resize(fit.original[::-1], resample))


def labels_back(labels: np.ndarray, fit: Fit) -> np.ndarray:
  """Predicted train ids [padded] → uint8 [original], nearest neighbour."""
  return _back(labels, fit, np.uint8, Image.Resampling.NEAREST)


def depth_back(depth: np.ndarray, fit: Fit) -> np.ndarray:
  """Predicted metres [padded] → float32 [original], bilinear."""
  return _back(depth, fit, np.float32, Image.Resampling.BILINEAR)


def encode_depth_png(metres: np.ndarray) -> np.ndarray:
  """Metres → uint16 millimetres (0 where not positive or not finite; saturating)."""
  mm = np.where(np.isfinite(metres) & (metres > 0), metres * DEPTH_PNG_SCALE, 0.0)
  return np.clip(np.round(mm), 0, DEPTH_PNG_MAX).astype(np.uint16)


def decode_depth_png(mm: np.ndarray) -> np.ndarray:
  """uint16 millimetres → metres (0 = no depth)."""
  return mm.astype(np.float32) / DEPTH_PNG_SCALE


def overlay(rgb: np.ndarray, color: np.ndarray, alpha: float = 0.5) -> np.ndarray:
  """The colour semseg blended over the input."""
  mixed = (1 - alpha) * rgb.astype(np.float32) + alpha * color.astype(np.float32)
  return mixed.round().astype(np.uint8)
