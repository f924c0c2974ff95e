"""Joining a multi-process job: `jax.distributed.initialize`, from flags or the cluster.

Every process of a job runs the same `python -m mtl_jax.train ...` command. The processes find
each other through JAX's coordination service, either from explicit flags (`--coordinator_address
--num_processes --process_id`, e.g. two processes on one machine) or, with no flags, from the
environment JAX detects itself: SLURM (`srun`), Open MPI (`mpirun`) and Cloud TPU VMs. A lone
process (a laptop, one GPU node) joins nothing.

Misused flags stop the process with one line before it joins: an address that is not host:port
(`[::1]:port` for IPv6) with a port in 1 … 65535, a host that does not resolve, a coordinator port
another process of this machine listens on (checked by process 0, which serves it). A process
that waits longer than `--initialization_timeout` for the others stops with one line too, instead
of the coordination service's native abort.

A process that dies takes the job down: its peers miss its heartbeats and exit non-zero within
`--heartbeat_timeout_seconds`, instead of waiting in a collective forever.
"""

import contextlib
import errno
import os
import re
import socket
import sys
import threading

from absl import flags

from mtl_jax.runtime.errors import UserError

_COORDINATOR = flags.DEFINE_string(
  'coordinator_address',
  None,
  'host:port of process 0, the same for every process of a multi-process job '
  '(not needed under SLURM, Open MPI or on Cloud TPU, which JAX detects)',
)
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'processes in the job')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'this process, 0 … num_processes - 1')
_LOCAL_DEVICE_IDS = flags.DEFINE_list(
  'local_device_ids', None, 'devices this process uses, e.g. 0,1 (default: all it sees)'
)
_HEARTBEAT_TIMEOUT = flags.DEFINE_integer(
  'heartbeat_timeout_seconds',
  60,
  'a process silent this long is dead: the others exit non-zero instead of waiting',
)
_INIT_TIMEOUT = flags.DEFINE_integer(
  'initialization_timeout',
  300,
  'seconds each process waits for every process of the job to join; then it stops with one line',
)

_EXPLICIT = (_COORDINATOR, _NUM_PROCESSES, _PROCESS_ID)
PEER_LOST_EXIT = 3  # a process of the job died, so this one stopped too
# What a collective's error says when the process at the other end is gone: gloo's broken
# connection on CPUs, the coordination service's missed heartbeats everywhere.
_PEER_LOST_MARKERS = ('Gloo', 'heartbeat', 'Connection reset', 'UNAVAILABLE')
# host:port or [IPv6]:port, the forms the coordination service takes (a bare IPv6 address's
# colons would be read as the port's).
_ADDRESS = re.compile(r'(?:\[(?P<ipv6>[^\[\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>[^:\[\]]*)')
_MAX_PORT = 65535
# JAX's own join deadline is this much later than --initialization_timeout, so this module's
# watchdog speaks first: past JAX's, the coordination service aborts the process natively
# (`Terminating process because the JAX distributed service detected fatal errors`).
_JAX_DEADLINE_MARGIN_S = 30


def _cluster_launched() -> bool:
  """Whether a launcher JAX detects started several processes of this job (a single-task SLURM
  or MPI job, or a single-host TPU VM, runs as a lone process).

  SLURM counts the tasks `srun` started in SLURM_STEP_NUM_TASKS. SLURM_NTASKS alone is the
  allocation's count, which a batch script sees too when it runs the command without `srun`:
  that is one process, and JAX would wait for the others until its timeout."""
  tasks = os.environ.get('SLURM_STEP_NUM_TASKS')
  mpi = os.environ.get('OMPI_COMM_WORLD_SIZE')
  tpu_hosts = os.environ.get('TPU_WORKER_HOSTNAMES', '')
  return (tasks or '1') != '1' or (mpi or '1') != '1' or ',' in tpu_hosts


def _slurm_tasks_without_srun() -> str | None:
  """The allocation's task count when it is more than one and this process is not one of
  `srun`'s tasks (a batch script that forgot `srun`)."""
  tasks = os.environ.get('SLURM_NTASKS')
  if 'SLURM_STEP_NUM_TASKS' in os.environ or (tasks or '1') == '1':
    return None
  return tasks


