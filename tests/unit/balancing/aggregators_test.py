"""Parity of mtl_jax.balancing with torchjd 0.18: each method on the same Jacobians (2 and 3 tasks;
random, conflicting, aligned, nearly collinear rows and a zero row) gives torchjd's update to a
relative error ≤ 1e-4. Parity runs in float64 on both sides (jax.enable_x64) so that it measures
the methods, not rounding; a float32 check against torchjd in float32 covers what training gets."""

import functools

import cvxpy
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchjd.aggregation as tjd
from torchjd.linalg import QuadprogProjector

from mtl_jax.balancing import METHODS, aggregate, aggregators

PARITY = 1e-4
FLOAT32 = 1e-3  # measured worst 4e-5
# Clarabel's tolerances for torchjd's CAGrad: its defaults (1e-8 on the objective) leave the
# weights up to 1.3e-4 off the optimum on conflicting rows, where the objective is flat; tightened,
# Clarabel agrees with our exact face enumeration to ~1e-8.
TIGHT_CLARABEL = {'tol_gap_abs': 1e-11, 'tol_gap_rel': 1e-11, 'tol_feas': 1e-11}


@pytest.fixture(autouse=True)
def tight_clarabel(monkeypatch):
  solve = cvxpy.Problem.solve

  def tight(self, *args, **kwargs):  # NashMTL's ECOS keeps its own settings
    extra = {} if kwargs.get('solver') == cvxpy.ECOS else TIGHT_CLARABEL
    return solve(self, *args, **extra, **kwargs)

  monkeypatch.setattr(cvxpy.Problem, 'solve', tight)


def jacobians(tasks: int, params: int) -> dict[str, np.ndarray]:
  """The cases every method is checked on, by name."""
  rng = np.random.default_rng(10 * tasks + params)
  normal = lambda *shape: rng.normal(size=shape)
  conflicting, collinear, zero_row = (normal(tasks, params) for _ in range(3))
  conflicting[1] = -0.8 * conflicting[0] + 0.3 * normal(params)  # cosine ≈ -0.9
  collinear[1] = 2.0 * collinear[0] + 1e-4 * normal(params)
  zero_row[-1] = 0.0
  return {
    'random': normal(tasks, params),
    'conflicting': conflicting,
    'aligned': normal(params) + 0.1 * normal(tasks, params),
    'nearly collinear': collinear,
    'zero row': zero_row,
  }


SHAPES = [(2, 5), (2, 50), (3, 5), (3, 50)]
CASES = {shape: jacobians(*shape) for shape in SHAPES}  # shape → kind → J

# name → (torchjd aggregator, our options): every deterministic method at its defaults...
DETERMINISTIC = {
  'mean': (tjd.Mean(), {}),
  'sum': (tjd.Sum(), {}),
  'upgrad': (tjd.UPGrad(), {}),
  'dualproj': (tjd.DualProj(), {}),
  'mgda': (tjd.MGDA(), {}),
  'cagrad': (tjd.CAGrad(c=0.5), {'c': 0.5}),
  'imtl_g': (tjd.IMTLG(), {}),
  'config': (tjd.ConFIG(), {}),
  'aligned_mtl': (tjd.AlignedMTL(), {}),
}
# ...and with options set (pref_vector ones on 3 tasks only: one number per task).
PREF = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
WITH_OPTIONS = [
  ('upgrad', tjd.UPGrad(PREF), {'pref_vector': (0.2, 0.5, 0.3)}),
  ('dualproj', tjd.DualProj(PREF), {'pref_vector': (0.2, 0.5, 0.3)}),
  (
    'dualproj',
    tjd.DualProj(projector=QuadprogProjector(norm_eps=1e-3, reg_eps=1e-2)),
    {'norm_eps': 1e-3, 'reg_eps': 1e-2},
  ),
  ('mgda', tjd.MGDA(epsilon=1e-5, max_iters=7), {'epsilon': 1e-5, 'max_iters': 7}),
  ('cagrad', tjd.CAGrad(c=2.0), {'c': 2.0}),
  ('config', tjd.ConFIG(PREF), {'pref_vector': (0.2, 0.5, 0.3)}),
  ('aligned_mtl', tjd.AlignedMTL(PREF), {'pref_vector': (0.2, 0.5, 0.3)}),
  ('aligned_mtl', tjd.AlignedMTL(scale_mode='median'), {'scale_mode': 'median'}),
  ('aligned_mtl', tjd.AlignedMTL(scale_mode='rmse'), {'scale_mode': 'rmse'}),
]


