"""Trains a model: `python -m mtl_jax.train --config configs/joint.py:cpu [--workdir DIR]`.

Resumes automatically from the newest complete checkpoint in DIR (default
runs/<config>-<presets>, e.g. runs/joint-cpu, in the working directory). A --config path that does
not exist there names a config shipped with the package (`configs/joint.py`, `joint.py` or
`joint`). SIGTERM or Ctrl-C saves a checkpoint within a step or two and exits 0 (a second one
exits at once). Override any config value with `--config.a.b=value`.

Several processes (GPU nodes, TPU hosts, or `--coordinator_address/--num_processes/--process_id`
on one machine) run the same command and train one model: see `mtl_jax.distributed`.
"""

import sys
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from mtl_jax import cli, distributed

_CONFIG = config_flags.DEFINE_config_file(
  'config',
  None,
  'Config file and presets, e.g. configs/joint.py:cpu (not found here: a shipped config)',
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
  'workdir',
  None,
  'Run directory (created; resumed if it exists). Default: runs/<config>-<presets>',
)
flags.mark_flags_as_required(['config'])


def main(argv):
  # After flag parsing: keeps --help fast.
  from mtl_jax import metrics, trainer  # pylint: disable=g-import-not-at-top
  from mtl_jax.config import files  # pylint: disable=g-import-not-at-top
  from mtl_jax.runtime import progress  # pylint: disable=g-import-not-at-top

  with distributed.exit_when_a_peer_dies('train'):
    distributed.initialize()
    workdir = _WORKDIR.value
    if workdir is None:
      workdir = str(files.default_workdir(cli.flag_value(sys.argv, 'config')))
      progress.say(f'workdir: {Path(workdir).absolute()} (no --workdir given)')
    cli.directory_flag('--workdir', workdir)
    final = trainer.train_and_evaluate(_CONFIG.value, workdir)
  if not progress.is_primary():
    return
  if 'stopped_by' in final:
    print(
      f'stopped by {final["stopped_by"]} after step {final["step"]}; checkpoint saved. Run '
      'the same command again to continue.',
      flush=True,
    )
    return
  print(metrics.summary_line(final, final['best_step']), flush=True)


if __name__ == '__main__':
  cli.run(main, 'train')
