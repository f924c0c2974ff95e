"""Writes a prepared dataset, or a trained run's predictions, in the course's miniscapes layout.

  # a dataset (ours included) as <out>/{train,val,test}/{rgb/<i>.jpg, semseg/<i>.png, depth/<i>.png}
  python scripts/export_miniscapes.py --dataset synthetic --output OUT [--data_dir D]
      [--height H --width W] [--split_sizes N,N,N] [--splits train,validation,test]
  # predictions of a run's best checkpoint as <out>/<split>/{semseg,depth}/<i>.png, the course's
  # submission encoding (train ids; 8-bit inverse depth, mtl_jax.data.miniscapes.encode_depth)
  python scripts/export_miniscapes.py --workdir RUN --output OUT [--splits test]

File <i> is record i of the split, so exported predictions line up with an exported dataset.
"""

import argparse
import sys
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from mtl_jax import cli, experiment, parallel
from mtl_jax.data import miniscapes, pipeline, registry
from mtl_jax.data.registry import SYNTHETIC_DEFAULTS
from mtl_jax.data.sample import IGNORE_LABEL
from mtl_jax.runtime.errors import UserError

JPEG_QUALITY = 95


def _save(path: Path, array: np.ndarray, **options) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path, **options)


def write_sample(
  out: Path,
  split: str,
  index: int,
  *,
  image: np.ndarray | None = None,
  semseg: np.ndarray,
  depth: np.ndarray,
) -> None:
  """One sample (or prediction, without image) in the miniscapes encodings."""
  folder = out / miniscapes.FOLDERS[split]
  if image is not None:
    _save(folder / 'rgb' / f'{index}.jpg', image, quality=JPEG_QUALITY)
  _save(folder / 'semseg' / f'{index}.png', np.asarray(semseg, np.uint8))
  _save(folder / 'depth' / f'{index}.png', miniscapes.encode_depth(depth))


def export_dataset(builder, out: Path, splits: list[str]) -> dict[str, int]:
  counts = {}
  for split in splits:
    if split not in builder.info.splits:
      raise UserError(
        f'{builder.name} has no split {split!r}; it has {", ".join(builder.info.splits)}'
      )
    source = pipeline.data_source(builder, split)
    for i in range(len(source)):
      sample = source[i]
      write_sample(
        out,
        split,
        int(sample['index']),
        image=sample['image'],
        semseg=sample['semseg'],
        depth=sample['depth'],
      )
    counts[split] = len(source)
  return counts


def export_predictions(run: experiment.Run, out: Path, splits: list[str]) -> dict[str, int]:
  predict = run.experiment.predict_step(run.graphdef)
  sources = run.experiment.sources(splits)
  mesh = run.experiment.mesh
  counts = {}
  for split in splits:
    counts[split] = 0
    for batch in run.experiment.evaluator(run.graphdef, sources[split]).batches:
      preds = jax.device_get(predict(run.state, parallel.shard_batch(batch, mesh)['image']))
      shape = batch['semseg'].shape
      for row in np.flatnonzero(batch['mask']):
        write_sample(
          out,
          split,
          int(batch['index'][row]),
          semseg=preds.get('semseg', np.full(shape, IGNORE_LABEL))[row],
          depth=preds.get('depth', np.zeros(shape))[row],
        )
        counts[split] += 1
  return counts


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output', required=True)
  parser.add_argument('--workdir', help="export this run's predictions (best checkpoint)")
  parser.add_argument('--step', type=int, help='with --workdir: this checkpoint instead')
  parser.add_argument('--dataset', default='synthetic', choices=sorted(registry.DATASETS))
  parser.add_argument('--data_dir', default=registry.DEFAULT_DATA_DIR)
  parser.add_argument('--height', type=int, default=SYNTHETIC_DEFAULTS.height)
  parser.add_argument('--width', type=int, default=SYNTHETIC_DEFAULTS.width)
  parser.add_argument(
    '--split_sizes',
    default=','.join(map(str, SYNTHETIC_DEFAULTS.split_sizes)),
    help='synthetic: train,validation,test sample counts',
  )
  parser.add_argument(
    '--splits',
    default=None,
    help='comma-separated (default: all three for a dataset, test for a run)',
  )
  args = parser.parse_args()
  cli.setup()
  with cli.user_errors('export_miniscapes'):
    out = cli.directory_flag('--output', args.output)
    if args.workdir is not None:  # even empty (an unset variable): never the dataset instead
      cli.directory_flag('--workdir', args.workdir)
      splits = (args.splits or 'test').split(',')
      counts = export_predictions(experiment.open_run(args.workdir, args.step), out, splits)
    else:
      splits = (args.splits or 'train,validation,test').split(',')
      size = dict(height=args.height, width=args.width)
      if args.dataset == 'synthetic':
        size.update(
          zip(('num_train', 'num_validation', 'num_test'), map(int, args.split_sizes.split(',')))
        )
      builder = registry.prepare(args.dataset, registry.resolve_data_dir(args.data_dir), **size)
      counts = export_dataset(builder, out, splits)
  print(
    f'wrote {", ".join(f"{s} {n}" for s, n in counts.items())} samples to {out}',
    file=sys.stderr,
  )


if __name__ == '__main__':
  main()
