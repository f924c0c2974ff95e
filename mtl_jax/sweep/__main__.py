"""Runs a sweep: `python -m mtl_jax.sweep --config configs/joint.py:cpu --root runs/lr_sweep
--grid optim.name=sgd,adam --grid optim.learning_rate=1e-2,1e-3,1e-4 [--seeds 0,1,2]
[--parallel N]`, or `--sweep sweeps/study/learning_rates.py` (a file whose get_sweep() returns
the list of override dicts).

Every combination × seed trains in its own workdir under --root, named by its overrides (see
mtl_jax/sweep/planning.py), N at a time; finished runs are skipped and stopped ones resumed, so
rerunning the command continues the sweep. `--config.key=value` applies to every run.
--print_commands prints the train commands instead and --slurm FILE writes them as a SLURM job
array (never over a different file: a script you edited is kept). The report
(root/report/index.html) is written when every run has ended.
"""

import sys
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from mtl_jax import cli
from mtl_jax.runtime.errors import UserError

_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'Config file and presets of every run, e.g. configs/joint.py:cpu'
)
_ROOT = flags.DEFINE_string('root', None, 'Directory holding one workdir per run')
_GRID = flags.DEFINE_multi_string(
  'grid',
  [],
  'key=value1,value2,...: a config key and its values (repeat for a product); '
  'k1,k2=a:b,c:d,...: keys that vary together (the task weights must)',
)
_SWEEP = flags.DEFINE_string(
  'sweep', None, 'Python file whose get_sweep() returns a list of override dicts'
)
_SEEDS = flags.DEFINE_string('seeds', None, "Seeds, e.g. 0,1,2 (default: the config's seed)")
_PARALLEL = flags.DEFINE_integer('parallel', 1, 'Runs trained at a time')
_PRINT = flags.DEFINE_bool('print_commands', False, 'Print the train commands; run nothing')
_SLURM = flags.DEFINE_string(
  'slurm',
  None,
  'Write a SLURM job-array script here and run nothing; an existing file with other content is '
  'refused, not replaced',
)
flags.mark_flags_as_required(['config', 'root'])


def main(argv):
  from mtl_jax.sweep import planning  # after flag parsing: keeps --help fast

  root = cli.directory_flag('--root', _ROOT.value)
  slurm = _SLURM.value is not None and cli.file_flag('--slurm', _SLURM.value)
  if _PARALLEL.value < 1:
    raise UserError(f'--parallel={_PARALLEL.value}: runs at a time must be >= 1')
  fixed = [
    f'--config.{key}={planning.value_text(value)}'
    for key, value in config_flags.get_override_values(flags.FLAGS['config']).items()
  ]
  sweep = planning.plan(cli.flag_value(sys.argv, 'config'), fixed, _combinations(planning), root)
  if _PRINT.value:
    print('\n'.join(planning.shell_line(sweep.command(run)) for run in sweep.runs))
  if slurm:
    written_by = planning.shell_line(['python', '-m', 'mtl_jax.sweep', *sys.argv[1:]])
    planning.write_slurm_script(slurm, planning.slurm_script(sweep, written_by))
    root.mkdir(parents=True, exist_ok=True)  # for the tasks' --output: SLURM does not create it
    print(f'wrote {slurm}: {len(sweep.runs)} array tasks (sbatch {slurm})')
  if _PRINT.value or slurm:
    return
  from mtl_jax.sweep import runner  # pylint: disable=g-import-not-at-top  # reads runs

  code = runner.Runner(sweep, _PARALLEL.value).run()
  sys.exit(code)


def _combinations(planning):
  if not _GRID.value and _SWEEP.value is None and _SEEDS.value is None:
    raise UserError('nothing to sweep: give --grid key=v1,v2, --sweep FILE or --seeds')
  seeds = [] if _SEEDS.value is None else _SEEDS.value.split(',')
  if _SEEDS.value is not None and not all(seeds):
    raise UserError(f'--seeds={_SEEDS.value}: expected integers like 0,1,2')
  sweep = [{}] if _SWEEP.value is None else planning.load_sweep_file(Path(_SWEEP.value))
  return planning.combinations(sweep, planning.parse_grid(_GRID.value), seeds)


if __name__ == '__main__':
  cli.run(main, 'sweep')
