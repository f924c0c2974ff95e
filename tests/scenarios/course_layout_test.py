"""`python -m mtl_jax.convert miniscapes` (mtl_jax.deploy.course_layout): datasets and predictions
in the course's layout and encodings."""

import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from mtl_jax import experiment, parallel
from mtl_jax.data import miniscapes, pipeline, registry
from mtl_jax.deploy import course_layout


def test_synthetic_export_reads_back_as_miniscapes(tmp_path):
  out, data_dir = tmp_path / 'exported', tmp_path / 'tfds'
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'mtl_jax.convert',
      'miniscapes',
      '--dataset=synthetic',
      f'--data_dir={data_dir}',
      '--height=32',
      '--width=64',
      '--split_sizes=4,2,2',
      f'--output={out}',
    ],
    capture_output=True,
    text=True,
    cwd=REPO,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr
  assert sorted(p.name for p in out.iterdir()) == ['test', 'train', 'val']
  synthetic = registry.prepare(
    'synthetic', data_dir, height=32, width=64, num_train=4, num_validation=2, num_test=2
  )
  exported = registry.prepare('miniscapes', tmp_path / 'tfds2', height=0, width=0, manual_dir=out)
  step = (1 / 4 - 1 / 300) / 254
  for split in ('train', 'validation', 'test'):
    want, got = (pipeline.data_source(b, split) for b in (synthetic, exported))
    assert len(got) == len(want)
    for i in range(len(want)):
      np.testing.assert_array_equal(got[i]['semseg'], want[i]['semseg'])
      # JPEG is lossy; depth is quantised in inverse depth and clipped to 4–300 m.
      assert np.abs(got[i]['image'].astype(int) - want[i]['image']).mean() < 8
      valid = want[i]['depth'] > 0
      np.testing.assert_array_equal(got[i]['depth'] > 0, valid)
      clipped = np.clip(want[i]['depth'][valid], 4, 300)
      assert np.max(np.abs(1 / got[i]['depth'][valid] - 1 / clipped)) <= step / 2 + 1e-6


def test_missing_split_is_a_clear_error(tmp_path):
  import miniscapes_fixture  # pylint: disable=g-import-not-at-top

  root = miniscapes_fixture.write_miniscapes(tmp_path / 'm', splits={'train': 4, 'validation': 1})
  builder = registry.prepare('miniscapes', tmp_path / 'd', height=0, width=0, manual_dir=root)
  with pytest.raises(
    ValueError,
    match=r"mtl_miniscapes has no split 'test'; it has train, "
    'validation',
  ):
    course_layout.export_dataset(builder, tmp_path / 'out', ['test'])


def test_predictions_in_the_submission_encoding(tiny_run, tmp_path):
  config, workdir, _ = tiny_run
  run = experiment.open_run(str(workdir))
  counts = course_layout.export_predictions(run, tmp_path, ['validation'])
  assert counts == {'validation': config.data.num_validation}
  names = sorted(p.name for p in (tmp_path / 'val' / 'semseg').iterdir())
  assert names == [f'{i}.png' for i in sorted(range(counts['validation']), key=str)]
  # The model's own predictions for every record, in one batch apart from the export's batching.
  source = run.experiment.sources(['validation'])['validation']
  samples = [source[i] for i in range(len(source))]
  batch = parallel.shard_batch(
    {'image': np.stack([s['image'] for s in samples])}, run.experiment.mesh
  )
  predict = run.experiment.predict_step(run.graphdef)
  want = jax.device_get(predict(run.state, batch['image']))
  for row, sample in enumerate(samples):
    i = int(sample['index'])
    semseg = np.asarray(Image.open(tmp_path / f'val/semseg/{i}.png'))
    depth = np.asarray(Image.open(tmp_path / f'val/depth/{i}.png'))
    assert semseg.shape == depth.shape == (config.data.height, config.data.width)
    assert semseg.dtype == depth.dtype == np.uint8
    np.testing.assert_array_equal(semseg, want['semseg'][row], err_msg=f'semseg {i}')
    np.testing.assert_array_equal(
      depth, miniscapes.encode_depth(want['depth'][row]), err_msg=f'depth {i}'
    )
    assert depth.min() >= 1  # predictions are always valid depths
