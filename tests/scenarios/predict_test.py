"""`python -m mtl_jax.predict` on a folder of real-world files, checked against predict_step; and
under misuse: odd files, a rerun after a lost output, an output folder among the inputs, a torn
export folder and a checkpoint holding NaN, each a line of its own, never a traceback."""

import json
import struct
import subprocess
import sys
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from commands import assert_one_line_error, run
from conftest import REPO
from flax import nnx
from PIL import Image

from mtl_jax import experiment, parallel
from mtl_jax.deploy import artifacts, fitting, predict_files

ORIENTATION = 0x0112  # the EXIF tag
ROTATED_90_CW = 6  # stored landscape, shown portrait (turned 90° clockwise)


def _photo(h, w, seed):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
  """The issue's folder: {relative name: displayed (H, W)}; the tiny run trained at 32×64."""
  root = tmp_path_factory.mktemp('photos')
  (root / 'street').mkdir()
  Image.fromarray(_photo(32, 64, 0)).save(root / 'street' / 'same_size.jpg', quality=95)
  Image.fromarray(_photo(50, 70, 1)).save(root / 'other_size.png')
  Image.fromarray(_photo(40, 30, 2)[..., 0]).save(root / 'grey.png')  # mode L
  rgba = np.dstack([_photo(24, 48, 3), np.full((24, 48), 128, np.uint8)])
  Image.fromarray(rgba).save(root / 'alpha.png')
  exif = Image.Exif()
  exif[ORIENTATION] = ROTATED_90_CW
  Image.fromarray(_photo(20, 44, 4)).save(root / 'rotated.jpg', exif=exif, quality=95)
  (root / 'notes.jpg').write_text('not an image')
  sizes = {
    'street/same_size': (32, 64),
    'other_size': (50, 70),
    'grey': (40, 30),
    'alpha': (24, 48),
    'rotated': (44, 20),
  }
  return root, sizes


def _predict(workdir, inputs, out, *extra):
  command = [sys.executable, '-m', 'mtl_jax.predict', f'--workdir={workdir}', f'--output={out}']
  command += [f'--input={path}' for path in inputs] + list(extra)
  return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)


@pytest.fixture(scope='module')
def predicted(tiny_run, photos, tmp_path_factory):
  _, workdir, _ = tiny_run
  out = tmp_path_factory.mktemp('predicted')
  return workdir, out, _predict(workdir, [photos[0]], out, '--batch_size=2')


def test_every_image_gets_its_outputs_at_its_own_size_and_the_bad_file_one_line(photos, predicted):
  root, sizes = photos
  _, out, result = predicted
  assert result.returncode == 1, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  (line,) = [x for x in result.stderr.splitlines() if x.startswith('predict: skipped')]
  assert str(root / 'notes.jpg') in line and 'not a readable image' in line
  assert 'wrote 5 images' in result.stdout and '1 failed' in result.stdout
  for name, (h, w) in sizes.items():
    labels = np.asarray(Image.open(out / 'labels' / f'{name}.png'))
    depth = np.asarray(Image.open(out / 'depth' / f'{name}.png'))
    assert labels.shape == (h, w) and labels.dtype == np.uint8, name
    assert depth.shape == (h, w) and depth.dtype == np.uint16, name
    assert np.asarray(Image.open(out / 'semseg' / f'{name}.png')).shape == (h, w, 3)
    assert np.asarray(Image.open(out / 'depth_color' / f'{name}.png')).shape == (h, w, 3)
    panel = np.asarray(Image.open(out / 'panel' / f'{name}.png'))
    assert panel.shape == (h, 3 * w + 2 * 2, 3), name  # three tiles, two 2-pixel gaps
  assert not list(out.rglob('notes*'))


