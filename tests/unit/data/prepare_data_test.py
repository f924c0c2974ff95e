"""prepare_data end to end: each real layout → TFDS → the records training reads, the CLI's
one-line errors and --skip_bad (training on them: tests/scenarios/prepared_training_test.py)."""

import json
import subprocess
import sys

import folder_fixture
import miniscapes_fixture
import numpy as np
import pytest
from conftest import REPO
from prepared_fixture import FIXTURES

from mtl_jax import cli, prepare_data, trainer
from mtl_jax.config import files
from mtl_jax.data import file_checks, miniscapes, pipeline, registry
from mtl_jax.runtime.errors import UserError


def run_cli(*args) -> int:
  """What prepare_data's main does with these flags, in this process; returns the exit code
  (printing as main does)."""
  values = dict(
    manual_dir=None,
    height=0,
    width=0,
    skip_bad=False,
    max_pixels=file_checks.DEFAULT_MAX_PIXELS,
    num_workers=1,
    seed=0,
    split_sizes=['4', '2', '2'],
  )
  for arg in args:
    name, _, value = arg.removeprefix('--').partition('=')
    values[name] = True if name == 'skip_bad' else int(value) if value.isdigit() else value
  try:
    with cli.user_errors('prepare_data'):
      print(
        prepare_data.prepare_and_report(values.pop('dataset'), values.pop('data_dir'), **values)
      )
  except SystemExit as e:
    return e.code
  return 0


def test_records_equal_the_layouts_decoded_samples(prepared):
  name, manual_dir, _, builder = prepared
  _, layout = FIXTURES[name]
  files = layout.find_samples(manual_dir)
  for split, split_files in files.items():
    source = pipeline.data_source(builder, split)
    assert len(source) == len(split_files)
    for i, f in enumerate(split_files):
      want, got = layout.load_sample(f), source[i]
      for key in ('image', 'semseg', 'depth'):
        np.testing.assert_array_equal(got[key], want[key], err_msg=f'{split} {i} {key}')
      assert got['index'] == i


def test_training_opens_the_prepared_size_and_names_the_others(prepared):
  name, _, data_dir, _ = prepared
  assert registry.prepare(name, data_dir, height=32, width=64).info.splits['train'].num_examples
  with pytest.raises(
    UserError,
    match=rf'dataset {name} at 64x128 is not prepared in .*; '
    r'prepared sizes there: 32x64 \(set --config.data.height',
  ):
    registry.prepare(name, data_dir, height=64, width=128)


def test_resize_at_build_time_uses_nearest_for_labels_and_depth(prepared, tmp_path):
  name, manual_dir, _, builder = prepared
  small = registry.prepare(name, tmp_path, height=16, width=32, manual_dir=manual_dir)
  full, half = (pipeline.data_source(b, 'train')[0] for b in (builder, small))
  assert half['image'].shape == (16, 32, 3)
  assert set(np.unique(half['semseg'])) <= set(np.unique(full['semseg']))
  assert set(np.unique(half['depth'])) <= set(np.unique(full['depth']))


def test_training_scored_on_an_unlabelled_split_is_refused_before_the_workdir_is_made(tmp_path):
  root = miniscapes_fixture.write_miniscapes(tmp_path / 'm')  # its test split has no labels
  registry.prepare('miniscapes', tmp_path / 'd', height=0, width=0, manual_dir=root)
  config = files.load_config_file(REPO / 'configs' / 'joint.py', 'tiny')
  config.data.name, config.data.data_dir = 'miniscapes', str(tmp_path / 'd')
  config.train.eval_split = 'test'
  with pytest.raises(UserError) as refused:
    trainer.train_and_evaluate(config, str(tmp_path / 'run'))
  assert str(refused.value) == (
    'the test split of dataset miniscapes has no labels, so training cannot be scored on it; '
    'set --config.train.eval_split to a labelled split (validation)'
  )
  assert not (tmp_path / 'run').exists()


# ----------------------------------------------------------------------------- the CLI


def test_cli_names_the_bad_file_and_exits_2(tmp_path, capsys):
  root = miniscapes_fixture.write_miniscapes(tmp_path / 'm')
  (root / 'train/rgb/1.jpg').write_bytes(b'')
  code = run_cli('--dataset=miniscapes', f'--manual_dir={root}', f'--data_dir={tmp_path / "d"}')
  assert code == 2
  assert capsys.readouterr().err.strip().endswith('train/rgb/1.jpg: empty file (0 bytes)')


