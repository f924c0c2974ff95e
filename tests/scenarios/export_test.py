"""`python -m mtl_jax.export`: each artifact, run in a process that imports no mtl_jax module,
predicts what predict_step predicts."""

import json
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from commands import assert_one_line_error, run
from conftest import REPO
from flax import nnx
from PIL import Image

from mtl_jax import experiment, parallel
from mtl_jax.deploy import artifacts

# Run from a temporary folder with the package off the path: only jax / tensorflow and numpy.
LOADERS = {
  'stablehlo': """
import sys, jax, numpy as np
exported = jax.export.deserialize(bytearray(open(sys.argv[1] + '/model.jax_exported', 'rb').read()))
images = np.load(sys.argv[2])
outs = [exported.call(images[:1]), exported.call(images[1:])]  # batch sizes 1 and 3
""",
  'savedmodel': """
import sys, numpy as np, tensorflow as tf
serve = tf.saved_model.load(sys.argv[1] + '/savedmodel').signatures['serving_default']
images = np.load(sys.argv[2])
outs = [serve(images=tf.constant(images[:1])), serve(images=tf.constant(images[1:]))]
""",
}
SAVE = """
assert not [m for m in sys.modules if m.startswith('mtl_jax')]
np.savez(sys.argv[3], **{k: np.concatenate([np.asarray(o[k]) for o in outs]) for k in outs[0]})
"""


