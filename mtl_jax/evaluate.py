"""Scores a trained run: `python -m mtl_jax.evaluate --workdir DIR [--split test] [--output F.json]`.

Rebuilds the model from DIR/config.json, restores the best checkpoint (or `--step`), runs the
same evaluation as training and prints and writes the metrics.
"""

import json
from pathlib import Path

from absl import app, flags

from mtl_jax import cli

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training run directory.')
_SPLIT = flags.DEFINE_enum('split', 'validation', ['validation', 'test'], 'Split to score.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the best by `total`).')
_OUTPUT = flags.DEFINE_string('output', None, 'Write the metrics JSON here '
                              '(default: DIR/eval_<split>_step<N>.json).')
flags.mark_flags_as_required(['workdir'])


def evaluate_run(workdir: str, split: str = 'validation', step: int | None = None) -> dict:
  """Metrics of checkpoint `step` (default: best) of the run in `workdir` on `split`."""
  from mtl_jax import checkpointing, configuration, evaluation, parallel, trainer
  config = configuration.load(workdir)
  configuration.validate(config)
  manager = checkpointing.make_manager(
      Path(workdir) / 'checkpoints', read_only=True,
      best_metric=checkpointing.best_metric_for(config.model.tasks))
  available = manager.all_steps()
  if not available:
    raise configuration.ConfigError(f'no checkpoint in {Path(workdir) / "checkpoints"}')
  step = manager.best_step() if step is None else step
  if step not in available:
    raise configuration.ConfigError(f'no checkpoint for step {step}; available: {sorted(available)}')
  mesh = parallel.make_mesh()
  graphdef, state, _, _ = trainer.create_state(config, total_steps=1)
  state, _ = checkpointing.restore(manager, step, state_template=parallel.replicate(state, mesh))
  source = trainer.prepare_sources(config, (split,))[split]
  scores = evaluation.evaluate(
      evaluation.make_eval_step(graphdef, configuration.task_spec(config)), state,
      trainer.make_eval_batches(config, source), mesh, num_classes=config.model.num_classes,
      tasks=tuple(config.model.tasks))
  return {'step': step, 'split': split, **scores}


def main(argv):
  cli.setup()
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  with cli.user_errors('evaluate'):
    result = evaluate_run(_WORKDIR.value, _SPLIT.value, _STEP.value)
    output = Path(_OUTPUT.value or
                  Path(_WORKDIR.value) / f'eval_{result["split"]}_step{result["step"]}.json')
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + '\n')
  from mtl_jax import progress
  print(progress.eval_line(f'step {result["step"]} {result["split"]}', result))
  print(f'wrote {output}')


if __name__ == '__main__':
  cli.run(main, 'evaluate')
