"""Joint DeepLabV3+: one ResNet encoder, ASPP and decoder shared by both tasks; C + 1 outputs.

  python -m mtl_jax.train --config configs/joint.py:cpu --workdir runs/joint_cpu

Presets (after the colon): none = the full model (ResNet-34, OS 16, 256 channels) for GPUs;
`cpu` = the laptop demo (minutes on 2 cores); `tiny` = seconds, for tests.
"""

import ml_collections

from mtl_jax import config_base as common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = common.base_config()
  c.model.arch = 'joint'
  return common.apply_preset(c, preset)
