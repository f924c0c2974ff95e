"""Benchmarks the synthetic renderer on one core and prints a markdown table.

  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python scripts/bench_synthetic.py

Thread counts are pinned to one before numpy is imported (the renderer is single-threaded numpy;
BLAS threads would only blur the measurement). Warm-up samples are excluded from the timing.
"""

import os

for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
  os.environ.setdefault(_var, '1')

# Imported after the thread limits above, which numpy reads once at import.
import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

from mtl_jax.data.synthetic import render_sample  # noqa: E402


def bench(height: int, width: int, num: int, warmup: int) -> float:
  """Seconds per sample, rendering samples warmup..warmup+num of the train split."""
  for i in range(warmup):
    render_sample(i, height=height, width=width)
  start = time.perf_counter()
  for i in range(warmup, warmup + num):
    render_sample(i, height=height, width=width)
  return (time.perf_counter() - start) / num


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', default='64x128,128x256,256x512', help='HxW,HxW,...')
  parser.add_argument('--num', type=int, default=200, help='timed samples per size')
  parser.add_argument('--warmup', type=int, default=10)
  args = parser.parse_args()
  print(
    f'{platform.processor() or platform.machine()}, python {platform.python_version()}, '
    f'OMP_NUM_THREADS={os.environ["OMP_NUM_THREADS"]}\n'
  )
  print('| size | samples/s | ms/sample |')
  print('|---|---:|---:|')
  for size in args.sizes.split(','):
    h, w = (int(v) for v in size.split('x'))
    num = max(10, args.num * 128 * 256 // (h * w))  # same pixel budget for every size
    sec = bench(h, w, num, args.warmup)
    print(f'| {h}x{w} | {1 / sec:.1f} | {1000 * sec:.1f} |', flush=True)


if __name__ == '__main__':
  main()
