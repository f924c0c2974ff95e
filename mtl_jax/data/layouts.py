"""What every on-disk dataset layout provides to the TFDS builders of `manual_tfds`.

A layout module (`miniscapes`, `cityscapes`, `folder`) knows one directory structure:
`class_names(root)` gives the class names in id order; `find_samples(root)` lists each split's samples as `SampleFiles` without reading them (a missing
root or split is a UserError that says which layout was expected and where the data comes
from); `load_sample(files, max_pixels=...)` decodes and checks one sample into
  image uint8 [H, W, 3], semseg uint8 [H, W] (train ids, 255 ignore), depth float32 [H, W]
  (metres, 0 = invalid),
raising `file_checks.BadFile` for anything wrong with it. A split without labels (a test split)
gets semseg all 255 and depth all 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from mtl_jax.data import file_checks
from mtl_jax.data.labels import IGNORE_LABEL
from mtl_jax.errors import UserError


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

  def class_names(self, root: Path) -> tuple[str, ...]: ...

  def find_samples(self, root: Path) -> dict[str, list[SampleFiles]]: ...

  def load_sample(self, files: SampleFiles, *, max_pixels: int) -> dict[str, np.ndarray]: ...


def files_inside_root(files: SampleFiles) -> None:
  """Raises BadFile if any of the sample's paths leaves its root (`..`, symlinks)."""
  for path in (files.image, files.semseg, files.depth, *files.extra.values()):
    if path is not None:
      file_checks.inside(files.root, path)


def missing(layout_name: str, instructions: str, what: Path) -> UserError:
  """The error for a missing manual directory or split: what was looked for and where it
  comes from."""
  return UserError(f'{layout_name}: {what} not found. {instructions}')


def unlabeled(image: np.ndarray) -> dict[str, np.ndarray]:
  """Labels for a sample of a split without ground truth: all ignored / invalid."""
  h, w = image.shape[:2]
  return {'image': image, 'semseg': np.full((h, w), IGNORE_LABEL, np.uint8),
          'depth': np.zeros((h, w), np.float32)}


def numeric_stem_order(path: Path) -> tuple:
  """Sort key putting 2.png before 10.png (and any non-numeric names after, by name)."""
  return (0, int(path.stem), '') if path.stem.isdigit() else (1, 0, path.stem)


def sorted_files(directory: Path, suffixes: tuple[str, ...],
                 key: Callable[[Path], tuple] = numeric_stem_order) -> list[Path]:
  return sorted((p for p in directory.iterdir() if p.suffix.lower() in suffixes), key=key)
