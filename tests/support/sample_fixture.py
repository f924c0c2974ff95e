"""A small random sample in the data contract (`mtl_jax.data.sample`) for augment/sample tests.

Import it as `import sample_fixture` (tests/support is on sys.path: tests/conftest.py).
"""

import numpy as np


def random_sample(h=8, w=12, seed=0):
  """Random image, train ids with an ignored first row, depth with an invalid first row."""
  rng = np.random.default_rng(seed)
  semseg = rng.integers(0, 19, (h, w), dtype=np.uint8)
  semseg[0] = 255
  depth = rng.uniform(4, 80, (h, w)).astype(np.float32)
  depth[0] = 0
  image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
  return {'image': image, 'semseg': semseg, 'depth': depth, 'index': np.int64(7)}
