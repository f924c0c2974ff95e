"""The aggregation methods: a Jacobian J of shape [tasks, params] → one update of shape [params].

Each function reproduces torchjd 0.18's aggregator of the same name formula for formula
(torchjd/aggregation/_<name>.py), conventions included: the Gramian G = JJᵀ is normalised by its
trace where torchjd normalises it, `pref_vector` weights are used as given (not renormalised), and
randomness is drawn once per call from a `key`. Options arrive already checked (see __init__).
"""

import jax
import jax.numpy as jnp

from mtl_jax.balancing import qp

HIGHEST = jax.lax.Precision.HIGHEST  # accelerators' default matmul would round JJᵀ to bf16/tf32


def gramian(J: jax.Array) -> jax.Array:
  return jnp.matmul(J, J.T, precision=HIGHEST)


def combine(weights: jax.Array, J: jax.Array) -> jax.Array:
  return jnp.matmul(weights, J, precision=HIGHEST)


def normalize(G: jax.Array, eps: float) -> jax.Array:
  """G/trace(G), i.e. the Gramian of J/‖J‖_F; zero when trace(G) < eps (J is numerically 0)."""
  trace = jnp.trace(G)
  return jnp.where(trace < eps, 0.0, G / jnp.where(trace < eps, 1.0, trace))


def _preference(pref_vector, m: int, dtype, default: float) -> jax.Array:
  if pref_vector is None:
    return jnp.full(m, default, dtype)
  return jnp.asarray(pref_vector, dtype)


def pinv(A: jax.Array) -> jax.Array:
  """torch.linalg.pinv's cut-off (σ < eps·max(shape)·σ_max), not jnp's tenfold larger default."""
  return jnp.linalg.pinv(A, rtol=jnp.finfo(A.dtype).eps * max(A.shape))


def mean(J: jax.Array) -> jax.Array:
  return combine(jnp.full(len(J), 1.0 / len(J), J.dtype), J)


def sum_(J: jax.Array) -> jax.Array:
  return combine(jnp.ones(len(J), J.dtype), J)


def _dual_cone_gramian(J: jax.Array, norm_eps: float, reg_eps: float) -> jax.Array:
  G = normalize(gramian(J), norm_eps)
  return G + reg_eps * jnp.eye(len(J), dtype=J.dtype)  # rounding can leave G barely indefinite


def upgrad(J: jax.Array, pref_vector, norm_eps: float, reg_eps: float) -> jax.Array:
  """Each row projected onto the dual cone of all rows, combined with `pref_vector` (mean)."""
  G = _dual_cone_gramian(J, norm_eps, reg_eps)
  u = _preference(pref_vector, len(J), J.dtype, 1.0 / len(J))
  W = jax.vmap(qp.project_onto_dual_cone, in_axes=(None, 0))(G, jnp.diag(u))
  return combine(W.sum(axis=0), J)


def dualproj(J: jax.Array, pref_vector, norm_eps: float, reg_eps: float) -> jax.Array:
  """The `pref_vector` combination (mean) projected onto the dual cone of the rows."""
  G = _dual_cone_gramian(J, norm_eps, reg_eps)
  u = _preference(pref_vector, len(J), J.dtype, 1.0 / len(J))
  return combine(qp.project_onto_dual_cone(G, u), J)


def mgda_weights(G: jax.Array, epsilon: float, max_iters: int) -> jax.Array:
  """Frank-Wolfe on the simplex from the uniform point, stopping when the step γ < epsilon or
  after max_iters steps (Algorithm 2 of Sener & Koltun 2018), as torchjd runs it."""

  def step(state):
    alpha, i, _ = state
    t = jnp.argmin(G @ alpha)  # first minimum on ties, as torch.argmin
    a, b, c = alpha @ G[:, t], alpha @ G @ alpha, G[t, t]
    safe = jnp.where((c <= a) | (b <= a), 1.0, b + c - 2 * a)
    gamma = jnp.where(c <= a, 1.0, jnp.where(b <= a, 0.0, (b - a) / safe))
    alpha = (1 - gamma) * alpha + gamma * jax.nn.one_hot(t, len(G), dtype=G.dtype)
    return alpha, i + 1, gamma < epsilon

  start = (jnp.full(len(G), 1.0 / len(G), G.dtype), 0, False)
  alpha, _, _ = jax.lax.while_loop(lambda s: (s[1] < max_iters) & ~s[2], step, start)
  return alpha


