"""The train input pipeline's throughput per grain worker count, beside the train step's demand.

  python scripts/bench_input.py [--sizes 128x256,512x1024] [--workers 0,1,2] [--batch_size 8]
      [--batches 40] [--data_dir /tmp/mtl_jax_bench_input]

For each stored size it builds (once, under --data_dir) a small synthetic dataset in the real
on-disk format (TFDS ArrayRecord, PNG-encoded images), then times `pipeline.train_iterator` as
the trainer calls it: read, decode, random scale and crop to the stored size, flip, photometric
jitter, batch. Workers 0 runs in the training process (its reader threads overlap the step);
N > 0 uses N grain worker processes, each a core's worth of input work. The rate per worker
sizes workers for a GPU: a step consuming S samples/s needs about S / (that rate) of them.
"""

import argparse
import os
import platform
import time

from mtl_jax.data import augment, pipeline, registry

NUM_TRAIN = 64  # samples in the built split; the iterator repeats it


def source_of(size: tuple[int, int], data_dir: str) -> pipeline.SampleSource:
  builder = registry.prepare(
    'synthetic',
    data_dir,
    height=size[0],
    width=size[1],
    seed=0,
    num_train=NUM_TRAIN,
    num_validation=8,
    num_test=8,
  )
  return pipeline.data_source(builder, 'train')


def samples_per_second(source, batch_size: int, workers: int, batches: int) -> float:
  iterator = pipeline.train_iterator(
    source,
    batch_size=batch_size,
    seed=0,
    scale_range=(0.75, 1.25),
    jitter=augment.Jitter(),
    worker_count=workers,
  )
  for _ in range(3):  # workers start, buffers fill
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * batch_size / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', default='128x256,512x1024', help='HxW,HxW,...')
  parser.add_argument('--workers', default='0,1,2', help='grain worker processes to try')
  parser.add_argument('--batch_size', type=int, default=8)
  parser.add_argument('--batches', type=int, default=40, help='timed batches per row')
  parser.add_argument('--data_dir', default='/tmp/mtl_jax_bench_input')
  args = parser.parse_args()
  print(f'{platform.machine()}, {os.cpu_count()} cores, batch {args.batch_size}\n')
  print('| stored size | workers | samples/s | samples/s per worker |')
  print('|---|---:|---:|---:|')
  for size in args.sizes.split(','):
    h, w = (int(v) for v in size.split('x'))
    source = source_of((h, w), args.data_dir)
    for workers in map(int, args.workers.split(',')):
      rate = samples_per_second(source, args.batch_size, workers, args.batches)
      per_worker = f'{rate / workers:.0f}' if workers else '—'
      print(f'| {h}x{w} | {workers} | {rate:.0f} | {per_worker} |', flush=True)


if __name__ == '__main__':
  main()