def relative_error(ours, reference) -> float:
  ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
  return float(np.linalg.norm(ours - reference) / max(np.linalg.norm(reference), 1e-12))


def ours(name: str, kinds: dict, dtype=jnp.float64, **options) -> dict:
  """`aggregate` on each Jacobian of one shape, in one compiled call (which keeps this fast)."""
  run = jax.jit(jax.vmap(functools.partial(aggregate, name, **options)))
  updates = run(jnp.asarray(np.stack(list(kinds.values())), dtype))
  return dict(zip(kinds, np.asarray(updates)))


def errors(name, reference, options, shapes=SHAPES, dtype=jnp.float64, torch_dtype=torch.float64):
  """(shape, kind) → relative error against torchjd."""
  found = {}
  for shape in shapes:
    for kind, update in ours(name, CASES[shape], dtype, **options).items():
      expected = reference(torch.tensor(CASES[shape][kind], dtype=torch_dtype)).numpy()
      found[shape, kind] = relative_error(update, expected)
  return found


@pytest.mark.parametrize('name', DETERMINISTIC)
def test_matches_torchjd(name):
  reference, options = DETERMINISTIC[name]
  with jax.enable_x64(True):
    found = errors(name, reference, options)
  assert max(found.values()) <= PARITY, found


@pytest.mark.parametrize('name, reference, options', WITH_OPTIONS)
def test_matches_torchjd_with_options(name, reference, options):
  shapes = [s for s in SHAPES if s[0] == 3] if 'pref_vector' in options else SHAPES
  with jax.enable_x64(True):
    found = errors(name, reference, options, shapes)
  assert max(found.values()) <= PARITY, found


# In float32 a nearly collinear pair puts these at a rank cut-off (a pseudo-inverse, an eigenvalue
# threshold) or a condition number near 1/eps: torchjd in float32 lands elsewhere too.
RANK_SENSITIVE = {'imtl_g', 'aligned_mtl', 'config'}


@pytest.mark.parametrize('name', DETERMINISTIC)
def test_float32_matches_torchjd_in_float32(name):
  """Training runs in float32; the QP methods keep float32 parity even on nearly collinear rows
  (their Gramian is trace-normalised and regularised)."""
  reference, options = DETERMINISTIC[name]
  found = errors(name, reference, options, dtype=jnp.float32, torch_dtype=torch.float32)
  if name in RANK_SENSITIVE:
    found = {case: error for case, error in found.items() if case[1] != 'nearly collinear'}
  assert max(found.values()) <= FLOAT32, found


def test_pcgrad_matches_torchjd_with_the_same_orders():
  """PCGrad visits the other rows in random order (one torch.randperm per row); replaying
  torchjd's draws through our formula gives its result, and with two tasks the order is moot."""
  weights = jax.jit(aggregators.pcgrad_weights)
  with jax.enable_x64(True):
    for (tasks, _), kinds in CASES.items():
      for J in kinds.values():
        torch.manual_seed(tasks)
        orders = np.stack([torch.randperm(tasks).numpy() for _ in range(tasks)])
        torch.manual_seed(tasks)
        reference = tjd.PCGrad()(torch.tensor(J)).numpy()
        assert relative_error(weights(J @ J.T, orders) @ J, reference) <= PARITY
    for shape in [(2, 5), (2, 50)]:
      for kind, update in ours('pcgrad', CASES[shape], key=jax.random.key(1)).items():
        expected = tjd.PCGrad()(torch.tensor(CASES[shape][kind])).numpy()
        assert relative_error(update, expected) <= PARITY, (shape, kind)


