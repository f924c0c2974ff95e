"""Reading course-template checkpoints as files on disk: what torch.load(weights_only=True) reads
with stand-ins for the other pickled classes, what it refuses in one line (never advising
weights_only=False), and which keys of a Lightning checkpoint are the network's."""

import argparse
import os

import numpy as np
import pytest
import seed_torch
from flax import nnx
from PIL import Image

from mtl_jax.models import convert, mtl, template_checkpoint
from mtl_jax.runtime.errors import UserError

torch = pytest.importorskip('torch')


class TrainingCallback:
  """A class only this test module defines: an unpickler that ran it would fail to import it."""

  def __init__(self):
    self.best = torch.tensor(0.5)

  def __setstate__(self, state):
    raise AssertionError('the checkpoint ran code of a pickled class')


class RunsACommand:
  """The classic malicious pickle: loading it would call os.system."""

  def __reduce__(self):
    return (os.system, ('echo pwned',))


def lightning_checkpoint(path, network, outside=(), **extra):
  """`path` written as the course template's Lightning training saves it: the `network` under
  `net.` (with the LightningModule's own entries `outside` it), argparse hyper-parameters
  pickled beside the weights."""
  checkpoint = {
    'state_dict': {**{f'net.{k}': v for k, v in network.items()}, **dict(outside)},
    'hyper_parameters': {'cfg': argparse.Namespace(lr=1e-4, batch_size=4, name='joint')},
    'epoch': 63,
    **extra,
  }
  torch.save(checkpoint, path)
  return path


def template_state(seed=0):
  return seed_torch.randomize(seed_torch.model('joint', 18, 16), seed=seed).state_dict()


def ours():
  encoder = mtl.EncoderOptions('resnet18', 16, 'template', zero_init_residual=True)
  head = mtl.HeadOptions(family='seed')
  return nnx.eval_shape(lambda: mtl.build_model('joint', seed=0, encoder=encoder, head=head))


def test_a_jpeg_named_ckpt_is_not_a_pytorch_checkpoint(tmp_path):
  path = tmp_path / 'epoch=63.ckpt'
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, format='JPEG')
  with pytest.raises(UserError) as raised:
    convert.read_state_dict(path)
  assert str(raised.value) == (
    f'{path}: not a PyTorch checkpoint (torch.save writes a zip archive; this file starts with '
    'bytes ff d8 ff e0)'
  )


def test_an_empty_or_truncated_file_is_one_line_without_unsafe_advice(tmp_path):
  (tmp_path / 'empty.ckpt').write_bytes(b'')
  whole = lightning_checkpoint(tmp_path / 'whole.ckpt', {'w': torch.zeros(3)})
  (tmp_path / 'cut.ckpt').write_bytes(whole.read_bytes()[:300])
  for name, reason in [
    ('empty.ckpt', 'not a PyTorch checkpoint (the file is empty)'),
    ('cut.ckpt', 'cannot read as a PyTorch checkpoint: PytorchStreamReader failed reading zip'),
  ]:
    with pytest.raises(UserError) as raised:
      convert.read_state_dict(tmp_path / name)
    message = str(raised.value)
    assert message.startswith(f'{tmp_path / name}: {reason}')
    assert '\n' not in message and 'weights_only' not in message


def test_a_lightning_checkpoint_with_namespace_hyper_parameters_reads_its_weights(tmp_path):
  path = lightning_checkpoint(
    tmp_path / 'epoch=63.ckpt', {'w': torch.arange(3.0)}, callbacks={'cb': TrainingCallback()}
  )
  state = convert.read_state_dict(path)
  assert list(state) == ['net.w']
  np.testing.assert_array_equal(state['net.w'], [0.0, 1.0, 2.0])


def test_a_pickle_that_runs_a_command_is_refused_without_running_it(tmp_path, capfd):
  path = lightning_checkpoint(tmp_path / 'evil.ckpt', {'w': torch.zeros(1)}, trap=RunsACommand())
  with pytest.raises(UserError, match=r'evil.ckpt: cannot read as a PyTorch checkpoint: .*posix'):
    convert.read_state_dict(path)
  assert 'pwned' not in capfd.readouterr().out


def test_torch_errors_are_passed_on_without_escapes_or_unsafe_advice(tmp_path):
  # The pre-1.6 pickle format: torch cannot list its classes, so the Namespace stays unreadable.
  path = tmp_path / 'old.ckpt'
  torch.save(
    {'state_dict': {'w': torch.zeros(1)}, 'hparams': argparse.Namespace(lr=1)},
    path,
    _use_new_zipfile_serialization=False,
  )
  with pytest.raises(UserError) as raised:
    convert.read_state_dict(path)
  assert str(raised.value) == (
    f'{path}: cannot read as a PyTorch checkpoint: Unsupported global: GLOBAL argparse.Namespace '
    'was not an allowed global by default'
  )
  noisy = RuntimeError(
    'Weights only load failed. \x1b[1mdo those steps only if you trust the source\x1b[0m.\n'
    '\tRe-running `torch.load` with `weights_only` set to `False` will likely succeed\n'
    '\tWeightsUnpickler error: Unsupported operand 149\n\nCheck the documentation'
  )
  assert convert.torch_error_reason(noisy) == 'Unsupported operand 149'


def test_a_state_dict_holding_something_else_names_the_key(tmp_path):
  path = tmp_path / 'mixed.ckpt'
  torch.save({'state_dict': {'w': torch.zeros(1), 'args': argparse.Namespace(lr=1)}}, path)
  with pytest.raises(UserError, match=r"but 'args' holds argparse.Namespace$"):
    convert.read_state_dict(path)


def test_keys_outside_the_network_are_set_aside_and_reported_as_ignored(tmp_path):
  theirs = template_state()
  path = tmp_path / 'weighted.ckpt'  # the LightningModule registered a loss weight buffer
  lightning_checkpoint(path, theirs, outside={'class_weights': torch.ones(19)})

  state = convert.read_state_dict(path)
  model = ours()
  report = template_checkpoint.load_template_state(model, 'joint', state, source=str(path))
  assert report.unexpected[0] == 'class_weights'
  assert 'unexpected (ignored)' in str(report) and 'class_weights' in str(report)
  assert len(report.loaded) == sum(not template_checkpoint.is_ignored(k) for k in theirs)
  kernels = [(p, v) for p, v in convert.variables(model).items() if p[-1] == 'kernel']
  path, variable = kernels[-1]
  expected = theirs[template_checkpoint.template_key('joint', path)].numpy()
  np.testing.assert_array_equal(np.asarray(variable[...]), expected.transpose(2, 3, 1, 0))


def test_a_plain_state_dict_is_all_network():
  network, outside = template_checkpoint.network_keys({'aspp.x': 1, 'class_weights': 2})
  assert (network, outside) == ({'aspp.x': 1, 'class_weights': 2}, [])


def test_non_finite_weights_are_refused_naming_them():
  state = {k: v.numpy() for k, v in template_state().items()}
  state['encoder.encoder.fc.weight'][0, 0] = np.nan  # the unused classifier: harmless
  template_checkpoint.load_template_state(ours(), 'joint', state, source='x.ckpt')
  state['aspp.conv1.0.weight'][0, 0, 0, 0] = np.inf
  with pytest.raises(UserError) as raised:
    template_checkpoint.load_template_state(ours(), 'joint', state, source='x.ckpt')
  assert str(raised.value).startswith(
    'x.ckpt holds non-finite weights (NaN or infinity) in 1 array (aspp.conv1.0.weight)'
  )
