"""docs/study.md's generated parts, from the study's results files (each experiment's report
summary.csv, saved by scripts/study_results.py): the claims table, one results table per
experiment with the study's own numbers beside ours, and the run times beside its tables 1-3.
Pure functions of the rows; scripts/docs_tables.py writes them into the page."""

from mtl_jax.reports.settings import format_value
from mtl_jax.runtime.progress import format_duration
from mtl_jax.study import claims
from mtl_jax.study.experiments import BEST_RATES, EXPERIMENTS

Rows = claims.Rows

# The study's table 4: (optimiser, the ladder's row, (grader, mIoU, SI-log)).
TABLE_4 = (
  ('sgd', claims.PLAIN, (39.84, 67.05, 27.23)),
  ('adam', claims.PLAIN, (43.31, 69.83, 26.55)),
  ('sgd', claims.PRETRAINED, (47.85, 72.71, 24.86)),
  ('adam', claims.PRETRAINED, (48.84, 73.67, 24.83)),
  ('sgd', claims.DILATED, (58.18, 76.30, 21.11)),
  ('adam', claims.DILATED, (59.36, 80.59, 21.23)),
  ('adam', claims.ASPP, (65.21, 85.15, 19.94)),
  ('adam', claims.BRANCHED, (65.82, 85.28, 19.46)),
  ('sgd', claims.DISTILLED, (59.15, 80.37, 21.23)),
  ('adam', claims.DISTILLED, (64.15, 83.83, 19.18)),
)


def _table_4(row: dict) -> tuple[float, float, float] | None:
  """The study's table-4 numbers of the row our report's `row` reproduces, if any (its rows
  train at each optimiser's best rate)."""
  for optimiser, cells, numbers in TABLE_4:
    rate = format_value(BEST_RATES[optimiser])
    same = row['optimizer'] == optimiser and row.get('learning_rate', rate) in (rate, '')
    if same and all(row[k] == v for k, v in cells.items()):
      return numbers
  return None


# The study's run times (its tables 1-3), keyed by the cells that name the row in our reports.
STUDY_TIMES = {
  'batch_size': {
    ('sgd', '2'): '3h11m',
    ('sgd', '4'): '4h28m',
    ('sgd', '8'): '4h49m (stopped at epoch 20)',
    ('adam', '2'): '3h31m',
    ('adam', '4'): '4h31m',
    ('adam', '8'): '7h55m',
  },
  'ladder': {
    ('adam', 'joint', '✓', '16', ''): '13h42m (32 epochs)',
    ('adam', 'joint', '✓', '16', '✓'): '22h50m',
    ('adam', 'branched', '✓', '16', '✓'): '25h36m',
    ('adam', 'distilled', '✓', '16', '✓'): '28h25m (stopped at epoch 41)',
  },  # its table 2, keyed by _LADDER_KEY
  'second_stage': {
    ('sgd', 'simple'): '22h06m',
    ('sgd', 'deep'): '38h34m',
    ('adam', 'simple'): '15h34m',
    ('adam', 'deep'): '15h54m',
  },
}
_LADDER_KEY = ('optimizer', 'model', 'pretrained', 'output_stride', 'aspp')
_TIME_KEYS = {
  'batch_size': ('optimizer', 'batch_size'),
  'ladder': _LADDER_KEY,
  'second_stage': ('optimizer', 'second_stage'),
}

# The study's sample grids (its figures 12-16): the ladder's Adam row each one shows.
SAMPLE_FIGURES = {
  12: ('the first network (plain), Adam at 1e-4', claims.PLAIN),
  13: ('+ ImageNet weights and dilation', claims.DILATED),
  14: ('+ ASPP and the decoder', claims.ASPP),
  15: ('the branched network', claims.BRANCHED),
  16: ('the distilled network', claims.DISTILLED),
}
SAMPLES_DIR = 'study'  # under docs/: figure_<n>.png


