"""Predict throughput from files to files, and exported vs in-process latency, for one run.

  python scripts/bench_predict.py --workdir RUN [--sizes 128x256,512x1024] [--images 32]
      [--batch_size 8]

Per input size: --images random JPEGs are written to a temporary folder, then
`mtl_jax.deploy.predict_files.predict_files` (what `python -m mtl_jax.predict` runs) reads, fits,
predicts and writes every output; images/s counts all of it, after one warm-up pass that
compiles. Then the latency of one image (batch 1) through the in-process predict step and
through the run's StableHLO export (`mtl_jax.deploy.artifacts`), median of 10 calls each, at the
run's trained size.
"""

import argparse
import os
import pathlib
import platform
import statistics
import tempfile
import time

import jax
import numpy as np
from PIL import Image

from mtl_jax.deploy import artifacts, predict_files, predictors


def write_photos(folder: pathlib.Path, count: int, size: tuple[int, int]) -> None:
  rng = np.random.default_rng(0)
  for i in range(count):
    pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / f'{i}.jpg', quality=90)


def files_per_second(predictor, size, count: int, batch_size: int) -> float:
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    (tmp / 'in').mkdir()
    write_photos(tmp / 'in', count, size)
    items = predict_files.collect([str(tmp / 'in')])
    predict_files.predict_files(predictor, items[:batch_size], tmp / 'warm', batch_size, True)
    start = time.perf_counter()
    predict_files.predict_files(predictor, items, tmp / 'out', batch_size, True)
    return count / (time.perf_counter() - start)


def median_ms(fn, calls: int = 10) -> float:
  fn()
  times = []
  for _ in range(calls):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times) * 1e3


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--sizes', default='128x256,512x1024', help='input HxW,HxW,...')
  parser.add_argument('--images', type=int, default=32)
  parser.add_argument('--batch_size', type=int, default=8)
  args = parser.parse_args()
  predictor = predictors.Predictor(args.workdir, None)
  print(
    f'{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}; run {args.workdir} '
    f'({predictor.run.config.model.arch}, {predictor.run.config.model.encoder}, trained at '
    f'{predictor.trained[0]}x{predictor.trained[1]}), batch {args.batch_size}\n'
  )
  print('| input size | images | images/s (files to files) |\n|---|---:|---:|')
  for size in args.sizes.split(','):
    h, w = (int(v) for v in size.split('x'))
    rate = files_per_second(predictor, (h, w), args.images, args.batch_size)
    print(f'| {h}x{w} | {args.images} | {rate:.1f} |', flush=True)

  image = np.random.default_rng(1).integers(0, 256, (1, *predictor.trained, 3), dtype=np.uint8)
  with tempfile.TemporaryDirectory() as tmp:
    artifacts.export_run(pathlib.Path(args.workdir), pathlib.Path(tmp), ['stablehlo'])
    exported = predictors.ExportedPredictor(tmp)
    rows = {
      'in-process predict step': median_ms(lambda: predictor(image)),
      'exported StableHLO (jax.export)': median_ms(lambda: exported(image)),
    }
  print(f'\n| one {predictor.trained[0]}x{predictor.trained[1]} image | ms |\n|---|---:|')
  for name, ms in rows.items():
    print(f'| {name} | {ms:.1f} |')


if __name__ == '__main__':
  main()
