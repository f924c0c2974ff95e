"""The numbers a report shows, all read from the runs' metrics.jsonl: best and last evals, mean ±
std over seeds, per-epoch series, and the multi-task Δm against single-task baselines.

Best is the eval a run keeps as its best checkpoint (`run_meta.best_metric_for`: `total`,
or a single-task baseline's own metric), so a run's best numbers all belong to one model, the
one its samples and depth errors are drawn from. Last is its newest eval.

Δm (Maninis et al. 2019; Vandenhende et al. 2021) = (1/T) Σ_t (−1)^{l_t} (M_t − M_b,t) / M_b,t ×
100 over the tasks t, with M_t a multi-task run's best-eval metric of task t (mIoU, SI-log),
M_b,t the mean over seeds of the single-task baseline's, l_t = 1 where lower is better (SI-log):
positive means better than the baselines on average.
"""

import dataclasses
import math
import statistics
from collections.abc import Iterable

from mtl_jax import experiment
from mtl_jax.config import schema
from mtl_jax.reports import settings as settings_lib
from mtl_jax.reports.runs import ReportRun
from mtl_jax.reports.settings import Setting
from mtl_jax.workdir import run_meta

LEARNING_RATE = 'learning_rate'  # a series computed from the run's schedule (not in the records)
# Knobs in which a single-task baseline necessarily differs from a multi-task run.
BASELINE_KNOBS = (
  'model.arch',
  'model.tasks',
  'loss.semseg_weight',
  'loss.depth_weight',
  'loss.balancing',
)


def best_eval(run: ReportRun) -> dict | None:
  metric = run_meta.best_metric_for(run.tasks)
  scored = [r for r in run.evals if r.get(metric) is not None]
  if not scored:
    return None
  pick = max if run_meta.BEST_METRIC_MODES[metric] == 'max' else min
  return pick(scored, key=lambda r: r[metric])


def last_eval(run: ReportRun) -> dict | None:
  return run.evals[-1] if run.evals else None


@dataclasses.dataclass(frozen=True)
class Stat:
  """A value over a setting's seeds: mean, sample standard deviation (n − 1; None for one)."""

  mean: float
  std: float | None
  n: int


def stat(values: Iterable[float | None]) -> Stat | None:
  """Over the finite values given (None: a run without that value); None if there are none."""
  values = [float(v) for v in values if v is not None and math.isfinite(v)]
  if not values:
    return None
  std = statistics.stdev(values) if len(values) > 1 else None
  return Stat(statistics.fmean(values), std, len(values))


def series(run: ReportRun, key: str) -> list[tuple[int, float]]:
  """(epoch, value) of every eval that has `key`; LEARNING_RATE is the schedule at each eval's
  step (the trainer sends it to TensorBoard only)."""
  evals = run.evals
  if key == LEARNING_RATE:
    values = _learning_rates(run, evals)
  else:
    values = [r.get(key) for r in evals]
  return [(r['epoch'], float(v)) for r, v in zip(evals, values) if v is not None]


def _learning_rates(run: ReportRun, evals: list[dict]) -> list[float]:
  if not evals:
    return []
  steps_per_epoch = evals[0]['step'] // evals[0]['epoch']
  schedule = experiment.learning_rate_schedule(
    run.config, steps_per_epoch * schema.epochs(run.config)
  )
  return [float(schedule(r['step'])) for r in evals]


# ----------------------------------------------------------------------------- Δm


def task_metric(task: str) -> str:
  """The headline metric of a task (`miou`, `silog`): what its baseline is ranked by."""
  return run_meta.best_metric_for((task,))


def delta_m(scores: dict, baseline: dict[str, float]) -> float | None:
  """Δm (module docstring) of `scores` against {metric: baseline value}; None if a metric is
  missing (or a baseline is 0)."""
  terms = []
  for metric, reference in baseline.items():
    value = scores.get(metric)
    if value is None or not reference:
      return None
    sign = -1.0 if run_meta.BEST_METRIC_MODES[metric] == 'min' else 1.0
    terms.append(sign * (value - reference) / reference)
  return 100.0 * statistics.fmean(terms)


@dataclasses.dataclass(frozen=True)
class Baseline:
  setting: Setting  # a single-task setting
  value: float  # the mean over its seeds of its best eval's task metric


def _distance(a: Setting, b: Setting) -> int:
  """How many knobs two settings differ in, besides those a baseline must differ in."""
  va, vb = settings_lib.knob_values(a.config), settings_lib.knob_values(b.config)
  skip = set(BASELINE_KNOBS) | set(settings_lib.BOOKKEEPING) | {settings_lib.SEED}
  return sum(va[k] != vb[k] for k in va if k not in skip)


def baselines(setting: Setting, every: list[Setting]) -> dict[str, Baseline] | None:
  """Per task of a multi-task `setting`, the scored single-task setting of that task closest to
  it (fewest differing knobs; the first of equals); None unless every task has one."""
  found = {}
  for task in setting.tasks:
    metric = task_metric(task)
    scored = [
      (s, stat((best_eval(r) or {}).get(metric) for r in s.runs))
      for s in every
      if s.tasks == (task,)
    ]
    scored = [(s, value) for s, value in scored if value is not None]
    if not scored:
      return None
    closest, value = min(scored, key=lambda pair: _distance(setting, pair[0]))
    found[task] = Baseline(closest, value.mean)
  return found


def run_delta_m(run: ReportRun, found: dict[str, Baseline]) -> float | None:
  best = best_eval(run)
  if best is None:
    return None
  return delta_m(best, {task_metric(t): b.value for t, b in found.items()})
