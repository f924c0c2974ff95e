"""Data parallelism on 8 fake CPU devices equals the single-device computation.

Runs in a subprocess because the fake device count must be set before JAX initialises
(`conftest.run_on_eight_devices`; tests/parallel_modes_test.py has the pmap and accumulation
cases).
"""

import textwrap

from conftest import run_on_eight_devices

SCRIPT = textwrap.dedent("""
    import functools
    import jax, jax.numpy as jnp, numpy as np, optax
    from mtl_jax import metrics, parallel, steps
    from mtl_jax.models import mtl
    from mtl_jax.data.labels import CLASS_NAMES
    from mtl_jax import experiment
    assert jax.device_count() == 8, jax.devices()

    def run(mesh):
      model = mtl.build_model('joint', seed=0, encoder=mtl.EncoderOptions('resnet_tiny'),
                              head=mtl.HeadOptions(aspp_channels=8, decoder_channels=8,
                                                   skip_channels=4))
      tx = optax.sgd(0.1, momentum=0.9)
      graphdef, state = steps.create_train_state(model, tx)
      state = parallel.replicate(state, mesh)
      spec = steps.TaskSpec()
      step = jax.jit(functools.partial(steps.train_step, graphdef=graphdef, tx=tx, spec=spec),
                     donate_argnums=0)
      rng = np.random.default_rng(0)
      batch = {'image': rng.integers(0, 256, (8, 32, 64, 3), dtype=np.uint8),
               'semseg': rng.integers(0, 19, (8, 32, 64)).astype(np.int32),
               'depth': rng.uniform(4, 80, (8, 32, 64)).astype(np.float32)}
      for _ in range(3):
        state, scalars = step(state, parallel.shard_batch(batch, mesh))
      eval_batch = {**batch, 'mask': np.array([True] * 6 + [False] * 2)}
      scores = experiment.Evaluator(experiment.make_eval_step(graphdef, spec), [eval_batch],
                                    mesh, CLASS_NAMES, spec.tasks)(state)
      leaf = jax.tree.leaves(state.params)[0]
      return jax.device_get(state.params), float(scalars['loss/total']), scores, leaf.sharding

    params8, loss8, scores8, sharding8 = run(parallel.make_mesh())
    params1, loss1, scores1, _ = run(parallel.make_mesh(jax.devices()[:1]))
    assert sharding8.is_fully_replicated and len(sharding8.device_set) == 8
    np.testing.assert_allclose(loss8, loss1, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(params8), jax.tree.leaves(params1)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for key in ('miou', 'silog', 'pixel_acc', 'rmse'):
      np.testing.assert_allclose(scores8[key], scores1[key], rtol=1e-5, err_msg=key)
    print('OK', loss8, scores8['miou'])
""")


def test_eight_device_data_parallel_step_and_eval_match_one_device():
  assert run_on_eight_devices(SCRIPT).startswith('OK')


def test_a_run_is_read_on_any_device_count_and_only_scoring_needs_its_batch_to_split(tiny_run):
  """Predict and export read a run trained at batch 4 on 3 devices (they never use the training
  batch); evaluate names the eval batch that 3 devices cannot split."""
  _, workdir, _ = tiny_run
  out = run_on_eight_devices(
    textwrap.dedent(f"""
      import numpy as np
      from mtl_jax import experiment
      from mtl_jax.reports import samples
      from mtl_jax.runtime.errors import UserError
      opened = experiment.open_run({str(workdir)!r})
      images = np.zeros((1, 32, 64, 3), np.uint8)
      predicted = samples.predict(
        opened.experiment.predict_step(opened.graphdef), opened.state, images,
        opened.experiment.mesh)
      print(opened.experiment.mesh.size, predicted['semseg'].shape)
      try:
        opened.evaluate('validation')
      except UserError as e:
        print(e)
    """),
    devices=3,
  )
  lines = out.strip().splitlines()
  assert lines[0] == '3 (1, 32, 64)'
  assert lines[1].startswith(
    'config.train.eval_batch_size=4 must be divisible by the number of devices (3)'
  )
