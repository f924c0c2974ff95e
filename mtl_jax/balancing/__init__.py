"""Gradient aggregation: combine the per-task gradients J [tasks, params] into one update [params].

`aggregate(name, J, **options)` runs one of `METHODS`, each equal to torchjd 0.18's aggregator of
the same name (see aggregators.py for the formulas and qp.py for the exact small-QP solver and its
task limit). Each keeps no state between steps. NashMTL is here as torchjd's with
update_weights_every=1: torchjd's state is the warm start of its iterative solver, and ours
solves to convergence (aggregators.nash_mtl_weights). Options carry torchjd's names and
defaults; `key` (a jax.random key, for the random methods) is the one array option, every other
option is a plain Python value, so `jax.jit(functools.partial(aggregate, name, **options))`
traces once per shape.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax

from mtl_jax.balancing import aggregators, options, qp
from mtl_jax.runtime.errors import lookup

REQUIRED = object()  # an option with no default


def _non_negative(name, value, m):
  return options.number(name, value, 0, strict=False)


def _positive(name, value, m):
  return options.number(name, value, 0, strict=True)


def _positive_int(name, value, m):
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise ValueError(f'option {name!r} must be an integer > 0, got {value!r}')
  return value


def _per_task(name, value, m):
  """None, or one number per task (kept as a tuple: hashable, so jit can hold it static)."""
  if value is None:
    return None
  try:
    numbers = tuple(float(x) for x in value)
  except (TypeError, ValueError):
    numbers = ()
  if len(numbers) != m:
    raise ValueError(f'option {name!r} must hold one number per task ({m}), got {value!r}')
  return numbers


def _scale_mode(name, value, m):
  if value not in ('min', 'median', 'rmse'):
    raise ValueError(f"option {name!r} must be 'min', 'median' or 'rmse', got {value!r}")
  return value


def _callable(name, value, m):
  if not callable(value):
    raise ValueError(f'option {name!r} must be a function, got {value!r}')
  return value


def _key(name, value, m):
  return value  # a traced key cannot be inspected; jax.random says what is wrong with a bad one


class Method(NamedTuple):
  """An aggregator and its options: name → (default, check(name, value, tasks) → value)."""

  fn: Callable
  options: dict
  max_tasks: int | None = None  # the exact QP enumerates 2^tasks faces


_PREF = (None, _per_task)
_DUAL_CONE = {
  'pref_vector': _PREF,
  'norm_eps': (1e-4, _non_negative),
  'reg_eps': (1e-4, _non_negative),
}

METHODS = {
  'mean': Method(aggregators.mean, {}),
  'sum': Method(aggregators.sum_, {}),
  'upgrad': Method(aggregators.upgrad, _DUAL_CONE, qp.MAX_TASKS),
  'dualproj': Method(aggregators.dualproj, _DUAL_CONE, qp.MAX_TASKS),
  'mgda': Method(
    aggregators.mgda, {'epsilon': (1e-3, _positive), 'max_iters': (100, _positive_int)}
  ),
  'pcgrad': Method(aggregators.pcgrad, {'key': (REQUIRED, _key)}),
  'cagrad': Method(
    aggregators.cagrad, {'c': (REQUIRED, _non_negative), 'norm_eps': (1e-4, _non_negative)},
    qp.MAX_TASKS,
  ),
  'imtl_g': Method(aggregators.imtl_g, {}),
  'config': Method(aggregators.config, {'pref_vector': _PREF}),
  'aligned_mtl': Method(
    aggregators.aligned_mtl, {'pref_vector': _PREF, 'scale_mode': ('min', _scale_mode)}
  ),
  'nash_mtl': Method(aggregators.nash_mtl, {'max_norm': (1.0, _non_negative)}),
  'graddrop': Method(
    aggregators.graddrop,
    {'key': (REQUIRED, _key), 'f': (lambda p: p, _callable), 'leak': (None, _per_task)},
  ),
}  # fmt: skip


def resolve_options(name: str, method: Method, tasks: int, given: dict) -> dict:
  """Every option of `method`: the given ones checked, the rest at their defaults."""
  unknown = sorted(set(given) - set(method.options))
  if unknown:
    valid = ', '.join(method.options) or 'none'
    raise ValueError(f'unknown option {unknown[0]!r} for aggregator {name!r}; valid: {valid}')
  resolved = {}
  for option, (default, check) in method.options.items():
    if option not in given and default is REQUIRED:
      raise ValueError(f'aggregator {name!r} needs option {option!r}')
    resolved[option] = check(option, given[option], tasks) if option in given else default
  return resolved


def aggregate(name: str, jacobian: jax.Array, **options) -> jax.Array:
  """The update [params] that method `name` makes of the per-task gradients [tasks, params]."""
  method = lookup(METHODS, name, 'aggregator')
  if jacobian.ndim != 2:
    raise ValueError(f'the Jacobian must be [tasks, params], got shape {jacobian.shape}')
  tasks = jacobian.shape[0]
  if method.max_tasks is not None and tasks > method.max_tasks:
    raise ValueError(f'aggregator {name!r} supports at most {method.max_tasks} tasks, got {tasks}')
  return method.fn(jacobian, **resolve_options(name, method, tasks, options))