def sample_run(ladder: Rows, figure: int) -> str | None:
  """The name of the run (seed 0's, the first) whose grid shows `figure`, if it finished."""
  row = claims.finished(ladder, optimizer='adam', **SAMPLE_FIGURES[figure][1])
  return row[0]['runs'].split()[0] if row else None


def samples_section(ladder: Rows, drawn: set[int]) -> str:
  """Each figure's grid where `drawn` has it, else why not."""
  parts = []
  for figure, (caption, _) in SAMPLE_FIGURES.items():
    if figure in drawn:
      image = f'{SAMPLES_DIR}/figure_{figure}.png'
      parts.append(f'**Figure {figure}**: {caption}.\n\n![figure {figure}]({image})')
    else:
      why = 'not run' if sample_run(ladder, figure) is None else 'not drawn'
      parts.append(f'**Figure {figure}**: {caption}: *{why}*.')
  return '\n\n'.join(parts)


# Columns that may tell an experiment's rows apart, in the order shown.
_SETTING_COLUMNS = (
  ('model', 'model'),
  ('pretrained', 'ImageNet'),
  ('output_stride', 'stride'),
  ('aspp', 'ASPP'),
  ('second_stage', 'second stage'),
  ('optimizer', 'optimiser'),
  ('learning_rate', 'rate'),
  ('batch_size', 'batch'),
  ('task_weights', 'weights'),
  ('epochs', 'epochs'),
)


def _table(header: list[str], body: list[list[str]], right: int) -> str:
  """A markdown table whose last `right` columns are right-aligned."""
  align = ['---'] * (len(header) - right) + ['---:'] * right
  lines = [header, align, *body]
  return '\n'.join('| ' + ' | '.join(cells) + ' |' for cells in lines)


def _score(row: dict, key: str) -> str:
  return claims.shown(row, key) if row.get(key) else '—'


def _duration(row: dict, key: str) -> str:
  return format_duration(float(row[key])) if row.get(key) else '—'


def _with_unrun_rows(rows: Rows) -> Rows:
  """The ladder's rows, and a 'not run' row for each of table 4's rows it lacks (those whose
  runs stopped at their start have no record, so the report has no row for them)."""
  missing = [
    {**dict.fromkeys(rows[0], ''), **cells, 'optimizer': optimiser, 'state': 'not run'}
    for optimiser, cells, numbers in TABLE_4
    if not any(_table_4(r) is numbers for r in rows)
  ]
  return rows + missing


def results_table(name: str, rows: Rows) -> str:
  """The experiment's settings (the columns that vary), our best scores (mean ± std over seeds),
  times and state, and the study's table-4 numbers where it has the row."""
  varying = {k for k, _ in _SETTING_COLUMNS if len({r[k] for r in rows}) > 1}
  if name == 'ladder':
    rows, varying = _with_unrun_rows(rows), varying | set(_LADDER_KEY)
  settings = [(k, label) for k, label in _SETTING_COLUMNS if k in varying]
  with_study = name in ('learning_rates', 'ladder')
  header = [label for _, label in settings] + ['seeds', 'state', 'mIoU', 'SI-log', 'total']
  header += ['time/epoch', 'wall time'] + (['study: mIoU / SI-log'] * with_study)
  body = []
  for r in rows:
    cells = [r[k] for k, _ in settings] + [r['seeds'], r['state']]
    cells += [_score(r, k) for k in ('best_miou', 'best_silog', 'best_total')]
    cells += [_duration(r, 'epoch_time_s'), _duration(r, 'wall_time_s')]
    if with_study:
      study = _table_4(r)
      cells.append(f'{study[1]:.2f} / {study[2]:.2f}' if study else '—')
    body.append(cells)
  return _table(header, body, right=5 + with_study)


def claims_table(summaries: dict[str, Rows]) -> str:
  body = [
    [r['claim'], r['study'], r['ours'], f'**{r["verdict"]}**'] for r in claims.table(summaries)
  ]
  return _table(['claim', 'the study', 'ours', 'verdict'], body, right=0)


