"""TFDS builder `mtl_synthetic`: the procedural street scenes written as array_record.

Each config fixes (height, width, seed, split sizes; defaults
`synthetic.defaults.SYNTHETIC_DEFAULTS`) and
is named from them, e.g. `128x256_seed0_n2000-250-250`, so several sizes coexist under one data_dir
(`<data_dir>/mtl_synthetic/<config>/<version>/`). Record i of a split is
`mtl_jax.data.synthetic.render_sample(i, split=split, seed=seed, height=h, width=w)`;
shuffling is disabled at write time so records stay in index order.

Features: see `tfds_records` (shared by every builder).

Generation renders and PNG-encodes in a process pool (one process per core, `spawn` so it is
safe even when TF/JAX threads exist in the parent) and prints progress lines.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data import sample as sample_lib
from mtl_jax.data import tfds_records
from mtl_jax.data.synthetic.defaults import SYNTHETIC_DEFAULTS

SPLITS = ('train', 'validation', 'test')


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
  """Image size, dataset seed and split sizes; build one with `make_config`."""

  height: int = SYNTHETIC_DEFAULTS.height
  width: int = SYNTHETIC_DEFAULTS.width
  seed: int = SYNTHETIC_DEFAULTS.seed
  num_train: int = SYNTHETIC_DEFAULTS.num_train
  num_validation: int = SYNTHETIC_DEFAULTS.num_validation
  num_test: int = SYNTHETIC_DEFAULTS.num_test

  def split_sizes(self) -> dict[str, int]:
    return {'train': self.num_train, 'validation': self.num_validation, 'test': self.num_test}


def config_name(
  height: int, width: int, seed: int, num_train: int, num_validation: int, num_test: int
) -> str:
  return f'{height}x{width}_seed{seed}_n{num_train}-{num_validation}-{num_test}'


def make_config(**fields) -> SyntheticConfig:
  """The config of SYNTHETIC_DEFAULTS with `fields` (any of its field names) replaced."""
  sizes = dataclasses.asdict(dataclasses.replace(SYNTHETIC_DEFAULTS, **fields))
  for key, value in sizes.items():
    lowest = 1 if key in ('height', 'width') else 0
    if not isinstance(value, (int, np.integer)) or value < lowest:
      raise ValueError(f'synthetic dataset: {key} must be an int >= {lowest}, got {value!r}')
  size, seed = f'{sizes["height"]}x{sizes["width"]}', sizes['seed']
  return SyntheticConfig(
    name=config_name(**sizes), **sizes, description=f'{size} synthetic street scenes, seed {seed}'
  )


# ----------------------------------------------------------------------------- workers


def _check(sample: dict, index: int, split: str, height: int, width: int) -> None:
  """Fails loudly on a renderer contract breach rather than writing bad records."""
  for key, (dtype, tail) in sample_lib.ARRAYS.items():
    shape = (height, width, *tail)
    got = sample.get(key)
    if not isinstance(got, np.ndarray) or got.shape != shape or got.dtype != dtype:
      desc = (got.shape, got.dtype) if isinstance(got, np.ndarray) else type(got).__name__
      raise ValueError(
        f'render_sample({index}, split={split!r}) key {key!r}: expected '
        f'{np.dtype(dtype).name}{list(shape)}, got {desc}'
      )


def encode_sample(job: tuple[int, str, int, int, int]) -> tuple[int, dict]:
  """Renders sample `index` and encodes it into the feature dict (runs in worker processes)."""
  index, split, seed, height, width = job
  from mtl_jax.data import synthetic  # pylint: disable=g-import-not-at-top  # lazy: optional dep

  sample = synthetic.render_sample(index, split=split, seed=seed, height=height, width=width)
  _check(sample, index, split, height, width)
  return index, tfds_records.encode(sample, index)


# ----------------------------------------------------------------------------- builder


class MtlSynthetic(tfds_records.PackagedBuilder, tfds.core.GeneratorBasedBuilder):
  """Procedural street scenes: RGB, Cityscapes train-id semseg, metric depth."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  # No predefined configs: every config comes from `make_config` (TFDS refuses a custom
  # config named like a predefined one, which the default sizes would be).
  BUILDER_CONFIGS = []

  def __init__(self, *, num_workers: int | None = None, **kwargs):
    """num_workers: render processes (default: one per core; <= 1 renders in-process)."""
    self._num_workers = tfds_records.available_cpus() if num_workers is None else num_workers
    self._pool = None  # set while building with num_workers > 1
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    h, w = self.builder_config.height, self.builder_config.width
    return self.dataset_info_from_configs(
      features=tfds_records.features(h, w),
      # Keep records in index order: eval is then in index order and index == position.
      disable_shuffling=True,
    )

  def _download_and_prepare(self, *args, **kwargs):
    with tfds_records.building(self._num_workers) as self._pool:
      try:
        return super()._download_and_prepare(*args, **kwargs)
      finally:
        self._pool = None

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    sizes = self.builder_config.split_sizes()
    return {
      split: self._generate_examples(split, sizes[split]) for split in SPLITS if sizes[split] > 0
    }

  def _generate_examples(self, split: str, num_examples: int):
    cfg = self.builder_config
    jobs = [(i, split, cfg.seed, cfg.height, cfg.width) for i in range(num_examples)]
    progress = tfds_records.Progress(f'{self.name}/{cfg.name} {split}', num_examples)
    for count, (index, example) in enumerate(
      tfds_records.ordered_map(encode_sample, jobs, self._pool, window=64), 1
    ):
      progress.update(count)
      yield index, example
