"""`python -m mtl_jax.report`: the table holds the runs' own numbers (best and last evals, mean ±
std over seeds, Δm against single-task baselines), settings are labelled by what differs, unfinished
runs are marked, bad input is one line, the page works in a real browser (headless Chromium), and
training writes the same sample grid to TensorBoard at every eval.

The runs are copies of the `tiny_run` fixture with edited config.json and metrics.jsonl, so a
dozen runs cost no training.
"""

import csv
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest
from commands import assert_one_line_error, run
from PIL import Image
from tensorboardX.proto import event_pb2

from mtl_jax.reports import build, distance, plots, runs, samples, scores, settings, table
from mtl_jax.runtime import locks
from mtl_jax.runtime.errors import UserError
from mtl_jax.workdir import layout, run_status, writers

# (mIoU, SI-log) per epoch of the three seeds of setting A; best = highest total = mIoU − SI-log.
SEED_EVALS = {
  0: [(30, 40), (40, 35), (38, 36)],  # best epoch 2, last epoch 3
  1: [(32, 41), (36, 30), (44, 31)],  # best = last = epoch 3
  2: [(20, 50), (26, 45), (24, 44)],  # best epoch 2
}
BEST = {0: (40, 35), 1: (44, 31), 2: (26, 45)}  # read off by hand
LAST = {0: (38, 36), 1: (44, 31), 2: (24, 44)}
SEMSEG_BASELINE = [30, 50]  # mIoU per epoch: best 50
DEPTH_BASELINE = [40, 32]  # SI-log per epoch: best (lowest) 32
# Δm per seed = 100 · ½ · ((mIoU − 50)/50 − (SI-log − 32)/32), by hand:
DELTA_M = {0: -14.6875, 1: -4.4375, 2: -44.3125}


def make_run(tiny_run, workdir, config=None, evals=None, tasks=('semseg', 'depth')):
  """A copy of the tiny run in `workdir`, with `config` ({'group.key': value}) set in its
  config.json and, given `evals` ([(mIoU or None, SI-log or None)] per epoch), metrics.jsonl
  rewritten to those scores (other keys from the tiny run's first record)."""
  shutil.copytree(tiny_run[1], workdir)
  saved = json.loads((workdir / 'config.json').read_text())
  for key, value in (config or {}).items():
    group, name = key.split('.') if '.' in key else (None, key)
    (saved[group] if group else saved)[name] = value
  (workdir / 'config.json').write_text(json.dumps(saved))
  if evals is not None:
    template = writers.read_records(workdir / layout.METRICS_FILE)[0]
    records = [_record(template, epoch, scored, tasks) for epoch, scored in enumerate(evals, 1)]
    (workdir / layout.METRICS_FILE).write_text(''.join(json.dumps(r) + '\n' for r in records))
  return workdir


def _record(template, epoch, scored, tasks):
  miou, silog = scored
  record = {**template, 'epoch': epoch, 'step': 4 * epoch, 'wall_time_s': 10.0 * epoch}
  if 'depth' not in tasks:
    record = {k: v for k, v in record.items() if k not in ('silog', 'total', 'grader')}
  if 'semseg' not in tasks:
    record = {k: v for k, v in record.items() if k not in ('miou', 'total', 'grader')}
    record = {k: v for k, v in record.items() if not k.startswith('iou/')}
  record.update({k: v for k, v in (('miou', miou), ('silog', silog)) if v is not None})
  if len(tasks) == 2:
    record['total'] = miou - silog
    record['grader'] = max(miou - 50, 0) + max(50 - silog, 0)
  return record


SEMSEG_ONLY = {
  'model.arch': 'single_task',
  'model.tasks': ['semseg'],
  'loss.semseg_weight': 1.0,
  'loss.depth_weight': 0.0,
}
DEPTH_ONLY = {**SEMSEG_ONLY, 'model.tasks': ['depth'], 'loss.semseg_weight': 0.0}
DEPTH_ONLY['loss.depth_weight'] = 1.0


