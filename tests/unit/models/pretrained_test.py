"""torchvision → NNX ResNet: feature parity, strict-load errors, file formats, the CLI script."""

import pathlib
import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from torch_resnets import DILATIONS, DilatedBasicBlock

from mtl_jax.models import pretrained, resnet

torch = pytest.importorskip('torch')
tv_resnet = pytest.importorskip('torchvision.models.resnet')

REPO = pathlib.Path(__file__).resolve().parents[3]
MAX_RELATIVE_ERROR = 1e-4
BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


def torch_resnet(depth: int, output_stride: int, seed: int = 0):
  """A torchvision ResNet in eval mode with random weights and non-trivial BN statistics."""
  torch.manual_seed(seed)
  block = tv_resnet.Bottleneck if depth == 50 else tv_resnet.BasicBlock
  if block is tv_resnet.BasicBlock and output_stride != 32:
    block = DilatedBasicBlock
  model = tv_resnet.ResNet(
    block, list(BLOCKS[depth]), replace_stride_with_dilation=DILATIONS[output_stride]
  )
  with torch.no_grad():  # identity BN (scale 1, bias 0, mean 0, var 1) would hide mapping bugs
    for m in model.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5)
        m.bias.normal_(0.0, 0.2)
        m.running_mean.normal_(0.0, 0.2)
        m.running_var.uniform_(0.5, 2.0)
  return model.eval()


def numpy_state(model) -> dict[str, np.ndarray]:
  return {k: v.numpy() for k, v in model.state_dict().items()}


def torch_features(model, images: np.ndarray) -> list[np.ndarray]:
  """layer1..layer4 outputs of a torchvision ResNet for NHWC images, as NHWC arrays."""
  with torch.no_grad():
    x = torch.from_numpy(images.transpose(0, 3, 1, 2))
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    features = []
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
      x = stage(x)
      features.append(x.numpy().transpose(0, 2, 3, 1))
  return features


