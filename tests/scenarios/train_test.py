"""End-to-end: the real training loop and evaluate command on a tiny synthetic dataset."""

import json
import shutil

import numpy as np

from mtl_jax import evaluate, metrics, trainer
from mtl_jax.data.labels import CLASS_NAMES
from mtl_jax.workdir import writers

RECORD_KEYS = (  # every record has these: the README's metrics, losses and bookkeeping
  'miou',
  'pixel_acc',
  *metrics.DEPTH_KEYS,
  'total',
  'grader',
  'step',
  'epoch',
  'split',
  'wall_time_s',
  'loss/semseg',
  'loss/depth',
  'loss/total',
)


def test_run_writes_config_metrics_events_and_checkpoints(tiny_run):
  config, workdir, final = tiny_run
  records = writers.read_records(workdir / 'metrics.jsonl')
  assert [r['epoch'] for r in records] == [1, 2]
  assert [r['step'] for r in records] == [4, 8]  # 16 train images / batch 4 = 4 steps per epoch
  for r in records:
    assert set(RECORD_KEYS) <= set(r)
    assert {f'iou/{n}' for n in CLASS_NAMES} <= set(r)
    assert r['total'] == r['miou'] - r['silog']
    assert r['grader'] == max(r['miou'] - 50, 0) + max(50 - r['silog'], 0)
  assert final['miou'] == records[-1]['miou'] and final['step'] == 8
  assert json.loads((workdir / 'config.json').read_text())['model']['encoder'] == 'resnet_tiny'
  assert list((workdir / 'tensorboard').glob('events.out.tfevents.*'))
  best = max(records, key=lambda r: r['total'])['step']
  assert final['best_step'] == best
  assert {best, 8} <= {int(p.name) for p in (workdir / 'checkpoints').iterdir()}


def test_evaluate_reproduces_best_training_eval(tiny_run):
  _, workdir, final = tiny_run
  records = {r['step']: r for r in writers.read_records(workdir / 'metrics.jsonl')}
  result = evaluate.evaluate_run(str(workdir))
  assert result['step'] == final['best_step']
  expected = records[result['step']]
  for key, value in result.items():
    if key not in ('step', 'split'):
      np.testing.assert_equal(value, expected[key], err_msg=key)


def test_resume_continues_from_latest_checkpoint_to_the_same_result(tiny_run, tmp_path):
  config, workdir, final = tiny_run
  resumed = tmp_path / 'resumed'
  shutil.copytree(workdir, resumed)
  shutil.rmtree(resumed / 'checkpoints' / '8')  # as if killed between epoch 1 and epoch 2's save
  result = trainer.train_and_evaluate(config, str(resumed))
  records = writers.read_records(resumed / 'metrics.jsonl')
  assert [r['step'] for r in records] == [4, 8]  # epoch 2 redone once, not duplicated
  for key in ('miou', 'silog', 'loss/total'):
    assert result[key] == final[key], key


def test_rerun_of_a_finished_run_reports_its_last_eval(tiny_run):
  config, workdir, final = tiny_run
  again = trainer.train_and_evaluate(config, str(workdir))
  assert again['step'] == 8 and again['miou'] == final['miou']


def test_unfinished_checkpoint_is_removed_on_start(tiny_run, tmp_path):
  config, workdir, _ = tiny_run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  leftover = copy / 'checkpoints' / '12.orbax-checkpoint-tmp'
  leftover.mkdir()
  trainer.train_and_evaluate(config, str(copy))
  assert not leftover.exists()
