"""Machine faults, made real with mounts: a disk that fills up mid-save, an old checkpoint that
cannot be deleted, a finished run on a read-only filesystem. Needs mount rights (root, as in CI);
skipped without them."""

import contextlib
import subprocess
import sys

import pytest
from conftest import REPO, run_tiny_train
from resilience_test import (  # noqa: F401  # `reference` is a fixture used here
  KILL_RUN,
  _assert_same_arrays,
  _drive,
  _final_params,
  _without_wall_time,
  reference,
)

from mtl_jax.workdir import writers


def _mount(*args: str) -> None:
  subprocess.run(['mount', *args], check=True, capture_output=True)


@pytest.fixture
def mounts():
  """mount(args...) for the test; everything mounted is unmounted after it."""
  mounted = []

  def mount(*args: str, target) -> None:
    try:
      _mount(*args, str(target))
    except (OSError, subprocess.CalledProcessError) as e:
      pytest.skip(f'cannot mount here: {e}')
    mounted.append(target)

  yield mount
  for target in reversed(mounted):
    subprocess.run(['umount', str(target)], check=False)


@contextlib.contextmanager
def _read_only(target, mounts):
  mounts('--bind', str(target), target=target)
  _mount('-o', 'remount,ro,bind', str(target))
  yield


def _train(workdir, data_dir, **overrides):
  return run_tiny_train(workdir, data_dir, {**KILL_RUN, **overrides})


def _disk_usage(path) -> int:
  """Bytes of the files under path, rounded up to 4 KiB pages as tmpfs counts them."""
  return sum(-(-f.stat().st_size // 4096) * 4096 for f in path.rglob('*') if f.is_file())


def _same_as_reference(workdir, reference):  # noqa: F811
  ref_dir, _, _ = reference
  assert _without_wall_time(writers.read_records(workdir / 'metrics.jsonl')) == _without_wall_time(
    writers.read_records(ref_dir / 'metrics.jsonl')
  )
  _assert_same_arrays(_final_params(workdir, 12), _final_params(ref_dir, 12))


def test_a_full_disk_is_one_line_and_resuming_after_freeing_space_is_bit_identical(
  reference,  # noqa: F811
  data_dir,
  tmp_path,
  mounts,
):
  disk = tmp_path / 'disk'
  disk.mkdir()
  # Room for everything the run writes up to step 6 (checkpoints 3 and 4, logs, events) and
  # half of checkpoint 6: the disk fills while step 6 is saved.
  ref_dir = reference[0]
  checkpoint = _disk_usage(ref_dir / 'checkpoints' / '12')
  besides = _disk_usage(ref_dir) - _disk_usage(ref_dir / 'checkpoints')
  mounts('-t', 'tmpfs', '-o', f'size={besides + 2.5 * checkpoint:.0f}', 'tmpfs', target=disk)
  workdir = disk / 'run'

  full = _train(workdir, data_dir)
  assert full.returncode == 2, full.stderr[-3000:]
  assert full.stderr.strip().splitlines() == [
    f'train: error: no space left on device while saving checkpoint 6 in {workdir}/checkpoints; '
    'the last complete checkpoint is step 4. Free space and run the same command again: it '
    'resumes there'
  ]

  _mount('-o', 'remount,size=64m', str(disk))  # space freed
  resumed = _train(workdir, data_dir)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert 'resumed from step 4' in resumed.stdout
  assert 'removed unfinished checkpoint' in resumed.stdout  # the torn save of step 6
  _same_as_reference(workdir, reference)


def test_an_undeletable_old_checkpoint_is_a_warning_and_training_continues(
  reference,  # noqa: F811
  data_dir,
  tmp_path,
  mounts,
):
  workdir = tmp_path / 'run'
  killed = _drive(workdir, tmp_path / 'steps.log', data_dir, '--kill_at_step', '5')
  assert killed.returncode == -9  # after checkpoints 3 and 4
  old = workdir / 'checkpoints' / '3'
  with _read_only(old, mounts):
    rest = _train(workdir, data_dir)  # saving 6 makes retention delete 3
  assert rest.returncode == 0, rest.stderr[-3000:]
  assert rest.stderr.strip().splitlines() == [
    f'warning: could not remove old checkpoint {old} (OSError: [Errno 30] Read-only file system: '
    "'_CHECKPOINT_METADATA'); it stays on disk (delete it by hand to free the space) and "
    'training continues'
  ]
  assert old.is_dir()
  _same_as_reference(workdir, reference)


def test_a_finished_run_on_a_read_only_filesystem_is_evaluated_and_train_says_finished(
  tiny_run, data_dir, tmp_path, mounts
):
  config, run_dir, final = tiny_run
  with _read_only(run_dir, mounts):
    again = run_tiny_train(run_dir, data_dir)
    scored = subprocess.run(
      [sys.executable, '-m', 'mtl_jax.evaluate', f'--workdir={run_dir}'],
      cwd=REPO,
      capture_output=True,
      text=True,
      check=False,
    )
  assert again.returncode == 0, again.stderr[-3000:]
  assert f'the run in {run_dir} is already finished (step 8)' in again.stdout
  assert scored.returncode == 0, scored.stderr[-3000:]
  assert f'mIoU {final["miou"]:.2f}' in scored.stdout
  assert scored.stderr.strip() == (
    f'warning: cannot write {run_dir}/eval_validation_step8.json (Read-only file system); pass '
    '--output FILE to keep the metrics'
  )
  del config
