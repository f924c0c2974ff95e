"""Sweeps as a user runs them: printed commands, the SLURM script, bad input on the command line as
one line, and the runner on real tiny runs: a failing run does not stop the others, a killed
sweep leaves no train running and its rerun skips finished runs and resumes the others."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from commands import assert_one_line_error, run
from conftest import REPO

from mtl_jax.config import files
from mtl_jax.runtime import locks
from mtl_jax.workdir import layout, run_config, run_status

TINY = 'configs/joint.py:tiny'


def _sweep(*args, cwd=REPO) -> subprocess.CompletedProcess:
  return run('mtl_jax.sweep', *args, cwd=cwd)


def test_print_commands(tmp_path):
  root = tmp_path / 'my sweep'
  result = _sweep(
    f'--config={TINY}',
    f'--root={root}',
    '--grid=optim.learning_rate=1e-2,1e-3',
    '--seeds=0,1',
    '--config.data.data_dir=/data/tfds',
    '--print_commands',
  )
  assert result.returncode == 0, result.stderr
  prefix = f"python -m mtl_jax.train --config={TINY} '--workdir={root}"
  assert result.stdout.splitlines() == [
    f"{prefix}/optim.learning_rate={lr},seed={seed}' --config.data.data_dir=/data/tfds "
    f'--config.optim.learning_rate={lr} --config.seed={seed}'
    for seed in (0, 1)
    for lr in ('1e-2', '1e-3')
  ]
  assert not root.exists()


def test_slurm_script_runs_its_task(tmp_path):
  script = tmp_path / 'sweep.sbatch'
  result = _sweep(
    f'--config={TINY}', '--root=runs/s', '--grid=optim.name=sgd,adam', '--seeds=0,1',
    f'--slurm={script}', cwd=tmp_path,
  )  # fmt: skip
  assert result.returncode == 0, result.stderr
  assert result.stdout == f'wrote {script}: 4 array tasks (sbatch {script})\n'
  text = script.read_text()
  assert text.startswith('#!/bin/bash\n#SBATCH --job-name=s\n#SBATCH --array=0-3\n')
  assert '#SBATCH --output=runs/s/slurm-%A_%a.out\n' in text
  assert not any((tmp_path / 'runs' / 's').iterdir())  # there for that output, and empty
  # Task 2 runs the third command, its output appended to its workdir's train.log; a fake
  # `python` shows the arguments it got.
  fake = tmp_path / 'bin'
  fake.mkdir()
  (fake / 'python').write_text('#!/bin/sh\necho "$@"\n')
  (fake / 'python').chmod(0o755)
  env = {**os.environ, 'PATH': f'{fake}:{os.environ["PATH"]}', 'SLURM_ARRAY_TASK_ID': '2'}
  subprocess.run(['bash', str(script)], cwd=tmp_path, env=env, check=True)
  workdir = 'runs/s/optim.name=sgd,seed=1'
  assert (tmp_path / workdir / 'train.log').read_text() == (
    f'-m mtl_jax.train --config={TINY} --workdir={workdir} --config.optim.name=sgd '
    '--config.seed=1\n'
  )
  assert [p.name for p in (tmp_path / 'runs' / 's').iterdir()] == ['optim.name=sgd,seed=1']


def test_slurm_never_replaces_another_script(tmp_path):
  script = tmp_path / 'sweep.sbatch'
  args = [f'--config={TINY}', '--root=runs/s', '--seeds=0,1', f'--slurm={script}']
  assert _sweep(*args, cwd=tmp_path).returncode == 0
  again = _sweep(*args, cwd=tmp_path)  # the same script again: fine
  assert again.returncode == 0 and again.stdout.startswith(f'wrote {script}: 2 array tasks')
  edited = script.read_text().replace('# Add your site', '#SBATCH --partition=gpu\n# Add your site')
  script.write_text(edited)
  result = _sweep(*args, cwd=tmp_path)
  assert_one_line_error(
    result, 'sweep', f'--slurm {script} exists and holds another script', 'give another file name'
  )
  assert script.read_text() == edited
  assert sorted(p.name for p in tmp_path.iterdir()) == ['runs', 'sweep.sbatch']


@pytest.mark.parametrize(
  'args, fragments',
  [
    (['--grid=optim.name'], ['--grid optim.name: expected key=value1,value2']),
    (['--grid=optim.nme=sgd'], ["'optim.nme' is not a config key; did you mean optim.name?"]),
    (['--grid=optim.learning_rate=1e-3,fast'], ['--config.optim.learning_rate=fast', 'float']),
    (['--grid=optim.learning_rate=1e-3,-1'], ['config.optim.learning_rate=-1', '> 0']),
    (['--grid=optim.name=sgd', '--parallel=0'], ['--parallel=0: runs at a time must be >= 1']),
    (['--grid=optim.name=sgd', '--root='], ['--root is empty']),
    (['--sweep={no_get}'], ['{no_get} does not define get_sweep()']),
    (['--sweep={imports}'], ["{imports}:1: ModuleNotFoundError: No module named 'nonexistent"]),
    ([], ['nothing to sweep']),
  ],
)
def test_bad_input_is_one_line_and_launches_nothing(tmp_path, args, fragments):
  """Each kind of mistake through the command line (the rest of them below, in-process)."""
  no_get, imports = tmp_path / 'no_get.py', tmp_path / 'imports.py'
  no_get.write_text('SWEEP = []\n')
  imports.write_text('import nonexistent_module\n')
  fill = lambda s: s.format(no_get=no_get, imports=imports)
  result = _sweep(f'--config={TINY}', f'--root={tmp_path / "root"}', *map(fill, args))
  assert_one_line_error(result, 'sweep', *map(fill, fragments))
  assert not (tmp_path / 'root').exists()


def test_runs_trained_elsewhere_or_diverged_are_not_launched(tmp_path):
  root = tmp_path / 'root'
  busy, diverged = root / 'seed=0', root / 'seed=1'
  for seed, workdir in enumerate((busy, diverged)):
    workdir.mkdir(parents=True)
    config = files.load_config_file(REPO / 'configs' / 'joint.py', 'tiny')
    config.seed = seed
    run_config.save(config, workdir)
  (diverged / layout.METRICS_FILE).write_text(json.dumps({'epoch': 1, 'nonfinite_images': 8}))
  with locks.exclusive(run_status.train_lock(busy), what='the run'):
    result = _sweep(f'--config={TINY}', f'--root={root}', '--seeds=0,1')
  assert result.returncode == 1, result.stderr
  assert f'  not launched, being trained by another process: {busy}\n' in result.stdout
  assert f'  failed: {diverged}: diverged (rerunning repeats it)' in result.stdout
  assert not (busy / 'train.log').exists() and not (diverged / 'train.log').exists()


def test_a_run_trained_with_another_config_is_not_resumed_or_skipped(tmp_path):
  root = tmp_path / 'root'
  workdir = root / 'seed=0'
  workdir.mkdir(parents=True)
  config = files.load_config_file(REPO / 'configs' / 'joint.py', 'tiny')
  config.optim.learning_rate = 0.01  # as if the base config had changed since
  run_config.save(config, workdir)
  result = _sweep(f'--config={TINY}', f'--root={root}', '--seeds=0')
  assert result.returncode == 1, result.stderr
  assert (
    'seed=0: trained with another config (optim.learning_rate: 1e-2 there, 1e-3 here); sweep '
    f'into another --root, or delete {workdir} to train it with this one'
  ) in result.stdout
  assert not (workdir / 'train.log').exists()


def _report_line(root) -> str:
  return f'report: {root / "report" / "index.html"}'


def test_a_failed_run_is_reported_and_the_others_finish(tmp_path, data_dir):
  root = tmp_path / 'root'
  result = _sweep(
    f'--config={TINY}', f'--root={root}', f'--config.data.data_dir={data_dir}',
    '--grid=train.batch_size=32,4', '--parallel=2',
  )  # fmt: skip
  assert result.returncode == 1, result.stderr
  bad, good = root / 'train.batch_size=32,seed=0', root / 'train.batch_size=4,seed=0'
  lines = result.stdout.splitlines()
  assert re.search(
    r'^sweep: 1/2 finished, 1 failed, 0 trained elsewhere \| wall time ', result.stdout, re.M
  )
  assert (
    f'  failed: {bad}: exit 2: train: error: config.train.batch_size=32 is larger than the 16 '
    'samples of the train split of dataset synthetic; lower it, or use a larger train split'
  ) in lines
  assert lines[-1] == _report_line(root)
  assert 'Traceback' not in result.stderr
  assert run_status.status(good).state == run_status.FINISHED
  assert 'final: step 8 epoch 2' in (good / 'train.log').read_text()
  assert re.search(r'^sweep: 1/2 done \| 0 running \| 1 failed \| 0 waiting', result.stdout, re.M)


def _digest(root) -> dict[str, tuple]:
  return {
    str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    for p in sorted(root.rglob('*'))
    if p.is_file()
  }


def _wait(condition, what: str, proc: subprocess.Popen | None = None, timeout=300):
  deadline = time.monotonic() + timeout
  while not condition():
    if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
      raise AssertionError(f'gave up waiting for {what}')
    time.sleep(0.1)


def _training_child(workdir, proc) -> int:
  """Waits until the train command in `workdir` is past its first steps (its SIGTERM handler
  is in place), then freezes it (SIGSTOP) so a signal cannot arrive after it finished; its pid."""
  log = workdir / 'train.log'
  _wait(lambda: log.exists() and re.search(r'^step \d+/', log.read_text(), re.M), 'steps', proc)
  pid = json.loads(run_status.train_lock(workdir).read_text())['pid']
  os.kill(pid, signal.SIGSTOP)
  return pid


def _start_sweep(root, data_dir, out, *args) -> subprocess.Popen:
  command = [sys.executable, '-m', 'mtl_jax.sweep', f'--config={TINY}', f'--root={root}']
  command += [f'--config.data.data_dir={data_dir}', *args]
  return subprocess.Popen(
    command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
  )


def test_a_killed_sweep_resumes_skipping_finished_runs(tmp_path, data_dir):
  root, grid = tmp_path / 'root', '--grid=data.flip=true,false'
  first, second = root / 'data.flip=true,seed=0', root / 'data.flip=false,seed=0'
  with open(tmp_path / 'out1', 'w') as out:
    sweep = _start_sweep(root, data_dir, out, grid, '--parallel=1')
    _wait(lambda: 'finished data.flip=true' in (tmp_path / 'out1').read_text(), 'run 1', sweep)
    child = _training_child(second, sweep)
    os.killpg(sweep.pid, signal.SIGKILL)  # the sweep's process group: its children have their own
    sweep.wait()
    os.kill(child, signal.SIGCONT)  # it finds the SIGTERM the sweep's death sent it
  _wait(lambda: not locks.is_held(run_status.train_lock(second)), 'the orphan to stop')
  assert 'stopped by SIGTERM after step' in (second / 'train.log').read_text()
  assert run_status.status(first).state == run_status.FINISHED
  before = _digest(first)

  again = _sweep(f'--config={TINY}', f'--root={root}', f'--config.data.data_dir={data_dir}', grid)
  assert again.returncode == 0, again.stdout + again.stderr
  assert 'finished data.flip=true,seed=0: already finished\n' in again.stdout
  assert 'start   data.flip=false,seed=0 (resuming)\n' in again.stdout
  assert 'sweep: 2/2 finished, 0 failed, 0 trained elsewhere' in again.stdout
  assert _digest(first) == before
  assert run_status.status(second).state == run_status.FINISHED
  assert 'resumed from step' in (second / 'train.log').read_text()


@pytest.mark.parametrize(
  'signum, to_group',
  [(signal.SIGTERM, False), (signal.SIGINT, True)],  # a scheduler's stop; Ctrl-C in a terminal
  ids=['sigterm', 'ctrl-c'],
)
def test_a_stop_is_passed_on_once_and_the_sweep_waits(tmp_path, data_dir, signum, to_group):
  root = tmp_path / 'root'
  workdir, out_path = root / 'seed=5', tmp_path / 'out'
  name = signal.Signals(signum).name
  with open(out_path, 'w') as out:
    sweep = _start_sweep(root, data_dir, out, '--seeds=5')
    child = _training_child(workdir, sweep)
    (os.killpg if to_group else os.kill)(sweep.pid, signum)
    _wait(lambda: f'{name} passed on to 1 running' in out_path.read_text(), 'pass on', sweep)
    os.kill(child, signal.SIGCONT)
    assert sweep.wait(timeout=300) == 0
  output = out_path.read_text()
  assert f'interrupted seed=5: exit 0: stopped by {name} after step' in output
  assert f'stopped by {name}; unfinished runs: 1. Run the same command again to continue.' in output
  assert not locks.is_held(run_status.train_lock(workdir))
  assert run_status.status(workdir).state == run_status.STOPPED
