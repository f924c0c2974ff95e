"""config.parallel.mode and gradient accumulation across devices: the pmap step computes what
the jit step computes, accumulation splits each device's own rows, and the stop vote reaches
every process without touching the update.

The 8-device cases run in a subprocess (`conftest.run_on_eight_devices`); each script prints
'OK' after its assertions.
"""

import os
import subprocess
import textwrap

import jax
import numpy as np
import pytest
from conftest import CONFIG_DIR, REPO, run_on_eight_devices, run_tiny_train, tiny_train_command

from mtl_jax.config import files
from mtl_jax.experiment import Experiment
from mtl_jax.workdir import run_config, writers

# Shared by the scripts: one way to build a state, run a few steps in a mode, and a batch whose
# every pixel is valid (so a mean of per-device or per-micro-batch losses is the batch's mean).
SETUP = textwrap.dedent("""
    import functools, re
    import jax, numpy as np, optax
    from conftest import pixel_model, tiny_joint_model
    from mtl_jax import parallel, steps
    assert jax.device_count() == 8, jax.devices()
    MESH = parallel.make_mesh()
    TX = optax.sgd(0.1, momentum=0.9)

    def batch_of(n, h=32, w=64, seed=0):
      rng = np.random.default_rng(seed)
      return {'image': rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8),
              'semseg': rng.integers(0, 19, (n, h, w)).astype(np.int32),
              'depth': rng.uniform(4, 80, (n, h, w)).astype(np.float32)}

    def train(model, mode, batch, *, micro_batches=1, num_steps=3):
      graphdef, state = steps.create_train_state(model, TX)
      placement = parallel.placement(mode, MESH)
      step = placement.compile(functools.partial(
          steps.train_step, graphdef=graphdef, tx=TX, spec=steps.TaskSpec(),
          micro_batches=micro_batches))
      placed = placement.state_in(parallel.replicate(state, MESH))
      for _ in range(num_steps):
        placed, step_metrics = step(placed, placement.batch(batch))
      scalars = jax.device_get(placement.scalars(step_metrics))
      return graphdef, placement.state_out(placed), scalars

    def assert_trees_close(a, b, **tolerance):
      for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tolerance)
""")


def test_pmap_step_and_its_state_match_jit_on_eight_devices():
  """Synchronised BatchNorm: without the axis name, pmap's statistics come from 1 image."""
  script = SETUP + textwrap.dedent("""
      from mtl_jax import experiment
      from mtl_jax.data.labels import CLASS_NAMES
      batch = batch_of(8)
      eval_batch = {**batch, 'mask': np.array([True] * 6 + [False] * 2)}
      runs = {}
      for mode in ('jit', 'pmap'):
        graphdef, state, scalars = train(tiny_joint_model(), mode, batch)
        spec = steps.TaskSpec()
        scores = experiment.Evaluator(experiment.make_eval_step(graphdef, spec), [eval_batch],
                                      MESH, CLASS_NAMES, spec.tasks)(state)
        runs[mode] = jax.device_get(state), scalars, scores
        # state_out gives the layout init_state and restore give: one checkpoint format.
        for leaf in jax.tree.leaves(state):
          assert leaf.sharding == parallel.replicated(MESH), (mode, leaf.sharding)
      (jit_state, jit_scalars, jit_scores), (pmap_state, pmap_scalars, pmap_scores) = (
          runs['jit'], runs['pmap'])
      # The modes reduce in different orders, which rounds differently per CPU: measured on an
      # AVX2-only AMD EPYC, 1.9e-7 apart on a parameter of 1.6e-3 after three steps at lr 0.1.
      assert_trees_close(pmap_state.params, jit_state.params, rtol=1e-5, atol=1e-6)
      assert_trees_close(pmap_state.batch_stats, jit_state.batch_stats, rtol=1e-5, atol=1e-6)
      assert int(pmap_state.step) == 3
      for key in ('loss/total', 'loss/semseg', 'loss/depth', 'grad_norm'):
        np.testing.assert_allclose(pmap_scalars[key], jit_scalars[key], rtol=1e-6, err_msg=key)
      for key in ('miou', 'pixel_acc', 'silog', 'rmse', 'abs_rel'):
        np.testing.assert_allclose(pmap_scores[key], jit_scores[key], rtol=1e-4, err_msg=key)
      print('OK')
  """)
  assert run_on_eight_devices(script).startswith('OK')


