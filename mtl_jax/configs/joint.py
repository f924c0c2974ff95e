"""python -m mtl_jax.train --config configs/joint.py:cpu --workdir runs/joint_cpu

Joint DeepLabV3+: one ResNet encoder, ASPP and decoder shared by both tasks; C + 1 outputs.

Presets (after the colon, comma-separated): none = the full model (ResNet-34, OS 16, 256
channels) for GPUs; `cpu` = the laptop demo (minutes on 2 cores); `tiny` = seconds, for tests;
`plain`, `pretrained`, `dilated`, `aspp` = the rows of the study's ladder (its Table 4), e.g.
`configs/joint.py:plain,cpu`.
"""

import ml_collections

from mtl_jax.config import presets, schema

PRESETS = {}  # this file's own presets, beside mtl_jax.config.presets.SHARED


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = schema.base_config()
  c.model.arch = 'joint'
  return presets.apply(c, preset, PRESETS)