def images(seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal((2, 64, 96, 3), dtype=np.float32)


def relative_error(ours, reference: np.ndarray) -> float:
  """max |ours − reference| / max |reference|: elementwise ratios blow up at ReLU zeros."""
  return float(np.abs(np.asarray(ours) - reference).max() / np.abs(reference).max())


def assert_features_match(encoder: resnet.ResNet, model, output_stride: int) -> None:
  x = images()
  encoder.eval()
  ours = encoder(jnp.asarray(x))
  strides = [min(s, output_stride) for s in (4, 8, 16, 32)]
  for (name, feature), reference, stride in zip(ours.items(), torch_features(model, x), strides):
    assert feature.shape == reference.shape == (2, 64 // stride, 96 // stride, feature.shape[-1])
    assert relative_error(feature, reference) <= MAX_RELATIVE_ERROR, name


@pytest.mark.parametrize('output_stride', [32, 16, 8])
@pytest.mark.parametrize('depth', [18, 34, 50])
def test_every_stage_matches_torchvision(depth, output_stride):
  model = torch_resnet(depth, output_stride)
  encoder = resnet.abstract_encoder(depth, output_stride)
  report = resnet.load_torchvision_state(encoder, numpy_state(model))
  assert report.missing == ()
  assert_features_match(encoder, model, output_stride)


@pytest.fixture(scope='module')
def resnet18_state():
  return numpy_state(torch_resnet(18, 32))


def test_report_lists_loaded_arrays_and_ignored_extras(resnet18_state):
  report = resnet.load_torchvision_state(resnet.abstract_encoder(18), resnet18_state, source='r18')
  # 20 convs (stem, 16 in blocks, 3 downsample) + 20 BNs × (scale, bias, mean, var).
  assert len(report.loaded) == 100
  assert 'layer2.0.downsample.0.weight' in report.loaded
  assert sorted(k for k in report.unexpected if k.startswith('fc.')) == ['fc.bias', 'fc.weight']
  assert sum(k.endswith('num_batches_tracked') for k in report.unexpected) == 20
  assert str(report) == (
    'r18: loaded 100 arrays; missing 0; unexpected (ignored) 22: '
    'fc.weight, fc.bias, 20× num_batches_tracked'
  )


def _load_error(state: dict, depth: int = 18) -> str:
  with pytest.raises(ValueError) as info:
    resnet.load_torchvision_state(resnet.abstract_encoder(depth), state, source='r18.pth')
  return str(info.value)


def test_missing_key_is_named_with_expected_shape(resnet18_state):
  state = dict(resnet18_state)
  del state['layer2.1.bn2.running_var']
  assert _load_error(state) == (
    "r18.pth: missing key 'layer2.1.bn2.running_var' (encoder expects shape (128,))"
  )


def test_wrong_shape_names_key_and_both_shapes(resnet18_state):
  state = dict(resnet18_state, **{'layer1.0.conv1.weight': np.zeros((64, 64, 1, 1), np.float32)})
  assert _load_error(state) == (
    "r18.pth: key 'layer1.0.conv1.weight' has shape (64, 64, 1, 1) "
    'but the encoder expects (64, 64, 3, 3)'
  )


def test_unexpected_key_is_an_error(resnet18_state):
  state = dict(resnet18_state, **{'layer1.0.se.weight': np.zeros((3,), np.float32)})
  assert _load_error(state) == (
    "r18.pth: unexpected key 'layer1.0.se.weight' with shape (3,), not part of the encoder"
  )


def test_other_depth_is_named(resnet18_state):
  assert _load_error(resnet18_state, depth=34) == (
    'r18.pth holds ResNet-18 weights but the encoder is a ResNet-34'
  )


def test_failed_load_leaves_encoder_untouched(resnet18_state):
  encoder = resnet.abstract_encoder(18)
  resnet.load_torchvision_state(encoder, resnet18_state)
  before = np.asarray(encoder.conv1.kernel[...]).copy()
  state = dict(resnet18_state, **{'layer4.1.bn2.bias': np.zeros((3,), np.float32)})
  with pytest.raises(ValueError, match=re.escape("key 'layer4.1.bn2.bias' has shape (3,)")):
    resnet.load_torchvision_state(encoder, state)
  np.testing.assert_array_equal(encoder.conv1.kernel[...], before)


def test_safetensors_file_needs_no_torch_and_matches(tmp_path):
  safetensors_numpy = pytest.importorskip('safetensors.numpy')
  model = torch_resnet(18, 16, seed=1)
  path = tmp_path / 'resnet18.safetensors'
  safetensors_numpy.save_file(numpy_state(model), str(path))
  encoder = resnet.resnet_from_torchvision(path, depth=None, output_stride=16)
  assert resnet.depth_of(encoder) == 18
  assert_features_match(encoder, model, 16)


def test_pth_that_is_not_a_state_dict_is_a_clear_error(tmp_path):
  path = tmp_path / 'model.pth'
  torch.save([torch.zeros(2)], path)
  with pytest.raises(
    ValueError, match=re.escape(f'{path}: expected a state dict mapping names to tensors, got list')
  ):
    resnet.resnet_from_torchvision(path)


def run_script(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, '-m', 'mtl_jax.convert', 'torchvision', *args],
    capture_output=True,
    text=True,
    check=False,
  )


def test_script_round_trip_into_a_dilated_encoder(tmp_path):
  model = torch_resnet(18, 16, seed=2)  # weights do not depend on the output stride
  torch.save(model.state_dict(), tmp_path / 'resnet18.pth')
  out = tmp_path / 'converted'
  done = run_script('--input', str(tmp_path / 'resnet18.pth'), '--output', str(out))
  assert done.returncode == 0, done.stderr
  assert 'loaded 100 arrays; missing 0; unexpected (ignored) 22' in done.stdout
  assert pretrained.read_metadata(out)['depth'] == 18
  encoder = resnet.ResNet18(output_stride=16, rngs=nnx.Rngs(0))
  report = pretrained.load_pretrained_encoder(encoder, out)
  assert len(report.loaded) == 100 and report.unexpected == ()
  assert_features_match(encoder, model, 16)

  with pytest.raises(
    ValueError, match=re.escape(f'{out} holds ResNet-18 weights but the encoder is a ResNet-34')
  ):
    pretrained.load_pretrained_encoder(
      nnx.eval_shape(lambda: resnet.ResNet34(rngs=nnx.Rngs(0))), out
    )
  again = run_script('--input', str(tmp_path / 'resnet18.pth'), '--output', str(out))
  assert (again.returncode, again.stderr) == (
    2,
    f'convert torchvision: error: {out}: output directory exists and is not empty\n',
  )


def test_script_reports_a_missing_input_in_one_line(tmp_path):
  done = run_script('--input', str(tmp_path / 'nope.pth'), '--output', str(tmp_path / 'out'))
  assert (done.returncode, done.stderr) == (
    2,
    f'convert torchvision: error: {tmp_path / "nope.pth"}: no such file\n',
  )
  assert not (tmp_path / 'out').exists()


def test_not_a_converted_directory_is_a_clear_error(tmp_path):
  with pytest.raises(
    ValueError, match=re.escape(f'{tmp_path}: not a converted encoder directory (no encoder.json)')
  ):
    pretrained.load_pretrained_encoder(
      nnx.eval_shape(lambda: resnet.ResNetTiny(rngs=nnx.Rngs(0))), tmp_path
    )


def test_save_and_load_round_trip_any_encoder(tmp_path):
  source = resnet.ResNetTiny(rngs=nnx.Rngs(0))
  source.layer4[0].bn1.var[...] = jnp.linspace(0.5, 2.0, 64)  # not the initial ones
  pretrained.save_pretrained_encoder(source, tmp_path / 'tiny')
  target = resnet.ResNetTiny(output_stride=8, rngs=nnx.Rngs(1))
  pretrained.load_pretrained_encoder(target, tmp_path / 'tiny')
  np.testing.assert_array_equal(target.layer4[0].bn1.var[...], source.layer4[0].bn1.var[...])
  np.testing.assert_array_equal(target.conv1.kernel[...], source.conv1.kernel[...])


def test_damaged_directory_is_a_clear_error(tmp_path):
  encoder = resnet.ResNetTiny(rngs=nnx.Rngs(0))
  pretrained.save_pretrained_encoder(encoder, tmp_path / 'tiny')
  for path in sorted((tmp_path / 'tiny' / 'state').rglob('*'), reverse=True):
    path.rmdir() if path.is_dir() else path.unlink()
  with pytest.raises(
    ValueError,
    match=re.escape(f'{tmp_path / "tiny" / "state"}: cannot restore the orbax checkpoint'),
  ):
    pretrained.load_pretrained_encoder(encoder, tmp_path / 'tiny')
