"""Scoring a model on a whole split; shared by training-time eval and `mtl_jax.evaluate`."""

import functools
from collections.abc import Iterable, Sequence

import jax

from mtl_jax import metrics, parallel, steps


def make_eval_step(graphdef, spec: steps.TaskSpec):
  """Compiled once per run; metric states stay on device between batches."""
  return jax.jit(functools.partial(steps.eval_step, graphdef=graphdef, spec=spec),
                 donate_argnums=1)


def evaluate(eval_step, state: steps.TrainState, batches: Iterable[dict], mesh,
             *, class_names: Sequence[str], tasks=metrics.TASKS) -> dict[str, float]:
  """Runs `eval_step` over every (padded, masked) batch and returns the SPEC metrics, with
  per-class IoUs under `iou/<class name>`."""
  totals = parallel.replicate(metrics.empty(len(class_names), tasks), mesh)
  for batch in batches:
    totals = eval_step(state, totals, parallel.shard_batch(batch, mesh))
  return metrics.compute(jax.device_get(totals), class_names)
