"""Which launches join a multi-process job: srun's tasks do; a SLURM batch script that runs the
command without srun is one process and trains alone, with a warning, instead of waiting for
tasks that never start. Job flags that cannot describe a job are refused before joining."""

import socket

import jax
import pytest
from absl import flags
from absl.testing import flagsaver

from mtl_jax import distributed
from mtl_jax.runtime.errors import UserError

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


@pytest.mark.parametrize(
  'address, want',
  [
    ('127.0.0.1:29500', ('127.0.0.1', 29500)),
    ('node-7.cluster:1', ('node-7.cluster', 1)),
    ('[::1]:65535', ('::1', 65535)),
    ('[fe80::1%eth0]:1234', ('fe80::1%eth0', 1234)),
  ],
)
def test_host_and_port_parse(address, want):
  assert distributed.parse_address(address) == want


@pytest.mark.parametrize(
  'address, message',
  [
    ('localhost', "--coordinator_address='localhost' has no port: give host:port, e.g. "
     '127.0.0.1:29500 ([::1]:29500 for IPv6)'),
    ('', "--coordinator_address='' has no port"),
    ('::1:1234', "--coordinator_address='::1:1234' is not host:port"),
    ('[::1]', "--coordinator_address='[::1]' is not host:port"),
    (':1234', "--coordinator_address=':1234' is not host:port"),
    ('[]:1234', "--coordinator_address='[]:1234' is not host:port"),
    ('localhost:', "--coordinator_address=localhost: has port '': a port is a number from 1 "
     'to 65535'),
    ('localhost:http', "has port 'http'"),
    ('localhost:0', "has port '0'"),
    ('localhost:65536', "has port '65536'"),
    ('localhost:-1', "has port '-1'"),
    ('localhost:１２', "has port '１２'"),  # full-width digits: isdigit() but no port
  ],
)  # fmt: skip
def test_addresses_that_are_not_host_and_port_are_refused(address, message):
  with pytest.raises(UserError) as refused:
    distributed.parse_address(address)
  assert message in str(refused.value)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.parametrize(
  'job, message',
  [
    ({'num_processes': 2}, 'a multi-process job needs --coordinator_address, --process_id too'),
    ({'num_processes': 0, 'process_id': 0}, '--num_processes=0 must be at least 1'),
    ({'num_processes': -2, 'process_id': 0}, '--num_processes=-2 must be at least 1'),
    ({'num_processes': 2, 'process_id': 2}, '--process_id=2 must be in 0 … --num_processes - 1'),
    ({'num_processes': 2, 'process_id': -1}, '--process_id=-1 must be in 0 …'),
    ({'initialization_timeout': 0}, '--initialization_timeout=0 must be at least 1 (seconds)'),
    ({'heartbeat_timeout_seconds': -5}, '--heartbeat_timeout_seconds=-5 must be at least 1'),
    ({'local_device_ids': ['0', 'gpu1']}, "--local_device_ids=0,gpu1: 'gpu1' is not a device"),
    ({'num_processes': 2, 'process_id': 1, 'coordinator_address': 'no-such-host.invalid:1234'},
     "--coordinator_address=no-such-host.invalid:1234: host 'no-such-host.invalid' does not "
     'resolve'),
  ],
)  # fmt: skip
def test_job_flags_that_describe_no_job_are_refused_before_joining(environment, job, message):
  environment()
  if 'process_id' in job:
    job = {'coordinator_address': f'127.0.0.1:{_free_port()}', **job}
  with flagsaver.flagsaver(**job), pytest.raises(UserError) as refused:
    distributed.initialize()
  assert str(refused.value).startswith(message)


def test_process_0_refuses_a_port_another_process_listens_on(environment):
  environment()
  with socket.socket() as listener:
    listener.bind(('127.0.0.1', 0))
    listener.listen()
    port = listener.getsockname()[1]
    job = {'coordinator_address': f'localhost:{port}', 'num_processes': 2}
    with flagsaver.flagsaver(**job, process_id=0), pytest.raises(UserError) as refused:
      distributed.initialize()
    assert str(refused.value).startswith(f'--coordinator_address port {port} is in use')
    with flagsaver.flagsaver(**job, process_id=1), pytest.raises(AssertionError, match='called'):
      distributed.initialize()  # process 1 only connects to it: no check, straight to joining
