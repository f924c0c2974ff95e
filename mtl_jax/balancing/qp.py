"""The small convex programs of the aggregators, solved exactly by enumerating faces.

Both programs live in the task dimension m (a few tasks), so instead of an iterative solver we try
every one of the 2^m candidate faces at once (vmap) and keep the one the optimality conditions
pick. Each face costs one m×m linear solve; the answer is exact up to that solve's rounding, has no
tolerance or iteration count to tune, and compiles to a fixed-shape program (jit-able, no
data-dependent control flow). The price is 2^m solves, so `MAX_TASKS` bounds m.

- `project_onto_dual_cone`: min_v vᵀGv subject to v ≥ u, for a positive-definite G (the dual form
  of projecting Jᵀu onto the dual cone of J's rows, Proposition 1 of arXiv:2406.16232). A face is
  the set B of constraints held at equality; its KKT point solves (Gv)_i = 0 off B, v_i = u_i on B,
  and it is optimal when v ≥ u and the multipliers 2(Gv)_B are ≥ 0. G must be positive definite
  (the callers add `reg_eps`·I), else a face's system can be singular.
- `minimize_on_simplex`: min_w bᵀw + r·sqrt(wᵀGw) over the probability simplex (CAGrad's dual).
  On the face with support S, stationarity gives w_S = k(μ·G_SS⁻¹1 − G_SS⁻¹b_S) with k, μ from a
  scalar quadratic (see `_face_point`); every feasible face point and every vertex is a candidate
  and the cheapest wins. Exact when the optimum's support has a non-singular Gram block, which holds
  whenever the rows on that support are linearly independent; for exactly collinear rows the
  optimum may sit on a singular face and be missed (nearly collinear rows are fine in float64).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

# 2^10 = 1024 faces of 10×10 solves each: still microseconds; past that the enumeration grows
# faster than any multi-task setup we train needs.
MAX_TASKS = 10


def faces(m: int) -> np.ndarray:
  """Every subset of range(m) as a boolean mask, [2^m, m] (a static table: m is a shape)."""
  return np.array(list(itertools.product([False, True], repeat=m)), dtype=bool)


def _dual_cone_face(G: jax.Array, u: jax.Array, bound: jax.Array):
  """The KKT point of the face where the constraints in `bound` are active, and how far it is
  from optimal (0 at the optimum: the worst of a violated constraint or a negative multiplier)."""
  A = jnp.where(bound[:, None], jnp.eye(len(u), dtype=G.dtype), G)
  v = jnp.linalg.solve(A, jnp.where(bound, u, 0.0))
  multipliers = 2.0 * G @ v
  violation = jnp.maximum(
    jnp.max(jnp.where(bound, 0.0, u - v)), jnp.max(jnp.where(bound, -multipliers, 0.0))
  )
  return v, jnp.where(jnp.isfinite(violation), violation, jnp.inf)


def project_onto_dual_cone(G: jax.Array, u: jax.Array) -> jax.Array:
  """argmin_v vᵀGv subject to v ≥ u (G positive definite, u of shape [m])."""
  vs, violations = jax.vmap(_dual_cone_face, in_axes=(None, None, 0))(G, u, faces(len(u)))
  return vs[jnp.argmin(violations)]


def _face_point(G: jax.Array, b: jax.Array, r, support: jax.Array) -> jax.Array:
  """The stationary point of bᵀw + r·sqrt(wᵀGw) on the simplex face `support` (NaN if none).

  Stationarity on the face: b_S + r·G_SS w_S / s = μ1 with s = sqrt(wᵀGw), so w_S = k(μx − y)
  with x = G_SS⁻¹1, y = G_SS⁻¹b_S, k = s/r. Then s² = k²(aμ² − 2cμ + d) (a = Σx, c = Σy, d = bᵀy)
  turns into r² = aμ² − 2cμ + d, and Σw = k(aμ − c) = 1 keeps only the root with aμ − c > 0:
  aμ − c = sqrt(c² − a(d − r²)), k = 1 / that.
  """
  inside = support[:, None] & support[None, :]
  A = jnp.where(inside, G, jnp.eye(len(b), dtype=G.dtype))
  x = jnp.linalg.solve(A, jnp.where(support, 1.0, 0.0))
  y = jnp.linalg.solve(A, jnp.where(support, b, 0.0))
  a, c, d = jnp.sum(x), jnp.sum(y), b @ y
  root = jnp.sqrt(c**2 - a * (d - r**2))
  mu = (c + root) / a
  return (mu * x - y) / root


def minimize_on_simplex(G: jax.Array, b: jax.Array, r) -> jax.Array:
  """argmin over the probability simplex of bᵀw + r·sqrt(wᵀGw) (G PSD, b of shape [m], r ≥ 0)."""
  m = len(b)
  face_points = jax.vmap(_face_point, in_axes=(None, None, None, 0))(G, b, r, faces(m)[1:])
  candidates = jnp.concatenate([face_points, jnp.eye(m, dtype=G.dtype)])
  quadratic = jnp.einsum('ki,ij,kj->k', candidates, G, candidates)
  cost = candidates @ b + r * jnp.sqrt(jnp.maximum(quadratic, 0.0))
  tolerance = 1e3 * jnp.finfo(G.dtype).eps
  feasible = jnp.all(candidates >= -tolerance, axis=1) & (jnp.abs(candidates.sum(1) - 1) < 1e-6)
  cost = jnp.where(feasible & jnp.isfinite(cost), cost, jnp.inf)
  return jnp.clip(candidates[jnp.argmin(cost)], 0.0, None)
