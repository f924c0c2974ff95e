"""Data parallelism with `jax.jit` over a 1-D device mesh named 'data'.

State is replicated, batches are sharded along their leading axis. Each process passes its own
slice of the global batch (`make_array_from_process_local_data`), which is the whole batch on a
single host. BatchNorm computes its statistics over the global batch: XLA inserts the
cross-device reductions, so this is synchronised BN for free.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mtl_jax.data.sample import DEVICE_KEYS
from mtl_jax.errors import UserError

DATA_AXIS = 'data'


def make_mesh(devices=None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, replicated(mesh))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Host-local numpy batch → global arrays sharded on the leading (batch) axis."""
  sharding = batch_sharded(mesh)
  return {
    k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
    for k, v in batch.items()
    if k in DEVICE_KEYS
  }


def check_batch_size(batch_size: int, mesh: Mesh, name: str, micro_batches: int = 1) -> None:
  """A ConfigError-style line unless `batch_size` splits evenly: over the processes (each reads
  its share), each share over its process's devices, and each device's rows into
  `micro_batches` (gradient accumulation splits every device's rows, with no data movement)."""
  # Every process has the same number of devices, so a batch that splits over all the devices
  # also splits into equal per-process shares that split over each process's devices.
  processes = jax.process_count()
  per_device = batch_size // mesh.size
  if batch_size % mesh.size or per_device % micro_batches:
    accum = f' × {micro_batches} accumulation steps' if micro_batches > 1 else ''
    where = f' on {processes} processes' if processes > 1 else ''
    raise UserError(
      f'{name}={batch_size} must be divisible by the number of devices ({mesh.size}{where})'
      f'{accum}: use a multiple of {mesh.size * micro_batches}'
    )
