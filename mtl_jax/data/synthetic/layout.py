"""The static street: road plan, sidewalks and curbs, front gardens, building rows, backdrop.

The street runs along +z from the camera. Cross streets cut through sidewalks and buildings.
The row of buildings (or trees) at `end_z` closes the view, so every ray that does not go to the
sky stops within 300 m.
"""

import dataclasses

import numpy as np

from mtl_jax.data import labels
from mtl_jax.data.synthetic import builder as B
from mtl_jax.data.synthetic import palettes

ID = labels.TRAIN_ID
SIDES = (-1, 1)
START_Z = -30.0  # everything starts this far behind the camera
FAR_X = 170.0  # lateral extent of the city blocks


@dataclasses.dataclass
class Layout:
  """Where things are; sides are keyed -1 (left) and +1 (right)."""

  lane_w: float
  lanes: int
  lanes_x: tuple  # x range of the driving lanes
  curb_x: dict  # x of each curb (road edge, parking included)
  curb_h: dict
  walk_x: dict  # x where each sidewalk ends away from the road
  facade_x: dict  # x of each building line
  garden: dict  # whether the strip between sidewalk and facades is grass
  park: dict  # a side without a building row in front
  verge: dict  # (x0, x1) of a grass strip between road and sidewalk, or None
  cross: list  # (z0, z1) of cross streets
  end_z: float
  season: float

  def segments(self):
    """z intervals of the street between cross streets."""
    edges = [START_Z] + [z for c in self.cross for z in c] + [self.end_z]
    return list(zip(edges[0::2], edges[1::2]))

  def lane_centers(self):
    return [self.lanes_x[0] + (i + 0.5) * self.lane_w for i in range(self.lanes)]


def sample_layout(rng) -> Layout:
  """Lanes, parking strips, verges, sidewalks, setbacks, cross streets and street length."""
  lane_w, lanes = rng.uniform(2.9, 3.6), int(rng.choice([2, 2, 2, 3, 4, 4]))
  half = lanes * lane_w / 2
  curb_x, curb_h, walk_x, facade_x, garden, park, verge = {}, {}, {}, {}, {}, {}, {}
  for s in SIDES:
    curb_x[s] = s * (half + 2.2 * (rng.random() < 0.55))  # parking strip
    curb_h[s] = rng.uniform(0.1, 0.18)
    x = curb_x[s]
    if rng.random() < 0.3:
      verge[s] = (x, x + s * rng.uniform(1.0, 2.5))
      x = verge[s][1]
    else:
      verge[s] = None
    walk_x[s] = x + s * rng.uniform(1.8, 4.5)
    garden[s] = rng.random() < 0.35
    setback = rng.uniform(2.0, 8.0) if garden[s] else rng.uniform(0, 1.5)
    facade_x[s] = walk_x[s] + s * setback
    park[s] = rng.random() < 0.12
  cross, z = [], rng.uniform(12, 40)
  end_z = rng.uniform(70, 200)
  while z < min(end_z - 25, 110) and len(cross) < 2 and rng.random() < 0.7:
    width = rng.uniform(10, 18)
    cross.append((z, z + width))
    z += width + rng.uniform(25, 60)
  return Layout(
    lane_w,
    lanes,
    (-half, half),
    curb_x,
    curb_h,
    walk_x,
    facade_x,
    garden,
    park,
    verge,
    cross,
    end_z,
    float(rng.random() ** 2),
  )


def road_markings(rng, lay: Layout) -> dict:
  """Settings for the ground shader (textures.road)."""
  lines = [
    (lay.lanes_x[0] + k * lay.lane_w, k * 2 != lay.lanes or rng.random() < 0.5)
    for k in range(1, lay.lanes)
  ]
  if rng.random() < 0.6:
    lines += [(lay.lanes_x[0], False), (lay.lanes_x[1], False)]
  zebra = [(z0 + 0.5, z0 + rng.uniform(3, 4.5)) for z0, _ in lay.cross if rng.random() < 0.7]
  mark = (0.85, 0.85, 0.8) if rng.random() < 0.85 else (0.85, 0.7, 0.2)
  return dict(
    color=palettes.road(rng),
    salt=int(rng.integers(1 << 20)),
    x_range=(lay.curb_x[-1], lay.curb_x[1]),
    cross_z=lay.cross,
    zebra_z=zebra,
    lines=lines,
    line_width=rng.uniform(0.1, 0.2),
    dash_period=rng.uniform(6, 12),
    dash_duty=rng.uniform(0.3, 0.6),
    mark_color=palettes.jitter(rng, mark, 0.1),
  )


def add_ground(b, rng, lay: Layout):
  """Sidewalks with curbs, grass verges and gardens, and the sidewalks of the cross streets."""
  walk, curb = palettes.sidewalk(rng), palettes.grey(rng, 0.35, 0.75)
  tile = rng.uniform(0.3, 1.0)
  grass = palettes.terrain(rng, lay.season)
  for s in SIDES:
    h = lay.curb_h[s]
    x_in = lay.verge[s][1] if lay.verge[s] else lay.curb_x[s]
    # Without a garden the paving runs on under the buildings, so gaps show sidewalk.
    x_out = lay.walk_x[s] if lay.garden[s] or lay.park[s] else s * FAR_X
    for z0, z1 in lay.segments():
      b.box(
        x_in,
        x_out,
        0,
        h,
        z0,
        z1,
        ID['sidewalk'],
        walk,
        texture=B.PAVING,
        color2=curb,
        params=(tile,),
      )
      if lay.verge[s]:
        b.box(*lay.verge[s], 0, h, z0, z1, ID['terrain'], grass, texture=B.GRASS)
      if lay.garden[s] or lay.park[s]:
        b.box(
          lay.walk_x[s],
          s * FAR_X,
          0,
          h + 0.03,
          z0,
          z1,
          ID['terrain'],
          palettes.jitter(rng, grass),
          texture=B.GRASS,
        )
    for z0, z1 in lay.cross:
      w = rng.uniform(2.0, 4.0)
      for za, zb in ((z0, z0 + w), (z1 - w, z1)):
        b.box(
          lay.curb_x[s],
          s * FAR_X,
          0,
          h,
          za,
          zb,
          ID['sidewalk'],
          walk,
          texture=B.PAVING,
          color2=curb,
          params=(tile,),
        )


