"""Tests for mtl_jax.data.registry: names, data_dir resolution and the synthetic defaults."""

import concurrent.futures
import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
import types

import pytest

from mtl_jax.data import registry
from mtl_jax.data.labels import TRAIN_CLASSES
from mtl_jax.runtime import locks


def test_unknown_dataset_lists_valid_names(tmp_path):
  with pytest.raises(
    ValueError,
    match="^unknown dataset 'foo'; valid names: cityscapes, folder, miniscapes, synthetic$",
  ):
    registry.prepare('foo', tmp_path)


def test_empty_data_dir_is_the_default():
  assert registry.DEFAULT_DATA_DIR == '~/tensorflow_datasets'
  assert registry.resolve_data_dir('') == os.path.expanduser('~/tensorflow_datasets')
  assert registry.resolve_data_dir('~/d') == os.path.join(os.path.expanduser('~'), 'd')
  assert registry.resolve_data_dir('/data/tfds') == '/data/tfds'


def test_synthetic_defaults_keep_the_prepared_dataset_name():
  """Datasets prepared before keep being found: same config name from the same defaults."""
  from mtl_jax.data import synthetic_tfds  # pylint: disable=g-import-not-at-top  # TFDS

  assert dataclasses.asdict(registry.SYNTHETIC_DEFAULTS) == dict(
    height=128, width=256, seed=0, num_train=2000, num_validation=250, num_test=250
  )
  assert registry.SYNTHETIC_DEFAULTS.split_sizes == (2000, 250, 250)
  assert synthetic_tfds.make_config().name == '128x256_seed0_n2000-250-250'
  assert synthetic_tfds.make_config(height=32, num_test=0).name == '32x256_seed0_n2000-250-0'
  with pytest.raises(TypeError):
    synthetic_tfds.make_config(heigth=32)


def test_importing_the_registry_loads_no_tfds():
  code = (
    'import sys; from mtl_jax.data import registry; '
    "assert not [m for m in sys.modules if m.startswith(('tensorflow', 'grain'))], "
    "sorted(m for m in sys.modules if m.startswith(('tensorflow', 'grain')))"
  )
  subprocess.run([sys.executable, '-c', code], check=True)


def _builder(metadata):
  return types.SimpleNamespace(info=types.SimpleNamespace(metadata=metadata))


def test_class_colors_recorded_or_the_cityscapes_palette():
  cityscapes = tuple(c.color for c in TRAIN_CLASSES)
  assert registry.class_colors(_builder(None)) == cityscapes
  assert cityscapes[0] == (128, 64, 128) and cityscapes[18] == (119, 11, 32)  # road, bicycle
  # A dataset without recorded colours: one per class, the palette repeated past 19.
  names = {'class_names': [f'c{i}' for i in range(21)]}
  assert registry.class_colors(_builder(names)) == cityscapes + cityscapes[:2]
  recorded = {'class_names': ['a', 'b'], 'class_colors': [[1, 2, 3], [4, 5, 6]]}
  assert registry.class_colors(_builder(recorded)) == ((1, 2, 3), (4, 5, 6))


def _build_synthetic(data_dir):
  return registry.prepare(
    'synthetic', data_dir, height=16, width=32, seed=0, num_train=4, num_validation=2, num_test=2
  )


def test_concurrent_builds_of_a_dataset_build_it_once(tmp_path):
  data_dir = tmp_path / 'fresh' / 'tfds'  # not there yet
  start = threading.Barrier(2)

  def build(_):
    start.wait()
    return _build_synthetic(data_dir).info.splits['train'].num_examples

  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    assert list(pool.map(build, range(2))) == [4, 4]
  # One version folder: no second build, and no `incomplete.*` folder left by a lost race.
  assert [p.name for p in data_dir.glob('mtl_synthetic/*/*')] == ['1.0.0']


def test_a_build_waits_for_the_holder_and_says_whom_it_waits_for(tmp_path, capsys):
  data_dir = tmp_path / 'tfds'
  data_dir.mkdir()
  built, err = [], ''
  with locks.exclusive(registry.build_lock(data_dir, 'synthetic'), what='dataset synthetic'):
    waiter = threading.Thread(target=lambda: built.append(_build_synthetic(data_dir)))
    waiter.start()
    deadline = time.monotonic() + 60
    while 'waiting' not in err and time.monotonic() < deadline:
      time.sleep(0.05)
      err += capsys.readouterr().err
    assert waiter.is_alive() and not built  # blocked on the lock
  waiter.join()
  assert built[0].info.splits['train'].num_examples == 4
  waiting = [line for line in err.splitlines() if line.startswith('waiting')]
  assert len(waiting) == 1, err
  assert waiting[0].startswith(
    f'waiting for dataset synthetic: in use by pid {os.getpid()} on {socket.gethostname()} since '
  )
  assert f'(lock {data_dir / "synthetic.lock"})' in waiting[0]
