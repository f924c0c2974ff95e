"""Joining a multi-process job: `jax.distributed.initialize`, from flags or the cluster.

Every process of a job runs the same `python -m mtl_jax.train ...` command. The processes find
each other through JAX's coordination service, either from explicit flags (`--coordinator_address
--num_processes --process_id`, e.g. two processes on one machine) or, with no flags, from the
environment JAX detects itself: SLURM (`srun`), Open MPI (`mpirun`) and Cloud TPU VMs. A lone
process (a laptop, one GPU node) joins nothing.

A process that dies takes the job down: its peers miss its heartbeats and exit non-zero within
`--heartbeat_timeout_seconds`, instead of waiting in a collective forever.
"""

import contextlib
import os
import sys

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
  'initialization_timeout', 300, 'seconds to wait for every process to join'
)

_EXPLICIT = (_COORDINATOR, _NUM_PROCESSES, _PROCESS_ID)
PEER_LOST_EXIT = 3  # a process of the job died, so this one stopped too
# What a collective's error says when the process at the other end is gone: gloo's broken
# connection on CPUs, the coordination service's missed heartbeats everywhere.
_PEER_LOST_MARKERS = ('Gloo', 'heartbeat', 'Connection reset', 'UNAVAILABLE')


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


def initialize() -> None:
  """Joins the job the flags or the environment describe; does nothing for a lone process.

  Call before anything touches a JAX device."""
  given = [f for f in _EXPLICIT if f.value is not None]
  if given and len(given) != len(_EXPLICIT):
    missing = ', '.join(f'--{f.name}' for f in _EXPLICIT if f.value is None)
    raise UserError(f'a multi-process job needs {missing} too (or none of them under a launcher)')
  if given and not 0 <= _PROCESS_ID.value < _NUM_PROCESSES.value:
    raise UserError(
      f'--process_id={_PROCESS_ID.value} must be in 0 … --num_processes - 1 '
      f'({_NUM_PROCESSES.value - 1})'
    )
  if not given and not _cluster_launched():
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
  jax.distributed.initialize(
    coordinator_address=_COORDINATOR.value,
    num_processes=_NUM_PROCESSES.value,
    process_id=_PROCESS_ID.value,
    local_device_ids=[int(i) for i in local_ids] if local_ids else None,
    initialization_timeout=_INIT_TIMEOUT.value,
    heartbeat_timeout_seconds=_HEARTBEAT_TIMEOUT.value,
  )
  if jax.default_backend() == 'cpu':
    _connect_cpu_devices()


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
