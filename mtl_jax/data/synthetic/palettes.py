"""Per-scene colour choices, drawn so that colour alone does not identify a class.

Albedos are linear RGB in [0, 1]. Ranges for road, sidewalk, building, wall and sky overlap on
purpose (a mid grey can be any of them); the scene's lighting and camera response shift
everything further.
"""

import colorsys


def clip(c):
  """Plain-float RGB tuple kept inside (0, 1) (plain Python: these are 3-vectors)."""
  return tuple(min(max(float(v), 0.02), 0.98) for v in c)


def grey(rng, lo, hi, tint=0.04):
  """A grey of random lightness with a slight random tint."""
  v, t = rng.uniform(lo, hi), rng.uniform(-tint, tint, 3).tolist()
  return clip((v * (1 + t[0]), v * (1 + t[1]), v * (1 + t[2])))


def hsv(rng, hue, sat, val):
  """Colour from (lo, hi) ranges of hue [0, 1), saturation and value."""
  u = rng.random(3).tolist()
  return clip(
    colorsys.hsv_to_rgb(
      (hue[0] + u[0] * (hue[1] - hue[0])) % 1.0,
      sat[0] + u[1] * (sat[1] - sat[0]),
      val[0] + u[2] * (val[1] - val[0]),
    )
  )


def jitter(rng, color, amount=0.08):
  t = rng.uniform(-amount, amount, 3).tolist()
  return clip(c * (1 + d) for c, d in zip(color, t))


def road(rng):
  return grey(rng, 0.14, 0.5, 0.05)


def sidewalk(rng):
  if rng.random() < 0.3:  # reddish or beige pavers
    return hsv(rng, (0.0, 0.12), (0.15, 0.45), (0.3, 0.65))
  return grey(rng, 0.28, 0.72)


def building(rng):
  """One facade colour: plaster, brick, concrete or painted."""
  u = rng.random()
  if u < 0.35:
    return grey(rng, 0.25, 0.85)
  if u < 0.55:
    return hsv(rng, (0.02, 0.11), (0.1, 0.35), (0.45, 0.9))  # beige, sand, cream
  if u < 0.75:
    return hsv(rng, (0.97, 1.06), (0.35, 0.65), (0.25, 0.55))  # brick
  return hsv(rng, (0.0, 1.0), (0.1, 0.45), (0.35, 0.85))  # painted, any hue


def window(rng, sky):
  """Window glass: dark, or reflecting a tinted version of the sky."""
  if rng.random() < 0.6:
    return grey(rng, 0.05, 0.25, 0.15)
  f = rng.uniform(0.4, 0.9)
  return jitter(rng, [c * f for c in sky], 0.15)


def vegetation(rng, season):
  """Foliage; `season` in [0, 1] moves summer greens towards autumn yellows and browns."""
  hue = (0.2 - 0.12 * season, 0.36 - 0.15 * season)
  return hsv(rng, hue, (0.3, 0.75), (0.12, 0.45))


def terrain(rng, season):
  hue = (0.12 - 0.05 * season, 0.3 - 0.08 * season)
  return hsv(rng, hue, (0.2, 0.6), (0.2, 0.55))


def vehicle(rng):
  u = rng.random()
  if u < 0.55:  # the usual white, silver, grey and black cars
    return grey(rng, 0.04, 0.9, 0.03)
  return hsv(rng, (0.0, 1.0), (0.4, 0.9), (0.2, 0.8))


def clothing(rng):
  if rng.random() < 0.5:
    return grey(rng, 0.03, 0.6, 0.1)
  return hsv(rng, (0.0, 1.0), (0.2, 0.8), (0.1, 0.7))


def skin(rng):
  return hsv(rng, (0.03, 0.09), (0.25, 0.6), (0.25, 0.85))


def sign_face(rng):
  return [
    (0.8, 0.08, 0.06),
    (0.05, 0.2, 0.65),
    (0.85, 0.85, 0.8),
    (0.85, 0.65, 0.05),
    (0.1, 0.45, 0.15),
  ][rng.integers(5)]


def metal(rng):
  return grey(rng, 0.15, 0.6)


def sky(rng):
  """(horizon, zenith) colours: clear blue, hazy, overcast grey or dusk."""
  u = rng.random()
  if u < 0.45:
    zen = hsv(rng, (0.55, 0.62), (0.35, 0.7), (0.55, 0.85))
    w = rng.uniform(0.6, 0.85)
    hor = clip(c * 0.3 + w for c in zen)
  elif u < 0.85:
    hor = grey(rng, 0.55, 0.95, 0.06)
    f = rng.uniform(0.8, 1.0)
    zen = jitter(rng, [c * f for c in hor], 0.05)
  else:
    hor = hsv(rng, (0.02, 0.1), (0.2, 0.5), (0.6, 0.9))
    zen = hsv(rng, (0.58, 0.7), (0.2, 0.5), (0.3, 0.6))
  return hor, zen
