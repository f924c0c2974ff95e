"""Runs a trained network on image files:

  python -m mtl_jax.predict --workdir DIR --input PATH... --output OUT [--step N]
      [--batch_size B] [--overwrite]
  python -m mtl_jax.predict --exported EXPORT_DIR --input PATH... --output OUT

(--exported runs the StableHLO artifact of `mtl_jax.export` instead of a checkpoint.)

PATH: image files (JPEG, PNG, ... up to 64 megapixels, `fitting.MAX_PIXELS`; greyscale, palette
and RGBA converted to RGB, 16-bit scaled to 8 bits; EXIF orientation applied), folders
(searched recursively for IMAGE_SUFFIXES) or glob patterns (`'photos/**/*.jpg'`). For an image
at <rel> under its input (a folder or a glob's fixed prefix; a file's own name otherwise) it
writes OUT/<kind>/<rel>.png, one folder per kind:

  labels       train ids (uint8; the dataset's class order)
  semseg       the same in the dataset's colours
  depth        uint16 millimetres, 0 = none (65.535 m and beyond saturate)
  depth_color  depth in the report's colour map (log scale over DEPTH_RANGE_M)
  panel        input | semseg over the input | depth colour, side by side

(a single-task run writes its task's kinds only). Images are fitted to the run's trained size
as `mtl_jax.deploy.fitting` describes, batched per fitted size: one compilation per size. A file
that is not a readable image, or is larger than MAX_PIXELS (checked from its header: predict
needs about 60 bytes a pixel), is one line on stderr and the rest go on; the exit code is 1 if
any failed. OUT may not be inside an input folder, nor hold an input (a rerun would predict its
own outputs).

Each output is written to a hidden `.<name>.partial` beside it and renamed into place, so an
interrupted run (Ctrl-C, a kill) leaves no torn PNG. An image whose outputs all exist is skipped
unless --overwrite; one missing any (an interrupted image, a deleted file) is predicted again and
all its outputs rewritten. A checkpoint holding NaN or infinite weights, or an export folder
whose files are torn or not from `mtl_jax.export`, is refused in one line.
"""

import sys

from absl import flags

from mtl_jax import cli
from mtl_jax.runtime.errors import UserError

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training run directory.')
_INPUT = flags.DEFINE_multi_string(
  'input', None, 'Image files, folders or glob patterns (repeat the flag or list after it).'
)
_OUTPUT = flags.DEFINE_string('output', None, 'Folder for the predictions.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the best by `total`).')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 8, 'Images per forward pass.', lower_bound=1)
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace existing outputs.')
_EXPORTED = flags.DEFINE_string(
  'exported', None, 'Instead of --workdir: a folder from mtl_jax.export (its StableHLO model).'
)
flags.mark_flags_as_required(['input', 'output'])


def main(argv):
  from mtl_jax.deploy import predict_files, predictors  # pylint: disable=g-import-not-at-top

  inputs = list(_INPUT.value) + list(argv[1:])  # `--input a b c` leaves b c as arguments
  if bool(_WORKDIR.value) == bool(_EXPORTED.value):
    raise UserError('give one of --workdir (a training run) or --exported (an export folder)')
  out = cli.directory_flag('--output', _OUTPUT.value)
  items = predict_files.collect(inputs)
  predict_files.require_output_outside(out, inputs, items)
  if _EXPORTED.value:
    predictor = predictors.ExportedPredictor(_EXPORTED.value)
  else:
    predictor = predictors.Predictor(
      str(cli.directory_flag('--workdir', _WORKDIR.value)), _STEP.value
    )
  result = predict_files.predict_files(predictor, items, out, _BATCH_SIZE.value, _OVERWRITE.value)
  failed = result['failed']
  print(
    f'predict: wrote {len(result["written"])} images to {out} from {predictor.source}; '
    f'{len(result["skipped"])} kept, {len(failed)} failed',
    flush=True,
  )
  sys.exit(1 if failed else 0)


if __name__ == '__main__':
  cli.run(main, 'predict', takes_arguments=True)
