"""The export's checks and its output folder: formats, input size, what --output may hold, the
model card written last, and weights holding NaN refused."""

import json

import jax.numpy as jnp
import ml_collections
import pytest
from conftest import CONFIG_DIR
from flax import nnx

from mtl_jax import experiment
from mtl_jax.config import files
from mtl_jax.deploy import artifacts
from mtl_jax.runtime.errors import UserError


def test_formats_are_checked_and_listed():
  assert artifacts.check_formats(['savedmodel', 'stablehlo', 'savedmodel']) == (
    'savedmodel',
    'stablehlo',
  )
  for formats, message in [
    ([], '--format is empty; give one or more of stablehlo, savedmodel'),
    (['onnx'], "--format: unknown 'onnx'; valid formats are stablehlo, savedmodel"),
    (['stablehlo', ''], "--format: unknown ''; valid formats are stablehlo, savedmodel"),
  ]:
    with pytest.raises(UserError) as raised:
      artifacts.check_formats(formats)
    assert str(raised.value) == message


def test_input_size_is_the_trained_one_or_a_positive_multiple_of_the_stride():
  config = ml_collections.ConfigDict(
    {'data': {'height': 32, 'width': 64}, 'model': {'output_stride': 16}}
  )
  assert artifacts.input_size(config, None, None) == (32, 64)
  assert artifacts.input_size(config, 48, None) == (48, 64)
  for height, width in [(-32, None), (0, None), (30, None), (None, -16)]:
    with pytest.raises(UserError, match=r'^--height and --width must be positive multiples of'):
      artifacts.input_size(config, height, width)


def test_output_must_be_new_empty_or_overwritten(tmp_path):
  artifacts.check_output(tmp_path / 'new', overwrite=False)
  artifacts.check_output(tmp_path, overwrite=False)  # empty
  (tmp_path / 'notes.txt').write_text('mine')
  with pytest.raises(UserError) as raised:
    artifacts.check_output(tmp_path, overwrite=False)
  assert str(raised.value) == (
    f'--output {tmp_path} holds files that are not an export; give a new or empty folder, or '
    'pass --overwrite to write the export there (replacing only its own files)'
  )
  (tmp_path / artifacts.STABLEHLO_FILE).write_bytes(b'')  # an export cut short
  with pytest.raises(UserError, match=r'holds an unfinished export \(model.jax_exported without'):
    artifacts.check_output(tmp_path, overwrite=False)
  (tmp_path / artifacts.MODEL_CARD).write_text('{}')
  with pytest.raises(UserError, match=r'holds an export already; pass --overwrite to replace it'):
    artifacts.check_output(tmp_path, overwrite=False)
  artifacts.check_output(tmp_path, overwrite=True)


def test_clearing_removes_only_the_export_files(tmp_path):
  for name in (artifacts.MODEL_CARD, artifacts.PARTIAL_CARD, artifacts.STABLEHLO_FILE):
    (tmp_path / name).write_text('old')
  (tmp_path / artifacts.SAVEDMODEL_DIR / 'variables').mkdir(parents=True)
  (tmp_path / 'notes.txt').write_text('mine')
  artifacts.clear_output(tmp_path)
  assert [p.name for p in tmp_path.iterdir()] == ['notes.txt']


def test_the_card_is_written_whole_under_its_name(tmp_path):
  artifacts.write_card({'checkpoint_step': 3}, tmp_path)
  assert [p.name for p in tmp_path.iterdir()] == [artifacts.MODEL_CARD]
  assert json.loads((tmp_path / artifacts.MODEL_CARD).read_text()) == {'checkpoint_step': 3}


@pytest.fixture(scope='module')
def saved_runs(tmp_path_factory):
  """Step 0 of a tiny joint run as written by `save_run_start`, and of one with a NaN weight."""
  config = files.load_config_file(CONFIG_DIR / 'joint.py', 'tiny')
  config.data.data_dir = str(tmp_path_factory.mktemp('no_data'))  # export reads no data
  root = tmp_path_factory.mktemp('runs')
  model = experiment.build_model(config)
  experiment.save_run_start(config, model, root / 'finite')
  _, kernel = next(iter(nnx.to_flat_state(nnx.state(model, nnx.Param))))
  kernel[...] = kernel[...].at[(0,) * kernel.ndim].set(jnp.nan)
  experiment.save_run_start(config, model, root / 'nan')
  return root / 'finite', root / 'nan'


def test_non_finite_weights_are_refused_naming_the_checkpoint(saved_runs, tmp_path):
  _, nan = saved_runs
  with pytest.raises(UserError) as raised:
    artifacts.export_run(nan, tmp_path / 'out', ['stablehlo'])
  assert str(raised.value).startswith(
    f'checkpoint 0 of {nan} holds non-finite weights (NaN or infinity) in 1 array (params/'
  )
  assert not (tmp_path / 'out').exists()


def test_overwrite_replaces_a_previous_export_and_an_interrupted_one_has_no_card(
  saved_runs, tmp_path, monkeypatch
):
  finite, _ = saved_runs
  out = tmp_path / 'out'
  (out / artifacts.SAVEDMODEL_DIR).mkdir(parents=True)  # a previous export's other format
  (out / artifacts.MODEL_CARD).write_text('{}')
  (out / 'notes.txt').write_text('mine')
  with pytest.raises(UserError, match='holds an export already'):
    artifacts.export_run(finite, out, ['stablehlo'])

  card = artifacts.export_run(finite, out, ['stablehlo'], overwrite=True)
  assert sorted(p.name for p in out.iterdir()) == [
    artifacts.STABLEHLO_FILE,
    artifacts.MODEL_CARD,
    'notes.txt',
  ]
  assert json.loads((out / artifacts.MODEL_CARD).read_text())['formats'] == card['formats']
  assert list(card['formats']) == ['stablehlo']

  def interrupted(*args):
    raise KeyboardInterrupt

  monkeypatch.setattr(artifacts, 'export_savedmodel', interrupted)  # after the StableHLO file
  with pytest.raises(KeyboardInterrupt):
    artifacts.export_run(finite, out, ['stablehlo', 'savedmodel'], overwrite=True)
  assert not (out / artifacts.MODEL_CARD).exists()
  with pytest.raises(UserError, match='holds an unfinished export'):
    artifacts.check_output(out, overwrite=False)
