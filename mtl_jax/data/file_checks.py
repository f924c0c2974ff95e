"""Reading users' image files defensively: every failure is a `BadFile` naming the file.

Real datasets arrive with empty, truncated or mislabelled files, symlinks pointing elsewhere and
the odd decompression bomb. The loaders read every file through these functions so each of
those becomes one line — `<path>: <what is wrong>` — instead of a PIL traceback, a silent
garbage sample or a machine out of memory. Images are read as viewers show them, their EXIF
orientation applied (`read_image`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mtl_jax.runtime.errors import UserError

# 2048×2048×16: far above any street-scene frame (Cityscapes is 2048×1024), far below what
# decoding would take the machine down with.
DEFAULT_MAX_PIXELS = 64_000_000


class BadFile(UserError):
  """A data file that cannot be used; `path` and `reason` are kept for --skip_bad listings."""

  def __init__(self, path: str | os.PathLike, reason: str):
    super().__init__(f'{path}: {reason}')
    self.path, self.reason = str(path), reason


def inside(root: Path, path: str | os.PathLike) -> Path:
  """root/path, refusing paths that leave root (`..`, absolute paths, outbound symlinks)."""
  path = Path(root, path)
  if not path.resolve().is_relative_to(Path(root).resolve()):
    raise BadFile(path, f'path escapes the dataset root {root}')
  return path


def require(path: Path | None, what: str, counterpart_of: Path) -> Path:
  """`path` if it exists; else a BadFile on the sample's image saying which file is missing."""
  if path is None or not path.is_file():
    raise BadFile(counterpart_of, f'missing {what} file (expected {path})')
  return path


# EXIF orientations: 1 shows the pixels as stored, 2..8 mirror and/or turn them, and 5..8 turn
# them a quarter (the displayed width is the stored height).
_TRANSPOSING = frozenset(range(2, 9))
_QUARTER_TURNS = frozenset(range(5, 9))


def _orientation(image: Image.Image) -> int:
  """The EXIF orientation tag among what Pillow read with the header. A PNG's eXIf chunk after
  the pixels is only seen once they are decoded (PNG's own getexif would decode them to look):
  such an image counts as unturned here, and is blamed by name if its decoded size then differs."""
  return Image.Image.getexif(image).get(ExifTags.Base.Orientation, 1)


@contextlib.contextmanager
def _opened(path: Path, what: str) -> Iterator[Image.Image]:
  """The image at `path` opened (header read); each way it can fail is a BadFile."""
  if not path.is_file():
    raise BadFile(path, 'no such file')
  if path.stat().st_size == 0:
    raise BadFile(path, 'empty file (0 bytes)')
  try:
    with warnings.catch_warnings():
      # PIL only warns between MAX_IMAGE_PIXELS and twice that; our own limit decides.
      warnings.simplefilter('ignore', Image.DecompressionBombWarning)
      with Image.open(path) as image:
        yield image
  except Image.DecompressionBombError as e:
    raise BadFile(path, f'{e} (a decompression bomb?)') from None
  except UnidentifiedImageError:
    raise BadFile(path, f'not an image (expected {what})') from None
  except (OSError, SyntaxError, ValueError) as e:  # PIL's truncated / corrupt-data errors
    if isinstance(e, BadFile):
      raise
    raise BadFile(path, f'truncated or corrupt image ({e})') from None


@dataclasses.dataclass(frozen=True)
class Header:
  """What an image file's header says: its size as viewers show it, and its EXIF orientation."""

  size: tuple[int, int]  # (height, width), displayed
  orientation: int

  @property
  def transposed(self) -> bool:
    """Whether viewers show the pixels mirrored or turned, not as stored."""
    return self.orientation in _TRANSPOSING


def read_header(path: Path, *, what: str) -> Header:
  """The header of the image at `path` (its pixels are not decoded)."""
  with _opened(Path(path), what) as image:
    width, height = image.size
    orientation = _orientation(image)
  size = (width, height) if orientation in _QUARTER_TURNS else (height, width)
  return Header(size, orientation)


def read_image(
  path: Path, *, modes: Collection[str], what: str, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
  """Decodes `path` fully into a numpy array as viewers show it (EXIF orientation applied: what
  labelling tools show, so labels drawn there match), checking it is a `modes` image of sane
  size.

  what: how the message names the expected content, e.g. '8-bit greyscale depth PNG'.
  """
  path = Path(path)
  with _opened(path, what) as image:
    width, height = image.size
    if width * height > max_pixels:
      raise BadFile(
        path,
        f'{width}x{height} = {width * height} pixels is over the limit '
        f'of {max_pixels} (a decompression bomb?); raise --max_pixels if real',
      )
    if image.mode not in modes:
      raise BadFile(
        path, f'expected {what} (mode {" or ".join(sorted(modes))}), got mode {image.mode}'
      )
    image.load()
    ImageOps.exif_transpose(image, in_place=True)
    return np.asarray(image)


def size_text(path: Path, size: tuple[int, int]) -> str:
  """'WxH' of an image of `size` (height, width) read from `path`, saying when its EXIF
  orientation turned it: the usual cause of labels that fit the stored pixels but not it."""
  h, w = size
  try:
    orientation = read_header(path, what='image').orientation
  except BadFile:  # read fine a moment ago; the size is what matters
    orientation = 1
  if orientation not in _QUARTER_TURNS:
    return f'{w}x{h}'
  return f'{w}x{h} as displayed: its EXIF orientation {orientation} turns the stored {h}x{w} pixels'


def check_size(path: Path, array: np.ndarray, size: tuple[int, int], reference: Path) -> None:
  """Counterpart files (labels, depth) must match their image's height × width."""
  if array.shape[:2] != tuple(size):
    h, w = array.shape[:2]
    raise BadFile(
      path, f'size {w}x{h} does not match its image {reference} ({size_text(reference, size)})'
    )


def check_label_ids(path: Path, labels: np.ndarray, num_classes: int, ignore_label: int) -> None:
  """Every id must be a class (0..num_classes-1) or the ignore label."""
  ids = np.unique(labels)
  bad = ids[(ids >= num_classes) & (ids != ignore_label)]
  if bad.size:
    shown = ', '.join(str(i) for i in bad[:8]) + (' …' if bad.size > 8 else '')
    raise BadFile(
      path,
      f'label ids {shown} are outside 0..{num_classes - 1} and not the ignore label {ignore_label}',
    )
