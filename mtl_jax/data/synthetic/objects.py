"""Composite street objects built from primitives: vehicles, people, trees, poles, clutter.

Each function places one object standing on the surface at height `y` with its footprint centred
at (x, z); vehicles and riders travel along z, `heading` = +1 (away) or -1 (towards the camera).
"""

from mtl_jax.data import labels
from mtl_jax.data.synthetic import builder as B
from mtl_jax.data.synthetic import palettes

ID = labels.TRAIN_ID
VOID = labels.IGNORE_LABEL


def _axle(b, x, w, z, r, label, color, y=0.0):
  """A pair of wheels as one cylinder along x (the body hides its middle)."""
  b.add(B.CYL_X, (x - w, y, z - r), (x + w, y + 2 * r, z + r), label, color)


def car(b, rng, x, z, heading=1, length=None):
  """Body box with lamps, a glass cabin set back from the bonnet, two axles; saloon or SUV."""
  length, width = length or rng.uniform(3.7, 4.9), rng.uniform(1.65, 1.95)
  tall = rng.random() < 0.25  # SUVs and vans
  r, clear = rng.uniform(0.29, 0.36), rng.uniform(0.22, 0.32)
  belt = rng.uniform(0.85, 1.05) + 0.15 * tall
  top = belt + rng.uniform(0.45, 0.6) + 0.25 * tall
  color = palettes.vehicle(rng)
  glass = palettes.grey(rng, 0.04, 0.2, 0.2)
  hw, hl = width / 2, length / 2
  b.box(
    x - hw,
    x + hw,
    clear,
    belt,
    z - hl,
    z + hl,
    ID['car'],
    color,
    texture=B.BODY,
    color2=palettes.grey(rng, 0.7, 0.95),
    params=(x, hw, heading),
  )
  back, front = (
    -hl + rng.uniform(0.1, 0.3) * length * (not tall) + 0.1,
    hl - rng.uniform(0.3, 0.42) * length * (1 - 0.6 * tall),
  )
  if heading < 0:
    back, front = -front, -back
  b.box(
    x - hw + 0.08,
    x + hw - 0.08,
    belt,
    top,
    z + back,
    z + front,
    ID['car'],
    color,
    texture=B.CABIN,
    color2=glass,
  )
  tyre = palettes.grey(rng, 0.03, 0.08)
  for zz in (z - hl + 0.55 + r, z + hl - 0.55 - r):
    _axle(b, x, hw - 0.04, zz, r, ID['car'], tyre)
  return length


def truck(b, rng, x, z, heading=1):
  """A cab with a windscreen band in front of a taller cargo box; three axles."""
  width, cab_l, box_l = 2.45, rng.uniform(1.8, 2.3), rng.uniform(5.0, 9.0)
  cab_top, box_top = rng.uniform(2.7, 3.1), rng.uniform(3.2, 3.9)
  color, cargo = palettes.vehicle(rng), palettes.vehicle(rng)
  glass = palettes.grey(rng, 0.04, 0.2, 0.2)
  hw, total = width / 2, cab_l + 0.3 + box_l
  z0 = z - heading * total / 2  # rear end
  zc = z0 + heading * (box_l + 0.3)
  b.box(
    x - hw,
    x + hw,
    0.5,
    cab_top,
    zc,
    zc + heading * cab_l,
    ID['truck'],
    color,
    texture=B.BAND,
    color2=glass,
    params=(1.6, cab_top - 0.2, 50.0),
  )
  b.box(x - hw, x + hw, 0.9, box_top, z0, z0 + heading * box_l, ID['truck'], cargo)
  tyre = palettes.grey(rng, 0.03, 0.08)
  for zz in (z0 + heading * 1.2, z0 + heading * 2.3, zc + heading * cab_l * 0.5):
    _axle(b, x, hw - 0.05, zz, 0.5, ID['truck'], tyre)
  return total


def bus(b, rng, x, z, heading=1, label='bus', length=None):
  """A bus, or with label 'train' and a longer body, a tram."""
  tram = label == 'train'
  length = length or rng.uniform(10.5, 13.0)
  width, top = (2.65, 3.5) if tram else (2.55, rng.uniform(3.0, 3.3))
  color = (
    palettes.vehicle(rng)
    if rng.random() < 0.6
    else palettes.hsv(rng, (0, 1), (0.5, 0.9), (0.4, 0.85))
  )
  glass = palettes.grey(rng, 0.04, 0.22, 0.2)
  hw, hl = width / 2, length / 2
  b.box(
    x - hw,
    x + hw,
    0.35,
    top,
    z - hl,
    z + hl,
    ID[label],
    color,
    texture=B.BAND,
    color2=glass,
    params=(1.15, top - 0.55, rng.uniform(1.2, 2.4)),
  )
  tyre = palettes.grey(rng, 0.03, 0.08)
  if tram:
    b.box(x - hw + 0.2, x + hw - 0.2, 0, 0.35, z - hl + 1, z + hl - 1, ID[label], tyre)
    return length
  for zz in (z - hl + 2.6, z + hl - 3.0):
    _axle(b, x, hw - 0.05, zz, 0.5, ID[label], tyre)
  return length


