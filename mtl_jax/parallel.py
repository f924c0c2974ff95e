"""Data parallelism over a 1-D device mesh named 'data': `jax.jit` (the default) or `jax.pmap`.

jit: state is replicated, batches are sharded along their leading axis. Each process passes its
own slice of the global batch (`make_array_from_process_local_data`), which is the whole batch on
a single host. BatchNorm computes its statistics over the global batch: XLA inserts the
cross-device reductions, so this is synchronised BN for free.

pmap (config.parallel.mode='pmap'; JAX keeps pmap in maintenance mode and recommends jit or
shard_map, hence not the default): the same pure step runs once per device on a leading device
axis, averaging gradients, losses and BatchNorm statistics over the axis named DATA_AXIS
(`steps.train_step`'s axis_name). Each process passes arrays for its own devices only.

`placement(mode, mesh)` hides the difference from the training loop:

    placement = parallel.placement(mode, mesh)
    step = placement.compile(partial(steps.train_step, ...))  # given axis_name under pmap
    placed = placement.state_in(state)        # after init or restore (mesh-replicated state)
    placed, m = step(placed, placement.batch(host_batch))  # `placed` is donated
    scalars = placement.scalars(m)            # one mesh-replicated scalar per metric
    state = placement.state_out(placed)       # mesh-replicated again: eval, save, sample grids

Checkpoints therefore hold one layout whatever the mode, and eval / predict always use jit.
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mtl_jax.data.sample import DEVICE_KEYS
from mtl_jax.runtime.errors import UserError
from mtl_jax.steps import STOP_KEY

DATA_AXIS = 'data'
# What a step reads from a host batch: the samples' device entries and the stop vote.
STEP_KEYS = (*DEVICE_KEYS, STOP_KEY)


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
    if k in STEP_KEYS
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


def _stacked_copies(x: jax.Array, sharding: NamedSharding) -> jax.Array:
  """A mesh-replicated array → [local devices, ...] with `sharding`, each device holding its own
  copy: no transfer."""
  return jax.make_array_from_single_device_arrays(
    (sharding.mesh.size, *x.shape), sharding, [shard.data[None] for shard in x.addressable_shards]
  )


def _one_copy(x: jax.Array, sharding: NamedSharding) -> jax.Array:
  """[local devices, ...] of equal copies → the array replicated with `sharding`. After
  `lax.pmean` every device holds the same values (that keeps the replicas in step), so each
  device's own copy is the replicated value: no transfer."""
  return jax.make_array_from_single_device_arrays(
    x.shape[1:], sharding, [shard.data[0] for shard in x.addressable_shards]
  )


@dataclasses.dataclass(frozen=True)
class JitPlacement:
  """One program over the mesh: the step takes mesh-replicated state and sharded batches."""

  mesh: Mesh

  def state_in(self, state):
    return state

  def state_out(self, placed):
    return placed

  def batch(self, host_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    return shard_batch(host_batch, self.mesh)

  def scalars(self, step_metrics: dict) -> dict:
    return step_metrics

  def compile(self, step: Callable) -> Callable:
    """step(state, batch) → (state, metrics), compiled with the state's buffers donated."""
    return jax.jit(step, donate_argnums=0)


@dataclasses.dataclass(frozen=True)
class PmapPlacement:
  """One step per device: state, batch and metrics carry a leading axis over this process's
  devices (`mesh.local_mesh`), which is what pmap takes from each process."""

  mesh: Mesh

  @property
  def _local(self) -> NamedSharding:
    return NamedSharding(self.mesh.local_mesh, P(DATA_AXIS))

  def state_in(self, state):
    return jax.tree.map(lambda x: _stacked_copies(x, self._local), state)

  def state_out(self, placed):
    return jax.tree.map(lambda x: _one_copy(x, replicated(self.mesh)), placed)

  def batch(self, host_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's rows → [local devices, rows per device, ...], in the mesh's device order
    (the rows each device holds under jit)."""
    devices = self.mesh.local_mesh.size
    per_device = lambda v: np.asarray(v).reshape(devices, -1, *np.shape(v)[1:])
    return {
      k: jax.device_put(per_device(v), self._local) for k, v in host_batch.items() if k in STEP_KEYS
    }

  def scalars(self, step_metrics: dict) -> dict:
    return self.state_out(step_metrics)  # every device's metrics are equal, as its state is

  def compile(self, step: Callable) -> Callable:
    """step(state, batch, axis_name=...) → (state, metrics), mapped over the mesh's devices with
    the state's buffers donated."""
    return jax.pmap(
      functools.partial(step, axis_name=DATA_AXIS),
      axis_name=DATA_AXIS,
      devices=tuple(self.mesh.devices.flat),
      donate_argnums=0,
    )


PLACEMENTS = {'jit': JitPlacement, 'pmap': PmapPlacement}  # config.parallel.mode → placement
Placement = JitPlacement | PmapPlacement


def placement(mode: str, mesh: Mesh) -> Placement:
  """How config.parallel.mode lays state and batches out over `mesh` and compiles the step."""
  if mode not in PLACEMENTS:
    raise ValueError(f'unknown parallel mode {mode!r}; valid modes: {", ".join(PLACEMENTS)}')
  return PLACEMENTS[mode](mesh)
