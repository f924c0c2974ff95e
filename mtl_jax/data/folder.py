"""Users' own data: images/, semseg/ and depth/ folders described by a dataset.json.

  <root>/dataset.json
  <root>/images/<rel>.{jpg,jpeg,png}   RGB
  <root>/semseg/<rel>.png              8-bit class ids (mode L or P), `ignore_label` = unlabeled
  <root>/depth/<rel>.png               16-bit greyscale: metres = value × depth_scale, 0 = invalid
where <rel> may contain sub-folders. dataset.json, for example:

  {"classes": ["road", "car", "person"],
   "colors": [[128, 64, 128], [0, 0, 142], [220, 20, 60]],
   "ignore_label": 255,
   "depth_scale": 0.001,
   "splits": {"train": "train.txt",
              "validation": ["images/val/a.jpg", "images/val/b.jpg"],
              "test": "test.txt"}}

  classes       required: class names in id order (ids 0, 1, …), 1 to 255 of them
  colors        optional: one [r, g, b] (0..255) per class, stored with the prepared dataset to
                colour its predictions (`registry.class_colors`; default: Cityscapes' colours)
  ignore_label  optional, default 255: the id of unlabeled pixels, not a class id (stored as 255)
  depth_scale   required: metres per unit of the depth PNG (0.001: millimetres, 1/256: KITTI)
  splits        train required, validation and test optional: each a list of image paths
                relative to the root ("images/<rel>.jpg"), or the name of a text file (relative
                to the root) with one such path per line; blank lines and lines starting with #
                are skipped.

The labels of images/<rel>.<ext> are semseg/<rel>.png and depth/<rel>.png. A split is unlabeled
(semseg all ignore, depth all invalid) when none of the semseg/ and depth/ folders its labels
would be in exists, e.g. test images in images/test/ with no semseg/test/ and no depth/test/.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import posixpath
import types
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import numpy as np

from mtl_jax.data import file_checks, layouts
from mtl_jax.data.file_checks import BadFile
from mtl_jax.data.sample import IGNORE_LABEL, TASKS
from mtl_jax.runtime.errors import UserError

NAME = 'folder'
SPEC_FILE = 'dataset.json'
INSTRUCTIONS = (
  'Expected the folder layout <manual_dir>/dataset.json with images/<rel>.jpg|.jpeg|.png, '
  'semseg/<rel>.png (8-bit class ids) and depth/<rel>.png (16-bit depth) beside it, where '
  'dataset.json gives "classes" (names in id order), "depth_scale" (metres per depth PNG '
  'unit) and "splits" ({"train": ..., "validation": ..., "test": ...}, each a list of '
  'images/<rel> paths or a text file listing them); see mtl_jax/data/folder.py for an example.'
)
SPLITS = ('train', 'validation', 'test')
REQUIRED_SPLITS = ('train',)
KEYS = ('classes', 'colors', 'ignore_label', 'depth_scale', 'splits')
MAX_CLASSES = IGNORE_LABEL  # class ids stay below the stored ignore label (uint8 PNGs)
# Pillow opens 16-bit greyscale PNGs as 'I;16' (recent) or 'I' (older versions).
DEPTH_MODES = frozenset({'I;16', 'I'})


@dataclasses.dataclass(frozen=True)
class FolderSpec:
  """A validated dataset.json. splits: split → image paths relative to the root, as listed but
  normalised (`posixpath.normpath`: no `./`, `//` or `<dir>/..`)."""

  path: Path
  classes: tuple[str, ...]
  colors: tuple[tuple[int, int, int], ...] | None
  ignore_label: int
  depth_scale: float
  splits: Mapping[str, tuple[str, ...]]

  @property
  def root(self) -> Path:
    return self.path.parent

  @property
  def num_classes(self) -> int:
    return len(self.classes)


def _error(path: Path, key: str, problem: str) -> UserError:
  return UserError(f'{path}: "{key}" {problem}')


def _show(value: object, limit: int = 60) -> str:
  text = json.dumps(value)
  return text if len(text) <= limit else text[:limit] + '…'


def _is_int(value: object) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)  # `true` is no id


def _classes(path: Path, value: object) -> tuple[str, ...]:
  if value is None:
    raise _error(path, 'classes', 'is required: the class names in id order, e.g. ["road", "car"]')
  if (
    not isinstance(value, list)
    or not 1 <= len(value) <= MAX_CLASSES
    or not all(isinstance(name, str) and name for name in value)
  ):
    raise _error(
      path,
      'classes',
      f'must be a list of 1 to {MAX_CLASSES} class names (non-empty strings), got {_show(value)}',
    )
  repeated = sorted({name for name in value if value.count(name) > 1})
  if repeated:
    raise _error(path, 'classes', f'lists {", ".join(map(json.dumps, repeated))} more than once')
  return tuple(value)


def _colors(path: Path, value: object, count: int) -> tuple[tuple[int, int, int], ...] | None:
  if value is None:
    return None
  if not isinstance(value, list) or len(value) != count:
    raise _error(
      path, 'colors', f'must be a list of one [r, g, b] per class ({count}), got {_show(value)}'
    )
  for i, color in enumerate(value):
    if (
      not isinstance(color, list)
      or len(color) != 3
      or not all(_is_int(c) and 0 <= c <= 255 for c in color)
    ):
      raise _error(
        path, f'colors[{i}]', f'must be [r, g, b] with integers 0..255, got {_show(color)}'
      )
  return tuple(tuple(color) for color in value)


def _ignore_label(path: Path, value: object, count: int) -> int:
  if value is None:
    return IGNORE_LABEL
  if not _is_int(value) or not 0 <= value <= 255:
    raise _error(path, 'ignore_label', f'must be an integer 0..255, got {_show(value)}')
  if value < count:
    raise _error(
      path,
      'ignore_label',
      f'{value} is a class id (classes are 0..{count - 1}); use an id from {count} to 255',
    )
  return value


def _depth_scale(path: Path, value: object) -> float:
  if value is None:
    raise _error(
      path,
      'depth_scale',
      'is required: metres per unit of the depth PNGs (0.001 '
      'for millimetres, 0.00390625 = 1/256 for KITTI)',
    )
  if (
    isinstance(value, bool)
    or not isinstance(value, (int, float))
    or not math.isfinite(value)
    or value <= 0
  ):
    raise _error(
      path,
      'depth_scale',
      f'must be a positive number (metres per unit of the depth PNGs), got {_show(value)}',
    )
  return float(value)


def _split_file_lines(path: Path, key: str, name: str) -> list[str]:
  """The image paths a split's text file lists (blank lines and # comments skipped)."""
  try:
    file = file_checks.inside(path.parent, name)
  except BadFile as e:
    raise _error(path, key, f'names {name}: {e.reason}') from None
  if not file.is_file():
    raise _error(
      path,
      key,
      f'names {file}, which does not exist (a split is a list of image '
      'paths or a text file listing them)',
    )
  try:
    text = file.read_text(encoding='utf-8-sig')  # -sig: editors on Windows may add a BOM
  except UnicodeDecodeError:
    raise _error(
      path,
      key,
      f'names {file}, which is not a UTF-8 text file (a split is a list of '
      'image paths or a text file listing them)',
    ) from None
  except OSError as e:
    raise _error(path, key, f'names {file}, which cannot be read ({e.strerror or e})') from None
  lines = (line.strip() for line in text.splitlines())
  return [line for line in lines if line and not line.startswith('#')]


