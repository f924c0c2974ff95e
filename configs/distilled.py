"""python -m mtl_jax.train --config configs/distilled.py:cpu --workdir runs/distilled_cpu

Distilled (PAD-Net-style) DeepLabV3+: branched first stage, self-attention distillation,
second-stage decoders; both stages supervised, second-stage predictions reported.

Presets (after the colon, comma-separated): none = the full model for GPUs; `cpu` = the laptop
demo; `tiny` = seconds, for tests; `deep` = the deeper 3-conv upsampling second-stage decoder
(combine as `deep,cpu`); `plain`, `pretrained`, `dilated`, `aspp` = the study's ladder.
"""

import ml_collections

from mtl_jax import config_base


def deep(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  c.model.second_stage = 'deep'
  return c


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = config_base.base_config()
  c.model.arch = 'distilled'
  return config_base.apply_preset(c, preset, {'deep': deep})
