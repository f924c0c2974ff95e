"""One writer per workdir, readers beside it: a double launch is refused without disturbing the
run, a SIGKILLed run leaves no stale lock, and readers survive retention deleting what they read."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_tiny_train
from resilience_test import (  # noqa: F401  # `reference` is a fixture used here
  DRIVER,
  KILL_RUN,
  _assert_same_arrays,
  _final_params,
  _without_wall_time,
  reference,
)

from mtl_jax import experiment
from mtl_jax.workdir import checkpoints, restoring, run_config, writers


def _start_driver(workdir, data_dir, tmp_path, *options) -> subprocess.Popen:
  overrides = {**KILL_RUN, 'data.data_dir': str(data_dir)}
  return subprocess.Popen(
    [sys.executable, str(DRIVER), str(workdir), str(tmp_path / 'steps.log'), json.dumps(overrides)]
    + list(options),
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _wait_for(path, proc, timeout=300):
  deadline = time.monotonic() + timeout
  while not path.exists():
    if proc.poll() is not None or time.monotonic() > deadline:
      raise AssertionError(f'driver ended or timed out: {proc.communicate()[1][-2000:]}')
    time.sleep(0.1)


def test_a_second_train_is_refused_while_the_first_trains_on_unchanged(
  reference,  # noqa: F811  # the fixture imported above
  data_dir,
  tmp_path,
):
  ref_dir, ref_final, _ = reference
  workdir, resume = tmp_path / 'run', tmp_path / 'resume'
  first = _start_driver(workdir, data_dir, tmp_path, '--pause_at_step', '7', '--until', resume)
  _wait_for(tmp_path / 'resume.paused', first)  # trained 7 steps, checkpoints 3, 4 and 6 saved
  # What a save in progress looks like: the second launch must not clean it up as a leftover.
  in_progress = workdir / 'checkpoints' / '9.orbax-checkpoint-tmp-1234'
  in_progress.mkdir()

  second = run_tiny_train(workdir, data_dir, KILL_RUN)
  resume.touch()
  out, err = first.communicate(timeout=300)

  assert second.returncode == 2, second.stderr[-2000:]
  assert 'Traceback' not in second.stderr
  (line,) = [x for x in second.stderr.splitlines() if x.startswith('train: error:')]
  assert line.startswith(
    f'train: error: the run in {workdir} is in use by pid {first.pid} on '
    f'{socket.gethostname()} since '
  ), line
  assert 'removed unfinished' not in second.stdout and in_progress.exists()
  assert first.returncode == 0, err[-2000:]
  assert json.loads(out.strip().splitlines()[-1])['miou'] == ref_final['miou']
  assert _without_wall_time(writers.read_records(workdir / 'metrics.jsonl')) == _without_wall_time(
    writers.read_records(ref_dir / 'metrics.jsonl')
  )
  _assert_same_arrays(_final_params(workdir, 12), _final_params(ref_dir, 12))


def test_a_sigkilled_run_leaves_no_stale_lock(data_dir, tmp_path):
  workdir = tmp_path / 'run'
  killed = _start_driver(workdir, data_dir, tmp_path, '--kill_at_step', '7')
  killed.communicate(timeout=300)
  assert killed.returncode == -9
  assert (workdir / 'train.lock').exists()  # still naming the dead holder, but unlocked

  again = run_tiny_train(workdir, data_dir, KILL_RUN)
  assert again.returncode == 0, again.stderr[-2000:]
  assert 'resumed from step 6' in again.stdout


def _copy(run_dir, tmp_path):
  target = tmp_path / 'run'
  shutil.copytree(run_dir, target)
  return target


def test_a_reader_survives_retention_deleting_the_checkpoint_it_reads(
  tiny_run, tmp_path, monkeypatch
):
  workdir = _copy(tiny_run[1], tmp_path)
  manager = checkpoints.make_manager(workdir / 'checkpoints', read_only=True)
  best, other = manager.best_step(), (set(manager.all_steps()) - {manager.best_step()}).pop()
  restore = restoring.restore
  deleted = []

  def retention_strikes_mid_read(manager, step, **kwargs):
    if not deleted:  # what the training run's retention does between listing and reading
      shutil.rmtree(workdir / 'checkpoints' / str(step))
      deleted.append(step)
    return restore(manager, step, **kwargs)

  monkeypatch.setattr(restoring, 'restore', retention_strikes_mid_read)
  run = experiment.open_run(workdir)
  assert deleted == [best] and run.step == other
  monkeypatch.undo()
  _assert_same_arrays(run.state.params, experiment.open_run(workdir, other).state.params)


def test_a_requested_checkpoint_deleted_mid_read_is_one_line(tiny_run, tmp_path, monkeypatch):
  workdir = _copy(tiny_run[1], tmp_path)
  restore = restoring.restore

  def retention_strikes_mid_read(manager, step, **kwargs):
    shutil.rmtree(workdir / 'checkpoints' / str(step), ignore_errors=True)
    return restore(manager, step, **kwargs)

  monkeypatch.setattr(restoring, 'restore', retention_strikes_mid_read)
  with pytest.raises(restoring.CheckpointUnreadable, match=r'no checkpoint for step 4; avail'):
    experiment.open_run(workdir, 4)


def test_a_damaged_checkpoint_is_one_line_for_a_reader(tiny_run, tmp_path):
  workdir = _copy(tiny_run[1], tmp_path)
  for path in (workdir / 'checkpoints' / '8' / 'state').rglob('*'):
    if path.is_file() and path.stat().st_size > 1000:
      path.write_bytes(b'\0' * 16)  # truncated array data
  with pytest.raises(
    restoring.CheckpointUnreadable, match=r'checkpoint 8 in .* cannot be restored \('
  ):
    experiment.open_run(workdir, 8)


def test_evaluate_before_the_first_checkpoint_says_so(tiny_run, tmp_path):
  workdir = tmp_path / 'fresh'
  workdir.mkdir()
  run_config.save(tiny_run[0], workdir)
  (workdir / 'checkpoints').mkdir()
  result = subprocess.run(
    [sys.executable, '-m', 'mtl_jax.evaluate', f'--workdir={workdir}'],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=False,
    env={**os.environ},
  )
  assert result.returncode == 2
  assert result.stderr.strip() == (
    f'evaluate: error: no checkpoint in {workdir / "checkpoints"} yet (a run saves its first at '
    'the end of its first epoch, or after config.train.checkpoint_every_steps steps)'
  )
