"""Exports a trained network for deployment without this package:

  python -m mtl_jax.export --workdir DIR --output OUT [--format stablehlo,savedmodel]
      [--height H --width W] [--step N] [--overwrite]

The exported function takes uint8 RGB images [batch, H, W, 3] (any batch size: the batch
dimension is symbolic) and returns {'semseg': int32 train ids [batch, H, W], 'depth': float32
metres [batch, H, W]} (a single-task run: its task only); normalisation, argmax and depth
decoding are inside the graph and the weights are constants in it. H × W defaults to the size
the run trained at (both must be multiples of the network's output stride). Weights holding
NaN or infinity are refused. OUT must be new or empty; --overwrite replaces a previous export
there (only the files below; others are kept). It receives:

  model.jax_exported  `jax.export` serialisation (StableHLO); load it with
                      jax.export.deserialize(bytearray(open(f, 'rb').read())).call(images)
  savedmodel/         TensorFlow SavedModel of the same function (jax2tf), signature
                      'serving_default' with input 'images'
  model_card.json     config, classes and palette, input size, the checkpoint's metrics,
                      versions, and how to call each format; written last, so a folder
                      without it holds an unfinished export
"""

import sys

from absl import flags

from mtl_jax import cli
from mtl_jax.deploy import artifacts

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training run directory.')
_OUTPUT = flags.DEFINE_string('output', None, 'Folder for the exported model.')
_FORMAT = flags.DEFINE_list(
  'format', list(artifacts.FORMATS), f'Any of {", ".join(artifacts.FORMATS)}.'
)
_HEIGHT = flags.DEFINE_integer(
  'height', None, 'Input height (default: the trained size).', lower_bound=1
)
_WIDTH = flags.DEFINE_integer(
  'width', None, 'Input width (default: the trained size).', lower_bound=1
)
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the best by `total`).')
_OVERWRITE = flags.DEFINE_bool(
  'overwrite', False, 'Replace the export files already in --output (other files are kept).'
)
flags.mark_flags_as_required(['workdir', 'output'])


def main(argv):
  workdir = cli.directory_flag('--workdir', _WORKDIR.value)
  out = cli.directory_flag('--output', _OUTPUT.value)
  card = artifacts.export_run(
    workdir, out, _FORMAT.value, _HEIGHT.value, _WIDTH.value, _STEP.value, _OVERWRITE.value
  )
  written = ', '.join(
    f['file'] if 'file' in f else f['directory'] for f in card['formats'].values()
  )
  print(
    f'export: checkpoint {card["checkpoint_step"]} at {card["input"]["shape"][1]}×'
    f'{card["input"]["shape"][2]} → {out}: {written}, {artifacts.MODEL_CARD}',
    file=sys.stderr,
  )


if __name__ == '__main__':
  cli.run(main, 'export')
