"""What state a run directory is in, read from its files alone: sweeps skip finished runs and
resume the others, reports mark runs still training or stopped early.

    training     a live `train` process holds the workdir lock (`train_lock`)
    finished     its last eval is the config's last epoch
    diverged     its last eval had NaN/Inf outputs (the run stopped there; rerunning repeats it)
    stopped      anything else with a config.json: crashed, killed or preempted; rerunning the
                 same command resumes it from its newest checkpoint
"""

import dataclasses
from pathlib import Path

from mtl_jax.config import schema
from mtl_jax.runtime import locks
from mtl_jax.workdir import layout, run_config, writers

TRAINING, FINISHED, DIVERGED, STOPPED = 'training', 'finished', 'diverged', 'stopped'


def train_lock(workdir: str | Path, process_index: int = 0, process_count: int = 1) -> Path:
  """The lock a `train` process holds on its workdir: one per process, so the processes of one
  multi-host run share a workdir while a second launch of any of them is refused."""
  return Path(workdir) / layout.train_lock_name(process_index, process_count)


@dataclasses.dataclass(frozen=True)
class RunStatus:
  state: str  # TRAINING, FINISHED, DIVERGED or STOPPED
  epochs_done: int  # evals recorded
  num_epochs: int  # what the run's config asks for
  records: tuple[dict, ...]  # metrics.jsonl

  def describe(self) -> str:
    """'finished', 'training (epoch 3/16)', 'stopped at epoch 3/16', ..."""
    progress = f'epoch {self.epochs_done}/{self.num_epochs}'
    return {
      FINISHED: FINISHED,
      TRAINING: f'training ({progress})',
      DIVERGED: f'diverged at {progress}',
      STOPPED: f'stopped at {progress}',
    }[self.state]


def scored(records) -> list[dict]:
  """The eval records that carry scores: a diverged eval's record (NaN/Inf outputs) is written
  with null scores so it can be seen, but it scores nothing."""
  return [r for r in records if not r.get('nonfinite_images')]


def status(workdir: str | Path) -> RunStatus:
  """The state of the run in `workdir`; a ConfigError if it holds no run (no config.json)."""
  workdir = Path(workdir)
  config = run_config.load(workdir)
  records = tuple(writers.read_records(workdir / layout.METRICS_FILE))
  good = scored(records)
  done = good[-1]['epoch'] if good else 0
  num_epochs = schema.epochs(config)
  if any(locks.is_held(lock) for lock in workdir.glob(layout.TRAIN_LOCK_GLOB)):
    state = TRAINING
  elif records and records[-1].get('nonfinite_images'):
    state = DIVERGED
  elif done >= num_epochs:
    state = FINISHED
  else:
    state = STOPPED
  return RunStatus(state, done, num_epochs, records)