def _split_entries(path: Path, split: str, value: object) -> tuple[str, ...]:
  key = f'splits.{split}'
  if isinstance(value, str):
    entries = _split_file_lines(path, key, value)
  elif isinstance(value, list) and all(isinstance(e, str) and e for e in value):
    entries = value
  else:
    raise _error(
      path,
      key,
      f'must be a list of image paths or the name of a text file listing them, got {_show(value)}',
    )
  if not entries:
    raise _error(path, key, 'lists no images')
  listed = {}  # normalised path → as first listed
  for entry in entries:
    normal = posixpath.normpath(entry)  # ./images/a//b.png is images/a/b.png
    if normal in listed:  # a copy-paste slip, and it would weight the sample twice
      spellings = [e for e in dict.fromkeys((listed[normal], entry)) if e != normal]
      shown = f' (as {", ".join(map(json.dumps, spellings))})' if spellings else ''
      raise _error(path, key, f'lists {json.dumps(normal)} more than once{shown}')
    listed[normal] = entry
  return tuple(listed)


def _splits(path: Path, value: object) -> Mapping[str, tuple[str, ...]]:
  shape = (
    'an object {"train": ..., "validation": ..., "test": ...} of image path lists or '
    'text files listing them'
  )
  if value is None:
    raise _error(path, 'splits', f'is required: {shape}')
  if not isinstance(value, dict):
    raise _error(path, 'splits', f'must be {shape}, got {_show(value)}')
  unknown = [split for split in value if split not in SPLITS]
  if unknown:
    raise _error(
      path, 'splits', f'has unknown split {json.dumps(unknown[0])} (splits are {", ".join(SPLITS)})'
    )
  for split in REQUIRED_SPLITS:
    if split not in value:
      raise _error(path, 'splits', f'lacks the required split "{split}"')
  return types.MappingProxyType(
    {split: _split_entries(path, split, value[split]) for split in SPLITS if split in value}
  )


