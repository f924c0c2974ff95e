"""Datasets registry and the grain input pipeline (no TensorFlow at read time).

Flow: `prepare(name, data_dir, ...)` builds the TFDS dataset once (array_record) and returns the
builder → `data_source(builder, split)` gives random access to decoded samples →
`train_iterator` (shuffled, augmented, infinite, checkpointable) or `eval_batches` (whole split,
index order, padded last batch).

A sample from `data_source` is a dict of numpy values:
  image  uint8 [H, W, 3], semseg uint8 [H, W] (255 = ignore), depth float32 [H, W] (metres,
  0 = invalid), index int64 scalar (position of the sample in its split).
Batches (train and eval) are dicts of numpy arrays:
  image uint8 [B, h, w, 3], semseg int32 [B, h, w], depth float32 [B, h, w], index int64 [B];
  eval batches add mask bool [B] (False on padding; padding has image 0, semseg 255, depth 0,
  index -1, so a metric that forgets the mask still ignores it).

Checkpointing: the train iterator is a `grain.DatasetIterator`; save it with orbax through
`grain.checkpoint.CheckpointSave(it)` / restore with `grain.checkpoint.CheckpointRestore(it)`
inside `ocp.args.Composite` (or `it.get_state()` / `it.set_state(state)` directly).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import grain
import numpy as np
from absl import flags

from mtl_jax.data import augment
from mtl_jax.data.labels import CLASS_NAMES, IGNORE_LABEL

Batch = dict[str, np.ndarray]


# ----------------------------------------------------------------------------- registry


def _synthetic(data_dir: str | os.PathLike, *, height: int = 128, width: int = 256,
               seed: int = 0, num_train: int = 2000, num_validation: int = 250,
               num_test: int = 250, num_workers: int | None = None):
  """The procedural dataset (`synthetic_tfds.MtlSynthetic`), built if absent."""
  from mtl_jax.data import synthetic_tfds  # pylint: disable=g-import-not-at-top  # lazy: TFDS
  config = synthetic_tfds.make_config(height=height, width=width, seed=seed,
                                      num_train=num_train, num_validation=num_validation,
                                      num_test=num_test)
  builder = synthetic_tfds.MtlSynthetic(data_dir=os.fspath(data_dir), config=config,
                                        file_format="array_record", num_workers=num_workers)
  builder.download_and_prepare()  # a no-op when the data is already there
  return builder


def _manual(name: str) -> Callable[..., Any]:
  """A dataset users bring (`manual_tfds`): built from manual_dir by `prepare_data`; without
  manual_dir (training) the dataset prepared at height×width is opened."""
  def prepare_or_open(data_dir: str | os.PathLike, *, height: int, width: int,
                      manual_dir: str | os.PathLike | None = None, **build_options):
    from mtl_jax.data import manual_tfds  # pylint: disable=g-import-not-at-top  # lazy: TFDS
    if manual_dir is None:
      return manual_tfds.open_prepared(name, data_dir, height, width)
    return manual_tfds.prepare(name, data_dir, manual_dir, height=height, width=width,
                               **build_options)
  return prepare_or_open


# name -> fn(data_dir, **fields) returning the prepared TFDS builder.
DATASETS: dict[str, Callable[..., Any]] = {
    "synthetic": _synthetic,
    "miniscapes": _manual("miniscapes"),
    "cityscapes": _manual("cityscapes"),
    "folder": _manual("folder"),
}


def prepare(name: str, data_dir: str | os.PathLike, **fields):
  """Builds dataset `name` under data_dir if absent (idempotent) and returns its builder.

  fields: the dataset's own options (synthetic: height, width, seed, num_train,
  num_validation, num_test, num_workers; the others: height, width (0 = native size when
  building), manual_dir (None = open the prepared dataset), skip_bad, max_pixels).
  """
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
  return DATASETS[name](data_dir, **fields)


def class_names(builder) -> tuple[str, ...]:
  """Class names in id order: as recorded when the dataset was prepared (the folder layout
  brings its own), else the 19 Cityscapes train classes."""
  metadata = builder.info.metadata
  return tuple(metadata["class_names"]) if metadata and "class_names" in metadata else CLASS_NAMES


# ----------------------------------------------------------------------------- sources


def _to_sample(example: dict) -> dict:
  return {
      "image": example["image"],
      "semseg": example["semseg"][..., 0],
      "depth": example["depth"],
      "index": np.int64(example["index"]),
  }


@dataclasses.dataclass(frozen=True)
class SampleSource:
  """Random access to decoded samples (numpy; see the module docstring) of a TFDS split, and
  the dataset's class names (id order)."""
  source: Sequence[dict]
  class_names: tuple[str, ...] = CLASS_NAMES

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict:
    return _to_sample(self.source[index])

  def __getitems__(self, indices: Sequence[int]) -> list[dict]:
    # Batched reads when the TFDS source offers them (array_record reads in parallel).
    getitems = getattr(self.source, "__getitems__", None)
    examples = getitems(indices) if getitems else [self.source[i] for i in indices]
    return [_to_sample(e) for e in examples]