def test_pmap_equals_jit_when_devices_hold_different_numbers_of_valid_pixels(data_dir, tmp_path):
  """Two devices, :tiny's synthetic scenes (ignored labels and missing depth in varying amounts
  per image): pmap's losses are the global batch's means, not means of per-device means, so its
  first gradient equals jit's and one epoch scores the same. The epoch runs SGD at a constant
  rate: Adam's first updates are ±lr whatever a gradient's size, so the two modes' different
  summation orders (rounding) would grow into different models within a few steps."""
  paths = f'DATA_DIR, OUT = {str(data_dir)!r}, {str(tmp_path)!r}\n'
  script = paths + textwrap.dedent("""
      import json
      import jax, numpy as np
      from conftest import _tiny_config
      from mtl_jax import trainer
      from mtl_jax.experiment import Experiment
      assert jax.device_count() == 2, jax.devices()

      def config_in(mode, **train):
        config = _tiny_config(DATA_DIR)
        config.parallel.mode = mode
        config.train.update(train)
        return config

      def sgd(config):
        config.optim.name, config.optim.schedule = 'sgd', 'constant'
        config.optim.learning_rate = 2e-3
        return config

      def first_step(mode):
        experiment = Experiment.from_config(config_in(mode), training=True)
        source = experiment.sources(['train'])['train']
        tx = experiment.optimizer(experiment.steps_per_epoch(source)).tx
        graphdef, state = experiment.init_state(tx)
        placement = experiment.placement()
        batch = next(iter(experiment.train_iterator(source)))
        rows = len(batch['semseg']) // 2
        valid = [int((batch['semseg'][i * rows:(i + 1) * rows] != 255).sum()) for i in (0, 1)]
        step = experiment.train_step(graphdef, tx)
        _, metrics = step(placement.state_in(state), placement.batch(batch))
        return valid, jax.device_get(placement.scalars(metrics))

      (valid, jit), (_, pmap) = first_step('jit'), first_step('pmap')
      assert valid[0] != valid[1], valid  # the case where a mean of means differs
      for key in ('grad_norm', 'loss/total', 'loss/semseg', 'loss/depth'):
        np.testing.assert_allclose(pmap[key], jit[key], rtol=1e-6, err_msg=key)
      finals = {
          mode: trainer.train_and_evaluate(sgd(config_in(mode, num_epochs=1)), f'{OUT}/{mode}')
          for mode in ('jit', 'pmap')
      }
      for key in ('miou', 'silog', 'pixel_acc', 'abs_rel', 'rmse', 'loss/total', 'grad_norm'):
        np.testing.assert_allclose(finals['pmap'][key], finals['jit'][key], rtol=1e-4, err_msg=key)
      print('OK', json.dumps({
          'valid_semseg_pixels_per_device': valid,
          'first_grad_norm': [float(jit['grad_norm']), float(pmap['grad_norm'])],
          'miou': [finals['jit']['miou'], finals['pmap']['miou']],
          'silog': [finals['jit']['silog'], finals['pmap']['silog']]}))
  """)
  out = run_on_eight_devices(script, devices=2)
  assert out.splitlines()[-1].startswith('OK '), out
  print(out.splitlines()[-1])  # the measured figures, shown with -s


def test_accumulation_on_eight_devices_splits_each_devices_rows():
  """k=2 over 8 devices (batch 16): the whole batch's parameters in both modes, and the jit
  step's only collectives are the plain step's all-reduces (contiguous micro-batches would
  gather rows across devices). Each device holds the same rows in both modes, so both form the
  same micro-batches."""
  script = SETUP + textwrap.dedent("""
      batch = batch_of(16, h=8, w=8)

      def rows_by_device(mode):
        image = parallel.placement(mode, MESH).batch(batch)['image']
        return {s.device: np.asarray(s.data).reshape(-1, 8, 8, 3) for s in image.addressable_shards}

      jit_rows, pmap_rows = rows_by_device('jit'), rows_by_device('pmap')
      assert jit_rows.keys() == pmap_rows.keys() and len(jit_rows) == 8
      for device, rows in jit_rows.items():
        np.testing.assert_array_equal(pmap_rows[device], rows)
      _, whole, _ = train(pixel_model(), 'jit', batch)
      for mode in ('jit', 'pmap'):
        _, accumulated, _ = train(pixel_model(), mode, batch, micro_batches=2)
        assert_trees_close(accumulated.params, whole.params, rtol=1e-5, atol=1e-7)

      def collectives(micro_batches):
        graphdef, state = steps.create_train_state(pixel_model(), TX)
        step = jax.jit(functools.partial(steps.train_step, graphdef=graphdef, tx=TX,
                                         spec=steps.TaskSpec(), micro_batches=micro_batches))
        hlo = step.lower(parallel.replicate(state, MESH),
                         parallel.shard_batch(batch, MESH)).compile().as_text()
        pattern = r' (all-reduce|all-gather|all-to-all|collective-permute|reduce-scatter)\\('
        return sorted(set(re.findall(pattern, hlo)))

      assert collectives(2) == collectives(1) == ['all-reduce'], collectives(2)
      print('OK')
  """)
  assert run_on_eight_devices(script).startswith('OK')


