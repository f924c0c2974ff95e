"""Predicting files: collecting inputs (a path naming nothing, two inputs writing the same outputs,
dotted stems, an output folder among the inputs), writing outputs whole and redoing an image
missing any, a file over the pixel limit, and refusing torn export folders and NaN weights."""

import json
import struct
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CONFIG_DIR, REPO
from flax import nnx
from PIL import Image

from mtl_jax import experiment
from mtl_jax.config import files
from mtl_jax.deploy import artifacts, fitting, predict_files, predictors
from mtl_jax.runtime.errors import UserError


def _photo(h, w, seed):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_a_path_naming_nothing_is_one_clear_error(tmp_path):
  with pytest.raises(ValueError, match=r'^--input .*missing: no such file or folder$'):
    predict_files.collect([str(tmp_path / 'missing')])
  with pytest.raises(ValueError, match=r'no file matches'):
    predict_files.collect([str(tmp_path / '*.png')])


def test_two_images_that_would_write_the_same_outputs_are_one_error(tmp_path):
  for folder in ('a', 'b'):
    (tmp_path / folder).mkdir()
    Image.fromarray(_photo(8, 8, 0)).save(tmp_path / folder / 'x.png')
  with pytest.raises(ValueError, match=r'a/x.png and .*b/x.png would write the same outputs'):
    predict_files.collect([str(tmp_path / 'a'), str(tmp_path / 'b')])


def test_dotted_file_names_keep_their_stems(tmp_path):
  for name in ('frame.001.jpg', 'frame.002.jpg'):
    Image.fromarray(_photo(8, 8, 0)).save(tmp_path / name)
  items = predict_files.collect([str(tmp_path)])
  paths = [predict_files.output_paths(tmp_path / 'out', i, ['labels'])['labels'] for i in items]
  assert [p.name for p in paths] == ['frame.001.png', 'frame.002.png']


def test_an_output_folder_among_the_inputs_is_refused_naming_both(tmp_path):
  photos = tmp_path / 'photos'
  photos.mkdir()
  Image.fromarray(_photo(8, 8, 0)).save(photos / 'x.png')
  items = predict_files.collect([str(photos)])
  for out in (photos, photos / 'predicted'):
    with pytest.raises(UserError, match=rf'^--output {out} is inside --input {photos}, which'):
      predict_files.require_output_outside(out, [str(photos)], items)
  file_items = predict_files.collect([str(photos / 'x.png')])  # a file inside --output
  with pytest.raises(UserError, match=rf'^--input {photos / "x.png"} is inside --output {photos}'):
    predict_files.require_output_outside(photos, [str(photos / 'x.png')], file_items)
  predict_files.require_output_outside(tmp_path / 'predicted', [str(photos)], items)  # beside


class _Fake:
  """The predictor interface with a constant network: what predict_files does around it."""

  trained, tasks, colors, source = (8, 8), ('semseg', 'depth'), ((0, 0, 0), (9, 9, 9)), 'fake'

  def fit(self, original):
    return fitting.Fit.of(original, self.trained, stride=4)

  def __call__(self, images):
    shape = images.shape[:3]
    return {'semseg': np.ones(shape, np.int32), 'depth': np.full(shape, 2.0, np.float32)}


def _outputs(out, name):
  item = predict_files.Item(out, predict_files.Path(name))
  return predict_files.output_paths(out, item, predict_files.kinds_for(_Fake.tasks))


def _predict(photos, out):
  items = predict_files.collect([str(photos)])
  return predict_files.predict_files(_Fake(), items, out, batch_size=2, overwrite=False)


def test_an_image_missing_any_output_is_predicted_again_whole(tmp_path):
  photos, out = tmp_path / 'photos', tmp_path / 'out'
  photos.mkdir()
  for i in range(2):
    Image.fromarray(_photo(6, 10, i)).save(photos / f'{i}.png')
  assert len(_predict(photos, out)['written']) == 2
  assert not list(out.rglob('.*'))  # no partial file left behind
  paths = _outputs(out, '0')
  paths['depth'].unlink()  # a deleted output
  paths['labels'].with_name('.0.png.partial').write_bytes(b'torn')  # a killed write's leftover
  paths['semseg'].write_bytes(b'kept?')
  again = _predict(photos, out)
  assert [i.relative.name for i in again['written']] == ['0']
  assert [i.relative.name for i in again['skipped']] == ['1']
  assert np.asarray(Image.open(paths['depth'])).tolist() == [[2000] * 10] * 6
  assert np.asarray(Image.open(paths['semseg'])).shape == (6, 10, 3)  # rewritten too
  assert not list(out.rglob('.*'))


def test_an_interrupted_write_leaves_neither_a_torn_output_nor_a_partial_file(
  tmp_path, monkeypatch
):
  photos, out = tmp_path / 'photos', tmp_path / 'out'
  photos.mkdir()
  Image.fromarray(_photo(6, 10, 0)).save(photos / 'x.png')

  def torn_save(image, path, *args, **kwargs):
    predict_files.Path(path).write_bytes(b'\x89PNG half')
    raise KeyboardInterrupt

  monkeypatch.setattr(Image.Image, 'save', torn_save)
  with pytest.raises(KeyboardInterrupt):
    _predict(photos, out)
  assert [p for p in out.rglob('*') if p.is_file()] == []


