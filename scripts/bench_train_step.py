"""Benchmarks the compiled train step on fake data and prints a markdown table.

  python scripts/bench_train_step.py [--presets cpu,full] [--steps 10] [--batch_size 8]

Compilation and the first (warm-up) steps are excluded from the timing, as in flax's
imagenet_fake_data_benchmark. Uses the real model, optimizer and step from the configs.
"""

import argparse
import os
import pathlib
import platform
import time

import jax
import jax.numpy as jnp

from mtl_jax.config import files
from mtl_jax.experiment import Experiment

REPO = pathlib.Path(__file__).resolve().parents[1]


def fake_batch(batch_size: int, height: int, width: int, num_classes: int):
  key_img, key_lab, key_dep = jax.random.split(jax.random.key(0), 3)
  return {
    'image': jax.random.randint(key_img, (batch_size, height, width, 3), 0, 256).astype(jnp.uint8),
    'semseg': jax.random.randint(key_lab, (batch_size, height, width), 0, num_classes),
    'depth': jax.random.uniform(key_dep, (batch_size, height, width), minval=4, maxval=80),
  }


def bench(config, num_steps: int, warmup: int) -> tuple[float, float]:
  """(compile seconds, seconds per step)."""
  experiment = Experiment.from_config(config)
  tx = experiment.optimizer(total_steps=1000).tx
  graphdef, state = experiment.init_state(tx)
  step = experiment.train_step(graphdef, tx)
  batch = fake_batch(
    config.train.batch_size,
    config.data.crop_height,
    config.data.crop_width,
    config.model.num_classes,
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


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--arch', default='joint')
  parser.add_argument('--presets', default='cpu,full')
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--batch_size', type=int, default=0, help="0 = the preset's batch size")
  args = parser.parse_args()
  print(
    f'{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, '
    f'{jax.devices()[0].platform} x{jax.device_count()}\n'
  )
  print('| config | encoder | crop | batch | compile s | s/step | img/s |')
  print('|---|---|---|---:|---:|---:|---:|')
  for preset in args.presets.split(','):
    config = files.load_config_file(REPO / 'configs' / f'{args.arch}.py', preset)
    if args.batch_size:
      config.train.batch_size = args.batch_size
    compile_s, step_s = bench(config, args.steps, args.warmup)
    print(
      f'| {args.arch}:{preset} | {config.model.encoder} | {config.data.crop_height}x'
      f'{config.data.crop_width} | {config.train.batch_size} | {compile_s:.1f} | '
      f'{step_s:.3f} | {config.train.batch_size / step_s:.1f} |',
      flush=True,
    )


if __name__ == '__main__':
  main()