def test_graddrop_matches_torchjd_with_the_same_draw():
  """GradDrop draws one uniform per parameter (torch.rand); replaying torchjd's draw through our
  formula gives its result, with a leak and a non-identity f."""
  leak, f = (0.1, 0.3, 0.0), lambda p: p**2
  formula = jax.jit(aggregators.graddrop_from_draw, static_argnums=(2, 3))
  with jax.enable_x64(True):
    for (tasks, params), kinds in CASES.items():
      for J in kinds.values():
        torch.manual_seed(params)
        draw = torch.rand(params, dtype=torch.float64).numpy()
        torch.manual_seed(params)
        reference = tjd.GradDrop(f=f, leak=torch.tensor(leak[:tasks]))(torch.tensor(J)).numpy()
        assert relative_error(formula(J, draw, f, leak[:tasks]), reference) <= PARITY


def test_graddrop_averages_to_its_expected_update():
  """With key-drawn uniforms a positive entry survives with probability P (its column's
  positive-sign purity) and a negative one with 1 − P: the mean over many keys converges."""
  J = jnp.asarray(CASES[3, 50]['conflicting'], jnp.float32)
  keys = jax.random.split(jax.random.key(0), 4000)
  mean = jax.jit(jax.vmap(lambda k: aggregate('graddrop', J, key=k)))(keys).mean(axis=0)
  purity = 0.5 * (1 + J.sum(0) / jnp.abs(J).sum(0))
  expected = jnp.sum(jnp.where(J > 0, purity, 1 - purity) * J, axis=0)
  assert relative_error(mean, expected) <= 0.05


def _nash_residual(J: np.ndarray, update: np.ndarray) -> float:
  """max |α_i·(Gα)_i − 1| of the weights α that make `update` (unclipped) from the rows."""
  G = J @ J.T
  alpha = np.linalg.lstsq(J.T, update, rcond=None)[0]
  return float(np.abs(alpha * (G @ alpha) - 1).max())


@pytest.mark.filterwarnings('ignore:You are solving a parameterized problem that is not DPP')
@pytest.mark.parametrize('max_norm', [1.0, 0.0])
def test_nash_mtl_matches_torchjd_where_its_solver_reaches_the_bargain(max_norm):
  """NashMTL is stateful in torchjd (its solver's warm start): a fresh one per Jacobian. Its
  sequence of ECOS solves stops at a residual of 1e-3 or after 20 solves; on one conflicting
  case of these it stops far from the Nash point (residual 6), where ours solves it exactly."""
  found, missed = {}, []
  with jax.enable_x64(True):
    for shape in SHAPES:
      kinds = {k: J for k, J in CASES[shape].items() if k != 'zero row'}
      for kind, update in ours('nash_mtl', kinds, max_norm=max_norm).items():
        reference = tjd.NashMTL(n_tasks=shape[0], max_norm=max_norm)
        expected = reference(torch.tensor(kinds[kind])).numpy()
        unclipped = ours('nash_mtl', {kind: kinds[kind]}, max_norm=0.0)[kind]
        assert _nash_residual(kinds[kind], unclipped) < 1e-9, (shape, kind)
        unclipped_reference = tjd.NashMTL(n_tasks=shape[0], max_norm=0.0)
        if (
          _nash_residual(kinds[kind], unclipped_reference(torch.tensor(kinds[kind])).numpy()) > 1e-3
        ):
          missed.append((shape, kind))
          continue
        found[shape, kind] = relative_error(update, expected)
  assert max(found.values()) <= PARITY, found
  assert len(missed) <= 1, missed
  assert len(found) >= 15