@pytest.fixture(scope='module')
def exported(tiny_run, tmp_path_factory):
  _, workdir, _ = tiny_run
  out = tmp_path_factory.mktemp('exported')
  result = subprocess.run(
    [sys.executable, '-m', 'mtl_jax.export', f'--workdir={workdir}', f'--output={out}'],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, out


@pytest.mark.parametrize('fmt', artifacts.FORMATS)
def test_artifact_in_a_fresh_process_predicts_as_predict_step(exported, fmt, tmp_path):
  workdir, out = exported
  run = experiment.open_run(workdir)
  h, w = run.config.data.height, run.config.data.width
  images = np.random.default_rng(0).integers(0, 256, (4, h, w, 3), dtype=np.uint8)
  np.save(tmp_path / 'images.npy', images)
  result = subprocess.run(
    [sys.executable, '-c', LOADERS[fmt] + SAVE, str(out), 'images.npy', 'preds.npz'],
    cwd=tmp_path,
    env={k: v for k, v in __import__('os').environ.items() if k != 'PYTHONPATH'},
    capture_output=True,
    text=True,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  theirs = np.load(tmp_path / 'preds.npz')
  ours = jax.device_get(
    run.experiment.predict_step(run.graphdef)(
      run.state, parallel.replicate(images, run.experiment.mesh)
    )
  )
  assert (theirs['semseg'] == ours['semseg']).mean() >= 0.9999
  np.testing.assert_allclose(theirs['depth'], ours['depth'], rtol=1e-3)


def test_model_card_describes_the_artifacts(exported):
  workdir, out = exported
  card = json.loads((out / artifacts.MODEL_CARD).read_text())
  run = experiment.open_run(workdir)
  assert card['checkpoint_step'] == run.step
  assert card['input']['shape'] == ['batch', run.config.data.height, run.config.data.width, 3]
  assert len(card['class_names']) == len(card['palette']) == run.config.model.num_classes
  assert card['metrics']['step'] == run.step and 'miou' in card['metrics']
  assert set(card['formats']) == set(artifacts.FORMATS)
  assert card['config']['model']['arch'] == run.config.model.arch


def test_a_size_off_the_stride_is_one_line(tiny_run, tmp_path):
  _, workdir, _ = tiny_run
  result = run('mtl_jax.export', f'--workdir={workdir}', f'--output={tmp_path}', '--height=30')
  assert_one_line_error(
    result, 'export', '--height and --width must be positive multiples of the output stride 16'
  )


@pytest.mark.parametrize(
  'args, message',
  [
    (['--height=-32'], 'flag --height=-32: -32 is not a positive integer'),
    (['--format='], '--format is empty; give one or more of stablehlo, savedmodel'),
    (['--format=onnx'], "--format: unknown 'onnx'; valid formats are stablehlo, savedmodel"),
    ([], 'holds files that are not an export; give a new or empty folder, or pass --overwrite'),
  ],
  ids=['negative-height', 'no-format', 'unknown-format', 'output-not-empty'],
)
def test_a_misuse_is_one_line_before_any_work(tmp_path, args, message):
  (tmp_path / 'out').mkdir()
  (tmp_path / 'out' / 'notes.txt').write_text('mine')
  out = tmp_path / ('out' if not args else 'new')
  result = run('mtl_jax.export', f'--workdir={tmp_path / "no_run"}', f'--output={out}', *args)
  assert_one_line_error(result, 'export', message)
  assert [p.name for p in (tmp_path / 'out').iterdir()] == ['notes.txt']
  assert not (tmp_path / 'new').exists()


def test_weights_holding_nan_are_one_line_naming_the_checkpoint(tiny_run, tmp_path):
  config, workdir, _ = tiny_run
  restored = experiment.open_run(workdir)
  model = nnx.merge(restored.graphdef, restored.state.params, restored.state.batch_stats)
  _, kernel = next(iter(nnx.to_flat_state(nnx.state(model, nnx.Param))))
  kernel[...] = kernel[...].at[(0,) * kernel.ndim].set(jnp.nan)
  experiment.save_run_start(config, model, tmp_path / 'nan')
  result = run('mtl_jax.export', f'--workdir={tmp_path / "nan"}', f'--output={tmp_path / "out"}')
  assert_one_line_error(
    result, 'export', f'checkpoint 0 of {tmp_path / "nan"} holds non-finite weights', '(params/'
  )
  assert not (tmp_path / 'out').exists()


def test_a_previous_export_is_replaced_only_with_overwrite(exported, tmp_path):
  workdir, previous = exported
  out = shutil.copytree(previous, tmp_path / 'out')
  command = ['mtl_jax.export', f'--workdir={workdir}', f'--output={out}', '--format=stablehlo']
  assert_one_line_error(run(*command), 'export', 'holds an export already; pass --overwrite')
  result = run(*command, '--overwrite')
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(p.name for p in out.iterdir()) == [artifacts.STABLEHLO_FILE, artifacts.MODEL_CARD]
  assert list(json.loads((out / artifacts.MODEL_CARD).read_text())['formats']) == ['stablehlo']


def test_predict_runs_the_exported_artifact(exported, tmp_path):
  workdir, out = exported
  run = experiment.open_run(workdir)
  h, w = run.config.data.height, run.config.data.width
  images = np.random.default_rng(1).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
  given = tmp_path / 'images'  # beside the output: predict refuses an output inside its input
  given.mkdir()
  for i, image in enumerate(images):
    Image.fromarray(image).save(given / f'{i}.png')
  Image.fromarray(images[0][: h // 2]).save(given / 'half.png')  # another size
  result = subprocess.run(
    [
      sys.executable,
      '-m',
      'mtl_jax.predict',
      f'--exported={out}',
      f'--input={given}',
      f'--output={tmp_path / "predicted"}',
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'wrote 3 images' in result.stdout and 'model.jax_exported' in result.stdout
  ours = jax.device_get(
    run.experiment.predict_step(run.graphdef)(
      run.state, parallel.replicate(images, run.experiment.mesh)
    )
  )
  for i in range(2):
    labels = np.asarray(Image.open(tmp_path / 'predicted' / 'labels' / f'{i}.png'))
    assert (labels == ours['semseg'][i]).mean() >= 0.9999
  half = np.asarray(Image.open(tmp_path / 'predicted' / 'labels' / 'half.png'))
  assert half.shape == (h // 2, w)


def test_predict_needs_exactly_one_model_source(exported, tmp_path):
  workdir, out = exported
  command = [sys.executable, '-m', 'mtl_jax.predict', f'--input={tmp_path}', '--output=o']
  for extra in ([], [f'--workdir={workdir}', f'--exported={out}']):
    result = subprocess.run(command + extra, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
      'predict: error: give one of --workdir (a training run) or --exported (an export folder)'
    )