def test_stop_vote_is_the_global_batch_maximum_and_leaves_training_alone():
  """One row asking to stop (on device 5, not the device whose copy is read) is every
  device's vote; the vote never changes the update."""
  script = SETUP + textwrap.dedent("""
      batch = batch_of(8, h=8, w=8)
      one_row = np.zeros(8, np.float32)
      one_row[5] = 1.0
      for mode in ('jit', 'pmap'):
        _, plain, scalars = train(pixel_model(), mode, batch)
        assert 'stop_vote' not in scalars
        for stop, vote in ((one_row, 1.0), (np.zeros(8, np.float32), 0.0)):
          _, voted, scalars = train(pixel_model(), mode, {**batch, steps.STOP_KEY: stop})
          assert scalars['stop_vote'] == vote, (mode, stop, scalars['stop_vote'])
          assert_trees_close(voted.params, plain.params, rtol=0, atol=0)
      print('OK')
  """)
  assert run_on_eight_devices(script).startswith('OK')


# ----------------------------------------------------------------------------- end to end


def test_tiny_run_trains_with_gradient_accumulation(tmp_path, data_dir):
  """The trainer runs the accumulating step (Experiment.train_step) to the end."""
  result = run_tiny_train(tmp_path, data_dir, {'train.grad_accum_steps': 2})
  assert result.returncode == 0, result.stderr[-3000:]
  records = writers.read_records(tmp_path / 'metrics.jsonl')
  assert [r['step'] for r in records] == [4, 8]
  assert all(np.isfinite(r['loss/total']) and np.isfinite(r['miou']) for r in records)
  assert run_config.load(tmp_path).train.grad_accum_steps == 2


def _train_a_few_steps(config, num_steps: int = 2):
  """What the trainer does with `Experiment.placement()`: place the state once, place each
  batch, read scalars, and hand the evaluator the mesh-replicated state."""
  experiment = Experiment.from_config(config)
  sources = experiment.sources(('train', 'validation'))
  optimizer = experiment.optimizer(total_steps=num_steps)
  graphdef, state = experiment.init_state(optimizer.tx)
  placement = experiment.placement()
  train_step = experiment.train_step(graphdef, optimizer.tx)
  batches = experiment.train_iterator(sources['train'])
  placed = placement.state_in(state)
  for _ in range(num_steps):
    placed, step_metrics = train_step(placed, placement.batch(next(batches)))
  scalars = jax.device_get(placement.scalars(step_metrics))
  scores = experiment.evaluator(graphdef, sources['validation'])(placement.state_out(placed))
  return scalars, scores


def test_pmap_mode_trains_and_evaluates_through_the_experiment(data_dir):
  config = files.load_config_file(CONFIG_DIR / 'joint.py', 'tiny')
  config.data.data_dir = str(data_dir)
  jit_scalars, jit_scores = _train_a_few_steps(config)
  config.parallel.mode = 'pmap'
  pmap_scalars, pmap_scores = _train_a_few_steps(config)
  np.testing.assert_allclose(pmap_scalars['loss/total'], jit_scalars['loss/total'], rtol=1e-5)
  for key in ('miou', 'silog', 'rmse'):  # a pixel's flip: rounding differs per CPU (measured
    # 1.4e-5 apart in mIoU on an AVX2-only AMD EPYC)
    np.testing.assert_allclose(pmap_scores[key], jit_scores[key], rtol=1e-4, err_msg=key)


def test_pmap_run_trains_resumes_and_scores_as_the_jit_run(tmp_path, data_dir):
  """The trainer in pmap mode: a 1-epoch run extended to 2 (restore, then state_in) ends with
  the jit run's metrics. One device: with several, pmap's loss is the mean of per-device means
  (as PyTorch's DDP), which differs from jit's global mean when the devices' crops hold
  different numbers of valid pixels (measured on tiny, 2 devices: grad norm 3.30 vs 3.50 over
  epoch 1); test_pmap_step_and_its_state_match_jit_on_eight_devices covers 8 devices on
  all-valid batches. SGD at a small constant rate, as in tests/multiprocess_test.py."""
  env = {
    **os.environ,
    'XLA_FLAGS': '--xla_force_host_platform_device_count=1',
    'JAX_PLATFORMS': 'cpu',
  }
  common = {'optim.name': 'sgd', 'optim.learning_rate': 2e-3, 'optim.schedule': 'constant'}

  def train(workdir, **overrides):
    command = tiny_train_command(workdir, data_dir, {**common, **overrides})
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout

  train(tmp_path / 'jit')
  train(tmp_path / 'pmap', **{'parallel.mode': 'pmap', 'train.num_epochs': 1})
  assert 'resumed from step 4' in train(tmp_path / 'pmap', **{'parallel.mode': 'pmap'})
  jit_final = writers.read_records(tmp_path / 'jit' / 'metrics.jsonl')[-1]
  pmap_final = writers.read_records(tmp_path / 'pmap' / 'metrics.jsonl')[-1]
  for key in ('miou', 'silog', 'pixel_acc', 'rmse', 'loss/total'):
    assert pmap_final[key] == pytest.approx(jit_final[key], rel=1e-4), key
  assert run_config.load(tmp_path / 'pmap').parallel.mode == 'pmap'
