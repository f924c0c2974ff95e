"""How the network's raw depth channel maps to metres.

- 'linear' (the course template): raw = (depth − mean) / std, so an L1 loss on raw values is an
  L1 on normalised depth.
- 'log': raw = (log(depth) − mean) / std with mean/std of log-depth; the natural parametrisation
  for the scale-invariant log loss and always positive once decoded.
"""

import dataclasses

import jax.numpy as jnp

MODES = ('linear', 'log')
# Floor (metres) for decoded linear depth and for log() of depth in the losses, so log() stays
# finite; unrelated to the data's depth range (`sample.DEPTH_RANGE_M`).
DECODE_FLOOR_M = 1e-3


@dataclasses.dataclass(frozen=True)
class DepthCodec:
  mode: str = 'linear'
  mean: float = 20.0
  std: float = 20.0

  def __post_init__(self):
    if self.mode not in MODES:
      raise ValueError(f'unknown depth mode {self.mode!r}; valid names: {", ".join(MODES)}')
    if not self.std > 0:
      raise ValueError(f'depth std must be > 0, got {self.std}')

  def encode(self, depth_m):
    """Metres → raw network units (only meaningful where depth > 0)."""
    x = jnp.log(jnp.maximum(depth_m, DECODE_FLOOR_M)) if self.mode == 'log' else depth_m
    return (x - self.mean) / self.std

  def decode(self, raw):
    """Raw network output → metres (> 0)."""
    x = raw * self.std + self.mean
    return jnp.exp(x) if self.mode == 'log' else jnp.maximum(x, DECODE_FLOOR_M)