def person(b, rng, x, z, y=0.0, facing_x=False):
  """Two legs mid-stride, a torso (arms included) and a head; walking along z or x."""
  h = rng.uniform(1.5, 1.95)
  legs, shirt = palettes.clothing(rng), palettes.clothing(rng)
  stride = rng.uniform(-0.2, 0.2)
  a, c = (2, 0) if facing_x else (0, 2)  # legs side by side along axis a, stride along c
  for side in (-1, 1):
    lo, hi = [0.0] * 3, [0.0] * 3
    lo[1], hi[1] = y, y + 0.47 * h
    pos = [x, 0, z]
    lo[a], hi[a] = pos[a] + side * 0.02, pos[a] + side * 0.15
    lo[c], hi[c] = pos[c] + side * stride - 0.08, pos[c] + side * stride + 0.08
    b.add(B.BOX, lo, hi, ID['person'], legs)
  hx, hz = (0.13, 0.23) if facing_x else (0.23, 0.13)
  b.box(x - hx, x + hx, y + 0.46 * h, y + 0.82 * h, z - hz, z + hz, ID['person'], shirt)
  _head(b, rng, x, y + 0.905 * h, z, ID['person'])


def _head(b, rng, x, yc, z, label):
  """An ellipsoid head centred at height yc: skin, or hair / a hat seen from behind."""
  color = palettes.skin(rng) if rng.random() < 0.7 else palettes.grey(rng, 0.05, 0.3)
  b.add(B.ELLIPSOID, (x - 0.1, yc - 0.12, z - 0.11), (x + 0.1, yc + 0.12, z + 0.11), label, color)


def bicycle(b, rng, x, z, y=0.0, label='bicycle'):
  """Two wheels, top tube, seat tube and handlebar; ridden bicycles keep the label bicycle."""
  color = palettes.vehicle(rng)
  tyre = palettes.grey(rng, 0.03, 0.1)
  r = 0.34
  for zz in (z - 0.52, z + 0.52):
    b.add(B.CYL_X, (x - 0.025, y, zz - r), (x + 0.025, y + 2 * r, zz + r), ID[label], tyre)
  b.box(x - 0.03, x + 0.03, y + 0.78, y + 0.86, z - 0.42, z + 0.4, ID[label], color)
  b.box(x - 0.03, x + 0.03, y + 0.34, y + 0.86, z - 0.2, z - 0.13, ID[label], color)
  b.box(x - 0.28, x + 0.28, y + 0.95, y + 1.0, z + 0.34, z + 0.4, ID[label], color)


def rider(b, rng, x, z, motor=False):
  """A person riding a bicycle or a motorcycle along z."""
  if motor:
    tyre = palettes.grey(rng, 0.03, 0.08)
    for zz in (z - 0.7, z + 0.7):
      _axle(b, x, 0.06, zz, 0.31, ID['motorcycle'], tyre)
    b.box(x - 0.2, x + 0.2, 0.35, 0.9, z - 0.6, z + 0.55, ID['motorcycle'], palettes.vehicle(rng))
    seat = 0.85
  else:
    bicycle(b, rng, x, z)
    seat = 0.92
  legs, shirt = palettes.clothing(rng), palettes.clothing(rng)
  b.box(x - 0.15, x + 0.15, seat - 0.45, seat + 0.05, z - 0.2, z + 0.15, ID['rider'], legs)
  b.box(x - 0.21, x + 0.21, seat + 0.05, seat + 0.62, z - 0.22, z + 0.08, ID['rider'], shirt)
  _head(b, rng, x, seat + 0.75, z - 0.02, ID['rider'])
  return 2.0


def tree(b, rng, x, z, y=0.0, season=0.0):
  """A trunk and one or two ellipsoid crowns, all vegetation (as Cityscapes labels trunks)."""
  trunk_h = rng.uniform(2.5, 4.0)
  tr = rng.uniform(0.1, 0.22)
  bark = palettes.hsv(rng, (0.05, 0.1), (0.2, 0.5), (0.12, 0.35))
  b.add(B.CYL_Y, (x - tr, y, z - tr), (x + tr, y + trunk_h + 0.5, z + tr), ID['vegetation'], bark)
  rx, ry = rng.uniform(1.3, 3.2), rng.uniform(1.6, 3.8)
  leaf = palettes.vegetation(rng, season)
  yc = y + trunk_h + 0.9 * ry  # crowns stay above a camera (< 2 m) even when they overhang
  b.add(
    B.ELLIPSOID,
    (x - rx, yc - ry, z - rx),
    (x + rx, yc + ry, z + rx),
    ID['vegetation'],
    leaf,
    texture=B.FOLIAGE,
  )
  if rng.random() < 0.5:  # a second lobe makes crowns less regular
    dx, dz = rng.uniform(-0.6, 0.6, 2) * rx
    s = rng.uniform(0.5, 0.8)
    b.add(
      B.ELLIPSOID,
      (x + dx - s * rx, yc + 0.4 * ry - s * ry, z + dz - s * rx),
      (x + dx + s * rx, yc + 0.4 * ry + s * ry, z + dz + s * rx),
      ID['vegetation'],
      palettes.jitter(rng, leaf, 0.15),
      texture=B.FOLIAGE,
    )


