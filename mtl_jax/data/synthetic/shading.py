"""Deferred shading: normals, albedo, sun + sky light with building shadows, haze, sky, camera.

Runs once over the image after ray casting, on 1-D arrays of the non-sky pixels, so its cost does
not grow with the number of primitives.
"""

import numpy as np

from mtl_jax.data.synthetic import builder, raycast, textures

PLANE = 5  # kind of the implicit ground primitive appended after the scene's primitives
_AXIS = np.arange(3)[:, None]


def normals(kind, q, half):
  """Unit normals [3, K] from hit points in primitive-normalised coordinates q = (p - c) / half.

  Boxes take the face whose normalised coordinate is largest; cylinders are radial except on
  their caps; ellipsoids use the gradient of |q|^2. The ground (kind PLANE) faces up.
  """
  aq = np.abs(q)
  sign = np.sign(q)
  n = (aq >= np.maximum(np.maximum(aq[0], aq[1]), aq[2])) * sign
  curved = np.flatnonzero((kind != builder.BOX) & (kind != PLANE))
  if curved.size:
    k, qc, aqc = kind[curved], q[:, curved], aq[:, curved]
    on_axis = _AXIS == np.select(
      [k == builder.CYL_X, k == builder.CYL_Y, k == builder.CYL_Z], [0, 1, 2], -1
    )
    cap = np.where(on_axis, aqc, 0).sum(0) > 0.995
    radial = np.where(on_axis, 0, qc / half[:, curved])
    radial *= 1 / np.maximum(np.sqrt((radial * radial).sum(0)), 1e-6)
    n[:, curved] = np.where(cap, on_axis * sign[:, curved], radial)
  n[:, kind == PLANE] = np.array([[0], [1], [0]], np.float32)
  return n


def smooth_noise(grid, height, width):
  """[H, W] smooth noise: the coarse grid [h + 1, w + 1] bilinearly stretched over the image."""

  def interp(n, m):  # [n, m + 1] linear interpolation weights
    pos = (np.arange(n) + 0.5) / n * m
    return np.maximum(0, 1 - np.abs(pos[:, None] - np.arange(m + 1)[None]))

  gh, gw = grid.shape
  return (interp(height, gh - 1) @ grid @ interp(width, gw - 1).T).astype(np.float32)


def building_shadow(p, sun, walls):
  """Whether points [3, K] are shadowed by the street's building rows.

  Each row is a wall at x = walls[i]['x'] whose height along z is a 1 m height field; a point is
  in shadow when the ray towards the sun meets that wall below its top.
  """
  shadow = np.zeros(p.shape[1], bool)
  for wall in walls:
    if sun[0] * wall['x'] <= 0:
      continue  # the sun is on the other side of the street
    s = (wall['x'] - p[0]) / sun[0]
    zq = p[2] + s * sun[2]
    k = np.clip(zq - wall['z0'], 0, len(wall['h']) - 1).astype(np.int64)
    shadow |= (s > 0.05) & (p[1] + s * sun[1] < wall['h'][k])
  return shadow


def albedo(scene, ext, idx, p, n, tex):
  """Albedo [3, K] and emissive mask [K] for pixels sorted by texture code `tex`."""
  out = np.empty_like(p)
  emissive = np.zeros(idx.shape, bool)
  codes = np.flatnonzero(np.bincount(tex, minlength=builder.ROAD + 1))
  bounds = np.searchsorted(tex, codes).tolist() + [len(tex)]
  for code, a, b in zip(codes.tolist(), bounds[:-1], bounds[1:]):
    sl, pi = slice(a, b), idx[a:b]
    if code == builder.ROAD:
      out[:, sl] = textures.road(p[:, sl], scene.street)
      continue
    args = (
      p[:, sl],
      n[:, sl],
      ext['params'][:, pi],
      ext['color'][:, pi],
      ext['color2'][:, pi],
      ext['top'][pi],
    )
    if code == builder.LIGHT:
      out[:, sl], emissive[sl] = textures.light(*args)
    else:
      out[:, sl] = textures.BY_CODE[code](*args)
  return out, emissive


def sky(env, d, clouds):
  """Sky radiance [3, K] along rays d [3, K]: horizon-to-zenith gradient plus clouds [K]."""
  elev = d[1] / np.sqrt((d * d).sum(0))
  hor, zen = (np.asarray(env[k], np.float32)[:, None] for k in ('horizon', 'zenith'))
  base = hor + (zen - hor) * np.clip(elev * (1 / 0.45), 0, 1) ** 0.6
  alpha = np.clip((clouds - 1 + env['cloud_cover']) * 3, 0, 1) * np.clip(elev * 6, 0, 1)
  return base + (np.asarray(env['cloud_color'], np.float32)[:, None] - base) * alpha


def lighting(env, p, n, scene):
  """Irradiance [3, K]: hemispherical sky light, a sun with building shadows, ground darkening."""
  sun = np.asarray(env['sun_dir'], np.float32)
  direct = np.clip(sun @ n, 0, None)
  direct[building_shadow(p, sun, scene.shadow['walls'])] = 0
  ambient = np.asarray(env['ambient'], np.float32)[:, None] * (0.75 + 0.25 * n[1])
  # Cheap ambient occlusion: vertical surfaces darken towards the ground.
  occlusion = np.where(n[1] > 0.5, 1.0, 0.7 + 0.3 * np.clip(p[1], 0, 1))
  return (ambient + np.asarray(env['sun_color'], np.float32)[:, None] * direct) * occlusion


