"""Crash-proof training: kills at random moments, SIGTERM, NaN steps, mismatched and corrupt
checkpoints. A resumed run must end bit-identical to an uninterrupted one."""

import json
import os
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from conftest import REPO, tiny_joint_model

from mtl_jax import experiment, steps, trainer
from mtl_jax.config import schema
from mtl_jax.workdir import checkpoints, environment, mismatch, restoring, run_config, writers

DRIVER = REPO / 'tests' / 'support' / 'resume_driver.py'
# 16 train samples / batch 4 = 4 steps per epoch; saves at 3, 4, 6, 8, 9, 12.
KILL_RUN = {'train.num_epochs': 3, 'train.checkpoint_every_steps': 3}


def _config(data_dir, **overrides):
  sys.path.insert(0, str(DRIVER.parent))
  import resume_driver  # pylint: disable=g-import-not-at-top

  config = resume_driver.tiny_config(overrides)
  config.data.data_dir = str(data_dir)
  return config


def _without_wall_time(records):
  return [{k: v for k, v in r.items() if k not in ('wall_time_s', 'epoch_time_s')} for r in records]


def _final_params(workdir, step):
  return jax.device_get(experiment.open_run(str(workdir), step).state.params)


def _assert_same_arrays(a, b):
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


@pytest.fixture(scope='module')
def reference(data_dir, tmp_path_factory):
  """The uninterrupted KILL_RUN: (workdir, final record, {step: sample indices})."""
  workdir = tmp_path_factory.mktemp('uninterrupted')
  seen = {}
  final = trainer.train_and_evaluate(
    _config(data_dir, **KILL_RUN),
    str(workdir),
    batch_hook=lambda step, batch: seen.setdefault(step, batch['index'].tolist()),
  )
  return workdir, final, seen


def _drive(workdir, steps_log, data_dir, *kill):
  overrides = {**KILL_RUN, 'data.data_dir': str(data_dir)}
  return subprocess.run(
    [sys.executable, str(DRIVER), str(workdir), str(steps_log), json.dumps(overrides), *kill],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=False,
  )


def test_sigkill_at_random_moments_then_resume_is_bit_identical(reference, data_dir, tmp_path):
  ref_dir, ref_final, ref_seen = reference
  rng = np.random.default_rng(20261124)
  # Three kills at random steps, one of them inside a checkpoint save, then a clean finish.
  save_steps = (3, 4, 6, 8, 9)
  kills = sorted(
    [
      ('--kill_at_step', int(rng.integers(1, 4))),
      ('--kill_in_save', int(rng.choice(save_steps[1:4]))),
      ('--kill_at_step', int(rng.integers(10, 12))),
    ],
    key=lambda k: k[1],
  )
  workdir, steps_log = tmp_path / 'killed', tmp_path / 'steps.jsonl'
  for flag, step in kills:
    proc = _drive(workdir, steps_log, data_dir, flag, str(step))
    assert proc.returncode == -signal.SIGKILL, (flag, step, proc.stderr[-2000:])
    if flag == '--kill_in_save':  # it died half-way through writing checkpoint `step`
      assert list((workdir / 'checkpoints').glob(f'{step}.orbax-checkpoint-tmp*'))
  proc = _drive(workdir, steps_log, data_dir)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'resumed from step' in proc.stdout

  # Every step ran on the same samples each time it ran (replays after a kill included) ...
  runs_of = {}
  for line in steps_log.read_text().splitlines():
    step, indices = json.loads(line)
    runs_of.setdefault(step, []).append(indices)
  assert sorted(runs_of) == sorted(ref_seen) == list(range(12))
  for step, seen in runs_of.items():
    assert all(indices == ref_seen[step] for indices in seen), step
  # ... and each epoch saw each of the 16 samples exactly once.
  for epoch in range(3):
    epoch_indices = sum((ref_seen[s] for s in range(4 * epoch, 4 * epoch + 4)), [])
    assert sorted(epoch_indices) == list(range(16))

  assert not list((workdir / 'checkpoints').glob('*.orbax-checkpoint-tmp*'))
  assert _without_wall_time(writers.read_records(workdir / 'metrics.jsonl')) == _without_wall_time(
    writers.read_records(ref_dir / 'metrics.jsonl')
  )
  _assert_same_arrays(_final_params(workdir, 12), _final_params(ref_dir, 12))
  assert json.loads(proc.stdout.strip().splitlines()[-1])['miou'] == ref_final['miou']


