"""Scores a run: `python -m mtl_jax.evaluate --workdir DIR [--split test] [--output F.json]`.

Rebuilds the model from DIR/config.json, restores the best checkpoint (or `--step`), runs the
same evaluation as training and prints and writes the metrics.
"""

import json
import sys
from pathlib import Path

from absl import flags

from mtl_jax import cli
from mtl_jax.runtime.errors import UserError
from mtl_jax.workdir import layout

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training run directory.')
_SPLIT = flags.DEFINE_enum('split', 'validation', ['validation', 'test'], 'Split to score.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the best by `total`).')
_OUTPUT = flags.DEFINE_string(
  'output', None, 'Write the metrics JSON here (default: DIR/eval_<split>_step<N>.json).'
)
flags.mark_flags_as_required(['workdir'])


def evaluate_run(workdir: str, split: str = 'validation', step: int | None = None) -> dict:
  """Metrics of checkpoint `step` (default: best) of the run in `workdir` on `split`; a split
  without labels (miniscapes' test split) is a UserError rather than mIoU 0 and SI-log NaN."""
  from mtl_jax import experiment, metrics  # pylint: disable=g-import-not-at-top  # fast --help

  run = experiment.open_run(workdir, step)
  scores = run.evaluate(split)
  if scores.get('nonfinite_images'):
    raise UserError(
      f'checkpoint {run.step} in {workdir} gives NaN/Inf outputs on '
      f'{scores["nonfinite_images"]} {split} images, so it has no score (the model diverged); '
      'evaluate an earlier --step'
    )
  if not metrics.has_labels(scores):
    raise UserError(
      f'the {split} split of dataset {run.config.data.name} has no labels (no labelled semseg '
      f'pixel, no valid depth pixel), so there is nothing to score; to write its predictions '
      f'instead: python -m mtl_jax.convert miniscapes --workdir {workdir} --splits {split} '
      '--output DIR'
    )
  return {'step': run.step, 'split': split, **scores}


def main(argv):
  workdir = cli.directory_flag('--workdir', _WORKDIR.value)
  # Checked before the evaluation, which takes a while, rather than at the write after it.
  output = None if _OUTPUT.value is None else cli.file_flag('--output', _OUTPUT.value)
  result = evaluate_run(str(workdir), _SPLIT.value, _STEP.value)
  from mtl_jax import metrics  # pylint: disable=g-import-not-at-top  # fast --help

  print(metrics.eval_line(f'step {result["step"]} {result["split"]}', result), flush=True)
  if output is not None:
    _write(output, result)
    return
  output = layout.eval_file(workdir, result['split'], result['step'])
  try:
    _write(output, result)
  except UserError as e:  # a finished run on a read-only disk can still be scored
    print(f'warning: {e}; pass --output FILE to keep the metrics', file=sys.stderr)


def _write(output: Path, result: dict) -> None:
  try:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + '\n')
  except OSError as e:
    raise UserError(f'cannot write {output} ({e.strerror})') from e
  print(f'wrote {output}')


if __name__ == '__main__':
  cli.run(main, 'evaluate')
