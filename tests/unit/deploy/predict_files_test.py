"""Collecting predict's inputs: a path naming nothing, two inputs writing the same outputs, and
output names that keep dotted stems."""

import numpy as np
import pytest
from PIL import Image

from mtl_jax.deploy import predict_files


def _photo(h, w, seed):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_a_path_naming_nothing_is_one_clear_error(tmp_path):
  with pytest.raises(ValueError, match=r'^--input .*missing: no such file or folder$'):
    predict_files.collect([str(tmp_path / 'missing')])
  with pytest.raises(ValueError, match=r'no file matches'):
    predict_files.collect([str(tmp_path / '*.png')])


def test_two_images_that_would_write_the_same_outputs_are_one_error(tmp_path):
  for folder in ('a', 'b'):
    (tmp_path / folder).mkdir()
    Image.fromarray(_photo(8, 8, 0)).save(tmp_path / folder / 'x.png')
  with pytest.raises(ValueError, match=r'a/x.png and .*b/x.png would write the same outputs'):
    predict_files.collect([str(tmp_path / 'a'), str(tmp_path / 'b')])


def test_dotted_file_names_keep_their_stems(tmp_path):
  for name in ('frame.001.jpg', 'frame.002.jpg'):
    Image.fromarray(_photo(8, 8, 0)).save(tmp_path / name)
  items = predict_files.collect([str(tmp_path)])
  paths = [predict_files.output_paths(tmp_path / 'out', i, ['labels'])['labels'] for i in items]
  assert [p.name for p in paths] == ['frame.001.png', 'frame.002.png']