def street_lamp(b, rng, x, z, toward, y=0.0):
  """A lamp post with an arm reaching over the road (toward = -1 or +1 along x)."""
  h, r = rng.uniform(5.5, 9.0), rng.uniform(0.06, 0.11)
  color = palettes.metal(rng)
  b.add(B.CYL_Y, (x - r, y, z - r), (x + r, y + h, z + r), ID['pole'], color)
  arm = rng.uniform(0.8, 2.2)
  b.box(x, x + toward * arm, y + h - 0.12, y + h, z - 0.05, z + 0.05, ID['pole'], color)
  b.box(
    x + toward * (arm - 0.6),
    x + toward * (arm + 0.05),
    y + h - 0.3,
    y + h - 0.05,
    z - 0.18,
    z + 0.18,
    ID['pole'],
    palettes.grey(rng, 0.3, 0.8),
  )


def sign_post(b, rng, x, z, y=0.0, facing=1):
  """A thin pole carrying one or two traffic signs facing -facing·z (towards the traffic)."""
  h, r = rng.uniform(2.3, 3.4), rng.uniform(0.03, 0.05)
  metal = palettes.metal(rng)
  b.add(B.CYL_Y, (x - r, y, z - r), (x + r, y + h, z + r), ID['pole'], metal)
  top = y + h
  for _ in range(1 + (rng.random() < 0.35)):
    s = rng.uniform(0.32, 0.45)
    zf = z - facing * (r + 0.03)
    lo, hi = (x - s, top - 2 * s, zf - 0.02), (x + s, top, zf + 0.02)
    kind = B.ELLIPSOID if rng.random() < 0.4 else B.BOX
    b.add(
      kind,
      lo,
      hi,
      ID['traffic sign'],
      metal,
      texture=B.SIGN,
      color2=palettes.sign_face(rng),
      params=(facing,),
    )
    top -= 2 * s + 0.05


def traffic_light(b, rng, x, z, y=0.0, facing=1, mast=0.0):
  """A signal head on a post, plus (mast != 0) an arm over the road with a second head."""
  h, r = rng.uniform(3.2, 4.2), rng.uniform(0.05, 0.09)
  metal = palettes.metal(rng)
  b.add(B.CYL_Y, (x - r, y, z - r), (x + r, y + (5.8 if mast else h), z + r), ID['pole'], metal)
  _signal_head(b, rng, x, y + h, z - facing * (r + 0.15), facing)
  if mast:
    b.box(
      min(x, x + mast), max(x, x + mast), y + 5.6, y + 5.8, z - 0.07, z + 0.07, ID['pole'], metal
    )
    _signal_head(b, rng, x + 0.8 * mast, y + 5.6, z - facing * 0.2, facing)


def _signal_head(b, rng, x, top, z, facing):
  """A signal housing hanging from `top` with one lit lamp (red, amber or green)."""
  housing = palettes.grey(rng, 0.03, 0.25) if rng.random() < 0.8 else (0.55, 0.45, 0.08)
  state = rng.integers(3)
  lamp = [(1.0, 0.15, 0.1), (1.0, 0.7, 0.1), (0.2, 1.0, 0.5)][state]
  yc = top - 0.17 - 0.28 * state
  b.box(
    x - 0.17,
    x + 0.17,
    top - 0.9,
    top,
    z - 0.15,
    z + 0.15,
    ID['traffic light'],
    housing,
    texture=B.LIGHT,
    color2=lamp,
    params=(x, yc, 0.11, facing),
  )


def clutter(b, rng, x, z, y=0.0):
  """Unlabelled street furniture (void): bins, boxes, advertising columns."""
  u = rng.random()
  color = palettes.hsv(rng, (0, 1), (0.1, 0.7), (0.2, 0.8))
  if u < 0.5:
    w, h = rng.uniform(0.4, 0.8), rng.uniform(0.7, 1.2)
    b.box(x - w / 2, x + w / 2, y, y + h, z - w / 2, z + w / 2, VOID, color)
  elif u < 0.8:
    b.add(
      B.CYL_Y, (x - 0.3, y, z - 0.3), (x + 0.3, y + rng.uniform(0.8, 1.1), z + 0.3), VOID, color
    )
  else:
    b.add(B.CYL_Y, (x - 0.6, y, z - 0.6), (x + 0.6, y + 3.0, z + 0.6), VOID, color)