def parse_address(address: str) -> tuple[str, int]:
  """(host, port) of a --coordinator_address; UserError unless it is host:port or [IPv6]:port
  with a port in 1 … 65535."""
  form = 'host:port, e.g. 127.0.0.1:29500 ([::1]:29500 for IPv6)'
  match = _ADDRESS.fullmatch(address)
  if match is None:
    missing = ' has no port' if ':' not in address else ' is not host:port'
    raise UserError(f'--coordinator_address={address!r}{missing}: give {form}')
  port = match['port']
  if not (port.isascii() and port.isdigit() and 1 <= int(port) <= _MAX_PORT):
    raise UserError(
      f'--coordinator_address={address} has port {port!r}: a port is a number from 1 to {_MAX_PORT}'
    )
  return match['ipv6'] or match['host'], int(port)


def _check_flags() -> None:
  """UserError for explicit job flags that cannot describe a job."""
  given = [f for f in _EXPLICIT if f.value is not None]
  if given and len(given) != len(_EXPLICIT):
    missing = ', '.join(f'--{f.name}' for f in _EXPLICIT if f.value is None)
    raise UserError(f'a multi-process job needs {missing} too (or none of them under a launcher)')
  for flag in (_INIT_TIMEOUT, _HEARTBEAT_TIMEOUT):
    if flag.value < 1:
      raise UserError(f'--{flag.name}={flag.value} must be at least 1 (seconds)')
  bad_ids = [i for i in _LOCAL_DEVICE_IDS.value or [] if not (i.isascii() and i.isdigit())]
  if bad_ids:
    given_ids = ','.join(_LOCAL_DEVICE_IDS.value)
    raise UserError(f'--local_device_ids={given_ids}: {bad_ids[0]!r} is not a device number')
  if not given:
    return
  if _NUM_PROCESSES.value < 1:
    raise UserError(f'--num_processes={_NUM_PROCESSES.value} must be at least 1')
  if not 0 <= _PROCESS_ID.value < _NUM_PROCESSES.value:
    raise UserError(
      f'--process_id={_PROCESS_ID.value} must be in 0 … --num_processes - 1 '
      f'({_NUM_PROCESSES.value - 1})'
    )
  host, port = parse_address(_COORDINATOR.value)
  try:
    socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
  except OSError as e:
    raise UserError(
      f'--coordinator_address={_COORDINATOR.value}: host {host!r} does not resolve ({e.strerror})'
    ) from None
  if _PROCESS_ID.value == 0:
    _check_port_free(port)


def _check_port_free(port: int) -> None:
  """UserError unless process 0 can serve the coordination service on `port`: JAX binds it on
  every address, and another process listening there ends in a native abort or a segmentation
  fault about 25 s later. SO_REUSEADDR: a finished job's connections in TIME_WAIT don't count."""
  for family, wildcard in ((socket.AF_INET6, '::'), (socket.AF_INET, '')):
    try:
      with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((wildcard, port))
      return
    except OSError as e:
      if e.errno == errno.EADDRINUSE:
        raise UserError(
          f'--coordinator_address port {port} is in use on this machine (another process, '
          'perhaps an earlier job, listens on it): give every process of the job a free port'
        ) from None
      if e.errno in (errno.EACCES, errno.EPERM):
        raise UserError(
          f'--coordinator_address port {port} cannot be served by this process '
          f'({e.strerror}): give every process of the job a port above 1023'
        ) from None
  # Neither family could bind for another reason (no network stack?): JAX reports it.


