"""Dataset names → TFDS builders, where datasets live, and the synthetic dataset's defaults.

`prepare(name, data_dir, **fields)` builds dataset `name` once (array_record) and returns its
builder, which `pipeline.data_source` reads. A build holds the dataset's lock in data_dir
(`build_lock`), so that runs started together on a fresh machine (a sweep) build it once: the
others wait for it, saying for whom, and then read it. Importing this module loads no
TensorFlow/TFDS (the builders are imported when a dataset is prepared), so configs and flags can
read `DATASETS`, `DEFAULT_DATA_DIR` and `SYNTHETIC_DEFAULTS` cheaply.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mtl_jax.data.labels import CLASS_NAMES, Classes, default_class_colors
from mtl_jax.data.synthetic.defaults import SYNTHETIC_DEFAULTS as SYNTHETIC_DEFAULTS  # re-export
from mtl_jax.runtime import locks
from mtl_jax.runtime.errors import UserError

DEFAULT_DATA_DIR = '~/tensorflow_datasets'  # TFDS's own default


def resolve_data_dir(data_dir: str | os.PathLike) -> str:
  """The directory a data_dir setting names: '' means DEFAULT_DATA_DIR; '~' is expanded."""
  return os.path.expanduser(os.fspath(data_dir) or DEFAULT_DATA_DIR)


def build_lock(data_dir: str | os.PathLike, name: str) -> Path:
  """The lock file a process holds while it builds dataset `name` in data_dir."""
  return Path(data_dir) / f'{name}.lock'


def _building(name: str, data_dir: str | os.PathLike):
  """Dataset `name`'s build lock (creating data_dir first); when another process holds it, says
  so on stderr and waits for it."""
  os.makedirs(data_dir, exist_ok=True)
  return locks.exclusive(build_lock(data_dir, name), what=f'dataset {name}', wait=True)


def _synthetic(data_dir: str | os.PathLike, *, num_workers: int | None = None, **fields):
  """The procedural dataset (`synthetic_tfds.MtlSynthetic`), built if absent.

  fields: any of SYNTHETIC_DEFAULTS' (height, width, seed, num_train, num_validation, num_test).
  """
  from mtl_jax.data import synthetic_tfds  # pylint: disable=g-import-not-at-top  # lazy: TFDS

  def builder():
    return synthetic_tfds.MtlSynthetic(
      data_dir=os.fspath(data_dir),
      config=synthetic_tfds.make_config(**fields),
      file_format='array_record',
      num_workers=num_workers,
    )

  prepared = builder()
  if prepared.is_prepared():  # reading takes no lock: a sweep's runs do not queue to open it
    return prepared
  with _building('synthetic', data_dir):
    built = builder()  # anew: it reads what another process built while this one waited
    built.download_and_prepare()  # a no-op when that process built it
  return built


def _manual(name: str) -> Callable[..., Any]:
  """A dataset users bring (`manual_tfds`): built from manual_dir by `prepare_data`; without
  manual_dir (training) the dataset prepared at height×width is opened."""

  def prepare_or_open(
    data_dir: str | os.PathLike,
    *,
    height: int,
    width: int,
    manual_dir: str | os.PathLike | None = None,
    **build_options,
  ):
    from mtl_jax.data import manual_tfds  # pylint: disable=g-import-not-at-top  # lazy: TFDS

    if manual_dir is None:
      return manual_tfds.open_prepared(name, data_dir, height, width)
    with _building(name, data_dir):
      return manual_tfds.prepare(
        name, data_dir, manual_dir, height=height, width=width, **build_options
      )

  return prepare_or_open


# name -> fn(data_dir, **fields) returning the prepared TFDS builder.
DATASETS: dict[str, Callable[..., Any]] = {
  'synthetic': _synthetic,
  'miniscapes': _manual('miniscapes'),
  'cityscapes': _manual('cityscapes'),
  'folder': _manual('folder'),
}


def prepare(name: str, data_dir: str | os.PathLike, **fields):
  """Builds dataset `name` under data_dir if absent (idempotent) and returns its builder.

  fields: the dataset's own options (synthetic: height, width, seed, num_train,
  num_validation, num_test (defaults: SYNTHETIC_DEFAULTS), num_workers; the others: height,
  width (0 = native size when building), manual_dir (None = open the prepared dataset),
  skip_bad, max_pixels, num_workers).
  """
  if name not in DATASETS:
    raise ValueError(f'unknown dataset {name!r}; valid names: {", ".join(sorted(DATASETS))}')
  return DATASETS[name](data_dir, **fields)


def class_names(builder) -> tuple[str, ...]:
  """Class names in id order: as recorded when the dataset was prepared (the folder layout
  brings its own), else the 19 Cityscapes train classes."""
  metadata = builder.info.metadata
  return tuple(metadata['class_names']) if metadata and 'class_names' in metadata else CLASS_NAMES


def class_colors(builder) -> tuple[tuple[int, int, int], ...]:
  """One (r, g, b) per class in id order: as recorded when the dataset was prepared (a folder
  dataset whose dataset.json gives "colors"), else the Cityscapes train classes' colours,
  repeated when there are more than 19 classes."""
  metadata = builder.info.metadata
  if metadata and 'class_colors' in metadata:
    return tuple(tuple(color) for color in metadata['class_colors'])
  return default_class_colors(len(class_names(builder)))


def prepared_classes(name: str, data_dir: str | os.PathLike, **fields) -> Classes | None:
  """The classes of dataset `name` as prepared in data_dir (`prepare`'s fields), None when it is
  not prepared there: never builds it. The synthetic dataset's are the Cityscapes train classes
  whatever its size."""
  if name == 'synthetic':
    return Classes.default(len(CLASS_NAMES))
  try:
    builder = prepare(name, data_dir, **fields)  # without manual_dir: opens, never builds
  except UserError:
    return None
  return Classes(class_names(builder), class_colors(builder))
