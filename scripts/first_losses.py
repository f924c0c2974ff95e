"""The first train losses of a config, to check that a speed change kept the numerics.

  python scripts/first_losses.py --config configs/distilled.py:cpu --steps 50 --save F.json
  python scripts/first_losses.py --config configs/distilled.py:cpu --compare F.json

Runs the real data pipeline, model, optimizer and step (as `train` does, from the same seed)
and prints each step's total loss. --compare prints the relative difference to a saved list,
step by step, and exits 1 above --rtol. XLA:CPU picks kernels by the CPU's instruction set, so a
saved list holds only on a machine like the one that wrote it (docs/results/first_losses_cpu.json
holds the quick start's 50 losses from the project's reference machine): before a change, --save
the list from the commit you start from on your machine, then --compare after the change.

Early training is chaotic: Adam's first updates are nearly ±lr whatever the gradient's size, so
a one-ulp change to every gradient (loss × 3, gradients ÷ 3) moved these losses by 1e-4 at step
5 and 11% at step 50 (measured). Over 50 steps a change passes the default 1e-4 only if it
leaves the step bit-identical; anything that reorders sums must be judged on whole runs.
"""

import argparse
import json
import pathlib
import sys

import jax
import numpy as np

from mtl_jax.config import files
from mtl_jax.experiment import Experiment


def first_losses(config_arg: str, num_steps: int) -> list[float]:
  path, _, preset = config_arg.partition(':')
  config = files.load_config_file(pathlib.Path(path), preset or None)
  experiment = Experiment.from_config(config, training=True)
  source = experiment.sources(['train'])['train']
  total_steps = config.train.num_epochs * experiment.steps_per_epoch(source)
  tx = experiment.optimizer(total_steps).tx
  graphdef, state = experiment.init_state(tx)
  placement = experiment.placement()
  state = placement.state_in(state)
  step = experiment.train_step(graphdef, tx)
  losses = []
  for _, batch in zip(range(num_steps), experiment.train_iterator(source)):
    state, m = step(state, placement.batch(batch))
    losses.append(float(jax.device_get(m['loss/total'])))
  return losses


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/distilled.py:cpu')
  parser.add_argument('--steps', type=int, default=50)
  parser.add_argument('--save', type=pathlib.Path)
  parser.add_argument('--compare', type=pathlib.Path)
  parser.add_argument('--rtol', type=float, default=1e-4)
  args = parser.parse_args()
  if args.compare:
    args.steps = len(json.loads(args.compare.read_text())['losses'])
  losses = first_losses(args.config, args.steps)
  print(' '.join(f'{x:.6f}' for x in losses))
  if args.save:
    args.save.write_text(json.dumps({'config': args.config, 'losses': losses}, indent=1) + '\n')
  if args.compare:
    reference = np.asarray(json.loads(args.compare.read_text())['losses'])
    relative = np.abs(np.asarray(losses) - reference) / np.abs(reference)
    worst = int(relative.argmax())
    print('relative differences: ' + ' '.join(f'{r:.0e}' for r in relative))
    print(f'largest relative difference {relative[worst]:.2e} at step {worst + 1}')
    sys.exit(int(relative[worst] > args.rtol))


if __name__ == '__main__':
  main()
