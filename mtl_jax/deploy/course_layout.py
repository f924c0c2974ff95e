"""A prepared dataset, or a trained run's predictions, in the course's miniscapes layout.

A dataset (ours included) becomes <out>/{train,val,test}/{rgb/<i>.jpg, semseg/<i>.png,
depth/<i>.png}; a run's predictions become <out>/<split>/{semseg,depth}/<i>.png, the course's
submission encoding (train ids; 8-bit inverse depth, mtl_jax.data.miniscapes.encode_depth).
File <i> is record i of the split, so exported predictions line up with an exported dataset.
`python -m mtl_jax.convert miniscapes` is the command.
"""

from pathlib import Path

import jax
import numpy as np
from PIL import Image

from mtl_jax import experiment, parallel
from mtl_jax.data import miniscapes, pipeline, registry
from mtl_jax.data.sample import IGNORE_LABEL
from mtl_jax.runtime.errors import UserError

JPEG_QUALITY = 95
DATASET_SPLITS = ('train', 'validation', 'test')  # a dataset's default: all of it
RUN_SPLITS = ('test',)  # a run's default: what the course scores


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
  """Every record of `splits` of a prepared dataset; the number written per split."""
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


def export_predictions(run: experiment.RestoredRun, out: Path, splits: list[str]) -> dict[str, int]:
  """`run`'s predictions for every record of `splits`; the number written per split."""
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


def export_run(
  workdir: str | Path, out: Path, splits: list[str], step: int | None = None
) -> dict[str, int]:
  """Predictions of checkpoint `step` (default: the best) of the run in `workdir`."""
  return export_predictions(experiment.open_run(workdir, step), out, splits)


def export_named_dataset(
  name: str, data_dir: str, out: Path, splits: list[str], **fields
) -> dict[str, int]:
  """Dataset `name` (prepared in data_dir first if need be, with `fields`: its size and, for
  synthetic, num_train/num_validation/num_test)."""
  builder = registry.prepare(name, registry.resolve_data_dir(data_dir), **fields)
  return export_dataset(builder, out, splits)