def test_sigterm_saves_then_resume_continues_at_the_next_step(reference, data_dir, tmp_path):
  ref_dir, ref_final, _ = reference
  workdir = tmp_path / 'run'
  config = _config(data_dir, **KILL_RUN)

  def terminate_at_5(step, batch):
    del batch
    if step == 5:
      os.kill(os.getpid(), signal.SIGTERM)

  stopped = trainer.train_and_evaluate(config, str(workdir), batch_hook=terminate_at_5)
  # Step 5 carries the request (its stop vote); the loop reads that vote while step 6 runs, so
  # every process of a job stops after step 6, at done = 7.
  assert stopped['stopped_by'] == 'SIGTERM' and stopped['step'] == 7
  assert 7 in checkpoints.make_manager(workdir / 'checkpoints', read_only=True).all_steps()
  seen = []
  final = trainer.train_and_evaluate(
    config, str(workdir), batch_hook=lambda step, batch: seen.append(step)
  )
  assert seen == list(range(7, 12))
  assert final['miou'] == ref_final['miou'] and final['loss/total'] == ref_final['loss/total']
  _assert_same_arrays(_final_params(workdir, 12), _final_params(ref_dir, 12))


def test_sigterm_to_the_train_command_exits_0_with_a_checkpoint(data_dir, tmp_path):
  workdir = tmp_path / 'cli'
  proc = subprocess.Popen(
    [
      sys.executable,
      '-m',
      'mtl_jax.train',
      '--config',
      'configs/joint.py:tiny',
      f'--workdir={workdir}',
      f'--config.data.data_dir={data_dir}',
      '--config.train.num_epochs=500',
      '--config.train.log_every_steps=1',
    ],
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  for line in proc.stdout:
    if line.startswith('step 3/'):
      proc.send_signal(signal.SIGTERM)
      break
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-2000:]
  stopped = out.strip().splitlines()[-1]
  assert stopped.startswith('stopped by SIGTERM after step ') and 'checkpoint saved' in stopped
  step = int(stopped.split('after step ')[1].split(';')[0])
  assert step in checkpoints.make_manager(workdir / 'checkpoints', read_only=True).all_steps()


# ----------------------------------------------------------------------------- NaN / Inf


def _tiny_state(tx):
  model = tiny_joint_model()
  return steps.create_train_state(model, tx)


def test_nonfinite_step_changes_nothing_but_the_counters(scene_batch):
  tx = optax.adam(1e-2)
  graphdef, state = _tiny_state(tx)
  step = jax.jit(
    lambda s, b: steps.train_step(s, b, graphdef=graphdef, tx=tx, spec=steps.TaskSpec())
  )
  state, _ = step(state, scene_batch)  # a real step first: non-trivial optimizer state
  # NaN depth would count as invalid (not > 0); +inf is valid and makes the loss non-finite.
  bad = {**scene_batch, 'depth': np.where(scene_batch['depth'] > 10, np.inf, scene_batch['depth'])}
  after, metrics = step(state, bad)
  for name in ('params', 'batch_stats', 'opt_state'):
    _assert_same_arrays(getattr(after, name), getattr(state, name))
  assert int(after.step) == int(state.step) + 1 and int(after.nonfinite_streak) == 1
  assert float(metrics['nonfinite']) == 1 and float(metrics['loss/total']) == 0
  again, _ = step(after, bad)
  assert int(again.nonfinite_streak) == 2
  good, metrics = step(again, scene_batch)
  assert int(good.nonfinite_streak) == 0 and float(metrics['nonfinite']) == 0
  assert not np.array_equal(jax.tree.leaves(good.params)[0], jax.tree.leaves(state.params)[0])


