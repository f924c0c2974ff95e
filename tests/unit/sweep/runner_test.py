"""The sweep runner's reading of a finished child: finished, trained elsewhere, interrupted or
failed, from its exit code, last line and run state; and the state of a run before launch."""

import json

from conftest import REPO

from mtl_jax.config import files
from mtl_jax.sweep import runner
from mtl_jax.workdir import layout, run_config, run_status


def test_outcome_of_a_child():
  finished, stopped = run_status.FINISHED, run_status.STOPPED
  outcome = runner.outcome
  assert outcome(0, 'final: step 8', finished, stopping=False) == runner.FINISHED
  # Another process took the run between the sweep's check and its launch: not a failure.
  in_use = 'train: error: the run in r is in use by pid 7 on h since t (lock r/train.lock); ...'
  assert outcome(2, in_use, None, stopping=False) == runner.BUSY
  assert outcome(0, 'stopped by SIGTERM after step 3', stopped, stopping=True) == 'interrupted'
  assert outcome(-15, 'step 2/8', None, stopping=True) == 'interrupted'
  assert outcome(0, 'stopped by SIGTERM after step 3', stopped, stopping=False) == 'failed'
  assert outcome(1, 'ValueError: x', None, stopping=True) == 'failed'
  assert outcome(2, 'train: error: bad', None, stopping=False) == 'failed'


def _run_with_metrics(workdir, text: str):
  workdir.mkdir(parents=True)
  run_config.save(files.load_config_file(REPO / 'configs' / 'joint.py', 'tiny'), workdir)
  (workdir / layout.METRICS_FILE).write_text(text)
  return workdir


def test_a_corrupt_metrics_line_fails_the_run_naming_the_line(tmp_path):
  good = json.dumps({'epoch': 1, 'miou': 10.0})
  workdir = _run_with_metrics(tmp_path / 'run', f'{good}\n{{"epo\n{good}\n')
  state, problem = runner.state_before_launch(workdir)
  assert state is None
  assert problem == (
    f'{workdir / layout.METRICS_FILE} line 2 is not JSON (a corrupt line); repair or delete that '
    'line, then run the sweep again'
  )
  assert runner.epochs_done(workdir) == 0
  torn = _run_with_metrics(tmp_path / 'torn', f'{good}\n{{"epo')  # a kill mid-write: no problem
  assert runner.state_before_launch(torn) == (run_status.STOPPED, '')
  assert runner.epochs_done(torn) == 1
