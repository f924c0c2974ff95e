"""Procedural albedo: world-space hash noise and the per-texture patterns (windows, tiles, ...).

Every function works on 1-D arrays over the K pixels that use one texture: hit points `p` and
normals `n` are [3, K], per-pixel primitive parameters `prm` are [NUM_PARAMS, K], colours [3, K].
"""

import numpy as np

from mtl_jax.data.synthetic import builder

_TABLE = np.random.default_rng(20240611).random(4096).astype(np.float32)


def block_noise(x, y, z, scale, salt=0):
  """Value noise in [0, 1), constant on world cubes of side 1/scale (cheap, no interpolation)."""
  ix = np.floor(x * scale).astype(np.int32)
  iy = np.floor(y * scale).astype(np.int32)
  iz = np.floor(z * scale).astype(np.int32)
  h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791) ^ salt
  return _TABLE[h & 4095]


def _facade_u(p, n):
  """Horizontal coordinate along a vertical face (z on x-facing faces, x on z-facing ones)."""
  return np.where(np.abs(n[0]) > 0.5, p[2], p[0])


def plain(p, n, prm, c, c2, top):
  """Flat colour with a little world-space mottling."""
  return c * (0.88 + 0.24 * block_noise(p[0], p[1], p[2], 1.5))


def facade(p, n, prm, c, c2, top):
  """Rows of windows above a ground floor of shop windows; roofs darker."""
  floor_h, spacing, width_frac, ground_h, offset, height_frac = prm
  u, y = _facade_u(p, n) + offset, p[1]
  fy = (y - ground_h) / floor_h
  fu = u / spacing
  upper = (
    (y > ground_h)
    & (y < top - 0.5)
    & (fy % 1 > 0.3)
    & (fy % 1 < 0.3 + height_frac)
    & (fu % 1 < width_frac)
  )
  shop = (y > 0.4) & (y < ground_h - 0.5) & ((0.5 * fu) % 1 < 0.8)
  window = (upper | shop) & (np.abs(n[1]) < 0.5)
  dirt = 0.82 + 0.3 * block_noise(p[0], p[1], p[2], 0.7)
  glass = c2 * (0.55 + 0.9 * block_noise(np.floor(fu), np.floor(fy), p[0] + p[2], 1.0, 7))
  out = np.where(window, glass, c * dirt)
  return np.where(n[1] > 0.5, out * 0.55, out)


def paving(p, n, prm, c, c2, top):
  """Tiles on the top face, curb stone colour on the sides."""
  tile = prm[0]
  gx, gz = (p[0] / tile) % 1, (p[2] / tile) % 1
  joint = (gx < 0.07) | (gz < 0.07)
  stone = 0.85 + 0.3 * block_noise(p[0], 0, p[2], 1 / tile, 3)
  out = c * np.where(joint, 0.75, stone)
  return np.where(n[1] > 0.5, out, c2 * (0.9 + 0.2 * block_noise(p[0], p[1], p[2], 3)))


def grass(p, n, prm, c, c2, top):
  """Grass: strong fine noise over broad patches."""
  fine = block_noise(p[0], p[1], p[2], 6, 11)
  coarse = block_noise(p[0], p[1], p[2], 0.6, 12)
  return c * (0.6 + 0.55 * fine) * (0.75 + 0.5 * coarse)


def foliage(p, n, prm, c, c2, top):
  """Leaves: high-contrast fine noise in clumps."""
  leaf = block_noise(p[0], p[1], p[2], 9.0, 21)
  clump = block_noise(p[0], p[1], p[2], 2.0, 22)
  return c * (0.5 + 0.6 * leaf) * (0.65 + 0.6 * clump)


def cabin(p, n, prm, c, c2, top):
  """Car cabin: body-coloured roof, glass all round."""
  return np.where(n[1] > 0.7, c, c2)