def _poison(steps_to_poison):
  def hook(step, batch):
    if step in steps_to_poison:
      batch['depth'][:] = np.inf

  return hook


def test_injected_nan_is_skipped_and_the_run_completes(data_dir, tmp_path):
  config = _config(data_dir, **{'train.num_epochs': 2})
  final = trainer.train_and_evaluate(config, str(tmp_path / 'run'), batch_hook=_poison({5}))
  records = writers.read_records(tmp_path / 'run' / 'metrics.jsonl')
  assert [r['nonfinite_steps'] for r in records] == [0, 1]
  assert final['step'] == 8 and np.isfinite(final['loss/total']) and np.isfinite(final['miou'])


def test_consecutive_nonfinite_steps_stop_with_the_last_good_checkpoint(data_dir, tmp_path):
  config = _config(data_dir, **{'train.num_epochs': 3, 'train.max_nonfinite_steps': 3})
  with pytest.raises(
    trainer.TrainingDiverged,
    match=r'NaN/Inf for 3 consecutive steps \(limit '
    r'config.train.max_nonfinite_steps=3\); stopped without saving, the last '
    r'good checkpoint is step 4',
  ):
    trainer.train_and_evaluate(config, str(tmp_path / 'run'), batch_hook=_poison(range(5, 12)))
  manager = checkpoints.make_manager(tmp_path / 'run' / 'checkpoints', read_only=True)
  assert manager.all_steps() == [4]
  assert experiment.open_run(str(tmp_path / 'run'), 4).step == 4  # intact and restorable


# ----------------------------------------------------------------------------- bad checkpoints


@pytest.mark.parametrize(
  'change, message',
  [
    (
      {'model.aspp_channels': 16},
      r'\d+ arrays differ in shape or dtype \(batch_stats/branch/'
      r'context/branches/0/bn/mean/value: float32\[8\] in the '
      r'checkpoint vs float32\[16\] in the model',
    ),
    ({'model.encoder': 'resnet18'}, r'88 arrays only in the model \(batch_stats/encoder/layer1/1/'),
    (
      {'model.arch': 'branched'},
      r'105 arrays only in the checkpoint \(batch_stats/branch/.*; '
      r'210 arrays only in the model \(batch_stats/branches/depth/',
    ),
  ],
)
def test_mismatched_restore_names_keys_and_shapes(tiny_run, tmp_path, change, message):
  config, workdir, _ = tiny_run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  changed = run_config.load(copy)
  for dotted, value in change.items():
    section, key = dotted.split('.')
    changed[section][key] = value
  # config.json edited to match (a changed config is refused before any checkpoint is read:
  # resume_with_a_changed_config_test.py): the checkpoint's arrays still tell the truth.
  run_config.save(changed, copy)
  saved_config = (copy / 'config.json').read_text()
  with pytest.raises(
    mismatch.CheckpointMismatch,
    match=r'checkpoint 8 in .* was written by a different model: ' + message,
  ):
    trainer.train_and_evaluate(changed, str(copy))
  assert (copy / 'config.json').read_text() == saved_config  # untouched


def test_restore_refuses_another_class_count_instead_of_casting(tiny_run):
  config, workdir, _ = tiny_run
  config = run_config.load(workdir)
  config.model.num_classes = 7
  exp = experiment.Experiment.from_config(config)
  _, template = exp.init_state(exp.optimizer(total_steps=1).tx)
  manager = checkpoints.make_manager(workdir / 'checkpoints', read_only=True)
  with pytest.raises(
    mismatch.CheckpointMismatch,
    match=r'6 arrays differ in shape or dtype '
    r'\(params/head/bias/value: float32\[20\] in the checkpoint vs float32\[8\] '
    r'in the model; params/head/kernel/value',
  ):
    restoring.restore(manager, 8, state_template=template)


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_with_a_warning(
  tiny_run, tmp_path, capsys
):
  config, workdir, final = tiny_run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  for path in (copy / 'checkpoints' / '8' / 'state').rglob('*'):
    if path.is_file() and path.stat().st_size > 100:
      path.write_bytes(path.read_bytes()[:50])  # truncated array data
  result = trainer.train_and_evaluate(config, str(copy))
  err = capsys.readouterr().err
  assert 'warning: checkpoint 8 could not be restored' in err
  assert 'and resumed from checkpoint 4' in err
  assert (copy / 'checkpoints_unreadable' / '8').is_dir()
  assert result['step'] == 8 and result['miou'] == final['miou']  # epoch 2 redone from step 4


