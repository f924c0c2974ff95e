"""`python -m mtl_jax.predict` on a folder of real-world files, checked against predict_step."""

import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from mtl_jax import experiment, parallel
from mtl_jax.deploy import fitting, predict_files

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
