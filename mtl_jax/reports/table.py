"""The summary table in the study's Table 4 form: one row per setting (mean ± std over its seeds),
architecture and training columns, best and last scores, Δm, wall time; written as
summary.csv and summary.md, and shown (sortable) on the page.

A row is marked when one of its runs is not finished (still training, stopped, diverged) or has
no eval yet; its state cell says how far each such run got.
"""

import csv
import dataclasses
from pathlib import Path

from mtl_jax import metrics
from mtl_jax.config import schema
from mtl_jax.data.sample import TASKS
from mtl_jax.reports import scores
from mtl_jax.reports.settings import Setting, format_value
from mtl_jax.runtime.progress import format_duration
from mtl_jax.workdir import run_status

CHECK = '✓'
SCORES = tuple((key, label) for key, label, _ in metrics.HEADLINE)
DURATION = 'duration'  # a Column.fmt: seconds, shown as 1h02m03s


@dataclasses.dataclass(frozen=True)
class Column:
  key: str  # summary.csv's header
  header: str  # the page's and summary.md's
  fmt: str = ''  # '' = text; a format spec or DURATION for numbers


CONFIG_COLUMNS = tuple(
  Column(*names)
  for names in (
    ('setting', 'setting'),
    ('model', 'model'),
    ('encoder', 'encoder'),
    ('pretrained', 'pretrained'),
    ('output_stride', 'output stride'),
    ('aspp', 'ASPP'),
    ('branched', 'branched'),
    ('distilled', 'distilled'),
    ('second_stage', 'second stage'),
    ('optimizer', 'optimizer'),
    ('learning_rate', 'learning rate'),
    ('batch_size', 'batch'),
    ('task_weights', 'weights semseg/depth'),
    ('balancing', 'balancing'),
    ('epochs', 'epochs'),
  )
)
SCORE_COLUMNS = tuple(
  Column(f'{phase}_{key}', f'{phase} {label}', '.2f')
  for phase in ('best', 'last')
  for key, label in SCORES
)
DELTA_M_COLUMNS = (Column('delta_m', 'Δm %', '+.2f'), Column('delta_m_vs', 'Δm baselines'))
RUN_COLUMNS = (
  Column('wall_time_s', 'wall time', DURATION),
  Column('epoch_time_s', 'time/epoch', DURATION),
  Column('seeds', 'seeds'),
  Column('state', 'state'),
  Column('runs', 'runs'),
)


def _config_cells(s: Setting) -> dict:
  m, o, arch = s.config.model, s.config.optim, s.config.model.arch
  weights = [round(100 * s.config.loss[f'{t}_weight']) for t in TASKS]
  return {
    'setting': s.label,
    'model': f'single-task {s.tasks[0]}' if arch == 'single_task' else arch,
    'encoder': m.encoder,
    'pretrained': CHECK if m.pretrained else '',
    'output_stride': m.output_stride,
    'aspp': CHECK if m.use_aspp else '',
    'branched': CHECK if arch in ('branched', 'distilled') else '',
    'distilled': CHECK if arch == 'distilled' else '',
    'second_stage': m.second_stage if arch == 'distilled' else '',
    'optimizer': o.name,
    'learning_rate': format_value(o.learning_rate),
    'batch_size': s.config.train.batch_size,
    # A balancing method chooses its own weights (the curves show them); the fixed ones only
    # weigh the logged total.
    'task_weights': '/'.join(map(str, weights)) if s.config.loss.balancing == 'fixed' else '—',
    'balancing': s.config.loss.balancing,
    'epochs': schema.epochs(s.config),
  }


def _score_cells(s: Setting) -> dict:
  cells = {}
  for phase, pick in (('best', scores.best_eval), ('last', scores.last_eval)):
    for key, _ in SCORES:
      cells[f'{phase}_{key}'] = scores.stat((pick(r) or {}).get(key) for r in s.runs)
  return cells


