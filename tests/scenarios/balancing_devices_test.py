"""Every balancing method computes the same steps on 1 device and on 8 (jit), and under pmap:
the per-task losses, Jacobian and statistics are the global batch's in every layout, so the
update, the logged weights and the method's state agree to rounding (summation order).

Runs in one subprocess with 8 fake CPU devices (`conftest.run_on_eight_devices`), which prints
'OK' after its assertions."""

import textwrap

from conftest import run_on_eight_devices

SCRIPT = textwrap.dedent("""
    import functools
    import jax, numpy as np, optax
    from conftest import CONFIG_DIR, tiny_joint_model
    from mtl_jax import experiment, parallel, steps
    from mtl_jax.balancing import training
    from mtl_jax.config import files
    assert jax.device_count() == 8, jax.devices()
    TX = optax.sgd(0.05, momentum=0.9)
    SPEC = steps.TaskSpec()
    # Under pmap too: the methods with state, randomness or an iterative solver.
    PMAP = ('uncertainty', 'famo', 'gradnorm', 'dwa', 'rlw', 'upgrad', 'pcgrad', 'nash_mtl')

    def batch_of(n, seed):
      rng = np.random.default_rng(seed)
      semseg = rng.integers(0, 19, (n, 32, 64)).astype(np.int32)
      semseg[rng.random((n, 32, 64)) < 0.2] = 255  # devices hold different valid counts
      return {'image': rng.integers(0, 256, (n, 32, 64, 3), dtype=np.uint8),
              'semseg': semseg,
              'depth': rng.uniform(4, 80, (n, 32, 64)).astype(np.float32)}

    def balancer(method):
      config = files.load_config_file(CONFIG_DIR / 'joint.py', 'tiny')
      config.loss.balancing = method
      return experiment.balancer(config, steps_per_epoch=1)  # DWA and STCH roll every step

    def train(method, devices, mode, num_steps=3):
      mesh = parallel.make_mesh(jax.devices()[:devices])
      b = balancer(method)
      graphdef, state = steps.create_train_state(tiny_joint_model(), TX, b)
      placement = parallel.placement(mode, mesh)
      step = placement.compile(functools.partial(
          steps.train_step, graphdef=graphdef, tx=TX, spec=SPEC, balancer=b))
      placed = placement.state_in(parallel.replicate(state, mesh))
      history = []
      for i in range(num_steps):
        placed, metrics = step(placed, placement.batch(batch_of(8, i)))
        history.append(jax.device_get(placement.scalars(metrics)))
      return jax.device_get(placement.state_out(placed)), history

    def relative(a, b):
      a, b = (np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)] + [np.zeros(1)])
              .astype(np.float64) for t in (a, b))
      return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)

    worst = {}
    for method in training.METHODS:
      one, one_history = train(method, 1, 'jit')
      layouts = [(8, 'jit')] + ([(8, 'pmap')] if method in PMAP else [])
      for devices, mode in layouts:
        state, history = train(method, devices, mode)
        errors = [relative(state.params, one.params), relative(state.balancing, one.balancing)]
        for ours, ref in zip(history, one_history):
          for key in ('loss/semseg', 'loss/depth', 'weight/semseg', 'weight/depth'):
            errors.append(abs(ours[key] - ref[key]) / max(abs(ref[key]), 1e-30))
        worst[method, mode] = max(errors)
    bad = {k: v for k, v in worst.items() if not v <= 1e-4}
    assert not bad, bad
    print('OK', ' '.join(f'{m}/{mode}:{e:.1e}' for (m, mode), e in worst.items()))
""")


def test_every_method_agrees_on_one_device_and_eight():
  assert run_on_eight_devices(SCRIPT).startswith('OK')
