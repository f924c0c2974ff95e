"""Predictions for image files: collecting inputs, batching per fitted size, writing each image's
outputs (`python -m mtl_jax.predict` is the command; its docstring describes the files). The
networks that predict are `predictors`'."""

import dataclasses
import glob
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mtl_jax.deploy import fitting
from mtl_jax.reports import samples
from mtl_jax.runtime import atomic, progress
from mtl_jax.runtime.errors import UserError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm')
KINDS = {  # output kind → the task it needs
  'labels': 'semseg',
  'semseg': 'semseg',
  'depth': 'depth',
  'depth_color': 'depth',
  'panel': None,
}


@dataclasses.dataclass(frozen=True)
class Item:
  path: Path  # the image file
  relative: Path  # where its outputs go under OUT/<kind>/, without suffix


def _is_glob(pattern: str) -> bool:
  return any(c in pattern for c in '*?[')


def _glob_root(pattern: str) -> Path:
  """The pattern's leading path without wildcards: outputs mirror the tree below it."""
  parts = Path(pattern).parts
  fixed = parts[: next(i for i, p in enumerate(parts) if _is_glob(p))]
  return Path(*fixed) if fixed else Path('.')


def collect(inputs: Sequence[str]) -> list[Item]:
  """Every image named by `inputs`, in order, without repeats; a UserError for a path that
  names nothing."""
  items, seen = [], set()

  def add(path: Path, relative: Path):
    if path.resolve() not in seen:
      seen.add(path.resolve())
      items.append(Item(path, relative.with_suffix('')))

  for given in inputs:
    path = Path(given)
    if path.is_dir():
      for found in sorted(path.rglob('*')):
        if found.is_file() and found.suffix.lower() in IMAGE_SUFFIXES:
          add(found, found.relative_to(path))
    elif path.is_file():
      add(path, Path(path.name))
    elif _is_glob(given):
      root = _glob_root(given)
      matches = sorted(Path(m) for m in glob.glob(given, recursive=True) if Path(m).is_file())
      if not matches:
        raise UserError(f'--input {given}: no file matches')
      for found in matches:
        add(found, found.relative_to(root))
    else:
      raise UserError(f'--input {given}: no such file or folder')
  if not items:
    raise UserError(f'no image files under {", ".join(inputs)} (looked for {IMAGE_SUFFIXES})')
  first = {}
  for item in items:
    other = first.setdefault(item.relative, item.path)
    if other != item.path:
      raise UserError(
        f'{other} and {item.path} would write the same outputs ({item.relative}.png); give '
        'their folders in separate runs with different --output'
      )
  return items


def require_output_outside(out: Path, inputs: Sequence[str], items: Sequence[Item]) -> None:
  """A UserError if `out` is (or is inside) an input folder, or holds an input image: a second
  run would take the first one's outputs for images to predict."""
  resolved = out.resolve()
  for given in inputs:
    if Path(given).is_dir() and resolved.is_relative_to(Path(given).resolve()):
      raise UserError(
        f'--output {out} is inside --input {given}, which is searched for images: a rerun would '
        'predict its own outputs; choose an --output outside it'
      )
  for item in items:
    if item.path.resolve().is_relative_to(resolved):
      raise UserError(
        f'--input {item.path} is inside --output {out}: predict would read its own outputs; '
        'choose an --output outside the inputs'
      )


def output_paths(out: Path, item: Item, kinds: Sequence[str]) -> dict[str, Path]:
  # Appended, not with_suffix: frame.001.jpg → frame.001.png, not frame.png.
  return {kind: out / kind / f'{item.relative}.png' for kind in kinds}


def kinds_for(tasks: Sequence[str]) -> list[str]:
  return [k for k, task in KINDS.items() if task is None or task in tasks]


def batches(items: Sequence[Item], predictor, batch_size: int, failed: list):
  """(items, fits, fitted images [batch_size, ...]) per batch, grouped by fitted size; a last
  short batch of a size is padded with copies so each size compiles once. Only fitted images
  (at most the trained size) wait for their batch, never the originals, so a folder of large
  photos of many aspect ratios stays within memory. Unreadable files are reported and appended
  to `failed`."""
  groups: dict[tuple, list] = {}
  for item in items:
    rgb = _read_or_fail(item, failed)
    if rgb is None:
      continue
    fit = predictor.fit(rgb.shape[:2])
    group = groups.setdefault(fit.padded, [])
    group.append((item, fit, fitting.fit_image(rgb, fit)))
    if len(group) == batch_size:
      yield _stacked(groups.pop(fit.padded), batch_size)
  for group in groups.values():
    yield _stacked(group, batch_size)


