"""run_status reads a run's state from its files: finished, training (lock held), stopped
(resumable), diverged; a torn last metrics line is not an error."""

import json
import shutil

import pytest

from mtl_jax.config.schema import ConfigError
from mtl_jax.runtime import locks
from mtl_jax.workdir import layout, run_status, writers


@pytest.fixture
def run_copy(tiny_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run[1], workdir)
  return workdir


def _rewrite(workdir, records, tail=''):
  text = ''.join(json.dumps(r) + '\n' for r in records)
  (workdir / layout.METRICS_FILE).write_text(text + tail)


def test_states(run_copy):
  assert run_status.status(run_copy).describe() == 'finished'
  with locks.exclusive(run_status.train_lock(run_copy), what='run'):
    assert run_status.status(run_copy).describe() == 'training (epoch 2/2)'
  first, second = writers.read_records(run_copy / layout.METRICS_FILE)
  _rewrite(run_copy, [first], tail='{"step": 8, "epo')  # killed mid-write of the second
  assert run_status.status(run_copy).describe() == 'stopped at epoch 1/2'
  _rewrite(run_copy, [first, {**second, 'nonfinite_images': 8, 'miou': None}])
  assert run_status.status(run_copy).describe() == 'diverged at epoch 1/2'


def test_not_a_run(tmp_path):
  with pytest.raises(ConfigError, match='not found: is .* a training workdir'):
    run_status.status(tmp_path)
