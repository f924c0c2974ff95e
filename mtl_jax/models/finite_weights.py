"""Refusing weights that hold NaN or infinity: such a network predicts garbage (all-zero argmax,
NaN depth) with no error, so conversion, export and predict stop at the weights instead."""

import jax
import numpy as np

from mtl_jax.runtime.errors import UserError


def non_finite_arrays(tree) -> list[str]:
  """The paths ('encoder/conv1/kernel') of the floating-point leaves holding a NaN or infinity."""
  found = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    array = np.asarray(leaf)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
      found.append('/'.join(str(getattr(k, 'key', getattr(k, 'idx', k))) for k in path))
  return found


def require_finite(tree, what: str) -> None:
  """A UserError naming the first non-finite arrays of `tree` (e.g. what='checkpoint 40 of
  runs/a'), if any."""
  bad = non_finite_arrays(tree)
  if bad:
    shown = ', '.join(bad[:3]) + (f' and {len(bad) - 3} more' if len(bad) > 3 else '')
    arrays = f'{len(bad)} array' + ('s' if len(bad) > 1 else '')
    raise UserError(
      f'{what} holds non-finite weights (NaN or infinity) in {arrays} ({shown}); '
      'its predictions would be meaningless: use an earlier checkpoint or retrain'
    )