@pytest.fixture(scope='module')
def sweep(tiny_run, tmp_path_factory):
  """A sweep root: setting A (3 seeds, 3 epochs), setting B (another learning rate, stopped
  after 2 of 3 epochs), C (no eval yet) and the two single-task baselines."""
  root = tmp_path_factory.mktemp('sweep')
  three = {'train.num_epochs': 3}
  for seed, evals in SEED_EVALS.items():
    make_run(tiny_run, root / 'a' / f'seed{seed}', {**three, 'seed': seed}, evals)
  make_run(tiny_run, root / 'b', {**three, 'optim.learning_rate': 3e-3}, [(10, 60), (12, 58)])
  make_run(tiny_run, root / 'c', {**three, 'optim.learning_rate': 1e-4}, [])
  make_run(
    tiny_run,
    root / 'semseg',
    {**three, **SEMSEG_ONLY},
    [(m, None) for m in SEMSEG_BASELINE],
    tasks=('semseg',),
  )
  make_run(
    tiny_run,
    root / 'depth',
    {**three, **DEPTH_ONLY},
    [(None, s) for s in DEPTH_BASELINE],
    tasks=('depth',),
  )
  return root


@pytest.fixture(scope='module')
def rows(sweep):
  """{setting label: table row} of the sweep."""
  return {row['setting']: row for row in table.rows(settings.group(runs.load([sweep])))}


A = 'model.arch=joint, model.tasks=semseg,depth, loss.semseg_weight=0.5, loss.depth_weight=0.5, '
LR = 'optim.learning_rate'


def test_settings_are_labelled_by_the_keys_that_differ(rows):
  assert set(rows) == {
    f'{A}{LR}=1e-3',
    f'{A}{LR}=3e-3',
    f'{A}{LR}=1e-4',
    'model.arch=single_task, model.tasks=semseg, loss.semseg_weight=1, loss.depth_weight=0, '
    f'{LR}=1e-3',
    'model.arch=single_task, model.tasks=depth, loss.semseg_weight=0, loss.depth_weight=1, '
    f'{LR}=1e-3',
  }
  assert rows[f'{A}{LR}=1e-3']['seeds'] == '0,1,2'
  assert rows[f'{A}{LR}=1e-3']['runs'] == 'a/seed0 a/seed1 a/seed2'


def test_format_value():
  assert [settings.format_value(v) for v in (1e-4, 3e-3, 0.01, 0.5, 1.0, 16, ('a', 'b'))] == [
    '1e-4',
    '3e-3',
    '0.01',
    '0.5',
    '1',
    '16',
    'a,b',
  ]


def _mean_std(values):
  return pytest.approx(np.mean(values)), pytest.approx(np.std(values, ddof=1))


def test_table_is_the_runs_best_and_last_evals_mean_and_std_over_seeds(rows):
  row = rows[f'{A}{LR}=1e-3']
  for phase, picked in (('best', BEST), ('last', LAST)):
    mious = [picked[s][0] for s in range(3)]
    silogs = [picked[s][1] for s in range(3)]
    totals = [m - s for m, s in zip(mious, silogs)]
    for key, values in (('miou', mious), ('silog', silogs), ('total', totals)):
      cell = row[f'{phase}_{key}']
      assert (cell.mean, cell.std) == _mean_std(values), (phase, key)
      assert cell.n == 3
  assert row['epochs'] == 3 and row['learning_rate'] == '1e-3' and row['task_weights'] == '50/50'
  assert row['wall_time_s'].mean == 30.0 and row['epoch_time_s'].mean == 10.0
  assert row['state'] == 'finished' and not row['marked']
  single = rows[f'{A}{LR}=3e-3']
  assert single['best_miou'].std is None and single['best_miou'].mean == 12
  assert table.text(single['best_miou'], '.2f') == '12.00'
  assert table.text(row['best_miou'], '.2f') == f'36.67 ± {np.std([40, 44, 26], ddof=1):.2f}'