def band(p, n, prm, c, c2, top):
  """A horizontal band of windows between heights prm[0] and prm[1], pillars every prm[2]."""
  pillar = (_facade_u(p, n) / prm[2]) % 1 < 0.12
  window = (p[1] > prm[0]) & (p[1] < prm[1]) & (np.abs(n[1]) < 0.5) & ~pillar
  return np.where(window, c2, c * (0.92 + 0.16 * block_noise(p[0], p[1], p[2], 2)))


def sign(p, n, prm, c, c2, top):
  """Coloured face towards the traffic (normal z sign = -prm[0]); metal back and edges."""
  return np.where(n[2] * prm[0] < -0.5, c2, c)


def fence(p, n, prm, c, c2, top):
  """Vertical bars of period prm[0] and fill fraction prm[1]; a rail along the top."""
  bars = (_facade_u(p, n) / prm[0]) % 1 < prm[1]
  solid = bars | (p[1] > top - 0.1) | (np.abs(n[1]) > 0.5)
  return np.where(solid, c, c2)


def body(p, n, prm, c, c2, top):
  """Vehicle body: dark bumpers, and lamps in the upper corners of the front and rear faces.

  prm = (centre x, half width, heading); rear lamps are red, front lamps pale (colour c2).
  """
  y0 = top - 0.3
  ends = np.abs(n[2]) > 0.5
  lamp = ends & (np.abs(p[0] - prm[0]) > prm[1] - 0.38) & (p[1] > y0 - 0.15) & (p[1] < y0 + 0.05)
  rear = n[2] * prm[2] < 0
  lamp_color = np.where(rear, np.array([[0.7], [0.05], [0.04]], np.float32), c2)
  bumper = (p[1] < top - 0.45) & (np.abs(n[1]) < 0.5) & ends
  out = np.where(bumper, c * 0.35 + 0.03, c * (0.95 + 0.1 * block_noise(p[0], p[1], p[2], 3)))
  return np.where(lamp, lamp_color, out)


def road(p, street):
  """Asphalt with repairs, lane lines and zebra crossings (the road plane, labelled road)."""
  x, z = p[0], p[2]
  salt = street['salt']
  c = np.asarray(street['color'], np.float32)[:, None]
  alb = (
    c
    * (0.8 + 0.3 * block_noise(x, 0, z, 0.3, salt))
    * (0.88 + 0.24 * block_noise(x, 0, z, 7, salt + 1))
  )
  on_road = (x > street['x_range'][0]) & (x < street['x_range'][1])
  crossing = np.zeros(x.shape, bool)
  for z0, z1 in street['cross_z']:
    crossing |= (z > z0) & (z < z1)
  marks = np.zeros(x.shape, bool)
  w = 0.5 * street['line_width']
  for xl, dashed in street['lines']:
    line = np.abs(x - xl) < w
    if dashed:
      line &= (z / street['dash_period']) % 1 < street['dash_duty']
    marks |= line
  marks &= on_road & ~crossing
  for z0, z1 in street['zebra_z']:
    marks |= on_road & (z > z0) & (z < z1) & ((x / 1.1) % 1 < 0.5)
  paint = np.asarray(street['mark_color'], np.float32)[:, None]
  paint = paint * (0.75 + 0.3 * block_noise(x, 0, z, 4, salt + 2))
  return np.where(marks, paint, alb)


LIGHT_TEXTURE = builder.LIGHT
BY_CODE = {
  builder.PLAIN: plain,
  builder.FACADE: facade,
  builder.PAVING: paving,
  builder.GRASS: grass,
  builder.FOLIAGE: foliage,
  builder.CABIN: cabin,
  builder.BAND: band,
  builder.SIGN: sign,
  builder.FENCE: fence,
  builder.BODY: body,
}


def light(p, n, prm, c, c2, top):
  """Traffic-light housing; returns (albedo, emissive mask) for the lit lamp disc."""
  front = n[2] * prm[3] < -0.5
  lamp = front & ((p[0] - prm[0]) ** 2 + (p[1] - prm[1]) ** 2 < prm[2] ** 2)
  return np.where(lamp, c2, c), lamp
