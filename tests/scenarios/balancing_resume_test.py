"""A run with a balancing method, SIGKILLed at a random step and resumed, ends bit-identical to
an uninterrupted run: the method's state (log-variances and their optimizer slots, DWA's epoch
means, FAMO's logits and last losses, GradNorm's weights and L(0)) is checkpointed and restored,
and the random methods draw their keys from the step."""

import json
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO

from mtl_jax import experiment, trainer
from mtl_jax.workdir import writers

DRIVER = REPO / 'tests' / 'support' / 'resume_driver.py'
# 16 train samples / batch 4 = 4 steps per epoch; saves at 3, 4, 6, 8, 9 and 12, so a kill at
# step 5 resumes from an epoch's end and one at 7 from the middle of an epoch. Three epochs: DWA's
# weights leave 1 only once two epochs have ended.
RUN = {'train.num_epochs': 3, 'train.checkpoint_every_steps': 3}
METHODS = ('uncertainty', 'dwa', 'famo', 'gradnorm', 'pcgrad', 'nash_mtl')
KILL_STEPS = dict(zip(METHODS, np.random.default_rng(20261207).integers(5, 8, len(METHODS))))


def _overrides(data_dir, method):
  return {**RUN, 'loss.balancing': method, 'data.data_dir': str(data_dir)}


def _drive(workdir, data_dir, method, *kill):
  return subprocess.run(
    [
      sys.executable,
      str(DRIVER),
      str(workdir),
      str(workdir.parent / f'{workdir.name}_steps.jsonl'),
      json.dumps(_overrides(data_dir, method)),
      *kill,
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=False,
  )


def _records(workdir):
  drop = ('wall_time_s', 'epoch_time_s')
  return [
    {k: v for k, v in r.items() if k not in drop}
    for r in writers.read_records(workdir / 'metrics.jsonl')
  ]


@pytest.mark.parametrize('method', METHODS)
def test_sigkill_then_resume_is_bit_identical(method, data_dir, tmp_path):
  sys.path.insert(0, str(DRIVER.parent))
  import resume_driver  # pylint: disable=g-import-not-at-top

  reference = tmp_path / 'uninterrupted'
  trainer.train_and_evaluate(
    resume_driver.tiny_config(_overrides(data_dir, method)), str(reference)
  )
  killed = tmp_path / 'killed'
  kill_step = int(KILL_STEPS[method])
  proc = _drive(killed, data_dir, method, '--kill_at_step', str(kill_step))
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
  proc = _drive(killed, data_dir, method)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'resumed from step' in proc.stdout

  assert _records(killed) == _records(reference)
  assert any(f'weight/{t}' in r for r in _records(killed) for t in ('semseg', 'depth'))
  ours, theirs = (
    jax.device_get(experiment.open_run(str(w), 12).state) for w in (killed, reference)
  )
  for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
    np.testing.assert_array_equal(x, y)
  if method not in ('pcgrad', 'nash_mtl'):  # stateless: nothing of theirs to restore
    assert jax.tree.leaves(ours.balancing)