def data_source(builder, split: str) -> SampleSource:
  """`builder.as_data_source(split)` with semseg squeezed to [H, W], and the class names."""
  return SampleSource(builder.as_data_source(split), class_names(builder))


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full batches per epoch (the train iterator drops the remainder)."""
  return num_examples // batch_size


# ----------------------------------------------------------------------------- train


def _batch_dtypes(sample: dict) -> dict:
  return {
      "image": sample["image"].astype(np.uint8, copy=False),
      "semseg": sample["semseg"].astype(np.int32),
      "depth": sample["depth"].astype(np.float32, copy=False),
      "index": np.int64(sample["index"]),
  }


def _shard_seed(seed: int, shard_index: int) -> int:
  """Pipeline seed per shard, so shards do not draw the same augmentations."""
  return int(np.random.SeedSequence([seed, shard_index]).generate_state(1)[0])


def train_iterator(source: Sequence[dict], *, batch_size: int, seed: int,
                   crop_size: tuple[int, int] | None = None,
                   scale_range: tuple[float, float] = (1.0, 1.0), flip: bool = True,
                   jitter: augment.Jitter | Mapping | None = None, shard_index: int = 0,
                   shard_count: int = 1, worker_count: int = 0,
                   num_threads: int = 2) -> grain.DatasetIterator:
  """Infinite iterator of augmented train batches (see the module docstring).

  This shard takes samples shard_index::shard_count; each epoch is a fresh permutation of
  them, and batches are full (an epoch's remainder runs into the next epoch). Deterministic
  given (seed, shard_index, shard_count, batch_size); `get_state`/`set_state` resume exactly.
  worker_count > 0 moves decoding and augmentation to that many processes (the order then
  also depends on worker_count); num_threads are reader threads per process.
  crop_size None crops back to the stored size after scaling; jitter None disables the
  photometric jitter (augment.Jitter() gives the default bounds; a mapping is accepted too).
  """
  ds = grain.MapDataset.source(source)[shard_index::shard_count]
  if len(ds) < batch_size:
    raise ValueError(f"train split shard has {len(ds)} samples, fewer than batch_size "
                     f"{batch_size}")
  if jitter is not None and not isinstance(jitter, augment.Jitter):
    jitter = augment.Jitter(**jitter)  # a dict or ConfigDict section of bounds
  ds = ds.seed(_shard_seed(seed, shard_index)).shuffle().repeat()
  ds = ds.random_map(augment.Augment(
      crop_size=tuple(crop_size) if crop_size is not None else None,
      scale_range=tuple(scale_range), flip=flip, jitter=jitter))
  ds = ds.map(_batch_dtypes).batch(batch_size, drop_remainder=True)
  # A small prefetch buffer: each element is a whole batch.
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                               prefetch_buffer_size=max(2 * num_threads, 2)))
  if worker_count > 0:
    # grain's worker processes read absl flags; allow use outside absl.app.run (tests, notebooks).
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return iter(it_ds)


# ----------------------------------------------------------------------------- eval


def _padding_like(sample: dict) -> dict:
  return {
      "image": np.zeros_like(sample["image"]),
      "semseg": np.full_like(sample["semseg"], IGNORE_LABEL),
      "depth": np.zeros_like(sample["depth"]),
      "index": np.int64(-1),
  }


@dataclasses.dataclass(frozen=True)
class EvalBatches:
  """Re-iterable, sized sequence of eval batches; see `eval_batches`."""
  source: Sequence[dict]
  batch_size: int
  shard_index: int = 0
  shard_count: int = 1
  num_threads: int = 2

  def __len__(self) -> int:
    per_shard = math.ceil(len(self.source) / self.shard_count)
    return math.ceil(per_shard / self.batch_size)

  def _element(self, position: int) -> dict:
    index = self.shard_index + position * self.shard_count
    if index < len(self.source):
      return {**_batch_dtypes(self.source[index]), "mask": np.bool_(True)}
    padding = _batch_dtypes(_padding_like(self.source[0]))
    return {**padding, "mask": np.bool_(False)}

  def __iter__(self) -> Iterator[Batch]:
    ds = grain.MapDataset.range(len(self) * self.batch_size).map(self._element)
    ds = ds.batch(self.batch_size)
    read = grain.ReadOptions(num_threads=self.num_threads,
                             prefetch_buffer_size=max(2 * self.num_threads, 2))
    return iter(ds.to_iter_dataset(read))


def eval_batches(source: Sequence[dict], *, batch_size: int, shard_index: int = 0,
                 shard_count: int = 1) -> EvalBatches:
  """Every sample of this shard (shard_index::shard_count) once, in index order, unaugmented.

  Every shard yields the same number of batches, len(result), so multi-host eval steps stay
  in lockstep; the tail is padded to batch_size with mask False.
  """
  if len(source) == 0:
    raise ValueError("eval split is empty")
  return EvalBatches(source, batch_size, shard_index, shard_count)
