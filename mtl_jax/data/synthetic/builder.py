"""Scene description: a flat list of primitives, each given by its world bounding box.

Every primitive is axis-aligned in the world frame and fully described by its box [lo, hi]:
a box, a cylinder whose axis runs along x, y or z (radius = half the box's cross-section), or an
ellipsoid inscribed in the box. Each carries a train id (or 255), colours and a texture code
that the shader interprets.
"""

import dataclasses

import numpy as np

# Primitive kinds.
BOX, CYL_X, CYL_Y, CYL_Z, ELLIPSOID = range(5)

# Texture codes (see shading.py).
PLAIN, FACADE, PAVING, GRASS, FOLIAGE, CABIN, BAND, SIGN, LIGHT, FENCE, BODY, ROAD = range(12)
NUM_PARAMS = 6


@dataclasses.dataclass(frozen=True)
class Scene:
  """Primitives as parallel arrays plus per-scene ground and lighting settings."""

  kind: np.ndarray  # [N] int
  lo: np.ndarray  # [N, 3] float64
  hi: np.ndarray  # [N, 3]
  label: np.ndarray  # [N] uint8 train id, 255 = void
  color: np.ndarray  # [N, 3] float32 albedo in [0, 1]
  color2: np.ndarray  # [N, 3] secondary albedo (windows, sign faces, lamps)
  texture: np.ndarray  # [N] int
  params: np.ndarray  # [N, NUM_PARAMS] float32 texture parameters
  street: dict  # road layout and colours, read by the ground shader
  env: dict  # sun, sky, haze and camera-response settings
  shadow: dict  # per-side building height profiles for cheap cast shadows


class SceneBuilder:
  """Accumulates primitives; `build` freezes them into a `Scene`."""

  def __init__(self):
    self._rows = []

  def __len__(self):
    return len(self._rows)

  def add(self, kind, lo, hi, label, color, texture=PLAIN, color2=None, params=()):
    """Adds one primitive spanning the world box [lo, hi] (metres)."""
    p = np.zeros(NUM_PARAMS, np.float32)
    p[: len(params)] = params
    c2 = color if color2 is None else color2
    self._rows.append((kind, lo, hi, label, color, c2, texture, p))

  def box(self, x0, x1, y0, y1, z0, z1, label, color, **kw):
    self.add(BOX, (x0, y0, z0), (x1, y1, z1), label, color, **kw)

  def build(self, street, env, shadow) -> Scene:
    if not self._rows:
      self.box(0, 0, 0, 0, -2, -1, 255, (0, 0, 0))  # keeps arrays non-empty; never visible
    kind, lo, hi, label, color, color2, texture, params = zip(*self._rows)
    lo, hi = np.array(lo, np.float64), np.array(hi, np.float64)
    return Scene(
      kind=np.array(kind),
      lo=np.minimum(lo, hi),
      hi=np.maximum(lo, hi),
      label=np.array(label, np.uint8),
      color=np.array(color, np.float32),
      color2=np.array(color2, np.float32),
      texture=np.array(texture),
      params=np.stack(params),
      street=street,
      env=env,
      shadow=shadow,
    )
