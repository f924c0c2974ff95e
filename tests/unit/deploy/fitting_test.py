"""Fitting any image to the trained size, mapping predictions back, and the depth PNG encoding."""

import numpy as np
import pytest

from mtl_jax.deploy import fitting


@pytest.mark.parametrize(
  'original, padded', [((32, 64), (32, 64)), ((50, 70), (32, 48)), ((1024, 2048), (32, 64))]
)
def test_an_image_fits_the_trained_size_padded_to_the_stride(original, padded):
  fit = fitting.Fit.of(original, (32, 64), 16)
  assert fit.padded == padded
  assert fit.resized[0] <= 32 and fit.resized[1] <= 64


def test_predictions_map_back_without_the_padding():
  fit = fitting.Fit.of((50, 70), (32, 64), 16)  # resized 32×45, padded 32×48
  labels = np.full(fit.padded, 7, np.uint8)  # 7 marks the padding
  labels[:, :22], labels[:, 22:45] = 1, 2  # left and right of the resized image
  back = fitting.labels_back(labels, fit)
  assert back.shape == (50, 70) and 7 not in back
  assert (back[:, :30] == 1).all() and (back[:, 40:] == 2).all()
  depth = np.where(labels == 7, 1000.0, 5.0).astype(np.float32)
  np.testing.assert_allclose(fitting.depth_back(depth, fit), 5.0)


def test_depth_png_is_millimetres_with_zero_for_none_and_saturation():
  metres = np.asarray([[0.0, 1.2344, 65.535, 300.0, np.nan]], np.float32)
  mm = fitting.encode_depth_png(metres)
  np.testing.assert_array_equal(mm, [[0, 1234, 65535, 65535, 0]])
  np.testing.assert_allclose(fitting.decode_depth_png(mm)[0, :3], [0.0, 1.234, 65.535])
