"""Benchmarks the compiled train step on fake data and prints a markdown table.

  python scripts/bench_train_step.py [--presets cpu,full] [--steps 10] [--batch_size 8]
      [--host_devices 1,8] [--modes jit,pmap] [--dtypes float32,bfloat16] [--accum 1,2]

One row per preset × host devices × parallel mode × compute dtype × accumulation steps. Host
devices are CPU devices XLA forces (`--xla_force_host_platform_device_count`): each count runs
in a child process, since it is fixed when JAX starts. On a GPU or TPU machine leave
--host_devices empty to use the real devices. Compilation and the first (warm-up) steps are
excluded from the timing, as in flax's imagenet_fake_data_benchmark. Uses the real model,
optimizer, placement and step from the configs.
"""

import argparse
import os
import pathlib
import platform
import subprocess
import sys
import time

import jax
import numpy as np

from mtl_jax.config import files
from mtl_jax.experiment import Experiment

REPO = pathlib.Path(__file__).resolve().parents[1]
HEADER = (
  '| config | encoder | crop | batch | devices | mode | dtype | accum | compile s | s/step '
  '| img/s |\n|---|---|---|---:|---:|---|---|---:|---:|---:|---:|'
)


def fake_batch(batch_size: int, height: int, width: int, num_classes: int) -> dict:
  rng = np.random.default_rng(0)
  return {
    'image': rng.integers(0, 256, (batch_size, height, width, 3), dtype=np.uint8),
    'semseg': rng.integers(0, num_classes, (batch_size, height, width)).astype(np.int32),
    'depth': rng.uniform(4, 80, (batch_size, height, width)).astype(np.float32),
  }


def bench(config, num_steps: int, warmup: int) -> tuple[float, float]:
  """(compile seconds, seconds per step)."""
  experiment = Experiment.from_config(config)
  tx = experiment.optimizer(total_steps=1000).tx
  graphdef, state = experiment.init_state(tx)
  placement = experiment.placement()
  state = placement.state_in(state)
  step = experiment.train_step(graphdef, tx)
  batch = placement.batch(
    fake_batch(
      config.train.batch_size,
      config.data.crop_height,
      config.data.crop_width,
      config.model.num_classes,
    )
  )
  start = time.perf_counter()
  state, m = step(state, batch)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - start
  for _ in range(warmup):
    state, m = step(state, batch)
  jax.block_until_ready(m)
  start = time.perf_counter()
  for _ in range(num_steps):
    state, m = step(state, batch)
  jax.block_until_ready(m)
  return compile_s, (time.perf_counter() - start) / num_steps


def rows(args) -> None:
  """This process's rows (its devices are fixed): every preset × mode × dtype × accum."""
  for preset in args.presets.split(','):
    for mode in args.modes.split(','):
      for dtype in args.dtypes.split(','):
        for accum in map(int, args.accum.split(',')):
          config = files.load_config_file(REPO / 'configs' / f'{args.arch}.py', preset)
          if args.batch_size:
            config.train.batch_size = args.batch_size
          config.parallel.mode, config.model.dtype = mode, dtype
          config.train.grad_accum_steps = accum
          compile_s, step_s = bench(config, args.steps, args.warmup)
          print(
            f'| {args.arch}:{preset} | {config.model.encoder} | {config.data.crop_height}x'
            f'{config.data.crop_width} | {config.train.batch_size} | {jax.device_count()} | '
            f'{mode} | {dtype} | {accum} | {compile_s:.1f} | {step_s:.3f} | '
            f'{config.train.batch_size / step_s:.1f} |',
            flush=True,
          )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--arch', default='joint')
  parser.add_argument('--presets', default='cpu,full')
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--batch_size', type=int, default=0, help="0 = the preset's batch size")
  parser.add_argument('--host_devices', default='', help='e.g. 1,8: forced CPU device counts')
  parser.add_argument('--modes', default='jit', help='parallel modes: jit,pmap')
  parser.add_argument('--dtypes', default='float32', help='compute dtypes: float32,bfloat16')
  parser.add_argument('--accum', default='1', help='gradient accumulation steps, e.g. 1,2')
  parser.add_argument('--rows_only', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.rows_only or not args.host_devices:
    if not args.rows_only:
      print(
        f'{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, '
        f'{jax.devices()[0].platform} x{jax.device_count()}\n\n{HEADER}'
      )
    rows(args)
    return
  print(f'{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, cpu\n\n{HEADER}')
  child = [
    f'--{name}={value}'
    for name, value in vars(args).items()
    if name not in ('host_devices', 'rows_only')
  ]
  for count in args.host_devices.split(','):
    env = {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={count}'}
    subprocess.run([sys.executable, __file__, *child, '--rows_only'], env=env, check=True)


if __name__ == '__main__':
  main()
