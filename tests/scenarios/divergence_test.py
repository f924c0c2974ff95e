"""A diverged model never passes as a result: no non-finite weights applied or saved, no score made
from NaN outputs, never the best checkpoint, and the run stops with a line naming the last good
checkpoint."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import run_tiny_train, tiny_joint_model
from flax import nnx
from resilience_test import _assert_same_arrays, _config

from mtl_jax import evaluate, experiment, metrics, steps, trainer
from mtl_jax.data import sample
from mtl_jax.runtime.errors import UserError
from mtl_jax.workdir import checkpoints, run_meta, writers


def _all_finite(tree) -> bool:
  return all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(tree))


def test_an_update_to_infinite_weights_is_a_skipped_step(scene_batch):
  # Finite loss and gradients, but lr = inf makes the new weights Inf/NaN: it was applied before.
  tx = optax.sgd(math.inf)
  graphdef, state = steps.create_train_state(tiny_joint_model(), tx)
  after, step_metrics = jax.jit(
    lambda s, b: steps.train_step(s, b, graphdef=graphdef, tx=tx, spec=steps.TaskSpec())
  )(state, scene_batch)
  assert float(step_metrics['nonfinite']) == 1 and int(after.nonfinite_streak) == 1
  for name in ('params', 'batch_stats', 'opt_state'):
    _assert_same_arrays(getattr(after, name), getattr(state, name))


def test_nan_weights_score_nan_not_a_class_id(scene_batch):
  """An argmax of NaN logits is a valid class: the eval must see the outputs, not the labels."""
  tx = optax.sgd(0.1)
  graphdef, state = steps.create_train_state(tiny_joint_model(), tx)
  state = state.replace(params=jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), state.params))
  batch = {**scene_batch, 'mask': np.array([True, True, True, False])}
  scores = metrics.compute(
    steps.eval_step(
      state, metrics.empty(), batch, graphdef=graphdef, spec=steps.TaskSpec(tasks=sample.TASKS)
    )
  )
  assert scores.pop('nonfinite_images') == 3  # the padded fourth image is not counted
  assert all(math.isnan(v) for v in scores.values())


def _checkpointed_arrays_finite(workdir) -> list[int]:
  manager = checkpoints.make_manager(workdir / 'checkpoints', read_only=True)
  for step in manager.all_steps():
    assert _all_finite(experiment.open_run(str(workdir), step).state), step
  return manager.all_steps()


def test_a_learning_rate_that_diverges_stops_the_run_with_nothing_non_finite_kept(
  data_dir, tmp_path
):
  # lr 1e30 (finite, so the config accepts it): Adam's first update is ~1e30 per weight, whose
  # norm overflows, so no step is ever applied. Before the guard: exit 0, every weight NaN,
  # "SI-log 0.00".
  workdir = tmp_path / 'run'
  result = run_tiny_train(
    workdir,
    data_dir,
    {'optim.learning_rate': '1e30', 'train.max_nonfinite_steps': 3},
  )
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  (line,) = [x for x in result.stderr.splitlines() if x.startswith('train: error:')]
  assert line.startswith(
    'train: error: the loss, gradients or updated weights were NaN/Inf for 3 consecutive steps'
  ), line
  assert 'no checkpoint was saved yet' in line or 'the last good checkpoint is step' in line
  assert 'step 2/8 | skipped: non-finite (2 in a row)' in result.stdout  # not "loss 0.0000"
  _checkpointed_arrays_finite(workdir)
  for record in writers.read_records(workdir / 'metrics.jsonl'):
    assert record.get('nonfinite_images', 0) == 0 and record['total'] is not None


def test_nan_outputs_at_an_eval_stop_the_run_unsaved_and_unscored(data_dir, tmp_path, monkeypatch):
  """Training steps finite, eval outputs not (here: Inf running statistics at the second eval)."""
  config = _config(data_dir, **{'train.num_epochs': 3})
  workdir = tmp_path / 'run'
  evaluate = experiment.Evaluator.__call__
  evals = []

  def inf_statistics_at_the_second_eval(self, state):
    evals.append(state)
    if len(evals) == 2:
      inf = jax.tree.map(lambda x: jnp.full_like(x, jnp.inf), state.batch_stats)
      state = state.replace(batch_stats=inf)
    return evaluate(self, state)

  monkeypatch.setattr(experiment.Evaluator, '__call__', inf_statistics_at_the_second_eval)
  with pytest.raises(
    trainer.TrainingDiverged,
    match=r'the model outputs were NaN/Inf on 8 validation images after step 8, so it has no '
    r'score; stopped without saving, the last good checkpoint is step 4',
  ):
    trainer.train_and_evaluate(config, str(workdir))
  assert _checkpointed_arrays_finite(workdir) == [4]
  first, marked = writers.read_records(workdir / 'metrics.jsonl')
  assert first['nonfinite_images'] == 0 and first['total'] is not None
  assert marked['nonfinite_images'] == 8 and marked['step'] == 8
  assert all(marked[k] is None for k in ('miou', 'silog', 'total', 'grader'))


def test_a_nan_score_is_never_the_best_checkpoint(tmp_path):
  manager = checkpoints.make_manager(tmp_path, keep_latest=1)
  state = {'w': jnp.zeros(2)}
  for step, total in ((1, -5.0), (2, math.nan), (3, math.nan)):
    checkpoints.save(
      manager,
      step,
      state=state,
      data_iterator=None,
      meta=run_meta.RunMeta.start(config={}, classes={}),
      metrics={'total': total},
    )
  manager.wait_until_finished()
  assert manager.best_step() == 1
  assert manager.all_steps() == [1, 3]  # the best kept beside the latest


def test_evaluating_a_diverged_checkpoint_is_one_line_not_a_score(tiny_run, tmp_path):
  config, run_dir, _ = tiny_run
  run = experiment.open_run(run_dir)
  nan = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), run.state.params)
  model = nnx.merge(run.graphdef, nan, run.state.batch_stats)
  workdir = experiment.save_run_start(config, model, tmp_path / 'diverged')
  with pytest.raises(
    UserError,
    match=rf'checkpoint 0 in {workdir} gives NaN/Inf outputs on 8 validation images, so it has '
    r'no score \(the model diverged\); evaluate an earlier --step',
  ):
    evaluate.evaluate_run(str(workdir))
