"""Where metrics go: metrics.jsonl (one JSON object per eval; the stable record other tools read)
and TensorBoard event files for live curves."""

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tensorboardX import SummaryWriter

from mtl_jax.workdir import layout


def _json_value(v):
  v = float(v) if not isinstance(v, (str, int)) else v
  return None if isinstance(v, float) and not math.isfinite(v) else v


def as_written(record: Mapping) -> dict:
  """`record` as a metrics.jsonl line holds it: non-finite floats become null."""
  return {k: _json_value(v) for k, v in record.items()}


class MetricsLog:
  """Appends eval records to `metrics.jsonl` and mirrors every scalar to TensorBoard."""

  def __init__(self, workdir: Path):
    self.jsonl_path = Path(workdir) / layout.METRICS_FILE
    self.tensorboard = SummaryWriter(str(Path(workdir) / layout.TENSORBOARD_DIR))

  def scalars(self, step: int, values: Mapping[str, float], prefix: str = '') -> None:
    for k, v in values.items():
      self.tensorboard.add_scalar(prefix + k, float(v), step)

  def image(self, step: int, tag: str, image: np.ndarray) -> None:
    """An HWC uint8 image (e.g. a sample grid) to TensorBoard."""
    self.tensorboard.add_image(tag, image, step, dataformats='HWC')

  def record(self, record: Mapping) -> dict:
    """Appends one JSON line, flushed to disk before returning; returns the record as written
    (non-finite floats become null)."""
    written = as_written(record)
    with open(self.jsonl_path, 'a') as f:
      f.write(json.dumps(written) + '\n')
      f.flush()
      os.fsync(f.fileno())
    return written

  def replace_records(self, records: list[dict]) -> None:
    """On start or resume, the file becomes exactly `records` (the restored checkpoint's eval
    history): later evals, which will be redone, and any line torn by a kill are dropped."""
    if self.jsonl_path.exists() or records:
      tmp = self.jsonl_path.with_suffix('.jsonl.tmp')
      tmp.write_text(''.join(json.dumps(r) + '\n' for r in records))
      os.replace(tmp, self.jsonl_path)

  def close(self) -> None:
    self.tensorboard.close()


class Discard(MetricsLog):
  """A MetricsLog that writes nothing: the log of every process of a multi-process run but the
  primary one, which writes for the job."""

  def __init__(self):  # pylint: disable=super-init-not-called  # no files
    pass

  def scalars(self, step, values, prefix=''):
    del step, values, prefix

  def image(self, step, tag, image):
    del step, tag, image

  def record(self, record: Mapping) -> dict:
    return as_written(record)

  def replace_records(self, records):
    del records

  def close(self):
    pass


def read_records(path: Path) -> list[dict]:
  """The records of a metrics.jsonl; a last line torn by a kill mid-write (which the run's next
  start drops, `replace_records`) is left out."""
  path = Path(path)
  if not path.exists():
    return []
  lines = [line for line in path.read_text().splitlines() if line.strip()]
  records = []
  for i, line in enumerate(lines):
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      if i < len(lines) - 1:  # only the last line can be torn
        raise
  return records