def test_cli_requires_manual_dir(tmp_path, capsys):
  assert run_cli('--dataset=cityscapes', f'--data_dir={tmp_path}') == 2
  assert '--manual_dir is required for --dataset cityscapes' in capsys.readouterr().err


def test_skip_bad_lists_and_skips_and_keeps_prepared_data(tmp_path, capsys):
  root = miniscapes_fixture.write_miniscapes(tmp_path / 'm', splits={'train': 5, 'validation': 2})
  data_dir = tmp_path / 'd'
  assert run_cli('--dataset=miniscapes', f'--manual_dir={root}', f'--data_dir={data_dir}') == 0
  (root / 'train/depth/3.png').unlink()
  (root / 'val/semseg/0.png').write_text('not a png')
  # A failing build at another size leaves the 32x64 dataset as it was, and no 16x32 one.
  args = (
    '--dataset=miniscapes',
    f'--manual_dir={root}',
    f'--data_dir={data_dir}',
    '--height=16',
    '--width=32',
  )
  assert run_cli(*args) == 2
  assert 'train/rgb/3.jpg: missing depth file' in capsys.readouterr().err
  assert (
    registry.prepare('miniscapes', data_dir, height=32, width=64).info.splits['train'].num_examples
    == 5
  )
  with pytest.raises(UserError, match='prepared sizes there: 32x64'):
    registry.prepare('miniscapes', data_dir, height=16, width=32)

  assert run_cli(*args, '--skip_bad') == 0
  out = capsys.readouterr().out
  assert 'skipped 2 bad sample(s):' in out
  assert 'train/rgb/3.jpg: missing depth file' in out and 'val/semseg/0.png: not an image' in out
  assert 'mtl_miniscapes ready in' in out and '16x32, train 4, validation 1\n' in out
  source = pipeline.data_source(
    registry.prepare('miniscapes', data_dir, height=16, width=32), 'train'
  )
  assert [int(source[i]['index']) for i in range(len(source))] == [0, 1, 2, 3]


def test_cli_process_error_is_one_line_without_traceback(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'mtl_jax.prepare_data',
      '--dataset=miniscapes',
      f'--manual_dir={tmp_path / "absent"}',
      f'--data_dir={tmp_path / "d"}',
    ],
    capture_output=True,
    text=True,
    cwd=REPO,
    check=False,
  )
  assert proc.returncode == 2
  assert 'Traceback' not in proc.stderr
  assert (
    proc.stderr.strip()
    .splitlines()[-1]
    .startswith(
      f'prepare_data: error: miniscapes: {tmp_path / "absent"} not found. Expected the '
      'miniscapes layout'
    )
  )


# ----------------------------------------------------------------------------- hostile input


def _write(path, data):
  path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)


def _save(path, array):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  Image.fromarray(array).save(path)


def _escape(root):
  outside = root.parent / 'elsewhere.jpg'
  (root / 'train/rgb/0.jpg').rename(outside)
  (root / 'train/rgb/0.jpg').symlink_to(outside)


def _list_outside(root):
  import json  # pylint: disable=g-import-not-at-top

  (root.parent / 'outside.png').write_bytes((root / 'images/train/0.png').read_bytes())
  spec = json.loads((root / 'dataset.json').read_text())
  spec['splits']['validation'] = ['../outside.png']
  (root / 'dataset.json').write_text(json.dumps(spec))