def _load_json(path: Path) -> dict:
  try:
    data = json.loads(path.read_bytes())  # bytes: json detects UTF-8 (with or without BOM)/16/32
  except OSError as e:
    raise UserError(f'{path}: cannot read ({e.strerror or e})') from None
  except UnicodeDecodeError as e:
    raise UserError(f'{path}: not UTF-8 text ({e.reason} at byte {e.start})') from None
  except json.JSONDecodeError as e:
    raise UserError(f'{path}: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}') from None
  except RecursionError:
    raise UserError(f'{path}: invalid JSON: nested too deeply') from None
  if not isinstance(data, dict):
    raise UserError(
      f'{path}: must hold a JSON object {{"classes": ..., "depth_scale": ..., '
      f'"splits": ...}}, got {_show(data)}'
    )
  unknown = [key for key in data if key not in KEYS]
  if unknown:  # most likely a typo of an optional key, which would silently be ignored
    raise UserError(
      f'{path}: unknown key {json.dumps(unknown[0])} (the keys are {", ".join(KEYS)})'
    )
  return data


@functools.lru_cache(maxsize=16)
def _read_spec(path: Path, mtime_ns: int, size: int) -> FolderSpec:
  del mtime_ns, size  # only part of the cache key: an edited dataset.json is read again
  data = _load_json(path)
  classes = _classes(path, data.get('classes'))
  return FolderSpec(
    path=path,
    classes=classes,
    colors=_colors(path, data.get('colors'), len(classes)),
    ignore_label=_ignore_label(path, data.get('ignore_label'), len(classes)),
    depth_scale=_depth_scale(path, data.get('depth_scale')),
    splits=_splits(path, data.get('splits')),
  )


def read_spec(root: str | os.PathLike) -> FolderSpec:
  """The validated <root>/dataset.json; cached until the file changes (load_sample reads it for
  every sample). Edits to a split's text file alone are not noticed."""
  path = Path(root).absolute() / SPEC_FILE
  if not path.is_file():
    raise layouts.missing(NAME, INSTRUCTIONS, path)
  # SampleFiles carry this path, so a link out of the root would make every sample a BadFile.
  if not path.resolve().is_relative_to(Path(root).resolve()):
    raise UserError(f'{path}: links to {path.resolve()}, outside the dataset root; copy it in')
  stat = path.stat()
  return _read_spec(path, stat.st_mtime_ns, stat.st_size)


def class_names(root: str | os.PathLike) -> tuple[str, ...]:
  return read_spec(root).classes


