"""Shared test set-up: the tiers, a persistent XLA compilation cache and a tiny trained run.

Tiers: tests/unit/ mirrors the package and runs in minutes; tests/scenarios/ starts processes,
trains to the end or runs several devices or processes, and is marked `slow` here, so
`pytest -m "not slow"` is the fast loop. tests/support/ holds fixtures and helpers shared across
tiers (on sys.path below); tests/docs/ checks the docs."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from mtl_jax.config import files, presets

# Compiled steps are reused across tests and runs; the suite's time is mostly compilation.
CACHE_DIR = os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', '/tmp/mtl_jax_test_xla_cache')
jax.config.update('jax_compilation_cache_dir', CACHE_DIR)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)

REPO = pathlib.Path(__file__).resolve().parents[1]
SUPPORT = REPO / 'tests' / 'support'
sys.path.insert(0, str(SUPPORT))  # fixtures and helpers every tier imports by module name
SCENARIOS = REPO / 'tests' / 'scenarios'

import prepared_fixture  # noqa: E402  # from tests/support, just put on sys.path

CONFIG_DIR = REPO / 'mtl_jax' / 'configs'  # shipped in the package; REPO/configs links here


def tiny_train_command(workdir, data_dir, overrides: dict | None = None) -> list[str]:
  """The train command of configs/joint.py:tiny in `workdir` on the data in `data_dir`."""
  return [
    sys.executable,
    '-m',
    'mtl_jax.train',
    '--config=configs/joint.py:tiny',
    f'--workdir={workdir}',
    f'--config.data.data_dir={data_dir}',
    *(f'--config.{k}={v}' for k, v in (overrides or {}).items()),
  ]


def run_tiny_train(workdir, data_dir, overrides: dict | None = None):
  """`tiny_train_command` run to its end, output captured."""
  return subprocess.run(
    tiny_train_command(workdir, data_dir, overrides),
    cwd=REPO,
    capture_output=True,
    text=True,
    check=False,
  )


def config_presets(path: pathlib.Path) -> tuple[str, ...]:
  """'' (no preset) and every preset the config file offers: the shared ones and its own."""
  spec = importlib.util.spec_from_file_location(f'{path.stem}_presets', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return ('',) + tuple(dict.fromkeys([*presets.SHARED, *module.PRESETS]))


def model_cases(then: str = '', skip: tuple[str, ...] = ('tiny', 'cpu')) -> list:
  """One pytest.param(config path, preset, id='config:preset') per distinct model the shipped
  configs build: each config with no preset or one of its presets (except `skip`), followed by
  the presets `then` (e.g. 'tiny'). Presets that build the same model (ignoring where ImageNet
  weights come from) count once, the first in `config_presets` order."""
  cases, seen = [], set()
  for path in sorted(CONFIG_DIR.glob('*.py')):
    for preset in config_presets(path):
      if preset in skip:
        continue
      full = ','.join(p for p in (preset, then) if p)
      model = files.load_config_file(path, full).model.to_dict()
      key = json.dumps({**model, 'pretrained': ''}, sort_keys=True, default=list)
      if key not in seen:
        seen.add(key)
        cases.append(pytest.param(path, full, id=f'{path.stem}:{full or "full"}'))
  return cases


def tiny_joint_model(num_classes: int = 19, seed: int = 0):
  """A few-thousand-parameter joint DeepLabV3+ (ResNet-tiny, 8-channel heads) for step tests."""
  from mtl_jax.models import mtl  # pylint: disable=g-import-not-at-top

  return mtl.build_model(
    'joint',
    seed=seed,
    num_classes=num_classes,
    encoder=mtl.EncoderOptions('resnet_tiny'),
    head=mtl.HeadOptions(aspp_channels=8, decoder_channels=8, skip_channels=4),
  )


def _tiny_config(data_dir):
  """configs/joint.py:tiny with its dataset in `data_dir`."""
  config = files.load_config_file(CONFIG_DIR / 'joint.py', 'tiny')
  config.data.data_dir = str(data_dir)
  return config


@pytest.fixture(scope='session')
def scene_batch():
  """Four 32×64 synthetic scenes as a numpy train batch: real structure a tiny model can fit."""
  from mtl_jax.data import synthetic  # pylint: disable=g-import-not-at-top

  samples = [synthetic.render_sample(i, height=32, width=64) for i in range(4)]
  batch = {k: np.stack([s[k] for s in samples]) for k in ('image', 'semseg', 'depth')}
  batch['semseg'] = batch['semseg'].astype(np.int32)
  return batch


@pytest.fixture(params=sorted(prepared_fixture.FIXTURES))
def prepared(request, tmp_path_factory):
  """(name, manual_dir, data_dir, builder) of each real layout's small fixture, prepared."""
  return prepared_fixture.prepare(request.param, tmp_path_factory)


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('tensorflow_datasets')


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory, data_dir):
  """A finished 2-epoch tiny joint run: (config, workdir, returned final record)."""
  from mtl_jax import trainer  # pylint: disable=g-import-not-at-top

  config = _tiny_config(data_dir)
  workdir = tmp_path_factory.mktemp('tiny_run')
  final = trainer.train_and_evaluate(config, str(workdir))
  return config, workdir, final


def pixel_model(num_classes: int = 19, seed: int = 0):
  """A BatchNorm-free model (one 3×3 conv to C logits and a raw depth channel): a mean of
  micro-batch gradients then equals the whole batch's exactly, when every micro-batch has as
  many valid pixels."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top

  class Pixel(nnx.Module):
    def __init__(self):
      self.conv = nnx.Conv(3, num_classes + 1, (3, 3), rngs=nnx.Rngs(seed))

    def __call__(self, image):
      x = self.conv(image.astype(jnp.float32) / 255.0)
      return {'semseg': x[..., :num_classes], 'depth': x[..., num_classes]}

  return Pixel()


def run_on_eight_devices(script: str, devices: int = 8) -> str:
  """Runs python `script` with `devices` fake CPU devices (the count must be set before JAX
  initialises, hence a subprocess; tests/ is importable); its stdout, or the test fails with
  its stderr."""
  env = {
    **os.environ,
    'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}',
    'JAX_PLATFORMS': 'cpu',
    'PYTHONPATH': os.pathsep.join(
      [str(REPO), str(REPO / 'tests'), str(SUPPORT), os.environ.get('PYTHONPATH', '')]
    ),
  }
  result = subprocess.run(
    [sys.executable, '-c', script], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def pytest_collection_modifyitems(items):
  """Everything under tests/scenarios/ is slow: `-m "not slow"` leaves it out."""
  for item in items:
    if SCENARIOS in item.path.parents:
      item.add_marker(pytest.mark.slow)
