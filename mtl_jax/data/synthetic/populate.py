"""Things placed on the static street: traffic, people, trees, poles, signs, lights, clutter."""

from mtl_jax.data.synthetic import layout as layout_lib
from mtl_jax.data.synthetic import objects

SIDES = layout_lib.SIDES
NEAR_Z = 100.0  # small objects beyond this are a pixel or two; do not bother


def _in_block(lay, z, margin=1.0):
  """Whether z lies along a sidewalk (not inside a cross street)."""
  return all(not (z0 - margin < z < z1 + margin) for z0, z1 in lay.cross) and z < lay.end_z - 5


def _walk_inner(lay, s):
  """x where the sidewalk of side s begins on the road side."""
  return lay.verge[s][1] if lay.verge[s] else lay.curb_x[s]


def add_trees(b, rng, lay):
  """Trees on verges, along some sidewalks, in gardens and parks; returns a planting helper."""

  def tree(x, z, y=0.0):
    objects.tree(b, rng, x, z, y, lay.season)

  for s in SIDES:
    h = lay.curb_h[s]
    if lay.verge[s]:
      x = 0.5 * sum(lay.verge[s])
      for z in _spaced(rng, -5, NEAR_Z, 6, 13):
        if _in_block(lay, z, 3):
          tree(x, z, h)
    elif rng.random() < 0.3 and abs(lay.walk_x[s] - lay.curb_x[s]) > 2.5:
      for z in _spaced(rng, -5, NEAR_Z, 8, 15):
        if _in_block(lay, z, 3):
          tree(lay.curb_x[s] + s * 1.0, z, h)
    if lay.garden[s] or lay.park[s]:
      depth = 25 if lay.park[s] else abs(lay.facade_x[s] - lay.walk_x[s])
      for _ in range(rng.integers(1, 9 if lay.park[s] else 4)):
        z = rng.uniform(0, NEAR_Z)
        if _in_block(lay, z, 4) and depth > 2:
          tree(lay.walk_x[s] + s * rng.uniform(1, depth - 1), z, h)
  return tree


def _spaced(rng, z0, z1, lo, hi):
  """Positions from z0 to z1 with random spacing in [lo, hi)."""
  z, out = z0 + rng.uniform(0, hi), []
  while z < z1:
    out.append(z)
    z += rng.uniform(lo, hi)
  return out


def add_poles(b, rng, lay):
  """Street lamps, sign posts and traffic lights along the curbs."""
  for s in SIDES:
    x, y = _walk_inner(lay, s) + s * 0.5, lay.curb_h[s]
    for z in _spaced(rng, -10, lay.end_z, 18, 40):
      if _in_block(lay, z):
        objects.street_lamp(b, rng, x, z, -s, y)
    for _ in range(rng.integers(1, 5)):
      z = rng.uniform(3, 70)
      if _in_block(lay, z):
        facing = 1 if s > 0 or rng.random() < 0.4 else -1
        objects.sign_post(b, rng, x + s * rng.uniform(-0.1, 0.3), z, y, facing)
    for z0, z1 in lay.cross:
      if rng.random() < 0.75:
        mast = -s * rng.uniform(3, 6) if s > 0 and rng.random() < 0.5 else 0.0
        objects.traffic_light(b, rng, x, z0 - 0.8, y, 1, mast)
      if rng.random() < 0.5:
        objects.traffic_light(b, rng, x, z1 + 0.8, y, -1 if rng.random() < 0.5 else 1)
    if not lay.cross and rng.random() < 0.25:  # a signalled pedestrian crossing
      objects.traffic_light(b, rng, x, rng.uniform(10, 50), y, 1)


def add_clutter(b, rng, lay):
  """A few void-labelled objects near the building side of the sidewalks."""
  for _ in range(rng.integers(0, 5)):
    s = SIDES[rng.integers(2)]
    z = rng.uniform(2, 60)
    if _in_block(lay, z):
      x = lay.walk_x[s] - s * rng.uniform(0.6, 1.2)
      objects.clutter(b, rng, x, z, lay.curb_h[s])


def add_people(b, rng, lay, zebra):
  """Pedestrians on the sidewalks and crossings, parked bicycles."""
  for _ in range(rng.choice([1, 3, 5, 8, 12, 18])):
    s = SIDES[rng.integers(2)]
    z = rng.uniform(2, 50)
    if _in_block(lay, z, 0.5):
      x0, x1 = sorted((_walk_inner(lay, s) + s * 0.4, lay.walk_x[s] - s * 0.4))
      objects.person(b, rng, rng.uniform(x0, x1), z, lay.curb_h[s], rng.random() < 0.2)
  for z0, z1 in zebra:
    for _ in range(rng.integers(0, 4)):
      x = rng.uniform(lay.curb_x[-1], lay.curb_x[1])
      objects.person(b, rng, x, rng.uniform(z0, z1), 0.0, facing_x=True)
  if rng.random() < 0.5:
    s = SIDES[rng.integers(2)]
    z = rng.uniform(3, 40)
    for k in range(rng.integers(1, 5)):
      if _in_block(lay, z + 0.7 * k):
        objects.bicycle(b, rng, lay.walk_x[s] - s * 0.7 - s * 0.7 * k, z + 0.3 * k, lay.curb_h[s])


def add_traffic(b, rng, lay, camera_x, zebra):
  """Parked cars and, lane by lane, moving cars, trucks, buses, riders, sometimes a tram.

  Moving vehicles wait before zebra crossings rather than stand on them.
  """
  for s in SIDES:
    if abs(lay.curb_x[s]) > lay.lanes_x[1] + 1:  # a parking strip
      for z in _spaced(rng, -3, min(NEAR_Z, lay.end_z - 10), 5, 9):
        if rng.random() < 0.75 and _in_block(lay, z, 3):
          objects.car(b, rng, lay.curb_x[s] - s * 1.15, z, heading=s)
  for xc in lay.lane_centers():
    heading = 1 if xc > 0 else -1
    z = (8 if abs(xc - camera_x) < 1.5 else -4) + rng.uniform(0, 25)
    while z < NEAR_Z:
      crossing = [z1 for z0, z1 in zebra if z0 - 14 < z < z1]
      if crossing:
        z = crossing[0] + 1
        continue
      length = _vehicle(b, rng, xc + rng.uniform(-0.3, 0.3), z, heading)
      z += length + rng.uniform(4, 40)


def _vehicle(b, rng, x, z, heading):
  """Places a random vehicle whose rear (or front) end is at z; returns its length.

  Cyclists keep to the outer edge of their lane; every vehicle keeps to its own stretch of lane,
  so nothing intersects.
  """
  kind = rng.choice(6, p=[0.66, 0.08, 0.08, 0.07, 0.09, 0.02])
  if kind == 0:
    length = rng.uniform(3.7, 4.9)
    objects.car(b, rng, x, z + length / 2, heading, length)
    return length
  if kind == 1:
    return objects.truck(b, rng, x, z + 5.5, heading) + 1.0
  if kind == 2:
    return objects.bus(b, rng, x, z + 6.5, heading)
  if kind in (3, 4):
    return objects.rider(b, rng, x + heading * 0.8 * (kind == 4), z + 1.0, motor=kind == 3)
  length = rng.uniform(25, 35)
  return objects.bus(b, rng, x, z + length / 2, heading, label='train', length=length)
