"""Opening a training run's directory: its resolved config and one restored checkpoint."""

import dataclasses
from pathlib import Path
from typing import Any

import ml_collections

from mtl_jax import checkpointing, configuration, parallel, steps, trainer


@dataclasses.dataclass(frozen=True)
class Run:
  config: ml_collections.ConfigDict
  graphdef: Any
  state: steps.TrainState  # replicated over `mesh`
  mesh: Any
  step: int


def open_run(workdir: str, step: int | None = None) -> Run:
  """The run in `workdir` with checkpoint `step` restored (default: the best one)."""
  config = configuration.load(workdir)
  configuration.validate(config)
  manager = checkpointing.make_manager(Path(workdir) / 'checkpoints', tasks=config.model.tasks,
                                       read_only=True)
  available = manager.all_steps()
  if not available:
    raise configuration.ConfigError(f'no checkpoint in {Path(workdir) / "checkpoints"}')
  step = manager.best_step() if step is None else step
  if step not in available:
    raise configuration.ConfigError(
        f'no checkpoint for step {step}; available: {sorted(available)}')
  mesh = parallel.make_mesh()
  graphdef, state, _, _ = trainer.create_state(config, total_steps=1)
  state, _ = checkpointing.restore(manager, step, state_template=parallel.replicate(state, mesh))
  return Run(config, graphdef, state, mesh, step)
