"""How every dataset's samples (see `sample` for their keys and meaning) are stored in TFDS,
shared by all our builders.

Features (decoded by `as_data_source`, no TensorFlow needed to read):
  image   Image   PNG (lossless).
  semseg  Image   PNG with a channel axis [H, W, 1], rather than a raw tensor: lossless, label
          maps compress well, and TFDS tools (tfds.show_examples) display it with a colour map.
          `pipeline.data_source` squeezes the channel.
  depth   Tensor  raw float32 bytes, zlib-compressed, so values come back bit-exact (never
          quantised to 8/16 bit, unlike TFDS's cityscapes).
  index   Scalar  int64.
Records are written unshuffled, so eval runs in index order and index == position.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import multiprocessing
import os
import sys
import time

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

_PROGRESS_EVERY_S = 10.0


class PackagedBuilder:
  """Mixin for a TFDS builder class defined in a package module.

  TFDS 4.9.10 finds a builder's folder via `importlib_resources`, which it does not install
  on Python >= 3.9 (tensorflow/datasets#11212); the class's own file is the answer anyway.
  """

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    return epath.Path(inspect.getfile(cls))


def available_cpus() -> int:
  """Cores this process may use (CPU affinity / container limits), not the machine's count."""
  return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


@contextlib.contextmanager
def building(num_workers: int):
  """While a builder writes: TFDS progress bars off (ours replace them) and, for
  num_workers > 1, a `spawn` process pool (safe with TF/JAX threads in this process; one pool
  for every split, as one takes about a second to start). Yields the pool or None."""
  with without_tfds_progress_bars():
    if num_workers <= 1:
      yield None
      return
    with multiprocessing.get_context('spawn').Pool(num_workers) as pool:
      yield pool


def ordered_map(fn, jobs: list, pool, window: int):
  """fn over jobs, in order: in-process when pool is None, else over the pool with at most
  `window` jobs in flight (imap alone would queue every job and buffer every result when the
  consumer is the slower side)."""
  if pool is None:
    yield from map(fn, jobs)
    return
  for start in range(0, len(jobs), window):
    yield from pool.imap(fn, jobs[start : start + window], chunksize=4)


def features(height: int, width: int) -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict(
    {
      'image': tfds.features.Image(shape=(height, width, 3), dtype=np.uint8),
      'semseg': tfds.features.Image(shape=(height, width, 1), dtype=np.uint8, use_colormap=True),
      'depth': tfds.features.Tensor(
        shape=(height, width), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB
      ),
      'index': tfds.features.Scalar(dtype=np.int64),
    }
  )


def png(array: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format='PNG', compress_level=1)  # 2x faster than 6, ~10% larger
  return buf.getvalue()


def encode(sample: dict[str, np.ndarray], index: int) -> dict:
  """A decoded sample (image, semseg, depth arrays) → the feature dict of record `index`."""
  return {
    'image': png(sample['image']),
    'semseg': png(sample['semseg']),
    'depth': sample['depth'],
    'index': index,
  }


class Progress:
  """Prints `count/total, samples/s, ETA` at most every `every_s` seconds, and at the end."""

  def __init__(self, label: str, total: int, every_s: float = _PROGRESS_EVERY_S):
    self._label, self._total, self._every_s = label, total, every_s
    self._start = self._last = time.monotonic()

  def update(self, count: int) -> None:
    now = time.monotonic()
    if count < self._total and now - self._last < self._every_s:
      return
    self._last = now
    elapsed = max(now - self._start, 1e-9)
    rate = count / elapsed
    if count < self._total:
      status = f'ETA {(self._total - count) / rate:.0f} s'
    else:
      status = f'done in {elapsed:.1f} s'
    print(
      f'[{self._label}] {count}/{self._total} samples, {rate:.1f} samples/s, {status}',
      file=sys.stderr,
      flush=True,
    )


@contextlib.contextmanager
def without_tfds_progress_bars():
  """Our progress lines (rate, ETA) replace TFDS's bars, which would garble them."""
  was_active = getattr(tfds.core.utils.tqdm_utils, '_active', True)
  tfds.disable_progress_bar()
  try:
    yield
  finally:
    tfds.display_progress_bar(was_active)
