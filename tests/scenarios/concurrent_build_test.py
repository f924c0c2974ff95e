"""Two `train` runs started together on an empty data dir (a sweep on a fresh machine) both
finish, with one build of their dataset: the second waits for the first's build and reuses it."""

import os
import subprocess
import sys

from conftest import CACHE_DIR, REPO


def _train(workdir, data_dir) -> subprocess.Popen:
  return subprocess.Popen(
    [
      sys.executable,
      '-m',
      'mtl_jax.train',
      '--config',
      'configs/joint.py:tiny',
      '--workdir',
      str(workdir),
      f'--config.data.data_dir={data_dir}',
      '--config.data.num_train=8',
      '--config.data.num_validation=4',
      '--config.data.num_test=4',
      '--config.train.num_epochs=1',
    ],
    cwd=REPO,
    env={**os.environ, 'JAX_COMPILATION_CACHE_DIR': CACHE_DIR},
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


def test_two_train_runs_on_an_empty_data_dir_build_the_dataset_once(tmp_path):
  data_dir = tmp_path / 'tfds'
  runs = [_train(tmp_path / f'run{i}', data_dir) for i in (1, 2)]
  outputs = [run.communicate(timeout=600)[0] for run in runs]
  for run, output in zip(runs, outputs):
    assert run.returncode == 0, output
  builds = [output.count('Downloading and preparing dataset') for output in outputs]
  assert sorted(builds) == [0, 1], outputs
  waits = [line for output in outputs for line in output.splitlines() if 'waiting' in line]
  assert len(waits) <= 1, waits  # 0 when one run finished building before the other started
  versions = sorted(p.relative_to(data_dir) for p in data_dir.glob('mtl_synthetic/*/*'))
  assert [str(v).split('/')[-1] for v in versions] == ['1.0.0'], versions  # none `incomplete.*`
