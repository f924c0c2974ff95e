"""python -m mtl_jax.train --config configs/single_task.py:semseg,cpu --workdir runs/semseg_cpu
python -m mtl_jax.train --config configs/single_task.py:depth,cpu --workdir runs/depth_cpu

Single-task baselines (one encoder + ASPP + decoder + head): semantic segmentation only or
depth only — the references of the multi-task Δm.

Presets (comma-separated): `semseg` (default) or `depth`, then any shared preset (`cpu`, `tiny`,
ladder rows).
"""

import ml_collections

from mtl_jax.config import presets, schema


def only(task: str):
  """The preset that makes the model predict `task` alone, with all the loss weight on it."""

  def preset(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.tasks = (task,)
    c.loss.semseg_weight = 1.0 if task == 'semseg' else 0.0
    c.loss.depth_weight = 1.0 if task == 'depth' else 0.0
    return c

  return preset


PRESETS = {'semseg': only('semseg'), 'depth': only('depth')}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = schema.base_config()
  c.model.arch = 'single_task'
  c = only('semseg')(c)  # the default; `depth` switches
  return presets.apply(c, preset, PRESETS)
