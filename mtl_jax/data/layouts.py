"""What every on-disk dataset layout provides to the TFDS builders of `manual_tfds`.

A layout module (`miniscapes`, `cityscapes`, `folder`) knows one directory structure:
`class_names(root)` gives the class names in id order; `find_samples(root)` lists each split's
samples as `SampleFiles` without reading them (a missing root or split is a UserError that says
which layout was expected and where the data comes from); `load_sample(files, max_pixels=...)`
decodes and checks one sample (image, semseg, depth of the `sample` contract), raising
`file_checks.BadFile` for anything wrong with it (size=(h, w): every image must have that size,
else the image is the bad file). Images are read as viewers show them (EXIF orientation applied).
A split without labels (a test split) gets semseg all ignored and depth all invalid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from mtl_jax.data import file_checks
from mtl_jax.data.labels import CLASS_NAMES
from mtl_jax.data.sample import IGNORE_LABEL
from mtl_jax.runtime.errors import UserError


@dataclasses.dataclass(frozen=True)
class SampleFiles:
  """One sample's files. semseg/depth None: the split has no labels (not: a file is missing).

  root: the dataset root every file must stay inside (checked when loading, so --skip_bad can
  skip a sample whose listed path escapes it).
  """

  root: Path
  image: Path
  semseg: Path | None = None
  depth: Path | None = None
  extra: Mapping[str, Path] = dataclasses.field(default_factory=dict)  # e.g. camera.json


class Layout(Protocol):
  NAME: str
  INSTRUCTIONS: str  # the expected layout and where the data comes from
  IMAGE: FileKind

  def class_names(self, root: Path) -> tuple[str, ...]: ...

  def find_samples(self, root: Path) -> dict[str, list[SampleFiles]]: ...

  def load_sample(
    self, files: SampleFiles, *, max_pixels: int, size: tuple[int, int] | None = None
  ) -> dict[str, np.ndarray]: ...


def files_inside_root(files: SampleFiles) -> None:
  """Raises BadFile if any of the sample's paths leaves its root (`..`, symlinks)."""
  for path in (files.image, files.semseg, files.depth, *files.extra.values()):
    if path is not None:
      file_checks.inside(files.root, path)


@dataclasses.dataclass(frozen=True)
class FileKind:
  """How a layout stores one kind of file: its name in messages, the PIL modes accepted and
  what a message calls the expected content."""

  name: str
  modes: frozenset[str]
  what: str


@dataclasses.dataclass(frozen=True)
class RawSample:
  """The decoded files of a sample, checked for size; semseg/depth None for an unlabeled
  split."""

  image: np.ndarray
  semseg: np.ndarray | None = None
  depth: np.ndarray | None = None
  semseg_path: Path | None = None
  depth_path: Path | None = None


def read_sample(
  files: SampleFiles,
  *,
  image: FileKind,
  semseg: FileKind,
  depth: FileKind,
  max_pixels: int,
  size: tuple[int, int] | None = None,
) -> RawSample:
  """The checks every layout shares: paths inside the root, each file a sane image of its
  kind, the image of `size` (h, w; None: any), counterparts present (in a labeled split) and of
  the image's size. The image is checked before its counterparts, so that an image of another
  size is blamed, not its labels."""
  files_inside_root(files)
  pixels = file_checks.read_image(
    files.image, modes=image.modes, what=image.what, max_pixels=max_pixels
  )
  if size is not None and pixels.shape[:2] != tuple(size):
    raise file_checks.BadFile(
      files.image,
      f'size {file_checks.size_text(files.image, pixels.shape[:2])} differs from the '
      f"dataset's {size[1]}x{size[0]} (its most common image size); pass --height and --width "
      'to resize all',
    )
  if files.semseg is None:
    return RawSample(pixels)
  paths = [
    file_checks.require(path, kind.name, files.image)
    for path, kind in ((files.semseg, semseg), (files.depth, depth))
  ]
  arrays = [
    file_checks.read_image(path, modes=kind.modes, what=kind.what, max_pixels=max_pixels)
    for path, kind in zip(paths, (semseg, depth))
  ]
  for path, array in zip(paths, arrays):
    file_checks.check_size(path, array, pixels.shape[:2], files.image)
  return RawSample(pixels, *arrays, *paths)


def missing(layout_name: str, instructions: str, what: Path) -> UserError:
  """The error for a missing manual directory or split: what was looked for and where it
  comes from."""
  return UserError(f'{layout_name}: {what} not found. {instructions}')


def cityscapes_class_names(root: Path) -> tuple[str, ...]:
  """`class_names` of the layouts labelled with Cityscapes train ids."""
  del root  # the same 19 classes for every dataset of such a layout
  return CLASS_NAMES


def present_splits(
  root: Path,
  layout_name: str,
  instructions: str,
  folders: Mapping[str, str],
  required: tuple[str, ...],
  image_dir: Callable[[str], Path],
):
  """Yields (TFDS split, folder name, image directory) for each split on disk; a missing root
  or required split is a UserError naming the layout."""
  if not Path(root).is_dir():
    raise missing(layout_name, instructions, root)
  for split, folder in folders.items():
    images = image_dir(folder)
    if images.is_dir():
      yield split, folder, images
    elif split in required:
      raise missing(layout_name, instructions, images)


def unlabeled(image: np.ndarray) -> dict[str, np.ndarray]:
  """Labels for a sample of a split without ground truth: all ignored / invalid."""
  h, w = image.shape[:2]
  return {
    'image': image,
    'semseg': np.full((h, w), IGNORE_LABEL, np.uint8),
    'depth': np.zeros((h, w), np.float32),
  }


def numeric_stem_order(path: Path) -> tuple:
  """Sort key putting 2.png before 10.png (and any non-numeric names after, by name)."""
  return (0, int(path.stem), '') if path.stem.isdigit() else (1, 0, path.stem)


def sorted_files(
  directory: Path, suffixes: tuple[str, ...], key: Callable[[Path], tuple] = numeric_stem_order
) -> list[Path]:
  return sorted((p for p in directory.iterdir() if p.suffix.lower() in suffixes), key=key)
