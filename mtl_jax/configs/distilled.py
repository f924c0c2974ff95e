"""python -m mtl_jax.train --config configs/distilled.py:cpu --workdir runs/distilled_cpu

Distilled (PAD-Net-style) DeepLabV3+: branched first stage, self-attention distillation,
second-stage decoders; both stages supervised, second-stage predictions reported.

Presets (after the colon, comma-separated): none = the full model for GPUs; `cpu` = the laptop
demo (64-channel heads, semseg weight 0.7); `tiny` = seconds, for tests; `deep` = the deeper
3-conv upsampling second-stage decoder (combine as `deep,cpu`); `plain`, `pretrained`,
`dilated`, `aspp` = the study's ladder.
"""

import ml_collections

from mtl_jax.config import presets, schema


def deep(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  c.model.second_stage = 'deep'
  return c


def cpu(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The shared laptop demo (the quick start) with 64-channel heads and semseg weighted 0.7 /
  depth 0.3.

  Chosen with the DeepLabV3+ heads `cpu` built until 2026-12-08, whose two ASPP+decoders, two
  attention gates and two second decoders at stride 4 cost ~1.7× the joint step at 128
  channels and matched it at 64. Measured on 2 cores then: 128 ch 44.5 mIoU / 24.5 SI-log in
  20.7 min; 64 ch (0.5/0.5) 40.3 / 24.8; 64 ch (0.7/0.3) 42.3 / 25.2 in 12.9 min. As the
  study's network (docs/models.md): 32.19 / 40.00 at Adam 1e-3, 40.35 / 29.06 at 1e-2.
  """
  c = presets.cpu(c)
  c.model.aspp_channels = c.model.decoder_channels = 64
  c.loss.semseg_weight, c.loss.depth_weight = 0.7, 0.3
  return c


PRESETS = {'deep': deep, 'cpu': cpu}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = schema.base_config()
  c.model.arch = 'distilled'
  return presets.apply(c, preset, PRESETS)
