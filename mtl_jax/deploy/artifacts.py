"""A trained network as deployable artifacts: `jax.export` StableHLO and a TF SavedModel of one
function, uint8 images in, train ids and metres out, plus a model card (`python -m
mtl_jax.export` is the command; its docstring describes the files)."""

import json
import platform
import shutil
from pathlib import Path

from mtl_jax.runtime import atomic
from mtl_jax.runtime.errors import UserError
from mtl_jax.workdir import layout

FORMATS = ('stablehlo', 'savedmodel')
STABLEHLO_FILE = 'model.jax_exported'
SAVEDMODEL_DIR = 'savedmodel'
MODEL_CARD = 'model_card.json'
PARTIAL_CARD = atomic.partial_path(Path(MODEL_CARD)).name  # renamed to MODEL_CARD once whole
# All an export writes into its folder, so all --overwrite replaces there (the card first).
EXPORT_FILES = (MODEL_CARD, PARTIAL_CARD, STABLEHLO_FILE, SAVEDMODEL_DIR)
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


def check_formats(formats) -> tuple[str, ...]:
  """The requested formats, each once; a UserError for none or an unknown one."""
  valid = ', '.join(FORMATS)
  if not formats:
    raise UserError(f'--format is empty; give one or more of {valid}')
  unknown = [f for f in formats if f not in FORMATS]
  if unknown:
    raise UserError(f'--format: unknown {", ".join(map(repr, unknown))}; valid formats are {valid}')
  return tuple(dict.fromkeys(formats))


def input_size(config, height: int | None, width: int | None) -> tuple[int, int]:
  """The exported input's H × W: the trained size unless given; every stage of the network
  halves it exactly only if it is a positive multiple of the output stride."""
  size = (
    config.data.height if height is None else height,
    config.data.width if width is None else width,
  )
  stride = config.model.output_stride
  if min(size) <= 0 or size[0] % stride or size[1] % stride:
    raise UserError(
      f'--height and --width must be positive multiples of the output stride {stride}; got '
      f'{size[0]}×{size[1]}'
    )
  return size


def check_output(out: Path, overwrite: bool) -> None:
  """A UserError unless `out` is missing, empty, or (with `overwrite`) may take an export."""
  if overwrite or not out.is_dir() or not any(out.iterdir()):
    return
  if (out / MODEL_CARD).exists():
    raise UserError(
      f'--output {out} holds an export already; pass --overwrite to replace it, or give a new '
      'folder'
    )
  what = 'files that are not an export'
  unfinished = [name for name in EXPORT_FILES if (out / name).exists()]
  if unfinished:
    what = f'an unfinished export ({", ".join(unfinished)} without {MODEL_CARD})'
  raise UserError(
    f'--output {out} holds {what}; give a new or empty folder, or pass --overwrite to write the '
    'export there (replacing only its own files)'
  )


def clear_output(out: Path) -> None:
  """Removes a previous export's files from `out` (creating it if missing), the model card
  first: a folder without one is never mistaken for a complete export."""
  for name in EXPORT_FILES:
    path = out / name
    if path.is_dir() and not path.is_symlink():
      shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
      path.unlink()
  out.mkdir(parents=True, exist_ok=True)


def write_card(card: dict, out: Path) -> None:
  """The model card, written last and atomically (a whole file or none): its presence says the
  export is complete."""
  atomic.write_text(out / MODEL_CARD, json.dumps(card, indent=2, default=str) + '\n')


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

  config = run.config
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
    'class_names': list(run.classes.names),  # the dataset's the run trained on
    'palette': [list(c) for c in run.classes.colors],
    'metrics': checkpoint_metrics(workdir, run.step),
    'formats': files,
    'versions': versions,
    'config': config.to_dict(),
  }


def export_run(
  workdir: Path, out: Path, formats, height=None, width=None, step=None, overwrite=False
) -> dict:
  """Writes the requested formats, then the model card; returns the card. Refuses an `out`
  holding other files unless `overwrite` (`check_output`), and weights holding NaN or infinity."""
  from flax import nnx  # pylint: disable=g-import-not-at-top

  from mtl_jax import experiment  # pylint: disable=g-import-not-at-top  # fast --help
  from mtl_jax.models import finite_weights  # pylint: disable=g-import-not-at-top

  formats = check_formats(formats)
  check_output(out, overwrite)
  run = experiment.open_run(workdir, step)
  size = input_size(run.config, height, width)
  weights = {'params': run.state.params, 'batch_stats': run.state.batch_stats}
  finite_weights.require_finite(
    {k: nnx.to_pure_dict(v) for k, v in weights.items()}, f'checkpoint {run.step} of {workdir}'
  )
  fn = inference_function(run)
  clear_output(out)
  if 'stablehlo' in formats:
    export_stablehlo(fn, size, out / STABLEHLO_FILE)
  if 'savedmodel' in formats:
    export_savedmodel(fn, size, out / SAVEDMODEL_DIR)
  card = model_card(run, workdir, size, formats)
  write_card(card, out)
  return card