def test_delta_m_against_the_single_task_baselines(rows):
  row = rows[f'{A}{LR}=1e-3']
  assert (row['delta_m'].mean, row['delta_m'].std) == _mean_std(list(DELTA_M.values()))
  assert row['delta_m_vs'] == 'semseg / depth'
  assert scores.delta_m({'miou': 40, 'silog': 35}, {'miou': 50, 'silog': 32}) == pytest.approx(
    DELTA_M[0]
  )
  baseline = rows[
    'model.arch=single_task, model.tasks=semseg, loss.semseg_weight=1, '
    f'loss.depth_weight=0, {LR}=1e-3'
  ]
  assert baseline['delta_m'] is None and baseline['best_miou'].mean == 50
  assert baseline['best_silog'] is None


def test_unfinished_runs_are_marked_with_how_far_they_got(rows, sweep):
  assert rows[f'{A}{LR}=3e-3']['state'] == 'stopped at epoch 2/3'
  assert rows[f'{A}{LR}=3e-3']['marked']
  no_eval = rows[f'{A}{LR}=1e-4']
  assert no_eval['state'] == 'no eval yet (stopped at epoch 0/3)' and no_eval['marked']
  assert no_eval['best_miou'] is None and table.text(no_eval['best_miou'], '.2f') == '—'
  with locks.exclusive(run_status.train_lock(sweep / 'a' / 'seed1'), what='run'):
    row = table.rows(settings.group(runs.load([sweep / 'a'])))[0]
  assert row['state'] == 'seed1: training (epoch 3/3)' and row['marked']  # names under a/


@pytest.fixture(scope='module')
def report(sweep, tmp_path_factory):
  out = tmp_path_factory.mktemp('report')
  index = build.write_report([sweep], out / 'report')
  return index


def test_report_files_hold_the_table(report, rows):
  out = report.parent
  assert report.name == 'index.html'
  with open(out / 'summary.csv') as f:
    written = {r['setting']: r for r in csv.DictReader(f)}
  assert set(written) == set(rows)
  for label, row in rows.items():
    for key in ('best_miou', 'last_silog', 'delta_m'):
      cell, text = row[key], written[label][key]
      assert (cell is None and text == '') or float(text) == pytest.approx(cell.mean)
    assert written[label]['marked'] == str(int(row['marked']))
  markdown = (out / 'summary.md').read_text().splitlines()
  assert len(markdown) == 2 + len(rows) and '| best mIoU |' in markdown[0]
  assert '36.67 ±' in next(line for line in markdown if f'{LR}=1e-3 | joint' in line)


def test_runs_that_cannot_be_drawn_say_why(report):
  page = report.read_text()
  # The baselines' config.json was edited, their checkpoints hold the joint model.
  assert page.count('Not drawn: ') == 3  # two baselines and the run without an eval
  assert 'no eval yet, so no best checkpoint to draw' in page
  assert len(list((report.parent / 'samples').glob('*.png'))) == 4


def test_depth_by_distance_pools_every_image_of_the_eval_split(report, tiny_run):
  """The page's depth table against the run's predictions on all 8 validation images at once."""
  from mtl_jax import experiment  # pylint: disable=g-import-not-at-top  # orbax, models

  opened = experiment.open_run(tiny_run[1])
  source = opened.experiment.sources(('validation',))['validation']
  images = samples.fixed_samples(source, count=len(source))
  assert len(images['image']) == 8 > samples.NUM_IMAGES
  predict = opened.experiment.predict_step(opened.graphdef)
  depth = samples.predict(predict, opened.state, images['image'], opened.experiment.mesh)['depth']
  errors = distance.errors_by_distance(depth, images['depth'])
  cells = [
    f'{a:.3f} / {m:.2f} m / {p}' if p else '—'
    for a, m, p in zip(errors['abs_rel'], errors['mae'], errors['pixels'])
  ]
  page = report.read_text()
  assert 'on all 8 images of the validation split' in page
  row = re.search(r'<tr><td>a/seed0</td>.*?</tr>', page).group(0)
  assert re.findall(r'<td>([^<]*)</td>', row)[2:] == [html.escape(c) for c in cells]


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_one_line(sweep, tmp_path, tiny_run):
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'file').write_text('x')
  cases = [
    (tmp_path / 'missing', 'does not exist'),
    (tmp_path / 'empty', 'is not a run (no config.json) and holds no runs'),
    (tmp_path / 'file', 'is a file; give a run directory'),
  ]
  for path, message in cases:
    with pytest.raises(UserError, match=re.escape(message)):
      runs.load([sweep, path])
  make_run(tiny_run, tmp_path / 'big', {'data.height': 64})
  with pytest.raises(UserError) as refused:
    runs.load([sweep, tmp_path / 'big'])
  assert re.fullmatch(
    'runs of different datasets cannot share a report: .*/a/seed0 is scored on data.height=32, '
    '.*/big on data.height=64; report them separately',
    str(refused.value),
  )
  other = make_run(tiny_run, tmp_path / 'classes', evals=[(10, 50)])
  records = writers.read_records(other / layout.METRICS_FILE)
  renamed = [{k.replace('iou/road', 'iou/street'): v for k, v in r.items()} for r in records]
  (other / layout.METRICS_FILE).write_text(''.join(json.dumps(r) + '\n' for r in renamed))
  with pytest.raises(UserError) as refused:
    runs.load([sweep, other])
  assert re.fullmatch(
    'runs of different class sets cannot share a report: .*/a/seed0 has 19 classes, road not in '
    'the other, .*/classes has 19 classes, street not in the other; report them separately',
    str(refused.value),
  )


