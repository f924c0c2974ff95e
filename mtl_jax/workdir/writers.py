"""Where metrics go: metrics.jsonl (one JSON object per eval; the stable record other tools read)
and TensorBoard event files for live curves."""

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tensorboardX import SummaryWriter

from mtl_jax.runtime import atomic
from mtl_jax.runtime.errors import UserError
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
      atomic.write_text(self.jsonl_path, ''.join(json.dumps(r) + '\n' for r in records))

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


class CorruptRecords(UserError):
  """A line of a metrics.jsonl that is not an eval record, and not a torn last line: damage
  (a disk fault, an edit), which the message names by line number."""


def read_records(path: Path) -> list[dict]:
  """The records of a metrics.jsonl; a last line torn by a kill mid-write (which the run's next
  start drops, `replace_records`) is left out. CorruptRecords names any other line that is not
  text, not JSON or not an eval record (a JSON object with an epoch)."""
  path = Path(path)
  try:
    data = path.read_bytes()
  except FileNotFoundError:
    return []
  except OSError as e:
    raise CorruptRecords(f'{path} cannot be read ({e.strerror})') from None
  for number, raw in enumerate(data.split(b'\n'), 1):
    try:
      raw.decode()
    except UnicodeDecodeError:
      raise CorruptRecords(f'{path} line {number} is not text (a corrupt line)') from None
  lines = [(n, line) for n, line in enumerate(data.decode().splitlines(), 1) if line.strip()]
  records = []
  for number, line in lines:
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      if number == lines[-1][0]:  # only the last line can be torn
        continue
      raise CorruptRecords(f'{path} line {number} is not JSON (a corrupt line)') from None
    if not isinstance(record, dict) or 'epoch' not in record:
      raise CorruptRecords(
        f'{path} line {number} is not an eval record (a JSON object with an epoch)'
      )
    records.append(record)
  return records