def _time_cells(s: Setting) -> dict:
  lasts = [scores.last_eval(r) for r in s.runs]
  return {
    'wall_time_s': scores.stat(e and e['wall_time_s'] for e in lasts),
    'epoch_time_s': scores.stat(e and e['wall_time_s'] / e['epoch'] for e in lasts),
  }


def run_state(run) -> str:
  """'finished', 'stopped at epoch 1/2', 'no eval yet (training (epoch 0/2))', ..."""
  text = run.status.describe()
  return text if run.evals else f'no eval yet ({text})'


def _state(s: Setting) -> tuple[str, bool]:
  """The state cell and whether the row is marked."""
  pending = [r for r in s.runs if r.status.state != run_status.FINISHED or not r.evals]
  if not pending:
    return run_status.FINISHED, False
  if len(s.runs) == 1:
    return run_state(pending[0]), True
  return '; '.join(f'{r.name}: {run_state(r)}' for r in pending), True


def _baseline_names(found: dict[str, scores.Baseline] | None) -> str:
  """'semseg_run / depth_run': the baseline runs, per task (seeds joined by +)."""
  if not found:
    return ''
  return ' / '.join(' + '.join(r.name for r in b.setting.runs) for b in found.values())


def rows(settings: list[Setting]) -> list[dict]:
  """One row per setting: column key → text, number, `scores.Stat` or None; and `marked`."""
  out = []
  for s in settings:
    found = scores.baselines(s, settings) if len(s.tasks) > 1 else None
    state, marked = _state(s)
    out.append(
      {
        **_config_cells(s),
        **_score_cells(s),
        'delta_m': found and scores.stat(scores.run_delta_m(r, found) for r in s.runs),
        'delta_m_vs': _baseline_names(found),
        **_time_cells(s),
        'seeds': ','.join(map(str, s.seeds)),
        'state': state,
        'runs': ' '.join(r.name for r in s.runs),
        'marked': marked,
      }
    )
  return out


def columns(table: list[dict]) -> tuple[Column, ...]:
  """The table's columns; the Δm ones only when some row has baselines."""
  with_delta = any(row['delta_m'] for row in table)
  return CONFIG_COLUMNS + SCORE_COLUMNS + (DELTA_M_COLUMNS if with_delta else ()) + RUN_COLUMNS


def _number(value: float, fmt: str) -> str:
  return format_duration(value) if fmt == DURATION else format(value, fmt)


def text(value, fmt: str) -> str:
  """A cell as the page and summary.md show it: mean ± std, '—' for no value."""
  if value is None:
    return '—'
  if isinstance(value, scores.Stat):
    mean = _number(value.mean, fmt)
    return mean if value.std is None else f'{mean} ± {_number(value.std, fmt.lstrip("+"))}'
  return str(value)


def sort_key(value) -> float | str:
  """What the page sorts a cell by: a number's mean, else its text."""
  if isinstance(value, scores.Stat):
    return value.mean
  return value if isinstance(value, (int, float)) else str(value or '')


def write_csv(table: list[dict], path: Path) -> None:
  """Numbers as numbers (seconds for times); each mean ± std as two columns, <key> and
  <key>_std, the latter empty for a single seed."""
  cols = columns(table)
  header = []
  for c in cols:
    header += [c.key, f'{c.key}_std'] if c.fmt else [c.key]
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(header + ['marked'])
    for row in table:
      cells = []
      for c in cols:
        value = row[c.key]
        if not c.fmt:
          cells.append(value)
        elif value is None:
          cells += ['', '']
        else:
          cells += [value.mean, '' if value.std is None else value.std]
      writer.writerow(cells + [int(row['marked'])])


def write_markdown(table: list[dict], path: Path) -> None:
  cols = columns(table)
  cell = lambda s: str(s).replace('|', '\\|')
  lines = [
    '| ' + ' | '.join(cell(c.header) for c in cols) + ' |',
    '|' + '|'.join('---:' if c.fmt else '---' for c in cols) + '|',
  ]
  for row in table:
    lines.append('| ' + ' | '.join(cell(text(row[c.key], c.fmt)) for c in cols) + ' |')
  path.write_text('\n'.join(lines) + '\n')
