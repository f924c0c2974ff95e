"""`python -m mtl_jax.convert template`: a course-template Lightning checkpoint becomes step 0
of an mtl_jax run that evaluate scores (same outputs as the PyTorch model) and training
fine-tunes."""

import argparse
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import seed_torch
from commands import assert_one_line_error
from conftest import REPO
from PIL import Image

from mtl_jax import experiment, trainer
from mtl_jax.workdir import run_config

torch = pytest.importorskip('torch')

SMALL_DATA = [  # a seconds-long synthetic dataset for the fine-tuning step
  '--config.data.height=32',
  '--config.data.width=64',
  '--config.data.crop_height=32',
  '--config.data.crop_width=64',
  '--config.data.num_train=8',
  '--config.data.num_validation=4',
  '--config.data.num_test=4',
  '--config.train.num_epochs=1',
]


def _convert(checkpoint, workdir, data_dir, *extra):
  return subprocess.run(
    [
      sys.executable,
      '-m',
      'mtl_jax.convert',
      'template',
      f'--input={checkpoint}',
      '--config=configs/joint.py',
      '--config.model.encoder=resnet18',
      f'--config.data.data_dir={data_dir}',
      f'--workdir={workdir}',
      *SMALL_DATA,
      *extra,
    ],
    capture_output=True,
    text=True,
    cwd=REPO,
    check=False,
  )


def _save_lightning(state_dict, path):
  """As the course template's Lightning training saves: the network under `net.`, beside a
  `class_weights` buffer of the LightningModule and its argparse.Namespace of hyper-parameters."""
  network = {f'net.{k}': v for k, v in state_dict.items()}
  torch.save(
    {
      'state_dict': {**network, 'class_weights': torch.ones(19)},
      'hyper_parameters': {'cfg': argparse.Namespace(lr=1e-4, batch_size=4)},
      'epoch': 63,
    },
    path,
  )


def test_converted_run_predicts_as_the_template_and_fine_tunes(tmp_path, data_dir, capsys):
  theirs = seed_torch.randomize(seed_torch.model('joint', 18, 16), seed=1)
  checkpoint = tmp_path / 'epoch=63.ckpt'
  _save_lightning(theirs.state_dict(), checkpoint)
  done = _convert(checkpoint, tmp_path / 'run', data_dir)
  assert done.returncode == 0, done.stderr
  assert 'wrote step 0 of a run' in done.stdout
  assert 'unexpected (ignored) ' in done.stdout and ': class_weights, ' in done.stdout

  run = experiment.open_run(tmp_path / 'run')
  assert run.step == 0
  uint8, normalised = seed_torch.images()
  with torch.no_grad():
    expected = theirs(normalised)
  got = run.experiment.predict_step(run.graphdef)(run.state, jnp.asarray(uint8))
  codec = run.experiment.spec.codec  # raw depth → metres, as the run decodes it
  reference = np.asarray(codec.decode(expected['depth'][:, 0].numpy()))
  assert seed_torch.relative_l2(np.asarray(got['depth']), reference) <= 1e-4

  agree = np.mean(np.asarray(got['semseg']) == expected['semseg'].argmax(1).numpy())
  assert agree > 0.999  # argmax: only float near-ties may differ

  again = _convert(checkpoint, tmp_path / 'run', data_dir)
  assert again.returncode == 2
  assert 'already holds a run' in again.stderr

  final = trainer.train_and_evaluate(run_config.load(tmp_path / 'run'), tmp_path / 'run')
  assert 'resumed from step 0' in capsys.readouterr().out
  assert final['step'] == 2 and np.isfinite(final['loss/total'])


def test_a_checkpoint_of_another_architecture_is_one_line(tmp_path, data_dir):
  theirs = seed_torch.model('branched', 18, 16)
  checkpoint = tmp_path / 'branched.pth'
  torch.save(theirs.state_dict(), checkpoint)
  done = _convert(checkpoint, tmp_path / 'run', data_dir)
  assert done.returncode == 2
  assert done.stderr.strip().splitlines() == [
    f"convert template: error: {checkpoint}: missing key 'aspp.conv1.1.bias' "
    '(model expects shape (256,)); 31 more keys missing'
  ]
  assert not (tmp_path / 'run').exists()


def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path, data_dir):
  checkpoint = tmp_path / 'epoch=63.ckpt'
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(checkpoint, format='JPEG')
  done = _convert(checkpoint, tmp_path / 'run', data_dir)
  assert_one_line_error(done, 'convert template', f'{checkpoint}: not a PyTorch checkpoint')
  assert 'weights_only' not in done.stderr
  assert not (tmp_path / 'run').exists()


def test_non_finite_weights_are_one_line_naming_them(tmp_path, data_dir):
  state = seed_torch.model('joint', 18, 16).state_dict()
  state['decoder.conv_3x3.weight'][0] = float('nan')
  checkpoint = tmp_path / 'diverged.ckpt'
  _save_lightning(state, checkpoint)
  done = _convert(checkpoint, tmp_path / 'run', data_dir)
  assert_one_line_error(
    done,
    'convert template',
    f'{checkpoint} holds non-finite weights (NaN or infinity)',
    'in 1 array (decoder.conv_3x3.weight)',
  )
  assert not (tmp_path / 'run').exists()
