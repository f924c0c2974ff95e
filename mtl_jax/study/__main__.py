"""Runs the course study: `python -m mtl_jax.study [--scale lite] [--root runs/study]
[--only ladder,...] [--parallel N] [--print_commands]`.

Each experiment (mtl_jax/study/experiments.py: a sweep file under sweeps/study/, the config it
runs on and its seeds) runs as `python -m mtl_jax.sweep` under root/<experiment>, one after the
other, and writes its report there when its runs have ended. Sweeps resume, so rerunning the
command continues the study where it stopped; an experiment whose runs fail (the ImageNet rows
without converted weights) does not stop the next. --print_commands prints every experiment's
train commands, each experiment headed by its number of runs, and runs nothing.
"""

import subprocess
import sys
import time

from absl import flags

from mtl_jax import cli
from mtl_jax.runtime import progress
from mtl_jax.runtime.errors import UserError
from mtl_jax.study import experiments

_SCALE = flags.DEFINE_enum(
  'scale', 'lite', experiments.SCALES, "'full': the study's own settings; 'lite': a 2-core CPU"
)
_ROOT = flags.DEFINE_string('root', 'runs/study', 'One folder of runs per experiment under it')
_ONLY = flags.DEFINE_list('only', [], 'Experiments to run (default: all), e.g. ladder')
_PARALLEL = flags.DEFINE_integer('parallel', 1, 'Runs trained at a time, within an experiment')
_PRINT = flags.DEFINE_bool('print_commands', False, 'Print the train commands; run nothing')


def chosen(only: list[str]) -> list[experiments.Experiment]:
  names = [e.name for e in experiments.EXPERIMENTS]
  unknown = [name for name in only if name not in names]
  if unknown:
    raise UserError(f'--only: unknown experiment {unknown[0]!r}; valid: {", ".join(names)}')
  return [e for e in experiments.EXPERIMENTS if not only or e.name in only]


def print_commands(experiment: experiments.Experiment, scale: str, root: str) -> None:
  from mtl_jax.sweep import planning  # pylint: disable=g-import-not-at-top  # keeps --help fast

  sweep = experiment.plan(scale, root)
  print(f'# {experiment.name} ({experiment.shows}): {len(sweep.runs)} runs')
  print('\n'.join(planning.shell_line(sweep.command(run)) for run in sweep.runs))


def main(argv):
  del argv
  cli.directory_flag('--root', _ROOT.value)
  if _PARALLEL.value < 1:
    raise UserError(f'--parallel={_PARALLEL.value}: runs at a time must be >= 1')
  chosen_experiments = chosen(_ONLY.value)
  if _PRINT.value:
    for experiment in chosen_experiments:
      print_commands(experiment, _SCALE.value, _ROOT.value)
    return
  failed = []
  for experiment in chosen_experiments:
    progress.say(f'study: {experiment.name} ({experiment.shows})')
    start = time.monotonic()
    args = experiment.sweep_args(_SCALE.value, _ROOT.value) + ['--parallel', str(_PARALLEL.value)]
    code = subprocess.call([sys.executable, '-m', 'mtl_jax.sweep', *args])
    elapsed = progress.format_duration(time.monotonic() - start)
    progress.say(f'study: {experiment.name} ended in {elapsed}' + (f', exit {code}' * bool(code)))
    if code:
      failed.append(experiment.name)
  if failed:
    progress.say(f'study: runs failed in {", ".join(failed)} (their reports say which and why)')
    sys.exit(1)


if __name__ == '__main__':
  cli.run(main, 'study')