def test_command_line_errors(tmp_path):
  (tmp_path / 'file').write_text('x')
  result = run('mtl_jax.report', str(tmp_path / 'nothing'), f'--output={tmp_path / "out"}')
  assert_one_line_error(result, 'report', 'nothing does not exist')
  result = run('mtl_jax.report', str(tmp_path), f'--output={tmp_path / "file"}')
  assert_one_line_error(result, 'report', 'is a file, not a directory')
  result = run('mtl_jax.report', f'--output={tmp_path / "out"}')
  assert_one_line_error(result, 'report', 'name at least one run directory')
  assert not (tmp_path / 'out').exists()


def _two_runs(tiny_run, root):
  make_run(tiny_run, root / 'x', evals=[(30, 40)])
  make_run(tiny_run, root / 'y', evals=[(32, 38)])
  return root


def test_a_report_never_writes_into_a_folder_of_other_files(tiny_run, tmp_path):
  root = _two_runs(tiny_run, tmp_path / 'runs')
  mine = tmp_path / 'mine'
  mine.mkdir()
  (mine / 'index.html').write_text('my page')
  result = run('mtl_jax.report', str(root), f'--output={mine}')
  assert_one_line_error(
    result,
    'report',
    f'{mine} holds files and no earlier report (it has no {build.REPORT_FILES}); name a new or '
    'empty folder for the report',
  )
  assert [p.name for p in mine.iterdir()] == ['index.html']
  assert (mine / 'index.html').read_text() == 'my page'
  # Nor into a run: it holds files and no report.
  result = run('mtl_jax.report', str(root), f'--output={root / "x"}')
  assert_one_line_error(result, 'report', f'{root / "x"} holds files and no earlier report')


def test_a_later_report_replaces_the_earlier_one_and_deletes_nothing_else(tiny_run, tmp_path):
  root = _two_runs(tiny_run, tmp_path / 'runs')
  out = tmp_path / 'out'
  build.write_report([root], out)
  listed = lambda: build.earlier_report(out)
  assert listed() == {
    'index.html',
    'summary.csv',
    'summary.md',
    'curves.png',
    'per_class_iou.png',
    'depth_by_distance.png',
    'samples/000_x.png',
    'samples/001_y.png',
  }
  (out / 'notes.txt').write_text('mine')
  (out / 'samples' / 'mine.png').write_bytes(b'mine')
  shutil.rmtree(root / 'x')  # the next report has one run, drawn under another file name
  build.write_report([root], out)
  assert listed() == {
    'index.html',
    'summary.csv',
    'summary.md',
    'curves.png',
    'per_class_iou.png',
    'depth_by_distance.png',
    'samples/000_y.png',
  }
  assert sorted(p.name for p in (out / 'samples').iterdir()) == ['000_y.png', 'mine.png']
  assert (out / 'notes.txt').read_text() == 'mine'