def class_colors(root: str | os.PathLike) -> tuple[tuple[int, int, int], ...] | None:
  """dataset.json's "colors" (one [r, g, b] per class), or None when it gives none."""
  return read_spec(root).colors


def image_rel(entry: str) -> PurePosixPath | None:
  """<rel> of a listed "images/<rel>" path, or None if it is not (lexically) under images/."""
  path = PurePosixPath(posixpath.normpath(entry))
  if path.is_absolute() or len(path.parts) < 2 or path.parts[0] != 'images':
    return None
  return PurePosixPath(*path.parts[1:])


def _labeled(root: Path, rels: list[PurePosixPath]) -> bool:
  """Whether any folder the split's semseg or depth files would be in exists."""
  folders = {rel.parent for rel in rels}
  # The label folders are named after the tasks (semseg/, depth/).
  return any((root / task / folder).is_dir() for folder in folders for task in TASKS)


def _sample_files(root: Path, spec_path: Path, entry: str, labeled: bool) -> layouts.SampleFiles:
  rel = image_rel(entry)
  if rel is None:  # outside images/ or the root: load_sample makes it a BadFile
    return layouts.SampleFiles(root=root, image=root / entry, extra={'spec': spec_path})
  image = root / 'images' / rel
  if not labeled:
    return layouts.SampleFiles(root=root, image=image, extra={'spec': spec_path})
  labels = rel.with_suffix('.png')
  return layouts.SampleFiles(
    root=root,
    image=image,
    semseg=root / 'semseg' / labels,
    depth=root / 'depth' / labels,
    extra={'spec': spec_path},
  )


def find_samples(root: Path) -> dict[str, list[layouts.SampleFiles]]:
  root = Path(root)
  if not root.is_dir():
    raise layouts.missing(NAME, INSTRUCTIONS, root)
  spec = read_spec(root)
  samples = {}
  for split, entries in spec.splits.items():
    labeled = _labeled(root, [rel for rel in map(image_rel, entries) if rel is not None])
    samples[split] = [_sample_files(root, spec.path, entry, labeled) for entry in entries]
  return samples


def decode_depth(values: np.ndarray, depth_scale: float) -> np.ndarray:
  """16-bit depth PNG values → float32 metres (0 stays 0 = invalid)."""
  return (np.asarray(values, np.float64) * depth_scale).astype(np.float32)


def store_labels(labels: np.ndarray, ignore_label: int) -> np.ndarray:
  """The dataset's ignore label → IGNORE_LABEL; class ids are kept."""
  return np.where(labels == ignore_label, IGNORE_LABEL, labels).astype(np.uint8)


IMAGE = layouts.FileKind('image', frozenset({'RGB'}), 'RGB JPEG or PNG')
SEMSEG = layouts.FileKind('semseg', frozenset({'L', 'P'}), '8-bit class-id PNG')
DEPTH = layouts.FileKind('depth', DEPTH_MODES, '16-bit greyscale depth PNG')


def load_sample(
  files: layouts.SampleFiles,
  *,
  max_pixels: int = file_checks.DEFAULT_MAX_PIXELS,
  size: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
  layouts.files_inside_root(files)
  if image_rel(os.path.relpath(files.image, files.root)) is None:
    raise BadFile(
      files.image,
      f'not under {files.root / "images"}/ (split lists name images as '
      'images/<rel>.jpg|.jpeg|.png, relative to the dataset root)',
    )
  spec = read_spec(files.extra.get('spec', files.root / SPEC_FILE).parent)
  raw = layouts.read_sample(
    files, image=IMAGE, semseg=SEMSEG, depth=DEPTH, max_pixels=max_pixels, size=size
  )
  if raw.semseg is None:
    return layouts.unlabeled(raw.image)
  file_checks.check_label_ids(raw.semseg_path, raw.semseg, spec.num_classes, spec.ignore_label)
  return {
    'image': raw.image,
    'semseg': store_labels(raw.semseg, spec.ignore_label),
    'depth': decode_depth(raw.depth, spec.depth_scale),
  }