def mgda(J: jax.Array, epsilon: float, max_iters: int) -> jax.Array:
  return combine(mgda_weights(gramian(J), epsilon, max_iters), J)


def pcgrad_weights(G: jax.Array, orders: jax.Array) -> jax.Array:
  """PCGrad's weights: row i, projected in turn off each row j (in `orders[i]`) it conflicts
  with, summed over i. `orders` is [m, m], one permutation of range(m) per row."""

  def project_row(i, order):
    def project(w, j):
      inner = G[j] @ w
      projected = w.at[j].add(-inner / G[j, j])
      return jnp.where((j != i) & (inner < 0.0), projected, w), None

    return jax.lax.scan(project, jax.nn.one_hot(i, len(G), dtype=G.dtype), order)[0]

  return jax.vmap(project_row)(jnp.arange(len(G)), orders).sum(axis=0)


def pcgrad(J: jax.Array, key: jax.Array) -> jax.Array:
  m = len(J)
  orders = jax.vmap(lambda k: jax.random.permutation(k, m))(jax.random.split(key, m))
  return combine(pcgrad_weights(gramian(J), orders), J)


def cagrad(J: jax.Array, c: float, norm_eps: float) -> jax.Array:
  """g0 + (c‖g0‖/‖g_w‖)·g_w with g0 the mean row and g_w the simplex combination minimising
  g_wᵀg0 + c‖g0‖‖g_w‖, on the trace-normalised Gramian; zero when ‖g_w‖ < norm_eps."""
  m = len(J)
  G = normalize(gramian(J), norm_eps)
  mean_weights = jnp.full(m, 1.0 / m, J.dtype)
  radius = c * jnp.sqrt(jnp.maximum(mean_weights @ G @ mean_weights, 0.0))
  w = qp.minimize_on_simplex(G, G @ mean_weights, radius)
  g_w_norm = jnp.sqrt(jnp.maximum(w @ G @ w, 0.0))
  boost = radius / jnp.where(g_w_norm >= norm_eps, g_w_norm, 1.0)
  return combine(jnp.where(g_w_norm >= norm_eps, mean_weights + boost * w, 0.0), J)


def imtl_g(J: jax.Array) -> jax.Array:
  """Weights ∝ G⁺·diag(G)^½ summing to 1 (zero when they sum to ~0): every row gets an equal
  projection onto the update."""
  G = gramian(J)
  v = pinv(G) @ jnp.sqrt(jnp.diagonal(G))
  total = v.sum()
  return combine(jnp.where(jnp.abs(total) < 1e-12, 0.0, v / total), J)


def config(J: jax.Array, pref_vector) -> jax.Array:
  """ConFIG: the direction whose cosines with the unit rows follow `pref_vector` (ones), scaled
  to the sum of the rows' projections on it."""
  weights = _preference(pref_vector, len(J), J.dtype, 1.0)
  units = jnp.nan_to_num(J / jnp.linalg.norm(J, axis=1, keepdims=True), nan=0.0)
  # pinv(U) = Uᵀ(UUᵀ)⁺, cut off on the tasks×tasks Gram matrix: torch.linalg.pinv's cut-off on U
  # itself, eps·max(shape), passes 1 beyond 1/eps parameters (8.4 M in float32) and zeroes every
  # singular value, which made the direction 0 on an 11 M-parameter encoder (torchjd's too).
  gram = jnp.matmul(units, units.T, precision=HIGHEST)
  best = jnp.matmul(units.T, jnp.matmul(pinv(gram), weights, precision=HIGHEST), precision=HIGHEST)
  unit = best / jnp.maximum(jnp.linalg.norm(best), 1e-12)  # torch.nn.functional.normalize
  return jnp.sum(jnp.matmul(J, unit, precision=HIGHEST)) * unit


