"""Runs a tiny training in its own process, for the kill/resume tests (not a test module).

  python tests/support/resume_driver.py WORKDIR STEPS_LOG '{"train.num_epochs": 3, ...}'
      [--kill_at_step S] [--kill_in_save S] [--pause_at_step S --until FILE]

Appends `[step, [sample indices]]` to STEPS_LOG for every training batch (flushed, so it
survives SIGKILL). --kill_at_step S: SIGKILL itself just before running step S.
--kill_in_save S: SIGKILL itself in the middle of writing checkpoint S (after its data item is
written, before the checkpoint is finalised). --pause_at_step S --until FILE: before step S,
write FILE.paused and wait until FILE exists (another process can act while this one trains).
"""

import argparse
import json
import os
import pathlib
import signal
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]


def tiny_config(overrides: dict):
  from mtl_jax.config import files  # pylint: disable=g-import-not-at-top

  config = files.load_config_file(REPO / 'configs' / 'joint.py', 'tiny')
  for dotted, value in overrides.items():
    section, key = dotted.split('.')
    config[section][key] = value
  return config


def _die():
  os.kill(os.getpid(), signal.SIGKILL)


def _kill_during_save(step: int) -> None:
  import grain  # pylint: disable=g-import-not-at-top

  handler = grain.checkpoint.CheckpointHandler
  original = handler.save

  def save(self, directory, *args, **kwargs):
    original(self, directory, *args, **kwargs)
    if f'/{step}.orbax-checkpoint-tmp' in str(directory):
      _die()

  handler.save = save


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('workdir')
  parser.add_argument('steps_log')
  parser.add_argument('overrides')
  parser.add_argument('--kill_at_step', type=int, default=-1)
  parser.add_argument('--kill_in_save', type=int, default=-1)
  parser.add_argument('--pause_at_step', type=int, default=-1)
  parser.add_argument('--until', default='')
  args = parser.parse_args()

  import jax  # pylint: disable=g-import-not-at-top

  jax.config.update('jax_compilation_cache_dir', os.environ['JAX_COMPILATION_CACHE_DIR'])
  from mtl_jax import trainer  # pylint: disable=g-import-not-at-top

  if args.kill_in_save >= 0:
    _kill_during_save(args.kill_in_save)
  log = open(args.steps_log, 'a')  # pylint: disable=consider-using-with

  def hook(step, batch):
    if step == args.kill_at_step:
      _die()
    if step == args.pause_at_step:
      pathlib.Path(args.until + '.paused').touch()
      while not os.path.exists(args.until):
        time.sleep(0.05)
    log.write(json.dumps([step, batch['index'].tolist()]) + '\n')
    log.flush()

  final = trainer.train_and_evaluate(
    tiny_config(json.loads(args.overrides)), args.workdir, batch_hook=hook
  )
  print(json.dumps({k: final[k] for k in ('step', 'miou', 'silog')}))
  sys.exit(0)


if __name__ == '__main__':
  main()
