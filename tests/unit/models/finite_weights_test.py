import numpy as np
import pytest

from mtl_jax.models.finite_weights import non_finite_arrays, require_finite
from mtl_jax.runtime.errors import UserError


def test_names_the_arrays_holding_nan_or_infinity_and_ignores_integers():
  tree = {
    'encoder': {'kernel': np.ones((2, 2), np.float32), 'bias': np.array([0.0, np.nan])},
    'head': [np.array([np.inf], np.float16), np.array([1, 2], np.int32)],
  }
  assert non_finite_arrays(tree) == ['encoder/bias', 'head/0']


def test_require_finite_passes_finite_weights_and_refuses_others_in_one_line():
  require_finite({'w': np.zeros(3, np.float32), 'count': np.int32(7)}, 'checkpoint 4')
  with pytest.raises(UserError) as error:
    require_finite({f'w{i}': np.full(2, np.nan, np.float32) for i in range(5)}, 'checkpoint 4')
  message = str(error.value)
  assert message.startswith('checkpoint 4 holds non-finite weights (NaN or infinity) in 5 arrays')
  assert '(w0, w1, w2 and 2 more)' in message
  assert '\n' not in message