@pytest.mark.parametrize('name', ['same_size', 'other_size', 'rotated', 'grey'])
def test_outputs_equal_predict_step_on_the_fitted_input(photos, predicted, name):
  root, sizes = photos
  workdir, out, _ = predicted
  relative = 'street/same_size' if name == 'same_size' else name
  run = experiment.open_run(workdir)
  config = run.config
  file = next(root.rglob(f'{name}.*'))
  rgb = fitting.read_rgb(file)
  assert rgb.shape[:2] == sizes[relative]
  trained = (config.data.height, config.data.width)
  fit = fitting.Fit.of(rgb.shape[:2], trained, config.model.output_stride)
  images = parallel.replicate(fitting.fit_image(rgb, fit)[None], run.experiment.mesh)
  preds = jax.device_get(run.experiment.predict_step(run.graphdef)(run.state, images))
  labels = np.asarray(Image.open(out / 'labels' / f'{relative}.png'))
  if name == 'same_size':  # at the trained size the network's own output, untouched
    np.testing.assert_array_equal(labels, preds['semseg'][0])
  np.testing.assert_array_equal(labels, fitting.labels_back(preds['semseg'][0], fit))
  metres = fitting.depth_back(preds['depth'][0], fit)
  decoded = fitting.decode_depth_png(np.asarray(Image.open(out / 'depth' / f'{relative}.png')))
  in_range = metres < fitting.DEPTH_PNG_MAX / fitting.DEPTH_PNG_SCALE
  assert in_range.mean() > 0.5
  np.testing.assert_allclose(decoded[in_range], metres[in_range], atol=0.5e-3 + 1e-6)


def test_existing_outputs_are_kept_unless_overwrite(tiny_run, photos, tmp_path):
  _, workdir, _ = tiny_run
  root, _ = photos
  image = root / 'grey.png'
  assert _predict(workdir, [image], tmp_path).returncode == 0
  written = tmp_path / 'labels' / 'grey.png'
  written.write_bytes(b'old')
  again = _predict(workdir, [image], tmp_path)
  assert again.returncode == 0 and 'kept them (--overwrite to replace)' in again.stdout
  assert written.read_bytes() == b'old'
  assert _predict(workdir, [image], tmp_path, '--overwrite').returncode == 0
  assert np.asarray(Image.open(written)).shape == (40, 30)


def test_glob_inputs_mirror_the_tree_below_the_pattern(photos):
  root, _ = photos
  items = predict_files.collect([str(root / '**' / '*.jpg')])
  assert sorted(str(i.relative) for i in items) == ['notes', 'rotated', 'street/same_size']


def _claiming(path, width, height):
  """A 1×1 PNG whose header claims width × height (IHDR and its CRC patched)."""
  Image.fromarray(_photo(1, 1, 0)).save(path)
  data = bytearray(path.read_bytes())
  data[16:24] = struct.pack('>II', width, height)
  data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
  path.write_bytes(bytes(data))


def test_odd_files_are_a_line_each_and_a_rerun_redoes_an_image_missing_an_output(
  tiny_run, tmp_path
):
  _, workdir, _ = tiny_run
  photos, out = tmp_path / 'photos', tmp_path / 'out'
  photos.mkdir()
  grey16 = np.random.default_rng(5).integers(0, 65536, (40, 30), dtype=np.uint16)
  Image.fromarray(grey16).save(photos / 'grey16.png')  # 16-bit greyscale
  Image.fromarray((grey16 >> 8).astype(np.uint8)).save(photos / 'grey8.png')  # the same, 8-bit
  _claiming(photos / 'huge.png', 15000, 10000)
  (photos / 'empty.png').write_bytes(b'')
  (photos / 'folder.png').mkdir()  # a directory named like an image: not a file, not searched
  first = _predict(workdir, [photos], out)
  assert first.returncode == 1 and 'Traceback' not in first.stderr, first.stderr[-2000:]
  empty, huge = first.stderr.strip().splitlines()
  assert empty.startswith(f'predict: skipped {photos / "empty.png"}: not a readable image (')
  assert huge == (
    f'predict: skipped {photos / "huge.png"}: 15000×10000 is 150 megapixels, over the limit of '
    '64 (MAX_PIXELS); downscale it first'
  )
  assert 'wrote 2 images' in first.stdout and '2 failed' in first.stdout
  labels = {n: np.asarray(Image.open(out / 'labels' / f'{n}.png')) for n in ('grey16', 'grey8')}
  np.testing.assert_array_equal(labels['grey16'], labels['grey8'])  # not a white image
  lost = out / 'depth' / 'grey16.png'
  lost.unlink()
  (out / 'labels' / '.grey8.png.partial').write_bytes(b'torn')  # left by a killed write
  second = _predict(workdir, [photos], out)
  assert second.returncode == 1 and 'wrote 1 images' in second.stdout, second.stdout
  assert '1 kept, 2 failed' in second.stdout
  assert np.asarray(Image.open(lost)).shape == (40, 30)