def test_a_file_over_the_pixel_limit_is_one_line_and_the_rest_go_on(tmp_path, capsys):
  photos = tmp_path / 'photos'
  photos.mkdir()
  Image.fromarray(_photo(6, 10, 0)).save(photos / 'fine.png')
  huge = photos / 'huge.png'
  Image.fromarray(_photo(1, 1, 0)).save(huge)
  data = bytearray(huge.read_bytes())
  data[16:24] = struct.pack('>II', 15000, 10000)  # IHDR claims 150 megapixels
  data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
  huge.write_bytes(bytes(data))
  result = _predict(photos, tmp_path / 'out')
  assert [i.path for i in result['written']] == [photos / 'fine.png']
  assert [i.path for i in result['failed']] == [huge]
  assert capsys.readouterr().err == (
    f'predict: skipped {huge}: 15000×10000 is 150 megapixels, over the limit of 64 '
    '(MAX_PIXELS); downscale it first\n'
  )


def test_the_command_doc_states_the_pixel_limit():
  doc = (REPO / 'mtl_jax' / 'predict.py').read_text()
  assert f'up to {fitting.MAX_PIXELS // 10**6} megapixels, `fitting.MAX_PIXELS`' in doc


@pytest.fixture(scope='module')
def export_folder(tmp_path_factory):
  """A real jax.export artifact of a tiny stand-in network, with the model card fields predict
  reads."""
  folder = tmp_path_factory.mktemp('exported')
  (batch,) = jax.export.symbolic_shape('batch')

  def network(images):
    grey = images.astype(jnp.float32).mean(-1)
    return {'semseg': (grey > 127).astype(jnp.int32), 'depth': grey / 10}

  spec = jax.ShapeDtypeStruct((batch, 8, 12, 3), jnp.uint8)
  blob = jax.export.export(jax.jit(network))(spec).serialize()
  (folder / artifacts.STABLEHLO_FILE).write_bytes(blob)
  card = {'tasks': ['semseg', 'depth'], 'palette': [[0, 0, 0], [255, 0, 0]], 'checkpoint_step': 7}
  (folder / artifacts.MODEL_CARD).write_text(json.dumps(card))
  return folder


def _copy(folder, to):
  to.mkdir()
  for name in (artifacts.STABLEHLO_FILE, artifacts.MODEL_CARD):
    (to / name).write_bytes((folder / name).read_bytes())
  return to


def test_an_export_folder_predicts_at_its_artifacts_size(export_folder):
  predictor = predictors.ExportedPredictor(str(export_folder))
  assert predictor.trained == (8, 12) and predictor.tasks == ('semseg', 'depth')
  assert predictor.source.endswith('model.jax_exported (checkpoint 7)')
  preds = predictor(np.full((2, 8, 12, 3), 200, np.uint8))
  np.testing.assert_array_equal(preds['semseg'], 1)
  np.testing.assert_allclose(preds['depth'], 20.0)


def test_a_truncated_artifact_is_one_line_naming_it(export_folder, tmp_path):
  folder = _copy(export_folder, tmp_path / 'torn')
  blob = folder / artifacts.STABLEHLO_FILE
  blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])
  with pytest.raises(UserError) as error:
    predictors.ExportedPredictor(str(folder))
  message = str(error.value)
  assert message.startswith(f'{blob}: not a complete jax.export artifact (')
  assert message.endswith('re-run python -m mtl_jax.export --format stablehlo')
  assert '\n' not in message


@pytest.mark.parametrize(
  'card, says',
  [
    (b'{"tasks": ["semseg", "de', 'is not valid JSON (Unterminated string'),
    (b'\xff\xfe not text', 'is not valid JSON ('),
    (b'{"tasks": ["semseg"]}', 'is not a model card of mtl_jax.export (tasks, palette or '),
    (b'[1, 2]', 'is not a model card of mtl_jax.export'),
  ],
)
def test_a_torn_or_foreign_model_card_is_one_line_naming_it(export_folder, tmp_path, card, says):
  folder = _copy(export_folder, tmp_path / 'torn')
  (folder / artifacts.MODEL_CARD).write_bytes(card)
  with pytest.raises(UserError) as error:
    predictors.ExportedPredictor(str(folder))
  assert str(error.value).startswith(f'{folder / artifacts.MODEL_CARD} {says}')
  assert '\n' not in str(error.value)


def test_an_artifact_for_another_platform_is_refused_before_predicting(export_folder, monkeypatch):
  monkeypatch.setattr(jax.export, 'default_export_platform', lambda: 'tpu')
  with pytest.raises(UserError, match=r'was exported for cpu and cannot run on this machine'):
    predictors.ExportedPredictor(str(export_folder))


def test_a_checkpoint_holding_nan_is_refused_naming_it(tmp_path):
  config = files.load_config_file(CONFIG_DIR / 'joint.py', 'tiny')
  graphdef, params, rest = nnx.split(experiment.build_model(config), nnx.Param, ...)
  leaves, tree = jax.tree.flatten(params)
  leaves[0] = leaves[0].at[(0,) * leaves[0].ndim].set(jnp.nan)  # one weight of one array
  model = nnx.merge(graphdef, jax.tree.unflatten(tree, leaves), rest)
  workdir = experiment.save_run_start(config, model, tmp_path / 'nan')
  with pytest.raises(UserError) as error:
    predictors.Predictor(str(workdir), None)
  assert str(error.value).startswith(
    f'checkpoint 0 of {workdir} holds non-finite weights (NaN or infinity) in 1 array (params/'
  )