def test_a_run_with_a_corrupt_metrics_line_is_left_out_with_a_warning(tiny_run, tmp_path):
  root = _two_runs(tiny_run, tmp_path / 'runs')
  metrics = root / 'y' / layout.METRICS_FILE
  lines = metrics.read_text().splitlines()
  metrics.write_text(f'{lines[0]}\n{{"epoch": 2, "mi\n{lines[0]}\n')
  result = run('mtl_jax.report', str(root), f'--output={tmp_path / "out"}')
  assert result.returncode == 0, result.stderr
  assert result.stderr.splitlines() == [
    f'warning: {metrics} line 2 is not JSON (a corrupt line), so run y is left out of the '
    'report (repair or delete that line to include it)'
  ]
  page = (tmp_path / 'out' / 'index.html').read_text()
  assert 'mtl_jax report: 1 run in 1 setting' in page and 'Runs: x.' in page
  # A run alone, its file all garbage: nothing to report, one line.
  metrics.write_bytes(b'\x00\xffgarbage\n' * 3)
  result = run('mtl_jax.report', str(root / 'y'), f'--output={tmp_path / "out2"}')
  assert_one_line_error(
    result,
    'report',
    f'{metrics} line 1 is not text (a corrupt line): repair or delete that line to report the run',
  )


# ----------------------------------------------------------------------------- TensorBoard


def _events(directory):
  """Every Event in the TFRecord event files under `directory`."""
  for path in sorted(directory.glob('events.out.tfevents.*')):
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack('<Q', data[offset : offset + 8])
      event = event_pb2.Event()
      event.ParseFromString(data[offset + 12 : offset + 12 + length])
      yield event
      offset += 12 + length + 4


def test_training_writes_the_sample_grid_at_every_eval(tiny_run):
  config, workdir, _ = tiny_run
  images = [
    (e.step, v.image)
    for e in _events(workdir / 'tensorboard')
    for v in e.summary.value
    if v.tag == 'validation/samples'
  ]
  assert [step for step, _ in images] == [4, 8]  # each epoch's eval
  n, h, w = samples.NUM_IMAGES, config.data.height, config.data.width
  gap = samples.GAP_PX
  columns = len(samples.COLUMNS)
  assert (images[0][1].height, images[0][1].width) == (n * h + (n - 1) * gap, columns * w + 5 * gap)


# ----------------------------------------------------------------------------- the browser


def chromium() -> str:
  """The chromium executable. Tests install nothing: `.ci/run` installs Debian's chromium before
  the suite; elsewhere a missing browser skips with its reason, but under CI=true it fails, so
  the page check cannot silently stop running in CI."""
  found = shutil.which('chromium')
  if found:
    return found
  reason = 'chromium is not installed (apt-get install chromium; .ci/run installs it)'
  if os.environ.get('CI') == 'true':
    pytest.fail(f'{reason}, and CI=true: the browser checks must run in CI')
  pytest.skip(reason)