def _read_or_fail(item: Item, failed: list) -> np.ndarray | None:
  """The item's image, or None after a line on stderr and appending it to `failed`."""
  try:
    return fitting.read_rgb(item.path)
  except UserError as e:
    print(f'predict: skipped {e}', file=sys.stderr, flush=True)
    failed.append(item)
    return None


def _stacked(group: list, batch_size: int):
  items, fits, fitted = zip(*group)
  fitted = list(fitted) + [fitted[-1]] * (batch_size - len(fitted))
  return items, fits, np.stack(fitted)


def outputs(rgb: np.ndarray, preds: dict, fit, colors) -> Iterator[tuple[str, np.ndarray]]:
  """(kind, image array) of one image's predictions, mapped back to its own size."""
  panel = [rgb]
  if 'semseg' in preds:
    labels = fitting.labels_back(preds['semseg'], fit)
    color = samples.colorize_semseg(labels, colors)
    yield 'labels', labels
    yield 'semseg', color
    panel.append(fitting.overlay(rgb, color))
  if 'depth' in preds:
    metres = fitting.depth_back(preds['depth'], fit)
    depth_color = samples.colorize_depth(metres)
    yield 'depth', fitting.encode_depth_png(metres)
    yield 'depth_color', depth_color
    panel.append(depth_color)
  yield 'panel', samples.join_tiles(panel, axis=1)


def _write(paths: dict[str, Path], arrays: Iterator[tuple[str, np.ndarray]]) -> None:
  for kind, array in arrays:
    _save_png(array, paths[kind])


def _save_png(array: np.ndarray, path: Path) -> None:
  """Whole or not at all (`atomic`): an interrupted write never leaves a torn PNG that a rerun
  would keep."""
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as partial:
      Image.fromarray(array).save(partial, format='PNG')
  except OSError as e:
    raise UserError(f'cannot write {path} ({e.strerror or e})') from e


def is_done(paths: dict[str, Path]) -> bool:
  """Every output is there (each written atomically, so existing means complete; a leftover
  partial file does not count)."""
  return all(path.is_file() for path in paths.values())


def predict_files(
  predictor, items: Sequence[Item], out: Path, batch_size: int, overwrite: bool
) -> dict[str, list[Item]]:
  """Writes every item's outputs; returns the items 'written', 'skipped' (all outputs existed)
  and 'failed' (unreadable). An item missing any output is predicted again, all outputs
  rewritten."""
  kinds = kinds_for(predictor.tasks)
  result = {'written': [], 'skipped': [], 'failed': []}
  todo = []
  for item in items:
    if not overwrite and is_done(output_paths(out, item, kinds)):
      result['skipped'].append(item)
    else:
      todo.append(item)
  if result['skipped']:
    print(
      f'predict: {len(result["skipped"])} images already have outputs in {out}; kept them '
      '(--overwrite to replace)',
      flush=True,
    )
  start, done = time.perf_counter(), 0
  for batch_items, fits, images in batches(todo, predictor, batch_size, result['failed']):
    preds = predictor(images)
    for row, (item, fit) in enumerate(zip(batch_items, fits)):
      one = {task: preds[task][row] for task in preds}
      rgb = _read_or_fail(item, result['failed'])  # again: originals are not kept while batching
      if rgb is None:  # changed or removed since
        continue
      _write(output_paths(out, item, kinds), outputs(rgb, one, fit, predictor.colors))
      result['written'].append(item)
    done = len(result['written']) + len(result['failed'])
    elapsed = time.perf_counter() - start
    rate = len(result['written']) / max(elapsed, 1e-9)
    eta = progress.format_duration((len(todo) - done) / max(rate, 1e-9))
    print(f'predict: {done}/{len(todo)} images | {rate:.1f} img/s | ETA {eta}', flush=True)
  return result