def test_resume_under_other_software_warns(tiny_run, tmp_path, monkeypatch, capsys):
  config, workdir, _ = tiny_run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  real = environment.describe()
  monkeypatch.setattr(environment, 'describe', lambda: {**real, 'jaxlib': '0.0.1'})
  trainer.train_and_evaluate(config, str(copy))
  assert (
    f'warning: resuming under different software (jaxlib: checkpoint {real["jaxlib"]!r}, '
    "now '0.0.1')"
  ) in capsys.readouterr().err


def test_second_signal_exits_at_once():
  script = (
    'import os, signal, time\n'
    'from mtl_jax.runtime import preemption\n'
    'with preemption.StopRequest() as stop:\n'
    '  os.kill(os.getpid(), signal.SIGTERM)\n'
    '  assert stop.requested\n'
    '  os.kill(os.getpid(), signal.SIGINT)\n'
    '  time.sleep(30)\n'
  )
  proc = subprocess.run(
    [sys.executable, '-c', script],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=60,
    check=False,
  )
  assert proc.returncode == 128 + signal.SIGINT
  assert 'second SIGINT: exiting now without saving' in proc.stderr


def _copy_run(tiny_run, tmp_path):
  config, workdir, final = tiny_run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  return config, copy, final


def test_checkpoint_without_array_metadata_counts_as_unreadable_not_as_another_model(
  tiny_run, tmp_path, capsys
):
  config, copy, final = _copy_run(tiny_run, tmp_path)
  (copy / 'checkpoints' / '8' / 'state' / '_METADATA').unlink()
  result = trainer.train_and_evaluate(config, str(copy))
  assert 'and resumed from checkpoint 4' in capsys.readouterr().err
  assert result['step'] == 8 and result['miou'] == final['miou']


def test_when_no_checkpoint_restores_nothing_is_moved(tiny_run, tmp_path):
  config, copy, _ = _copy_run(tiny_run, tmp_path)
  steps_before = sorted(p.name for p in (copy / 'checkpoints').iterdir())
  for step_dir in (copy / 'checkpoints').iterdir():
    for path in (step_dir / 'data').rglob('*'):
      if path.is_file():
        path.write_text('{"not": "a grain iterator state"}')
  with pytest.raises(
    restoring.CheckpointUnreadable,
    match=r'no checkpoint in .* restores '
    r'\(step 8: .*; step 4: .*\)\. If config.data',
  ):
    trainer.train_and_evaluate(config, str(copy))
  assert sorted(p.name for p in (copy / 'checkpoints').iterdir()) == steps_before
  assert not (copy / 'checkpoints_unreadable').exists()
  assert len(writers.read_records(copy / 'metrics.jsonl')) == 2  # history untouched


def test_resume_with_another_batch_size_is_refused(tiny_run, tmp_path):
  config, copy, _ = _copy_run(tiny_run, tmp_path)
  config = run_config.load(copy)
  config.train.batch_size = 2
  with pytest.raises(schema.ConfigError, match=r'train.batch_size: 4 there, 2 here\)'):
    trainer.train_and_evaluate(config, str(copy))  # the record says otherwise
  # With config.json edited to match, the checkpoints' own count of steps still refuses it.
  run_config.save(config, copy)
  with pytest.raises(
    schema.ConfigError,
    match=r'trained with 4 steps per epoch, this '
    r'config gives 8 \(train.batch_size or the train split changed\)',
  ):
    trainer.train_and_evaluate(config, str(copy))
