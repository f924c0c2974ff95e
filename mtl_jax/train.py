"""Trains a model: `python -m mtl_jax.train --config configs/joint.py:cpu --workdir DIR`.

Resumes automatically from the newest complete checkpoint in DIR. SIGTERM or Ctrl-C saves a
checkpoint after the current step and exits 0 (a second one exits at once). Override any config
value with `--config.a.b=value`.
"""

from absl import app, flags
from ml_collections import config_flags

from mtl_jax import cli

_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'Config file, e.g. configs/joint.py:cpu', lock_config=True
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory (created; resumed if it exists).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  cli.setup()
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  from mtl_jax import progress, trainer  # after flag parsing: keeps --help fast

  with cli.user_errors('train'):
    final = trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  if 'stopped_by' in final:
    print(
      f'stopped by {final["stopped_by"]} after step {final["step"]}; checkpoint saved. Run '
      'the same command again to continue.',
      flush=True,
    )
    return
  print(progress.summary_line(final, final['best_step']), flush=True)


if __name__ == '__main__':
  cli.run(main, 'train')
