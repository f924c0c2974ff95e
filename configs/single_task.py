"""python -m mtl_jax.train --config configs/single_task.py:semseg,cpu --workdir runs/semseg_cpu
python -m mtl_jax.train --config configs/single_task.py:depth,cpu --workdir runs/depth_cpu

Single-task baselines (one encoder + ASPP + decoder + head): semantic segmentation only or
depth only — the references of the multi-task Δm.

Presets (comma-separated): `semseg` (default) or `depth`, then any shared preset (`cpu`, `tiny`,
ladder rows).
"""

import ml_collections

from mtl_jax import config_base

TASK_PRESETS = ('semseg', 'depth')


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = config_base.base_config()
  c.model.arch = 'single_task'
  presets = (preset or '').split(',')
  task = next((p for p in presets if p in TASK_PRESETS), 'semseg')
  c.model.tasks = (task,)
  c.loss.semseg_weight = 1.0 if task == 'semseg' else 0.0
  c.loss.depth_weight = 1.0 if task == 'depth' else 0.0
  return config_base.apply_preset(c, ','.join(p for p in presets if p not in TASK_PRESETS))