def test_nash_mtl_gives_a_zero_gradient_task_no_weight_and_the_others_their_bargain():
  """torchjd's solver has no solution there (α_i·0 ≥ 1) and falls back to its last weights."""
  with jax.enable_x64(True):
    J = jnp.asarray(CASES[3, 5]['zero row'])
    G = aggregators.gramian(J)
    alpha = aggregators.nash_mtl_weights(G)
    assert alpha[2] == 0.0
    np.testing.assert_allclose(alpha[:2] * (G[:2, :2] @ alpha[:2]), 1.0, rtol=1e-10)
    np.testing.assert_allclose(
      aggregate('nash_mtl', J, max_norm=0.0), aggregate('nash_mtl', J[:2], max_norm=0.0), rtol=1e-10
    )


def test_config_keeps_its_direction_beyond_one_over_eps_parameters():
  """torch.linalg.pinv's cut-off, eps·max(shape), passes 1 beyond 1/eps parameters (8.4 M in
  float32) and zeroes the pseudo-inverse: ConFIG's direction was 0 on the 11 M-parameter encoder
  of the balancing sweep, and torchjd's is too. The reference: numpy's pinv in float64."""
  rng = np.random.default_rng(0)
  J = rng.normal(size=(2, 9_000_000)).astype(np.float32) * 1e-3
  J[1] += 0.3 * J[0]
  got = np.asarray(aggregate('config', jnp.asarray(J)), np.float64)
  units = J.astype(np.float64) / np.linalg.norm(J.astype(np.float64), axis=1, keepdims=True)
  best = np.linalg.pinv(units) @ np.ones(2)
  unit = best / np.linalg.norm(best)
  expected = np.sum(J.astype(np.float64) @ unit) * unit
  assert np.linalg.norm(got - expected) <= 1e-4 * np.linalg.norm(expected)


def test_every_registered_method_is_checked():
  assert set(METHODS) == set(DETERMINISTIC) | {'pcgrad', 'graddrop', 'nash_mtl'}


@pytest.mark.parametrize('name', ['upgrad', 'mgda', 'aligned_mtl', 'graddrop'])
def test_jit_gives_the_eager_update(name):
  J = jnp.asarray(CASES[3, 5]['conflicting'], jnp.float32)
  options = {'graddrop': {'key': jax.random.key(0)}}.get(name, DETERMINISTIC.get(name, ({}, {}))[1])
  eager = aggregate(name, J, **options)
  np.testing.assert_allclose(jax.jit(lambda J: aggregate(name, J, **options))(J), eager, rtol=1e-5)


def test_jit_with_static_options_traces_once_per_shape():
  run = jax.jit(functools.partial(aggregate, 'upgrad', pref_vector=(0.5, 0.5)))
  for seed in range(3):
    run(jax.random.normal(jax.random.key(seed), (2, 8)))
  assert run._cache_size() == 1


def test_an_unknown_name_lists_the_valid_ones():
  with pytest.raises(ValueError, match="unknown aggregator 'nash'.*valid names: mean, sum, upgrad"):
    aggregate('nash', jnp.ones((2, 3)))


@pytest.mark.parametrize(
  'name, options, named',
  [
    ('cagrad', {'c': -1.0}, "'c'"),
    ('cagrad', {}, "'c'"),
    ('upgrad', {'reg_eps': -1e-4}, "'reg_eps'"),
    ('upgrad', {'pref_vector': (1.0,)}, "'pref_vector'"),
    ('mgda', {'max_iters': 0}, "'max_iters'"),
    ('mgda', {'epsilon': 0.0}, "'epsilon'"),
    ('aligned_mtl', {'scale_mode': 'max'}, "'scale_mode'"),
    ('graddrop', {}, "'key'"),
    ('mean', {'c': 0.5}, "'c'"),
    ('dualproj', {'norm_epsilon': 1e-4}, "'norm_epsilon'.*valid: pref_vector, norm_eps, reg_eps"),
  ],
)
def test_a_bad_option_is_named(name, options, named):
  with pytest.raises(ValueError, match=named):
    aggregate(name, jnp.ones((2, 3)), **options)


def test_the_exact_qp_methods_refuse_more_tasks_than_they_enumerate():
  with pytest.raises(ValueError, match='at most 10 tasks'):
    aggregate('upgrad', jnp.ones((11, 3)))