def test_an_output_folder_inside_an_input_folder_is_one_line(tiny_run, tmp_path):
  _, workdir, _ = tiny_run
  photos = tmp_path / 'photos'
  photos.mkdir()
  Image.fromarray(_photo(8, 8, 0)).save(photos / 'x.png')
  inside = photos / 'predicted'
  result = run('mtl_jax.predict', f'--workdir={workdir}', f'--input={photos}', f'--output={inside}')
  assert_one_line_error(result, 'predict', f'--output {inside} is inside --input {photos}')
  assert not inside.exists()


@pytest.fixture(scope='module')
def stand_in_export(tmp_path_factory):
  """A real jax.export artifact (a tiny stand-in network) and a model card, as predict reads."""
  folder = tmp_path_factory.mktemp('exported')
  (batch,) = jax.export.symbolic_shape('batch')
  network = jax.jit(lambda x: {'semseg': (x[..., 0] > 127).astype(jnp.int32)})
  spec = jax.ShapeDtypeStruct((batch, 8, 8, 3), jnp.uint8)
  (folder / artifacts.STABLEHLO_FILE).write_bytes(jax.export.export(network)(spec).serialize())
  card = {'tasks': ['semseg'], 'palette': [[0, 0, 0], [255, 0, 0]], 'checkpoint_step': 3}
  (folder / artifacts.MODEL_CARD).write_text(json.dumps(card))
  return folder


@pytest.mark.parametrize(
  'torn, says',
  [
    (artifacts.STABLEHLO_FILE, 'not a complete jax.export artifact'),
    (artifacts.MODEL_CARD, 'is not valid JSON'),
  ],
)
def test_a_torn_export_folder_is_one_line_naming_the_file(stand_in_export, tmp_path, torn, says):
  folder = tmp_path / 'export'
  folder.mkdir()
  for name in (artifacts.STABLEHLO_FILE, artifacts.MODEL_CARD):
    data = (stand_in_export / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2] if name == torn else data)
  photo = tmp_path / 'x.png'
  Image.fromarray(_photo(8, 8, 0)).save(photo)
  result = run(
    'mtl_jax.predict', f'--exported={folder}', f'--input={photo}', f'--output={tmp_path / "o"}'
  )
  assert_one_line_error(result, 'predict', f'{folder / torn}', says, 'mtl_jax.export')


def test_a_checkpoint_holding_nan_is_one_line(tiny_run, tmp_path):
  config, run_dir, _ = tiny_run
  restored = experiment.open_run(run_dir)
  params = jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(jnp.nan), restored.state.params)
  model = nnx.merge(restored.graphdef, params, restored.state.batch_stats)
  workdir = experiment.save_run_start(config, model, tmp_path / 'nan')
  photo = tmp_path / 'x.png'
  Image.fromarray(_photo(8, 8, 0)).save(photo)
  result = run(
    'mtl_jax.predict', f'--workdir={workdir}', f'--input={photo}', f'--output={tmp_path / "o"}'
  )
  assert_one_line_error(
    result, 'predict', f'checkpoint 0 of {workdir} holds non-finite weights (NaN or infinity)'
  )
  assert not (tmp_path / 'o').exists()
