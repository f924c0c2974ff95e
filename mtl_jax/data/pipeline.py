"""The grain input pipeline: reads prepared datasets (see `registry`) without TensorFlow.

Flow: `registry.prepare(...)` gives a builder → `data_source(builder, split)` gives random
access to decoded samples → `train_iterator` (shuffled, augmented, infinite, checkpointable) or
`eval_batches` (whole split, index order, padded last batch). Samples, batches and padding
follow the contract in `sample`.

Checkpointing: the train iterator is a `grain.DatasetIterator`; save it with orbax through
`grain.checkpoint.CheckpointSave(it)` / restore with `grain.checkpoint.CheckpointRestore(it)`
inside `ocp.args.Composite` (or `it.get_state()` / `it.set_state(state)` directly).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence

import grain
import numpy as np
from absl import flags

from mtl_jax.data import augment, registry, sample
from mtl_jax.data.labels import CLASS_NAMES, Classes, default_class_colors

Batch = dict[str, np.ndarray]


# ----------------------------------------------------------------------------- sources


def _to_sample(example: dict) -> dict:
  """A decoded TFDS record (`tfds_records`) as a sample: semseg squeezed to [H, W]."""
  return {
    'image': example['image'],
    'semseg': example['semseg'][..., 0],
    'depth': example['depth'],
    'index': np.int64(example['index']),
  }


@dataclasses.dataclass(frozen=True)
class SampleSource:
  """Random access to the samples (see `sample`) of a TFDS split, and the dataset's class
  names and colours (id order; `registry.class_colors`, None when not given)."""

  source: Sequence[dict]
  class_names: tuple[str, ...] = CLASS_NAMES
  class_colors: tuple[tuple[int, int, int], ...] | None = None

  @property
  def classes(self) -> Classes:
    """The names with their colours (the Cityscapes ones when the dataset gives none)."""
    colors = self.class_colors or default_class_colors(len(self.class_names))
    return Classes(self.class_names, colors)

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict:
    return _to_sample(self.source[index])

  def __getitems__(self, indices: Sequence[int]) -> list[dict]:
    # Batched reads when the TFDS source offers them (array_record reads in parallel).
    getitems = getattr(self.source, '__getitems__', None)
    examples = getitems(indices) if getitems else [self.source[i] for i in indices]
    return [_to_sample(e) for e in examples]


def is_labelled(source: SampleSource, probe: int = 3) -> bool:
  """Whether the split has ground truth, judged from its first `probe` samples: a split without
  labels (miniscapes' test split) stores every pixel ignored and every depth invalid, and the
  datasets label whole splits or none of them."""
  return any(
    (s['semseg'] != sample.IGNORE_LABEL).any() or (s['depth'] > 0).any()
    for s in (source[i] for i in range(min(probe, len(source))))
  )


def data_source(builder, split: str) -> SampleSource:
  """`builder.as_data_source(split)` with semseg squeezed to [H, W], and the class names and
  colours."""
  return SampleSource(
    builder.as_data_source(split), registry.class_names(builder), registry.class_colors(builder)
  )


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full batches per epoch (the train iterator drops the remainder)."""
  return num_examples // batch_size


# ----------------------------------------------------------------------------- train


def _stream_seed(seed: int) -> int:
  """The shuffle and augmentation seed of the train stream (the same in every shard; mixing
  `seed` with 0 keeps the stream of runs made when each shard had its own)."""
  return int(np.random.SeedSequence([seed, 0]).generate_state(1)[0])


def train_iterator(
  source: Sequence[dict],
  *,
  batch_size: int,
  seed: int,
  crop_size: tuple[int, int] | None = None,
  scale_range: tuple[float, float] = (1.0, 1.0),
  flip: bool = True,
  jitter: augment.Jitter | Mapping | None = None,
  shard_index: int = 0,
  shard_count: int = 1,
  worker_count: int = 0,
  num_threads: int = 2,
) -> grain.DatasetIterator:
  """Infinite iterator of augmented train batches (see `sample` for their entries).

  One global stream of batches of shard_count × batch_size samples, the same in every shard:
  each epoch a fresh permutation of the whole split, batches full (an epoch's remainder runs
  into the next epoch), each sample augmented by its position in the stream. Shard i takes rows
  [i·batch_size, (i+1)·batch_size) of every global batch, reading and augmenting only those: a
  run on several processes trains on exactly the batches of a one-process run of the same
  global batch. Deterministic given (seed, shard_count × batch_size); `get_state`/`set_state`
  resume exactly.
  worker_count > 0 moves decoding and augmentation to that many processes (the order then
  also depends on worker_count); num_threads are reader threads per process.
  crop_size None crops back to the stored size after scaling; jitter None disables the
  photometric jitter (augment.Jitter() gives the default bounds; a mapping is accepted too).
  """
  ds = grain.MapDataset.source(source)
  if len(ds) < batch_size * shard_count:
    raise ValueError(
      f'train split has {len(ds)} samples, fewer than the global batch {batch_size * shard_count}'
    )
  if jitter is not None and not isinstance(jitter, augment.Jitter):
    jitter = augment.Jitter(**jitter)  # a dict or ConfigDict section of bounds
  ds = ds.seed(_stream_seed(seed)).shuffle().repeat()
  ds = ds.random_map(
    augment.Augment(
      crop_size=tuple(crop_size) if crop_size is not None else None,
      scale_range=tuple(scale_range),
      flip=flip,
      jitter=jitter,
    )
  )
  # Global batch b is shard-sized batches b·shard_count … b·shard_count + shard_count - 1 of the
  # stream; the slice is lazy, so a shard reads and augments only its own rows.
  ds = ds.map(sample.to_batch).batch(batch_size, drop_remainder=True)[shard_index::shard_count]
  # A small prefetch buffer: each element is a whole batch.
  it_ds = ds.to_iter_dataset(
    grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=max(2 * num_threads, 2))
  )
  if worker_count > 0:
    # grain's worker processes read absl flags; allow use outside absl.app.run (tests, notebooks).
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return iter(it_ds)


# ----------------------------------------------------------------------------- eval


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
      return {**sample.to_batch(self.source[index]), 'mask': np.bool_(True)}
    padding = sample.to_batch(sample.padding_like(self.source[0]))
    return {**padding, 'mask': np.bool_(False)}

  def __iter__(self) -> Iterator[Batch]:
    ds = grain.MapDataset.range(len(self) * self.batch_size).map(self._element)
    ds = ds.batch(self.batch_size)
    read = grain.ReadOptions(
      num_threads=self.num_threads, prefetch_buffer_size=max(2 * self.num_threads, 2)
    )
    return iter(ds.to_iter_dataset(read))


def eval_batches(
  source: Sequence[dict], *, batch_size: int, shard_index: int = 0, shard_count: int = 1
) -> EvalBatches:
  """Every sample of this shard (shard_index::shard_count) once, in index order, unaugmented.

  Every shard yields the same number of batches, len(result), so multi-host eval steps stay
  in lockstep; the tail is padded to batch_size with padding samples (`sample.padding_like`),
  mask False.
  """
  if len(source) == 0:
    raise ValueError('eval split is empty')
  return EvalBatches(source, batch_size, shard_index, shard_count)
