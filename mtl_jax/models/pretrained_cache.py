"""Where converted ImageNet encoders are looked for: the one place that names the cache.

Light on purpose (no JAX): the config schema and presets read it while loading a config file.
"""

import os

AUTO = 'auto'  # model.pretrained: converted weights from the cache if present, else random init
# model.pretrained: converted weights of the config's encoder from the cache, required (a run
# without them stops with the command that converts them). The study's ImageNet rows ask for it,
# so a sweep entry can name them whatever size preset picked the encoder.
IMAGENET = 'imagenet'
CACHE_ENV = 'MTL_JAX_PRETRAINED_DIR'
_DEFAULT_CACHE = '~/.cache/mtl_jax/pretrained'


def cache_dir(encoder: str) -> str:
  """Where converted ImageNet weights of `encoder` live: $MTL_JAX_PRETRAINED_DIR/<encoder>, by
  default ~/.cache/mtl_jax/pretrained/<encoder> (~ kept, as the user would type it). 'auto'
  and 'imagenet' look there."""
  return f'{os.environ.get(CACHE_ENV, _DEFAULT_CACHE).rstrip("/")}/{encoder}'
