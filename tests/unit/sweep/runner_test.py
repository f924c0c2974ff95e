"""The sweep runner's reading of a finished child: finished, trained elsewhere, interrupted or
failed, from its exit code, last line and run state."""

from mtl_jax.sweep import runner
from mtl_jax.workdir import run_status


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
