"""Reading any image file (high bit depths, a header claiming too many pixels, files that are not
images), fitting it to the trained size, mapping predictions back, and the depth PNG encoding."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mtl_jax.deploy import fitting
from mtl_jax.runtime.errors import UserError


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


def _png_claiming(path, width, height):
  """A 1×1 PNG whose header (IHDR, CRC fixed) claims width × height: a few dozen bytes."""
  Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(path)
  data = bytearray(path.read_bytes())
  data[16:24] = struct.pack('>II', width, height)  # IHDR's data starts after the chunk type
  data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))  # over type and data
  path.write_bytes(bytes(data))
  return path


def _fitted_as_is(rgb):
  return fitting.fit_image(rgb, fitting.Fit.of(rgb.shape[:2], rgb.shape[:2], 1))


def test_a_16_bit_greyscale_png_keeps_its_brightness(tmp_path):
  values = np.asarray([[0, 255, 256, 4660], [32768, 40000, 65280, 65535]], np.uint16)
  Image.fromarray(values).save(tmp_path / 'grey16.png')  # Pillow writes mode I;16 as 16-bit
  assert Image.open(tmp_path / 'grey16.png').mode == 'I;16'
  fitted = _fitted_as_is(fitting.read_rgb(tmp_path / 'grey16.png'))
  expected = [[0, 0, 1, 18], [128, 156, 255, 255]]  # the top 8 bits; Pillow alone gives 255s
  for channel in range(3):
    np.testing.assert_array_equal(fitted[..., channel], expected)


def test_a_32_bit_integer_image_is_scaled_by_its_range(tmp_path):
  sixteen = np.asarray([[0, 4660, 65535]], np.int32)  # how Pillow opens many 16-bit files
  thirty_one = np.asarray([[-5, 70000, 2**30, 2**31 - 1]], np.int32)
  for name, values in (('i16.tif', sixteen), ('i31.tif', thirty_one)):
    Image.fromarray(values).save(tmp_path / name)
    assert Image.open(tmp_path / name).mode == 'I'
  np.testing.assert_array_equal(fitting.read_rgb(tmp_path / 'i16.tif')[..., 0], [[0, 18, 255]])
  np.testing.assert_array_equal(fitting.read_rgb(tmp_path / 'i31.tif')[..., 1], [[0, 0, 128, 255]])


def test_a_16_bit_rgb_png_keeps_its_top_bytes(tmp_path):
  values = (np.arange(12, dtype=np.uint16).reshape(2, 2, 3) * 5000).astype('>u2')

  def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

  header = struct.pack('>IIBBBBB', 2, 2, 16, 2, 0, 0, 0)  # 2×2, 16 bits, truecolour
  rows = b''.join(b'\0' + row.tobytes() for row in values)  # filter type 0 per row
  png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(rows))
  (tmp_path / 'rgb16.png').write_bytes(png + chunk(b'IEND', b''))
  np.testing.assert_array_equal(fitting.read_rgb(tmp_path / 'rgb16.png'), values >> 8)


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path):
  path = _png_claiming(tmp_path / 'huge.png', 15000, 10000)  # 150 MP, under Pillow's own limit
  assert path.stat().st_size < 100
  with pytest.raises(UserError) as error:
    fitting.read_rgb(path)
  assert str(error.value) == (
    f'{path}: 15000×10000 is 150 megapixels, over the limit of 64 (MAX_PIXELS); downscale it first'
  )
  tiny = _png_claiming(tmp_path / 'wide.png', 5, 2)  # under a limit of 10: decoding is reached
  with pytest.raises(UserError, match='not a readable image'):
    fitting.read_rgb(tiny, max_pixels=10)


@pytest.mark.parametrize('make', ['empty', 'folder', 'torn', 'bomb'])
def test_a_file_that_is_not_a_readable_image_is_one_user_error(tmp_path, make):
  path = tmp_path / 'x.png'
  if make == 'empty':
    path.write_bytes(b'')
  elif make == 'folder':
    path.mkdir()
  elif make == 'torn':
    Image.fromarray(np.full((64, 64, 3), 7, np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:60])
  else:  # over Pillow's own decompression-bomb limit
    _png_claiming(path, 20000, 20000)
  with pytest.raises(UserError) as error:
    fitting.read_rgb(path)
  assert str(error.value).startswith(f'{path}: ') and '\n' not in str(error.value)