def _runs(row: dict) -> int:
  return len(row['seeds'].split(','))


def _finished_time(rows: Rows) -> float:
  """Seconds of training of the finished runs (a setting's wall time is its seeds' mean)."""
  return sum(float(r['wall_time_s']) * _runs(r) for r in claims.finished(rows))


def split_table(summaries: dict[str, Rows], planned: dict[str, int], estimate: dict) -> str:
  """Per experiment: runs planned and finished, the finished runs' training time, and the
  estimate for all of its runs (scripts/study_estimate.py); then the totals."""
  body, total, runs = [], 0.0, 0
  for experiment in EXPERIMENTS:
    rows = summaries.get(experiment.name, [])
    seconds, done = _finished_time(rows), sum(_runs(r) for r in claims.finished(rows))
    total, runs = total + seconds, runs + done
    body.append(
      [f'`{experiment.sweep_file}`', experiment.shows, str(planned[experiment.name]), str(done)]
      + [format_duration(seconds), format_duration(estimate[experiment.name])]
    )
  body.append(
    ['all', '', str(sum(planned.values())), str(runs), format_duration(total)]
    + [format_duration(sum(estimate[e.name] for e in EXPERIMENTS))]
  )
  header = ['sweep file', 'the study', 'runs', 'finished', 'their training time', 'estimate, all']
  return _table(header, body, right=4)


_MARKS = {'pretrained': 'ImageNet', 'aspp': 'ASPP', 'output_stride': 'stride {}'}


def _label(row: dict, keys: tuple[str, ...]) -> str:
  """'adam, joint, ImageNet, stride 16, ASPP': a row's cells as words."""
  words = []
  for key in keys:
    if key in _MARKS and row[key]:
      words.append(_MARKS[key].format(row[key]))
    elif row[key] and key not in _MARKS:
      words.append(row[key] if key != 'batch_size' else f'batch {row[key]}')
  return ', '.join(words)


def times_table(summaries: dict[str, Rows]) -> str:
  """The study's tables 1-3 beside ours: time per epoch and in total (mean over seeds) of each
  of their rows; a row we have no run of reads 'not run'."""
  body = []
  for name, times in STUDY_TIMES.items():
    keys = _TIME_KEYS[name]
    ours = {tuple(r[k] for k in keys): r for r in summaries.get(name, [])}
    for key, study in times.items():
      row = ours.get(key, {**dict(zip(keys, key)), 'state': 'not run'})
      cells = [_duration(row, 'epoch_time_s'), _duration(row, 'wall_time_s'), study]
      body.append([name, _label(row, keys), row['state'], *cells])
  return _table(['experiment', 'run', 'state', 'time/epoch', 'wall time', 'the study'], body, 3)


def _rate_order(rows: Rows, optimiser: str) -> list[str]:
  return [r['learning_rate'] for r in claims.ranked(rows, optimiser)]


def _concordant_pairs(a: list[str], b: list[str]) -> tuple[int, int]:
  """(pairs ordered alike, pairs in all) of the items both orders rank."""
  common = [x for x in a if x in b]
  pairs = [(x, y) for i, x in enumerate(common) for y in common[i + 1 :]]
  return sum(b.index(x) < b.index(y) for x, y in pairs), len(pairs)


def ranking_table(lite: Rows, longer: Rows, factor: str) -> str:
  """The learning rates ranked by total at `lite` and in runs `factor` longer: the order, the
  pairs of rates both put in the same order, and whether they pick the same best rate."""
  body = []
  for name, label in claims.OPTIMISERS.items():
    short, long = _rate_order(lite, name), _rate_order(longer, name)
    alike, pairs = _concordant_pairs(short, long)
    same_best = bool(short and long) and short[0] == long[0]
    body.append(
      [label, ' > '.join(short), ' > '.join(long), f'{alike} of {pairs}', 'yes' * same_best or 'no']
    )
  header = ['optimiser', 'lite', f'{factor} longer', 'pairs in the same order', 'same best']
  return _table(header, body, right=0)