def initialize(program: str = 'train') -> None:
  """Joins the job the flags or the environment describe; does nothing for a lone process.

  Call before anything touches a JAX device."""
  _check_flags()
  if _COORDINATOR.value is None and not _cluster_launched():
    if tasks := _slurm_tasks_without_srun():
      print(
        f'warning: the SLURM job has {tasks} tasks but this process was not started by srun, '
        'so it trains alone; run `srun python -m mtl_jax.train ...` in the batch script to '
        'train with all of them',
        file=sys.stderr,
        flush=True,
      )
    return
  import jax  # pylint: disable=g-import-not-at-top  # only when joining: keeps --help fast

  # Collectives between the processes' CPU devices (tests, CPU clusters); GPUs and TPUs use
  # their own interconnect whatever this says.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  local_ids = _LOCAL_DEVICE_IDS.value
  with _join_deadline(program):
    jax.distributed.initialize(
      coordinator_address=_COORDINATOR.value,
      num_processes=_NUM_PROCESSES.value,
      process_id=_PROCESS_ID.value,
      local_device_ids=[int(i) for i in local_ids] if local_ids else None,
      initialization_timeout=_INIT_TIMEOUT.value + _JAX_DEADLINE_MARGIN_S,
      heartbeat_timeout_seconds=_HEARTBEAT_TIMEOUT.value,
    )
  if jax.default_backend() == 'cpu':
    _connect_cpu_devices()


@contextlib.contextmanager
def _join_deadline(program: str):
  """Stops the process with one line (exit 2) if the block, joining the job, outlasts
  --initialization_timeout. A thread does it: the waiting join holds no Python frame an
  exception could reach, and JAX's own deadline ends in a native abort."""
  timeout = _INIT_TIMEOUT.value
  if _COORDINATOR.value is None:  # a launcher's job: JAX detects its size and address
    waited = 'for every process of the job to join'
    fix = 'check that the launcher started all its tasks'
  else:
    waited = (
      f'as process {_PROCESS_ID.value} for all {_NUM_PROCESSES.value} processes of the job to '
      f'join at {_COORDINATOR.value}'
    )
    fix = (
      'start every process with the same --coordinator_address and --num_processes, each with '
      'its own --process_id'
    )

  def give_up():
    print(
      f'{program}: error: waited {timeout} s (--initialization_timeout) {waited}, and not all '
      f'of them did: {fix}',
      file=sys.stderr,
      flush=True,
    )
    sys.stdout.flush()
    os._exit(2)  # pylint: disable=protected-access  # JAX's at-exit shutdown would abort

  watchdog = threading.Timer(timeout, give_up)
  watchdog.daemon = True
  watchdog.start()
  try:
    yield
  finally:
    watchdog.cancel()


def _connect_cpu_devices() -> None:
  """Opens the gloo connections between all devices now, while the processes are in step.

  XLA:CPU opens them at the first collective over a device set and gives up after 30 s if a
  process is late (jaxlib 0.10: `Gloo context initialization failed: … GetKeyValue() timed
  out`), so a process that compiled its first step 30 s after another, on a busy machine,
  killed the job; once open, later collectives wait for a late process (45 s measured).
  `jax.distributed.initialize` returns when every process has joined, so a sum over every
  device here finds them together. The train step's mesh spans the same devices."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from mtl_jax import parallel  # pylint: disable=g-import-not-at-top

  mesh = parallel.make_mesh()
  ones = np.ones(jax.local_device_count(), np.float32)
  total = jax.jit(lambda x: x.sum(), out_shardings=parallel.replicated(mesh))(
    jax.make_array_from_process_local_data(parallel.batch_sharded(mesh), ones)
  )
  assert float(total.addressable_data(0)) == jax.device_count()


def _peer_lost(error: BaseException) -> bool:
  import jax  # pylint: disable=g-import-not-at-top

  return (
    isinstance(error, jax.errors.JaxRuntimeError)
    and jax.process_count() > 1
    and any(marker in str(error) for marker in _PEER_LOST_MARKERS)
  )


@contextlib.contextmanager
def exit_when_a_peer_dies(program: str):
  """A collective that failed because another process of the job died becomes one line and an
  immediate exit with PEER_LOST_EXIT. Immediate: JAX's at-exit shutdown barrier would wait for
  the dead process and then abort with a native stack trace. Every complete checkpoint is on
  disk; rerunning the job resumes from the newest."""
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except  # re-raised unless a peer is gone
    if not _peer_lost(e):
      raise
    first_line = str(e).strip().splitlines()[0]
    print(
      f'{program}: error: another process of the job stopped answering ({first_line}); this '
      'one stops too. Rerun the job to resume from its last complete checkpoint',
      file=sys.stderr,
      flush=True,
    )
    sys.stdout.flush()
    os._exit(PEER_LOST_EXIT)  # pylint: disable=protected-access
