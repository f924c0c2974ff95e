"""Estimates the whole `lite` study's training time, ImageNet rows included, from one short
timing run per kind of run (architecture, stride, ASPP, second stage, batch size).

  python scripts/study_estimate.py [--epochs 2] [--save docs/results/study/estimate.json]

A run's time is its start-up and first epoch (compilation included) plus its remaining epochs at
the second epoch's time, both measured on a run of that kind trained for --epochs `lite`
epochs from random weights (the timing needs no ImageNet weights: they change the values, not
the work). Each kind is timed once, in a temporary workdir, one after the other; run it alone on
the machine. --save writes the estimate per experiment with the date, commit and machine.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from docs_tables import REPO, provenance  # noqa: E402  # pylint: disable=g-import-not-at-top

from mtl_jax.config import schema  # noqa: E402
from mtl_jax.study import experiments  # noqa: E402
from mtl_jax.sweep import planning  # noqa: E402

# What sets a lite run's time per epoch, besides the number of epochs.
KIND = ('model.arch', 'model.output_stride', 'model.use_aspp', 'model.second_stage')
KIND += ('train.batch_size',)


def _kinds() -> tuple[dict, dict]:
  """({kind: (config ref, args of a run of it)}, {experiment: [(kind, epochs), ...]})."""
  kinds, runs = {}, {}
  for experiment in experiments.EXPERIMENTS:
    sweep = experiment.plan('lite', 'runs/study')
    runs[experiment.name] = []
    for run in sweep.runs:
      config = planning.load_config(sweep.config_ref, run.args)
      kind = tuple(str(schema.get(config, k)) for k in KIND)
      kinds.setdefault(kind, (sweep.config_ref, run.args))
      runs[experiment.name].append((kind, schema.epochs(config)))
  return kinds, runs


def _time(config_ref: str, args: list[str], epochs: int) -> dict:
  """Seconds of start-up + first epoch, and of each later epoch, of a short run."""
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    timing = [f'--config.train.epoch_scale={epochs}', '--config.train.num_epochs=1']
    subprocess.run(
      [sys.executable, '-m', 'mtl_jax.train', f'--config={config_ref}', f'--workdir={workdir}']
      + [a for a in args if not a.startswith('--config.model.pretrained=')]
      + ['--config.model.pretrained=', *timing],
      check=True,
      cwd=REPO,
      capture_output=True,
    )
    total = time.perf_counter() - start
    lines = (pathlib.Path(workdir) / 'metrics.jsonl').read_text().splitlines()
    epoch_times = [json.loads(line)['epoch_time_s'] for line in lines]
  return {'first_s': total - sum(epoch_times[1:]), 'epoch_s': epoch_times[-1]}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--epochs', type=int, default=2, help='lite epochs per timing run (>= 2)')
  parser.add_argument('--save', type=pathlib.Path)
  args = parser.parse_args(argv)
  kinds, runs = _kinds()
  timed = {}
  for kind, (config_ref, run_args) in kinds.items():
    timed[kind] = _time(config_ref, run_args, args.epochs)
    print(f'{dict(zip(KIND, kind))}: {timed[kind]}', file=sys.stderr, flush=True)
  estimate = {
    name: round(sum(timed[k]['first_s'] + (e - 1) * timed[k]['epoch_s'] for k, e in rs))
    for name, rs in runs.items()
  }
  print(json.dumps(estimate, indent=1))
  print(f'total {sum(estimate.values()) / 3600:.2f} h', file=sys.stderr)
  if args.save:
    kinds_out = [{**dict(zip(KIND, k)), **t} for k, t in timed.items()]
    command = f'python scripts/study_estimate.py --epochs {args.epochs}'
    saved = dict(provenance(command), experiments=estimate, kinds=kinds_out)
    args.save.write_text(json.dumps(saved, indent=1) + '\n')


if __name__ == '__main__':
  main()
