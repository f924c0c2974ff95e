"""Which launches join a multi-process job: srun's tasks do; a SLURM batch script that runs the
command without srun is one process and trains alone, with a warning, instead of waiting for
tasks that never start."""

import jax
import pytest
from absl import flags

from mtl_jax import distributed

_LAUNCH_VARS = (
  'SLURM_NTASKS',
  'SLURM_STEP_NUM_TASKS',
  'OMPI_COMM_WORLD_SIZE',
  'TPU_WORKER_HOSTNAMES',
)


@pytest.fixture
def environment(monkeypatch):
  """Sets the launch variables given (clearing the others) and fails any attempt to join."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()  # the defaults: no explicit job flags

  def joined(**_):
    raise AssertionError('jax.distributed.initialize was called')

  monkeypatch.setattr(jax.distributed, 'initialize', joined)

  def set_vars(**values):
    for name in _LAUNCH_VARS:
      monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
      monkeypatch.setenv(name, value)

  return set_vars


def test_a_batch_script_without_srun_trains_alone_and_says_so(environment, capsys):
  environment(SLURM_NTASKS='4')
  assert not distributed._cluster_launched()
  distributed.initialize()  # returns without joining
  assert capsys.readouterr().err.splitlines() == [
    'warning: the SLURM job has 4 tasks but this process was not started by srun, so it trains '
    'alone; run `srun python -m mtl_jax.train ...` in the batch script to train with all of them'
  ]


@pytest.mark.parametrize(
  'values',
  [
    {'SLURM_NTASKS': '4', 'SLURM_STEP_NUM_TASKS': '4'},
    {'OMPI_COMM_WORLD_SIZE': '2'},
    {'TPU_WORKER_HOSTNAMES': 'host0,host1'},
  ],
)
def test_launchers_that_started_several_processes_join(environment, values):
  environment(**values)
  assert distributed._cluster_launched()


@pytest.mark.parametrize(
  'values', [{}, {'SLURM_NTASKS': '1'}, {'SLURM_NTASKS': '4', 'SLURM_STEP_NUM_TASKS': '1'}]
)
def test_a_lone_process_joins_nothing_quietly(environment, capsys, values):
  environment(**values)
  distributed.initialize()
  assert capsys.readouterr().err == ''