def _balance_scale(eigenvalues: jax.Array, rank: jax.Array, scale_mode: str) -> jax.Array:
  """The kept eigenvalues are the top `rank` of the ascending `eigenvalues`: their minimum, lower
  median (torch.median's) or mean."""
  m = len(eigenvalues)
  first = jnp.clip(m - rank, 0, m - 1)
  if scale_mode == 'min':
    return eigenvalues[first]
  if scale_mode == 'median':
    return eigenvalues[jnp.clip(first + (rank - 1) // 2, 0, m - 1)]
  kept = jnp.arange(m) >= m - rank
  return jnp.sum(jnp.where(kept, eigenvalues, 0.0)) / jnp.maximum(rank, 1)  # 'rmse'


def balance_transformation(G: jax.Array, scale_mode: str) -> jax.Array:
  """Aligned-MTL's B = sqrt(scale)·V Σ^-½ Vᵀ on the numerically non-zero eigenpairs of G (the
  identity when there are none)."""
  eigenvalues, V = jnp.linalg.eigh(G)
  kept = eigenvalues > jnp.max(eigenvalues) * len(G) * jnp.finfo(G.dtype).eps
  rank = jnp.sum(kept)
  inverse_root = jnp.where(kept, 1.0 / jnp.sqrt(jnp.where(kept, eigenvalues, 1.0)), 0.0)
  B = jnp.sqrt(_balance_scale(eigenvalues, rank, scale_mode)) * (V * inverse_root) @ V.T
  return jnp.where(rank == 0, jnp.eye(len(G), dtype=G.dtype), B)


def aligned_mtl(J: jax.Array, pref_vector, scale_mode: str) -> jax.Array:
  """The rows' combination `pref_vector` (mean) mapped through the balance transformation that
  equalises the Gramian's eigenvalues."""
  G = gramian(J)
  u = _preference(pref_vector, len(J), J.dtype, 1.0 / len(J))
  return combine(balance_transformation(G, scale_mode) @ u, J)


def graddrop_from_draw(J: jax.Array, draw: jax.Array, f, leak) -> jax.Array:
  """GradDrop given its uniform draw [params]: per parameter, keep the positive entries where
  f(purity) > draw and the negative ones where it is below; row i leaks `leak[i]` through."""
  purity = 0.5 * (1.0 + J.sum(axis=0) / jnp.abs(J).sum(axis=0))  # NaN on a zero column: dropped
  fP = f(purity)
  keep = ((fP > draw) & (J > 0)) | ((fP < draw) & (J < 0))
  leak = _preference(leak, len(J), J.dtype, 0.0)[:, None]
  return jnp.sum((leak + (1.0 - leak) * keep) * J, axis=0)


def graddrop(J: jax.Array, key: jax.Array, f, leak) -> jax.Array:
  return graddrop_from_draw(J, jax.random.uniform(key, J.shape[1:], J.dtype), f, leak)


def nash_mtl_weights(G: jax.Array, iterations: int = 30) -> jax.Array:
  """The Nash bargaining weights α > 0 with α_i·(Gα)_i = 1 for every task (Navon et al. 2022,
  eq. 2): the minimiser of the strictly convex ½αᵀGα − Σ log α_i, by damped Newton (the function
  is self-concordant, so every step stays positive and it converges from any start; 30 steps
  reach float64 rounding from the diagonal solution 1/√G_ii on well-posed G). A task whose
  gradient is zero (G_ii ≤ 1e-12·trace) can be helped by no direction: it gets weight 0 and the
  others share the bargain. torchjd approximates the same point by a sequence of ECOS solves."""
  zero = jnp.diag(G) <= 1e-12 * jnp.trace(G)
  G = G + jnp.diag(zero.astype(G.dtype))  # decoupled, with α_i = 1, then dropped
  start = 1.0 / jnp.sqrt(jnp.diag(G))

  def newton(_, alpha):
    gradient = G @ alpha - 1.0 / alpha
    hessian = G + jnp.diag(1.0 / alpha**2)
    delta = -jnp.linalg.solve(hessian, gradient)
    decrement = jnp.sqrt(jnp.maximum(-gradient @ delta, 0.0))
    return alpha + delta / (1.0 + jnp.where(decrement > 0.25, decrement, 0.0))

  return jnp.where(zero, 0.0, jax.lax.fori_loop(0, iterations, newton, start))


def nash_mtl(J: jax.Array, max_norm: float) -> jax.Array:
  """Σ α_t J_t with the Nash weights of the Gramian, scaled down to norm `max_norm` if longer
  (0: never), as torchjd's NashMTL with update_weights_every=1: solved on G/‖G‖_F, whose weights
  are √‖G‖_F times G's."""
  G = gramian(J)
  scale = jnp.linalg.norm(G)
  safe = jnp.where(scale > 0, scale, 1.0)
  alpha = nash_mtl_weights(G / safe) / jnp.sqrt(safe)
  d = combine(jnp.where(scale > 0, alpha, 0.0), J)
  norm = jnp.linalg.norm(d)
  return d * jnp.where((max_norm > 0) & (norm > max_norm), max_norm / norm, 1.0)
