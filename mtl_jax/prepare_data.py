"""Builds a dataset for training: `python -m mtl_jax.prepare_data --dataset NAME --data_dir OUT`.

  --dataset synthetic                     renders the procedural scenes (no input needed)
  --dataset miniscapes|cityscapes|folder  reads --manual_dir in that layout (see
                                          mtl_jax/data/<name>.py) and checks every file

Training then reads it with `--config.data.name=NAME --config.data.data_dir=OUT` (and
`--config.data.height/width` = the size printed here). A bad file stops the build with one line
naming it; `--skip_bad` skips and lists bad samples instead. Preparing again is a no-op; datasets
already prepared are never touched by a failed build.
"""

import os

from absl import flags

from mtl_jax import cli
from mtl_jax.data import file_checks, registry
from mtl_jax.data.registry import SYNTHETIC_DEFAULTS
from mtl_jax.runtime.errors import UserError

_DATASET = flags.DEFINE_enum('dataset', 'synthetic', list(registry.DATASETS), 'Dataset to build.')
_MANUAL_DIR = flags.DEFINE_string('manual_dir', None, 'The unpacked dataset (not synthetic).')
_DATA_DIR = flags.DEFINE_string('data_dir', registry.DEFAULT_DATA_DIR, 'Where to write it.')
_HEIGHT = flags.DEFINE_integer(
  'height',
  0,
  'Resize every sample to this height (0 = keep the '
  f'native size; synthetic: {SYNTHETIC_DEFAULTS.height}).',
  lower_bound=0,
)
_WIDTH = flags.DEFINE_integer(
  'width',
  0,
  'Resize every sample to this width (0 = keep the '
  f'native size; synthetic: {SYNTHETIC_DEFAULTS.width}).',
  lower_bound=0,
)
_SKIP_BAD = flags.DEFINE_bool(
  'skip_bad', False, 'Skip bad samples (and list them) instead of stopping at the first.'
)
_MAX_PIXELS = flags.DEFINE_integer(
  'max_pixels',
  file_checks.DEFAULT_MAX_PIXELS,
  'Larger images are refused (decompression bombs).',
  lower_bound=1,
)
_NUM_WORKERS = flags.DEFINE_integer(
  'num_workers', 0, 'Decoding processes (0 = one per core).', lower_bound=0
)
_SEED = flags.DEFINE_integer('seed', SYNTHETIC_DEFAULTS.seed, 'synthetic: dataset seed.')
_SPLIT_SIZES = flags.DEFINE_list(
  'split_sizes',
  list(map(str, SYNTHETIC_DEFAULTS.split_sizes)),
  'synthetic: train,validation,test sample counts.',
)


def options(
  dataset: str,
  *,
  manual_dir: str | None,
  height: int,
  width: int,
  skip_bad: bool,
  max_pixels: int,
  num_workers: int,
  seed: int,
  split_sizes,
) -> dict:
  """The `registry.prepare` keyword arguments for this dataset."""
  if dataset == 'synthetic':
    sizes = [int(n) for n in split_sizes]
    if len(sizes) != 3:
      raise UserError(f'--split_sizes needs 3 numbers (train,validation,test), got {sizes}')
    return dict(
      height=height or SYNTHETIC_DEFAULTS.height,
      width=width or SYNTHETIC_DEFAULTS.width,
      seed=seed,
      num_train=sizes[0],
      num_validation=sizes[1],
      num_test=sizes[2],
      num_workers=num_workers or None,
    )
  if not manual_dir:
    raise UserError(
      f'--manual_dir is required for --dataset {dataset}: the directory '
      f'holding the unpacked {dataset} data'
    )
  return dict(
    height=height,
    width=width,
    manual_dir=os.path.expanduser(manual_dir),
    skip_bad=skip_bad,
    max_pixels=max_pixels,
    num_workers=num_workers or None,
  )


def report(dataset: str, data_dir: str, builder) -> str:
  """Skipped samples, where the dataset is, its size and split counts, how training picks it."""
  lines = []
  skipped = getattr(builder, 'skipped', [])
  if skipped:
    lines += [f'skipped {len(skipped)} bad sample(s):', *(f'  {bad}' for bad in skipped)]
  splits = ', '.join(
    f'{name} {builder.info.splits[name].num_examples}'
    for name in ('train', 'validation', 'test')
    if name in builder.info.splits
  )
  height, width = builder.info.features['image'].shape[:2]
  lines += [
    f'{builder.name} ready in {builder.data_dir}: {height}x{width}, {splits}',
    f'train on it with --config.data.name={dataset} --config.data.data_dir={data_dir} '
    f'--config.data.height={height} --config.data.width={width}',
  ]
  return '\n'.join(lines)


def prepare_and_report(dataset: str, data_dir: str, **flag_values) -> str:
  """What `main` does with its flags; raises UserError for anything the user must fix."""
  builder = registry.prepare(
    dataset, registry.resolve_data_dir(data_dir), **options(dataset, **flag_values)
  )
  return report(dataset, data_dir, builder)


def main(argv):
  print(
    prepare_and_report(
      _DATASET.value,
      _DATA_DIR.value,
      manual_dir=_MANUAL_DIR.value,
      height=_HEIGHT.value,
      width=_WIDTH.value,
      skip_bad=_SKIP_BAD.value,
      max_pixels=_MAX_PIXELS.value,
      num_workers=_NUM_WORKERS.value,
      seed=_SEED.value,
      split_sizes=_SPLIT_SIZES.value,
    )
  )


if __name__ == '__main__':
  cli.run(main, 'prepare_data')
