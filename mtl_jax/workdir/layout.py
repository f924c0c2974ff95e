"""The files of a run directory, each named once here.

<workdir>/config.json              the resolved config the run trains with (`run_config`)
<workdir>/metrics.jsonl            one JSON record per eval, the stable record (`writers`)
<workdir>/tensorboard/             TensorBoard event files for live curves
<workdir>/checkpoints/<step>/      orbax checkpoints (`checkpoints`, `restoring`)
<workdir>/checkpoints_unreadable/  checkpoints that failed to restore, set aside
<workdir>/train.lock               held by the process training there (train.<i>.lock per
                                   process of a multi-process job)
<workdir>/train.log                a sweep's record of the run's output, every attempt appended
"""

from pathlib import Path

CONFIG_FILE = 'config.json'
METRICS_FILE = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'
CHECKPOINTS_DIR = 'checkpoints'
UNREADABLE_DIR = 'checkpoints_unreadable'
TRAIN_LOG_FILE = 'train.log'
TRAIN_LOCK_GLOB = 'train*.lock'


def train_lock_name(process_index: int = 0, process_count: int = 1) -> str:
  """The lock file of one training process (matches TRAIN_LOCK_GLOB)."""
  return 'train.lock' if process_count == 1 else f'train.{process_index}.lock'


def checkpoints_dir(workdir: str | Path) -> Path:
  return Path(workdir) / CHECKPOINTS_DIR


def eval_file(workdir: str | Path, split: str, step: int) -> Path:
  """Where `evaluate` writes its scores of checkpoint `step` on `split` by default."""
  return Path(workdir) / f'eval_{split}_step{step}.json'
