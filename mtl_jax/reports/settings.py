"""Settings: a report's runs grouped by what they were trained with, seed aside, each labelled by
the knobs in which the report's runs differ (`optim.name=adam, optim.learning_rate=1e-4`).

Runs of one setting are its seeds: tables give their mean ± std, plots a band.
"""

import dataclasses

import ml_collections

from mtl_jax.config import schema
from mtl_jax.reports.runs import ReportRun

SEED = 'seed'
# Knobs that say where and how a run was kept, not what it learnt: never a difference.
BOOKKEEPING = (
  'data.data_dir',
  'data.worker_count',
  'train.log_every_steps',
  'train.keep_checkpoints',
  'train.checkpoint_every_steps',
  'train.max_nonfinite_steps',
)


def knob_values(config: ml_collections.ConfigDict) -> dict:
  """Every knob's value (lists as tuples, so values compare and hash)."""
  values = {key: schema.get(config, key) for key in schema.KNOBS}
  return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()}


def format_value(value) -> str:
  """As a person writes it: 1e-4 rather than 0.0001, lists comma-separated."""
  if isinstance(value, tuple):
    return ','.join(map(format_value, value))
  if isinstance(value, float) and value and abs(value) < 1e-2:
    mantissa, exponent = f'{value:.6e}'.split('e')
    return f'{mantissa.rstrip("0").rstrip(".")}e{int(exponent)}'
  if isinstance(value, float):
    return f'{value:g}'
  return str(value)


def differing_keys(runs: list[ReportRun]) -> list[str]:
  """The knobs (schema order) whose values are not the same in all runs, seed and
  `BOOKKEEPING` aside."""
  values = [knob_values(r.config) for r in runs]
  return [
    key
    for key in schema.KNOBS
    if key != SEED and key not in BOOKKEEPING and len({v[key] for v in values}) > 1
  ]


@dataclasses.dataclass(frozen=True)
class Setting:
  label: str  # the differing knobs and their values
  runs: tuple[ReportRun, ...]  # its seeds, in the report's run order

  @property
  def config(self) -> ml_collections.ConfigDict:
    """The setting's config (its runs' configs but for the seed and `BOOKKEEPING`)."""
    return self.runs[0].config

  @property
  def tasks(self) -> tuple[str, ...]:
    return self.runs[0].tasks

  @property
  def seeds(self) -> tuple[int, ...]:
    return tuple(r.config.seed for r in self.runs)


def group(runs: list[ReportRun]) -> list[Setting]:
  """The runs' settings in order of first appearance. With nothing differing, the one setting is
  named after its run, or after its architecture when it has several seeds."""
  keys = differing_keys(runs)
  groups: dict[tuple, list[ReportRun]] = {}
  for run in runs:
    values = knob_values(run.config)
    groups.setdefault(tuple(values[k] for k in keys), []).append(run)
  settings = []
  for values, members in groups.items():
    label = ', '.join(f'{k}={format_value(v)}' for k, v in zip(keys, values))
    if not label:
      label = members[0].name if len(members) == 1 else members[0].config.model.arch
    settings.append(Setting(label, tuple(members)))
  return settings