def _facade_style(rng, sky):
  """(colour, window colour, FACADE params) for one building."""
  color, glass = palettes.building(rng), palettes.window(rng, sky[0])
  floor_h, ground_h = rng.uniform(2.9, 3.7), rng.uniform(3.3, 4.8)
  if rng.random() < 0.12:  # glass office front
    params = (floor_h, rng.uniform(1.2, 2.0), 0.85, ground_h, rng.uniform(0, 5), 0.6)
  else:
    params = (
      floor_h,
      rng.uniform(1.8, 3.5),
      rng.uniform(0.3, 0.65),
      ground_h,
      rng.uniform(0, 5),
      rng.uniform(0.3, 0.5),
    )
  return color, glass, params


def building(b, rng, sky, x0, x1, z0, z1, height):
  """One building block with its own facade colour and window grid."""
  color, glass, params = _facade_style(rng, sky)
  b.box(
    x0, x1, 0, height, z0, z1, ID['building'], color, texture=B.FACADE, color2=glass, params=params
  )


def _boundary(b, rng, s, x, z0, z1, y0, season):
  """A wall, fence or hedge along a front garden or across a gap (or nothing)."""
  u = rng.random()
  if u < 0.3:
    h, t = rng.uniform(0.6, 2.2), rng.uniform(0.2, 0.4)
    b.box(x, x + s * t, y0, y0 + h, z0, z1, ID['wall'], palettes.building(rng))
  elif u < 0.6:
    h = rng.uniform(1.0, 2.0)
    b.box(
      x,
      x + s * 0.06,
      y0,
      y0 + h,
      z0,
      z1,
      ID['fence'],
      palettes.metal(rng),
      texture=B.FENCE,
      color2=palettes.vegetation(rng, season),
      params=(rng.uniform(0.12, 0.3), rng.uniform(0.2, 0.5)),
    )
  elif u < 0.8:
    h, t = rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.2)
    b.box(
      x,
      x + s * t,
      y0,
      y0 + h,
      z0,
      z1,
      ID['vegetation'],
      palettes.vegetation(rng, season),
      texture=B.FOLIAGE,
    )


def add_buildings(b, rng, lay: Layout, sky, plant_tree):
  """Building rows with gaps, garden boundaries and a rear row; returns shadow walls."""
  walls = []
  n = int(lay.end_z - START_Z) + 40
  for s in SIDES:
    heights = np.zeros(n, np.float32)
    front = lay.facade_x[s] + s * (25 if lay.park[s] else 0)
    for z0, z1 in lay.segments():
      z = z0
      while z < z1 - 1:
        length = min(rng.uniform(8, 32), z1 - z)
        if rng.random() < 0.12 and length < z1 - z:  # gap between buildings
          gap = min(rng.uniform(4, 12), z1 - z)
          _boundary(b, rng, s, front, z, z + gap, lay.curb_h[s], lay.season)
          plant_tree(front + s * rng.uniform(2, 5), z + gap / 2)
          z += gap
          continue
        x0 = front + s * rng.uniform(0, 1.5) * (rng.random() < 0.4)
        height = rng.uniform(2.0, 9.0) * rng.uniform(2.9, 3.6) + 1.0
        building(b, rng, sky, x0, x0 + s * rng.uniform(12, 30), z, z + length, height)
        heights[int(z - START_Z) : int(z + length - START_Z)] = height
        if lay.garden[s]:
          _boundary(b, rng, s, lay.walk_x[s], z, z + length, lay.curb_h[s], lay.season)
        z += length
      _rear_row(b, rng, s, abs(front) + 30, z0, z1, sky)
    walls.append(dict(x=float(front), z0=START_Z, h=heights))
  return walls


def _rear_row(b, rng, s, x, z0, z1, sky):
  """Buildings behind the front row, from x out to FAR_X: skyline and what gaps show."""
  z = z0
  while z < z1 - 1:
    length = min(rng.uniform(15, 50), z1 - z)
    building(b, rng, sky, s * x, s * FAR_X, z, z + length, rng.uniform(8, 45))
    z += length


def add_backdrop(b, rng, lay: Layout, sky):
  """Buildings or a tree line across the far end of the street."""
  x = -2 * FAR_X
  while x < 2 * FAR_X:
    w = rng.uniform(15, 60)
    if rng.random() < 0.3:
      b.box(
        x,
        x + w,
        0,
        rng.uniform(6, 18),
        lay.end_z,
        lay.end_z + 20,
        ID['vegetation'],
        palettes.vegetation(rng, lay.season),
        texture=B.FOLIAGE,
      )
    else:
      building(b, rng, sky, x, x + w, lay.end_z, lay.end_z + 20, rng.uniform(8, 40))
    x += w
