"""A trained network as deployable artifacts: `jax.export` StableHLO and a TF SavedModel of one
function, uint8 images in, train ids and metres out, plus a model card (`python -m
mtl_jax.export` is the command; its docstring describes the files)."""

import json
import platform
from pathlib import Path

from mtl_jax.runtime.errors import UserError
from mtl_jax.workdir import layout

FORMATS = ('stablehlo', 'savedmodel')
STABLEHLO_FILE = 'model.jax_exported'
SAVEDMODEL_DIR = 'savedmodel'
MODEL_CARD = 'model_card.json'
SIGNATURE = 'serving_default'
INPUT_NAME = 'images'


def inference_function(run):
  """images uint8 [B, H, W, 3] → predictions, with the run's weights closed over."""
  import functools  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top

  from mtl_jax import steps  # pylint: disable=g-import-not-at-top

  state = jax.device_get(run.state)  # host arrays: constants of the exported graph
  predict = functools.partial(steps.predict_step, graphdef=run.graphdef, spec=run.experiment.spec)
  return lambda images: predict(state, images)


def input_size(run, height: int | None, width: int | None) -> tuple[int, int]:
  config = run.config
  size = (height or config.data.height, width or config.data.width)
  stride = config.model.output_stride
  if size[0] % stride or size[1] % stride:
    raise UserError(
      f'--height and --width must be multiples of the output stride {stride}; got '
      f'{size[0]}×{size[1]}'
    )
  return size


def export_stablehlo(fn, size: tuple[int, int], path: Path) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  (batch,) = jax.export.symbolic_shape('batch')
  spec = jax.ShapeDtypeStruct((batch, *size, 3), jnp.uint8)
  exported = jax.export.export(jax.jit(fn))(spec)
  path.write_bytes(exported.serialize())


def export_savedmodel(fn, size: tuple[int, int], path: Path) -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top

  converted = jax2tf.convert(fn, polymorphic_shapes=[f'(batch, {size[0]}, {size[1]}, 3)'])
  module = tf.Module()
  module.predict = tf.function(
    lambda images: converted(images),
    input_signature=[tf.TensorSpec((None, *size, 3), tf.uint8, name=INPUT_NAME)],
    autograph=False,
  )
  tf.saved_model.save(module, str(path), signatures={SIGNATURE: module.predict})


def checkpoint_metrics(workdir: Path, step: int) -> dict:
  """The validation metrics recorded at `step` (empty if none were)."""
  from mtl_jax.workdir import writers  # pylint: disable=g-import-not-at-top

  records = writers.read_records(workdir / layout.METRICS_FILE)
  matching = [r for r in records if r.get('step') == step and r.get('split') == 'validation']
  return matching[-1] if matching else {}


def model_card(run, workdir: Path, size: tuple[int, int], formats) -> dict:
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top

  from mtl_jax.data.labels import default_class_colors, default_class_names

  config = run.config
  num_classes = config.model.num_classes
  versions = {'python': platform.python_version(), 'jax': jax.__version__, 'flax': flax.__version__}
  files = {}
  if 'stablehlo' in formats:
    files['stablehlo'] = {
      'file': STABLEHLO_FILE,
      'load': 'jax.export.deserialize(bytearray(open(file, "rb").read())).call(images)',
    }
  if 'savedmodel' in formats:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    versions['tensorflow'] = tf.__version__
    files['savedmodel'] = {
      'directory': SAVEDMODEL_DIR,
      'load': f'tf.saved_model.load(directory).signatures["{SIGNATURE}"]({INPUT_NAME}=images)',
    }
  return {
    'workdir': str(workdir),
    'checkpoint_step': run.step,
    'architecture': config.model.arch,
    'dataset': config.data.name,
    'input': {'dtype': 'uint8', 'shape': ['batch', *size, 3], 'channels': 'RGB'},
    'outputs': {
      'semseg': 'int32 [batch, H, W]: train ids, the class order below',
      'depth': 'float32 [batch, H, W]: metres',
    },
    'tasks': list(run.experiment.tasks),
    'class_names': list(default_class_names(num_classes)),
    'palette': [list(c) for c in default_class_colors(num_classes)],
    'metrics': checkpoint_metrics(workdir, run.step),
    'formats': files,
    'versions': versions,
    'config': config.to_dict(),
  }


def export_run(workdir: Path, out: Path, formats, height=None, width=None, step=None) -> dict:
  """Writes the requested formats and the model card; returns the card."""
  from mtl_jax import experiment  # pylint: disable=g-import-not-at-top  # fast --help

  unknown = sorted(set(formats) - set(FORMATS))
  if unknown:
    raise UserError(f'--format {",".join(unknown)}: valid formats are {", ".join(FORMATS)}')
  run = experiment.open_run(workdir, step)
  size = input_size(run, height, width)
  fn = inference_function(run)
  out.mkdir(parents=True, exist_ok=True)
  if 'stablehlo' in formats:
    export_stablehlo(fn, size, out / STABLEHLO_FILE)
  if 'savedmodel' in formats:
    export_savedmodel(fn, size, out / SAVEDMODEL_DIR)
  card = model_card(run, workdir, size, formats)
  (out / MODEL_CARD).write_text(json.dumps(card, indent=2, default=str) + '\n')
  return card
