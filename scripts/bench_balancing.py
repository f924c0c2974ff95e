"""The train step's time per task-balancing method, and the compiled step's memory, as tables.

  python scripts/bench_balancing.py [--config configs/branched.py:cpu,deeplabv3plus] [--methods all]
      [--steps 5] [--rounds 3] [--save docs/results/balancing_steps.json]
  python scripts/bench_balancing.py --memory --config configs/branched.py [--methods fixed,...]

Time: every method's step is compiled first, then timed in `--rounds` alternating rounds of
`--steps` steps each (fixed, uncertainty, ..., fixed, uncertainty, ...), so a machine whose
speed drifts slows every method alike; the table gives each method's median over the rounds
and its ratio to `fixed`'s; --save also writes them, with the date, commit and machine, as the
results file the docs' step-time tables are generated from (scripts/docs_tables.py). --memory
compiles the step only (nothing runs) and prints XLA's memory analysis: the temporaries hold the
activations and, for a method that needs them, the per-task gradients. Uses the real model,
optimizer and step of the config.
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import jax

from mtl_jax.balancing import training
from mtl_jax.config import files
from mtl_jax.experiment import Experiment

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_train_step import fake_batch  # noqa: E402  # pylint: disable=g-import-not-at-top
from docs_tables import provenance, steps_table  # noqa: E402  # pylint: disable=g-import-not-at-top

MIB = 2**20


def _config(reference: str, method: str):
  path, _, presets = reference.partition(':')
  config = files.load_config_file(pathlib.Path(path), presets or None)
  config.loss.balancing = method
  return config


def _compiled(config):
  """(compiled step, placed state, placed batch) of `config`."""
  experiment = Experiment.from_config(config)
  tx = experiment.optimizer(total_steps=1000).tx
  graphdef, state = experiment.init_state(tx)
  placement = experiment.placement()
  c = config
  batch = fake_batch(c.train.batch_size, c.data.crop_height, c.data.crop_width, c.model.num_classes)
  state, batch = placement.state_in(state), placement.batch(batch)
  step = experiment.train_step(graphdef, tx)
  return step.lower(state, batch).compile(), state, batch


def time_table(args) -> None:
  """Prints the table; with --save, writes it as JSON too."""
  compiled = {}
  for method in args.methods:
    start = time.perf_counter()
    step, state, batch = _compiled(_config(args.config, method))
    state, m = step(state, batch)
    jax.block_until_ready(m)
    compiled[method] = [step, state, batch, time.perf_counter() - start, []]
    print(f'compiled {method} in {compiled[method][3]:.1f} s', file=sys.stderr, flush=True)
  for _ in range(args.rounds):
    for entry in compiled.values():
      step, state, batch = entry[:3]
      start = time.perf_counter()
      for _ in range(args.steps):
        state, m = step(state, batch)
      jax.block_until_ready(m)
      entry[1] = state
      entry[4].append((time.perf_counter() - start) / args.steps)
  rows = [
    dict(method=method, compile_s=first_s, step_s=statistics.median(times))
    for method, (*_, first_s, times) in compiled.items()
  ]
  print(steps_table(rows))
  if args.save:
    command = ' '.join(['python scripts/bench_balancing.py', *sys.argv[1:]])
    saved = dict(provenance(command), config=args.config, steps=args.steps, rounds=args.rounds)
    args.save.write_text(json.dumps(dict(saved, methods=rows), indent=1) + '\n')
    print(f'wrote {args.save}', file=sys.stderr)


def memory_table(args) -> None:
  print('| method | arguments MiB | outputs MiB | temporaries MiB |\n|---|---:|---:|---:|')
  for method in args.methods:
    compiled, _, _ = _compiled(_config(args.config, method))
    memory = compiled.memory_analysis()
    print(
      f'| `{method}` | {memory.argument_size_in_bytes / MIB:.0f} | '
      f'{memory.output_size_in_bytes / MIB:.0f} | {memory.temp_size_in_bytes / MIB:.0f} |',
      flush=True,
    )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/branched.py:cpu,deeplabv3plus')
  parser.add_argument('--methods', default='all', help="comma-separated, or 'all'")
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--memory', action='store_true', help='compile only; memory analysis')
  parser.add_argument('--save', type=pathlib.Path, help='also write the time table as JSON here')
  args = parser.parse_args()
  args.methods = training.METHODS if args.methods == 'all' else tuple(args.methods.split(','))
  config = _config(args.config, 'fixed')
  print(
    f'{args.config}: {config.model.arch}, {config.model.encoder}, batch '
    f'{config.train.batch_size}, crop {config.data.crop_height}x{config.data.crop_width}; '
    f'{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, '
    f'{jax.devices()[0].platform} x{jax.device_count()}\n'
  )
  (memory_table if args.memory else time_table)(args)


if __name__ == '__main__':
  main()
