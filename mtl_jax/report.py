"""Reports runs and sweeps: `python -m mtl_jax.report RUN_OR_SWEEP_DIR... --output DIR`.

Writes DIR/index.html (per-epoch curves, the summary table in the study's Table 4 form with Δm
against single-task baselines, per-class IoU, depth error by distance, sample grids from each
run's best checkpoint), DIR/summary.csv and DIR/summary.md. A path is a run directory or any
directory holding runs (a sweep root, searched at any depth).
"""

from pathlib import Path

from absl import flags

from mtl_jax import cli
from mtl_jax.runtime.errors import UserError

_OUTPUT = flags.DEFINE_string('output', None, 'Directory to write the report into (created).')
flags.mark_flags_as_required(['output'])


def main(argv):
  if len(argv) < 2:
    raise UserError('name at least one run directory or directory of runs')
  output = cli.directory_flag('--output', _OUTPUT.value)
  from mtl_jax.reports import build  # pylint: disable=g-import-not-at-top  # fast --help

  index = build.write_report([Path(p) for p in argv[1:]], output)
  print(f'wrote {index}', flush=True)


if __name__ == '__main__':
  cli.run(main, 'report', takes_arguments=True)