_NOISE = np.random.default_rng(7).standard_normal(1 << 20).astype(np.float32)


def sensor_noise(rng, shape):
  """Unit Gaussian noise of `shape`: a random window of a fixed bank (much cheaper to draw)."""
  size = int(np.prod(shape))
  if size > _NOISE.size // 2:
    return rng.standard_normal(shape, np.float32)
  start = int(rng.integers(_NOISE.size - size))
  return _NOISE[start : start + size].reshape(shape)


def soften(img, amount):
  """Blends [3, H, W] with its separable [1, 2, 1] / 4 blur: lens softness, less aliasing."""
  if amount <= 0:
    return img
  b = img * 0.5
  b[:, :, 1:] += img[:, :, :-1] * 0.25
  b[:, :, :-1] += img[:, :, 1:] * 0.25
  b[:, :, 0] += img[:, :, 0] * 0.25  # edge pixels reuse themselves
  b[:, :, -1] += img[:, :, -1] * 0.25
  c = b * 0.5
  c[:, 1:] += b[:, :-1] * 0.25
  c[:, :-1] += b[:, 1:] * 0.25
  c[:, 0] += b[:, 0] * 0.25
  c[:, -1] += b[:, -1] * 0.25
  return img + (c - img) * amount


def camera_response(rng, env, radiance):
  """Softening, auto-exposure, white balance, saturation, vignetting, gamma 2, noise → uint8.

  Like a real camera, exposure maps the image's mean radiance to the scene's `key` value.
  """
  h, w = radiance.shape[1:]
  yy = (np.arange(h, dtype=np.float32) - h / 2) / h
  xx = (np.arange(w, dtype=np.float32) - w / 2) / w
  vignette = 1 - env['vignette'] * (yy[:, None] ** 2 + xx[None] ** 2)
  exposure = env['key'] / max(float(radiance.mean()), 1e-3)
  gain = np.asarray(env['white_balance'], np.float32) * (exposure * 255.0**2)
  img = soften(radiance, env['blur']) * (gain[:, None, None] * vignette)
  mean = img.mean(0)
  img = (img - mean) * env['saturation'] + mean
  img = np.sqrt(np.clip(img, 0, 255.0**2)).transpose(1, 2, 0)
  img = img + sensor_noise(rng, img.shape) * env['noise'] + 0.5
  return np.clip(img, 0, 255).astype(np.uint8)


def _extended_tables(scene):
  """Per-primitive tables with one extra entry for the implicit ground primitive.

  Vector tables are stored [3, N + 1] so that gathering columns yields contiguous rows.
  """

  def column_table(rows, extra):
    return np.ascontiguousarray(np.vstack([rows, extra]).T, np.float32)

  return dict(
    kind=np.append(scene.kind, PLANE),
    center=column_table(0.5 * (scene.lo + scene.hi), [0, 0, 0]),
    half=column_table(0.5 * (scene.hi - scene.lo), [1, 1, 1]),
    texture=np.append(scene.texture, builder.ROAD).astype(np.int8),
    params=column_table(scene.params, np.zeros(builder.NUM_PARAMS)),
    color=column_table(scene.color, [0, 0, 0]),
    color2=column_table(scene.color2, [0, 0, 0]),
    top=np.append(scene.hi[:, 1], 0).astype(np.float32),
  )


def shade(scene, cam, d, depth, ids, rng):
  """Renders the image [H, W, 3] uint8 from the ray-cast depth and primitive ids.

  Works on the flat list of surface pixels sorted by texture code, so every texture sees one
  contiguous slice.
  """
  env, ext = scene.env, _extended_tables(scene)
  flat_ids, flat_d = ids.reshape(-1), d.reshape(3, -1)
  sel = np.flatnonzero(flat_ids != raycast.SKY)
  idx = flat_ids[sel]
  idx[idx == raycast.GROUND] = len(scene.kind)  # the ground's table entry
  order = np.argsort(ext['texture'][idx], kind='stable')
  sel, idx = sel[order], idx[order]
  tex = ext['texture'][idx]
  t = depth.reshape(-1)[sel]
  p = np.asarray(cam.position, np.float32)[:, None] + flat_d[:, sel] * t
  kind, half = ext['kind'][idx], ext['half'][:, idx]
  n = normals(kind, (p - ext['center'][:, idx]) / half, half)
  alb, emissive = albedo(scene, ext, idx, p, n, tex)
  col = alb * lighting(env, p, n, scene)
  col[:, emissive] = alb[:, emissive] * 1.5
  fog = np.exp(t * (-1 / env['visibility']))
  col = col * fog + np.asarray(env['haze'], np.float32)[:, None] * (1 - fog)
  radiance = np.empty((3, ids.size), np.float32)
  radiance[:, sel] = col
  sky_px = np.flatnonzero(flat_ids == raycast.SKY)
  clouds = smooth_noise(env['clouds_grid'], *ids.shape).reshape(-1)[sky_px]
  radiance[:, sky_px] = sky(env, flat_d[:, sky_px], clouds)
  return camera_response(rng, env, radiance.reshape(3, *ids.shape))