# case → (dataset, how to break the fixture, extra flags, what the error line says)
HOSTILE = {
  'zero_byte': (
    'miniscapes',
    lambda r: _write(r / 'train/rgb/1.jpg', b''),
    (),
    'train/rgb/1.jpg: empty file (0 bytes)',
  ),
  'truncated': (
    'miniscapes',
    lambda r: _write(r / 'train/semseg/1.png', (r / 'train/semseg/1.png').read_bytes()[:80]),
    (),
    'train/semseg/1.png: truncated or corrupt image',
  ),
  'not_an_image': (
    'miniscapes',
    lambda r: _write(r / 'train/depth/1.png', 'hello'),
    (),
    'train/depth/1.png: not an image (expected 8-bit greyscale inverse-depth PNG)',
  ),
  'size_mismatch': (
    'miniscapes',
    lambda r: _save(r / 'train/depth/1.png', np.zeros((8, 8), np.uint8)),
    (),
    'train/depth/1.png: size 8x8 does not match its image',
  ),
  'label_range': (
    'miniscapes',
    lambda r: _save(r / 'train/semseg/1.png', np.full((32, 64), 77, np.uint8)),
    (),
    'train/semseg/1.png: label ids 77 are outside 0..18 and not the ignore label 255',
  ),
  'depth_bit_depth': (
    'miniscapes',
    lambda r: _save(r / 'train/depth/1.png', np.ones((32, 64), np.uint16)),
    (),
    'train/depth/1.png: expected 8-bit greyscale inverse-depth PNG (mode L), got mode I;16',
  ),
  'missing_counterpart': (
    'miniscapes',
    lambda r: (r / 'train/semseg/1.png').unlink(),
    (),
    'train/rgb/1.jpg: missing semseg file',
  ),
  'pixel_limit': (
    'miniscapes',
    lambda r: None,
    ('--max_pixels=1000',),
    'train/rgb/0.jpg: 64x32 = 2048 pixels is over the limit of 1000 (a '
    'decompression bomb?); raise --max_pixels if real',
  ),
  'symlink_escape': ('miniscapes', _escape, (), 'train/rgb/0.jpg: path escapes the dataset root'),
  'list_escape': ('folder', _list_outside, (), 'outside.png: path escapes the dataset root'),
  'missing_split': (
    'miniscapes',
    lambda r: (r / 'val').rename(r / 'valid'),
    (),
    'val/rgb not found. ' + miniscapes.INSTRUCTIONS,
  ),
}


@pytest.mark.parametrize('case', sorted(HOSTILE))
def test_hostile_input_is_one_line_exit_2(case, tmp_path, capsys):
  dataset, breaks, flags_, ending = HOSTILE[case]
  write, _ = FIXTURES[dataset]
  root = write(tmp_path / dataset)
  breaks(root)
  code = run_cli(
    f'--dataset={dataset}', f'--manual_dir={root}', f'--data_dir={tmp_path / "d"}', *flags_
  )
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2
  assert err[-1].startswith('prepare_data: error: ') and ending in err[-1], err[-1]
  assert not (tmp_path / 'd').exists() or not list((tmp_path / 'd').glob('*/*/*/dataset_info.json'))


def test_folder_colors_travel_with_the_dataset(tmp_path):
  root = folder_fixture.write_folder(tmp_path / 'f', num_classes=3, splits={'train': 2})
  colors = json.loads((root / 'dataset.json').read_text())['colors']
  registry.prepare('folder', tmp_path / 'd', height=0, width=0, manual_dir=root)
  reopened = registry.prepare('folder', tmp_path / 'd', height=32, width=64)
  assert registry.class_colors(reopened) == tuple(map(tuple, colors))


def test_cli_prepares_the_synthetic_dataset(tmp_path, capsys):
  assert run_cli('--dataset=synthetic', f'--data_dir={tmp_path}', '--height=32', '--width=64') == 0
  out = capsys.readouterr().out
  assert 'mtl_synthetic ready in' in out and '32x64, train 4, validation 2, test 2' in out
  assert '--config.data.name=synthetic' in out


def test_worker_pool_writes_the_same_records_and_reports_bad_files(tmp_path):
  from mtl_jax.data import manual_tfds  # pylint: disable=g-import-not-at-top

  count = manual_tfds.MIN_SAMPLES_FOR_POOL
  root = miniscapes_fixture.write_miniscapes(
    tmp_path / 'm', splits={'train': count, 'validation': 2}
  )
  serial, pooled = (
    registry.prepare(
      'miniscapes', tmp_path / name, height=0, width=0, manual_dir=root, num_workers=workers
    )
    for name, workers in (('serial', 1), ('pooled', 2))
  )
  a, b = (pipeline.data_source(builder, 'train') for builder in (serial, pooled))
  for i in (0, count // 2, count - 1):
    for key in ('image', 'semseg', 'depth', 'index'):
      np.testing.assert_array_equal(a[i][key], b[i][key])
  (root / 'train/depth/7.png').write_bytes(b'')
  with pytest.raises(UserError, match=r'train/depth/7\.png: empty file \(0 bytes\)'):
    registry.prepare(
      'miniscapes', tmp_path / 'bad', height=16, width=32, manual_dir=root, num_workers=2
    )
