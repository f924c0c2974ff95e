"""Pinhole camera: pose, per-pixel rays, and screen rectangles of 3D boxes.

World frame: x right, y up, z forward along the street, metres; the road is the plane y = 0.
Camera frame: x right, y down, z along the optical axis. Ray directions are scaled so that their
camera-z component is 1, so the ray parameter t of a hit *is* its z-depth.
"""

import dataclasses

import numpy as np

NEAR = 0.3  # metres; nothing in a scene comes closer to the camera than this


@dataclasses.dataclass(frozen=True)
class Camera:
  """Intrinsics and pose; `rotation` maps camera coordinates to world coordinates."""

  position: np.ndarray  # (3,) world
  rotation: np.ndarray  # (3, 3), columns are the camera axes in world coordinates
  focal: float  # pixels
  cx: float  # principal point, pixels
  cy: float
  height: int  # image size, pixels
  width: int


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
  """Camera→world rotation; positive yaw looks right (+x), positive pitch looks down."""
  cy, sy = np.cos(yaw), np.sin(yaw)
  cp, sp = np.cos(pitch), np.sin(pitch)
  cr, sr = np.cos(roll), np.sin(roll)
  yaw_m = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
  flip = np.diag([1.0, -1.0, 1.0])  # camera y points down, world y up
  pitch_m = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])  # tilts the optical axis to +y_cam
  roll_m = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
  return yaw_m @ flip @ pitch_m @ roll_m


def make_camera(
  *, position, yaw, pitch, roll, focal_ratio, height, width, principal_offset=(0.0, 0.0)
) -> Camera:
  """Builds a camera whose focal length is `focal_ratio * width` (geometry scales with size)."""
  focal = focal_ratio * width
  return Camera(
    position=np.asarray(position, np.float64),
    rotation=rotation_matrix(yaw, pitch, roll),
    focal=float(focal),
    cx=width / 2 + principal_offset[0] * width,
    cy=height / 2 + principal_offset[1] * height,
    height=height,
    width=width,
  )


def camera_rays(cam: Camera) -> np.ndarray:
  """[3, H, W] float32 world ray directions through pixel centres, camera-z component 1."""
  u = (np.arange(cam.width, dtype=np.float64) + 0.5 - cam.cx) / cam.focal
  v = (np.arange(cam.height, dtype=np.float64) + 0.5 - cam.cy) / cam.focal
  r = cam.rotation
  # d = R @ (u, v, 1): separable in rows and columns.
  return (
    r[:, 0, None, None] * u[None, None, :]
    + r[:, 1, None, None] * v[None, :, None]
    + r[:, 2, None, None]
  ).astype(np.float32)


def ground_depth(cam: Camera, rows: np.ndarray, cols: np.ndarray, plane_y: float = 0.0):
  """z-depth where pixel-centre rays meet the horizontal plane y = plane_y (inf if they miss)."""
  dc = np.stack(
    [(cols + 0.5 - cam.cx) / cam.focal, (rows + 0.5 - cam.cy) / cam.focal, np.ones(np.shape(rows))],
    axis=-1,
  )
  dy = dc @ cam.rotation[1]
  with np.errstate(divide='ignore'):
    t = (plane_y - cam.position[1]) / dy
  return np.where(t > 0, t, np.inf)


_CORNERS = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], bool)
_EDGES = np.array(
  [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count('1') == 1]
)  # the 12 box edges


def screen_rects(cam: Camera, lo: np.ndarray, hi: np.ndarray):
  """Projects world boxes [N, 3] to pixel rectangles, clipped to the near plane.

  Returns (rects [N, 4] int as row0, row1, col0, col1, half-open; zmin [N]); boxes that are
  entirely behind the near plane or off screen get empty rectangles.
  """
  corners = np.where(_CORNERS[None], hi[:, None, :], lo[:, None, :])  # [N, 8, 3]
  pc = (corners - cam.position) @ cam.rotation  # camera coordinates
  a, b = pc[:, _EDGES[:, 0]], pc[:, _EDGES[:, 1]]  # [N, 12, 3]
  za, zb = a[..., 2] - NEAR, b[..., 2] - NEAR
  crosses = za * zb < 0
  with np.errstate(divide='ignore', invalid='ignore'):
    s = np.where(crosses, za / (za - zb), 0.0)
  cut = a + s[..., None] * (b - a)  # edge points on the near plane
  pts = np.concatenate([pc, cut], axis=1)
  valid = np.concatenate([pc[..., 2] >= NEAR, crosses], axis=1)
  z = np.where(valid, np.maximum(pts[..., 2], NEAR), 1.0)
  u = cam.focal * pts[..., 0] / z + cam.cx
  v = cam.focal * pts[..., 1] / z + cam.cy
  big = 1e9
  umin = np.where(valid, u, big).min(1)
  umax = np.where(valid, u, -big).max(1)
  vmin = np.where(valid, v, big).min(1)
  vmax = np.where(valid, v, -big).max(1)
  zmin = np.where(valid, z, np.inf).min(1)
  # Pixel centres sit at index + 0.5; keep every pixel whose centre may fall inside.
  rects = np.stack([np.floor(vmin), np.ceil(vmax), np.floor(umin), np.ceil(umax)], 1)
  rects = np.clip(rects, 0, [cam.height, cam.height, cam.width, cam.width]).astype(np.int64)
  return rects, zmin
