"""python -m mtl_jax.train --config configs/branched.py:cpu --workdir runs/branched_cpu

Branched DeepLabV3+: a shared ResNet encoder, then ASPP + decoder + head per task.

Presets (after the colon, comma-separated): none = the full model for GPUs; `cpu` = the laptop
demo; `tiny` = seconds, for tests; `plain`, `pretrained`, `dilated`, `aspp` = the study's ladder.
"""

import ml_collections

from mtl_jax.config import presets, schema

PRESETS = {}  # this file's own presets, beside mtl_jax.config.presets.SHARED


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = schema.base_config()
  c.model.arch = 'branched'
  return presets.apply(c, preset, PRESETS)