def open_page(path, *flags: str) -> subprocess.CompletedProcess:
  """Headless Chromium on file://path; the page's console messages go to stderr as CONSOLE."""
  return subprocess.run(
    [
      chromium(),
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--enable-logging=stderr',
      '--v=0',
      *flags,
      path.absolute().as_uri(),
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )


def console(result) -> list[str]:
  return [line for line in result.stderr.splitlines() if ':CONSOLE' in line]


def test_the_console_check_sees_a_script_error(tmp_path):
  """The control for the next test: this Chromium reports a page's errors on stderr."""
  page = tmp_path / 'broken.html'
  page.write_text('<html><body><script>notDefined();</script></body></html>')
  assert any('Uncaught ReferenceError' in line for line in console(open_page(page, '--dump-dom')))


def test_page_loads_without_errors_and_every_image_exists(report):
  result = open_page(report, '--dump-dom')
  assert result.returncode == 0, result.stderr[-2000:]
  assert console(result) == []
  sources = re.findall(r'<img [^>]*src="([^"]+)"', result.stdout)
  assert {'curves.png', 'per_class_iou.png', 'depth_by_distance.png'} <= set(sources)
  assert sum(s.startswith('samples/') for s in sources) == 4
  for source in sources:
    with Image.open(report.parent / source) as image:
      assert image.width > 10 and image.height > 10
  assert 'http' not in re.sub(r'<p class="?note"?>.*?</p>', '', result.stdout)  # nothing fetched


def test_screenshot_is_not_blank(report, tmp_path):
  shot = tmp_path / 'shot.png'
  open_page(report, '--hide-scrollbars', '--window-size=1200,2400', f'--screenshot={shot}')
  pixels = np.asarray(Image.open(shot).convert('L'), np.float32)
  assert pixels.shape == (2400, 1200)
  assert pixels.std() > 20  # text, tables and figures, not one colour


class _Cells(html.parser.HTMLParser):
  """The data-value of every cell of the summary table's body, row by row."""

  def __init__(self):
    super().__init__()
    self.rows, self.in_summary, self.in_body = [], False, False

  def handle_starttag(self, tag, attrs):
    if tag == 'table':
      self.in_summary = dict(attrs).get('id') == 'summary'
    elif self.in_summary and tag == 'tbody':
      self.in_body = True
    elif self.in_body and tag == 'tr':
      self.rows.append([])
    elif self.in_body and tag == 'td':
      self.rows[-1].append(dict(attrs)['data-value'])

  def handle_endtag(self, tag):
    if tag == 'table':
      self.in_summary = self.in_body = False


def test_clicking_a_header_sorts_the_table(report, rows):
  click = "document.querySelector('th[data-key=best_miou]').click();"
  clicked = report.parent / 'clicked.html'
  clicked.write_text(report.read_text().replace('</body>', f'<script>{click}</script></body>'))
  result = open_page(clicked, '--dump-dom')
  assert console(result) == []
  cells = _Cells()
  cells.feed(result.stdout)
  column = [c.key for c in table.columns(list(rows.values()))].index('best_miou')
  order = [float(row[column]) if row[column] else None for row in cells.rows]
  assert order[3:] == [None, None]  # no mIoU (the depth baseline, the run without an eval): last
  assert order[:3] == [12, pytest.approx(110 / 3), 50]  # ascending


def test_the_table_names_each_runs_balancing_and_the_curves_show_its_task_weights(
  tiny_run, tmp_path
):
  """A run of another version (no loss.balancing, no weight/<task>) reads as 'fixed' with no
  weight curve; a DWA run's per-epoch weights are its curve."""
  root = tmp_path / 'runs'
  dwa = make_run(tiny_run, root / 'dwa', {'loss.balancing': 'dwa'}, [(10, 60), (12, 58)])
  records = writers.read_records(dwa / layout.METRICS_FILE)
  for record, (semseg, depth) in zip(records, [(1.2, 0.8), (0.9, 1.1)]):
    record.update({'weight/semseg': semseg, 'weight/depth': depth})
  (dwa / layout.METRICS_FILE).write_text(''.join(json.dumps(r) + '\n' for r in records))
  older = make_run(tiny_run, root / 'older', None, [(10, 60)])
  saved = json.loads((older / 'config.json').read_text())
  del saved['loss']['balancing']
  (older / 'config.json').write_text(json.dumps(saved))
  records = [
    {k: v for k, v in r.items() if not k.startswith('weight/')}
    for r in writers.read_records(older / layout.METRICS_FILE)
  ]
  (older / layout.METRICS_FILE).write_text(''.join(json.dumps(r) + '\n' for r in records))

  groups = settings.group(runs.load([root]))
  cells = {row['balancing']: row['task_weights'] for row in table.rows(groups)}
  assert cells == {'dwa': '—', 'fixed': '50/50'}  # dwa's weights are its own, not the config's
  by_method = {g.config.loss.balancing: g for g in groups}
  curve = plots.band(by_method['dwa'], 'weight/semseg')
  assert curve.epochs.tolist() == [1, 2] and curve.mean.tolist() == [1.2, 0.9]
  assert not len(plots.band(by_method['fixed'], 'weight/semseg').epochs)
  assert ('weight/depth', 'task weight, depth (loss.balancing)') in plots.CURVES
  plots.curves(groups, tmp_path / 'curves.png')
  assert Image.open(tmp_path / 'curves.png').size[1] > 0
