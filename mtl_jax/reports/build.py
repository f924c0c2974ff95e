"""`write_report`: runs and sweeps → a report directory.

    OUTPUT/index.html        the page: summary table, curves, per-class IoU, depth error by
                             distance, sample grids
    OUTPUT/summary.csv, .md  the summary table
    OUTPUT/*.png             the figures;  OUTPUT/samples/*.png: one sample grid per run
    OUTPUT/.report_files     REPORT_FILES: what the report wrote, so a folder is known as a report

Everything but the samples and depth errors comes from the runs' config.json and metrics.jsonl;
those two need a forward pass of each run's best checkpoint: the first few eval images for the
grid (`samples`), the whole eval split for the depth errors (`distance`). A run that cannot be
drawn (no checkpoint yet, its dataset not on this machine) gets a line saying why instead.

OUTPUT is new, empty, or a folder an earlier report wrote (it holds REPORT_FILES): the new
report replaces that one, and deletes only files that REPORT_FILES lists. Any other folder is
refused, so a report never writes over, or deletes, a user's own files.
"""

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from PIL import Image

from mtl_jax.data.sample import TASKS
from mtl_jax.reports import distance, html, plots, samples, scores, settings, table
from mtl_jax.reports import runs as runs_lib
from mtl_jax.reports.runs import ReportRun
from mtl_jax.runtime import atomic
from mtl_jax.runtime.errors import UserError

INDEX, CSV, MARKDOWN = 'index.html', 'summary.csv', 'summary.md'
CURVES, PER_CLASS_IOU, DEPTH = 'curves.png', 'per_class_iou.png', 'depth_by_distance.png'
SAMPLES_DIR = 'samples'
REPORT_FILES = '.report_files'  # marks a report's folder; lists the files the report wrote
BEST_SHOWN = 3  # settings in the per-class IoU chart


@dataclasses.dataclass(frozen=True)
class Drawn:
  """What the forward pass of one run's best checkpoint gave, or why there is none."""

  run: ReportRun
  step: int | None = None
  grid: str | None = None  # the grid's path relative to the report directory
  depth: distance.Totals | None = None  # over the eval split (a model that predicts depth)
  split: str = ''  # the eval split drawn from
  class_colors: tuple | None = None
  problem: str = ''


def write_report(paths: Iterable[str | Path], output: str | Path) -> Path:
  """Writes the report of the runs under `paths` (run directories or directories of runs) into
  `output`; returns the path of its index.html. A UserError (one line) if `output` is neither
  new, empty nor an earlier report, a path holds no run, or the runs were scored on different
  data."""
  output = Path(output)
  earlier = earlier_report(output)
  runs = runs_lib.load(paths)
  groups = settings.group(runs)
  rows = table.rows(groups)
  grids = [_grid_name(i, run) for i, run in enumerate(runs)]
  output.mkdir(parents=True, exist_ok=True)
  # Listed before anything is written: a report stopped half-way is still known as one.
  _write_list(output, earlier | {INDEX, CSV, MARKDOWN, CURVES, PER_CLASS_IOU, DEPTH, *grids})
  (output / SAMPLES_DIR).mkdir(exist_ok=True)
  table.write_csv(rows, output / CSV)
  table.write_markdown(rows, output / MARKDOWN)
  palette = dict(zip((s.label for s in groups), plots.colors(len(groups))))
  plots.curves(groups, output / CURVES)
  drawn = [_draw(run, output, name) for run, name in zip(runs, grids)]
  iou, depth = _iou_section(groups, palette, output), _depth_section(drawn, output)
  sections = [
    html.section('Summary', html.summary_table(rows), *map(html.note, _table_notes(rows, groups))),
    html.section('Curves', html.figure(CURVES, 'per-epoch curves'), html.note(_CURVES_NOTE)),
    iou,
    depth,
    _samples_section(drawn, runs),
  ]
  index = output / INDEX
  title = f'mtl_jax report: {_count(len(runs), "run")} in {_count(len(groups), "setting")}'
  index.write_text(html.page(title, _intro(runs), [s for s in sections if s]))
  written = {INDEX, CSV, MARKDOWN, CURVES, *(d.grid for d in drawn if d.grid)}
  written |= {name for name, section in ((PER_CLASS_IOU, iou), (DEPTH, depth)) if section}
  _replace(output, earlier, written)
  return index


def earlier_report(output: Path) -> set[str]:
  """The files (relative paths) an earlier report listed in `output`; set() for a folder that
  does not exist or is empty. A UserError for a folder holding anything else."""
  listing = output / REPORT_FILES
  if listing.is_file():
    names = [line.strip() for line in listing.read_text(errors='replace').splitlines()]
    paths = [PurePosixPath(n) for n in names if n and not n.startswith('#')]
    # Only names inside the folder: a hand-edited list must not reach other files.
    return {str(p) for p in paths if not p.is_absolute() and '..' not in p.parts}
  if output.is_dir() and any(output.iterdir()):
    raise UserError(
      f'{output} holds files and no earlier report (it has no {REPORT_FILES}); name a new or '
      'empty folder for the report'
    )
  return set()


def _replace(output: Path, earlier: set[str], written: set[str]) -> None:
  """Deletes the earlier report's files this one did not rewrite, then lists this one's."""
  for stale in earlier - written:
    if (output / stale).is_file():
      (output / stale).unlink()
  _write_list(output, written)


def _write_list(output: Path, names: set[str]) -> None:
  """REPORT_FILES listing `names`, written whole or not at all."""
  text = '# The files mtl_jax.report wrote here; a later report into this folder replaces them.\n'
  atomic.write_text(output / REPORT_FILES, text + ''.join(f'{n}\n' for n in sorted(names)))


def _count(n: int, noun: str) -> str:
  return f'{n} {noun}' + ('s' if n != 1 else '')


def _intro(runs: list[ReportRun]) -> str:
  data = ', '.join(f'{k}={v}' for k, v in runs_lib.eval_data(runs[0].config).items())
  return f'Runs: {", ".join(r.name for r in runs)}. Scored on {data}.'


_CURVES_NOTE = (
  'One line per setting, labelled by the config keys in which the settings differ; settings '
  'with several seeds show their mean and a ± one standard deviation band. Scores are from the '
  "eval after each epoch, training losses are the epoch's means, the learning rate is the "
  "run's schedule at the step of each eval."
)


def _table_notes(rows: list[dict], groups: list[settings.Setting]) -> list[str]:
  notes = [
    'best: the eval kept as the best checkpoint (highest total; a single-task baseline: its own '
    'metric), so the best numbers of a run belong to one model; last: the newest eval. A '
    'setting with several seeds shows mean ± sample standard deviation (n − 1) over them. Wall '
    'time includes the evals. Highlighted rows hold a run that is not finished or has no eval '
    'yet (state column). Click a column header to sort.'
  ]
  if any(row['delta_m'] for row in rows):
    notes.append(
      'Δm (Maninis et al. 2019, Vandenhende et al. 2021) = (1/T) Σ_t (−1)^l_t (M_t − M_b,t) / '
      'M_b,t × 100 over mIoU (higher is better, l = 0) and SI-log (lower is better, l = 1) at the '
      'best eval, against the mean of the single-task baseline settings named in the Δm '
      'baselines column (per task, the one whose config differs least); positive is better.'
    )
  elif any(len(s.tasks) > 1 for s in groups) and any(len(s.tasks) == 1 for s in groups):
    baselines = {s.tasks[0] for s in groups if len(s.tasks) == 1 and scores.best_eval(s.runs[0])}
    missing = ', '.join(t for t in TASKS if t not in baselines)
    notes.append(
      f'No Δm: it needs a single-task baseline with an eval for each task; none for {missing}.'
    )
  return notes


def _iou_section(groups, palette, output: Path) -> str:
  """Per-class IoU at the best eval (mean over seeds) of the BEST_SHOWN best settings:
  multi-task ones by best total, then semseg baselines by best mIoU."""
  means = {s.label: _best_means(s) for s in groups}
  ranked = sorted(
    (s for s in groups if 'miou' in means[s.label]),
    key=lambda s: (len(s.tasks) > 1, means[s.label].get('total', means[s.label]['miou'])),
    reverse=True,
  )
  if not ranked:
    return ''
  shown = ranked[:BEST_SHOWN]
  names = list(shown[0].runs[0].class_names)
  entries = [
    (plots.legend_label(s), palette[s.label], [means[s.label].get(f'iou/{n}', 0.0) for n in names])
    for s in shown
  ]
  plots.per_class_iou(names, entries, output / PER_CLASS_IOU)
  return html.section(
    'Per-class IoU',
    html.figure(PER_CLASS_IOU, 'per-class IoU'),
    html.note(
      f'The best {_count(len(shown), "setting")}: multi-task ones by best total, then semseg '
      'baselines by best mIoU.'
    ),
  )


def _best_means(s: settings.Setting) -> dict[str, float]:
  """Every numeric key of the setting's best evals, mean over its seeds."""
  bests = [b for b in map(scores.best_eval, s.runs) if b]
  keys = {k for b in bests for k, v in b.items() if isinstance(v, (int, float))}
  means = {k: scores.stat(b.get(k) for b in bests) for k in keys}
  return {k: v.mean for k, v in means.items() if v is not None}


def _slug(name: str) -> str:
  return re.sub(r'[^\w.-]+', '_', name).strip('_') or 'run'


def _grid_name(index: int, run: ReportRun) -> str:
  """Where the run's sample grid goes, relative to the report directory."""
  return f'{SAMPLES_DIR}/{index:03d}_{_slug(run.name)}.png'


def _draw(run: ReportRun, output: Path, name: str) -> Drawn:
  """The sample grid (written to output/name) and the depth errors over the eval split of the
  run's best checkpoint."""
  from mtl_jax import experiment  # pylint: disable=g-import-not-at-top  # orbax, models

  if not run.evals:
    return Drawn(run, problem='no eval yet, so no best checkpoint to draw')
  try:
    opened = experiment.open_run(run.workdir)
    split = opened.config.train.eval_split
    source = opened.experiment.sources((split,))[split]
    grid = samples.SampleGrid.of(opened.experiment, opened.graphdef, source)
    preds = grid.predictions_of(opened.state)
    depth = _depth_over(source, grid, opened) if 'depth' in preds else None
  except UserError as e:
    return Drawn(run, problem=str(e))
  colors = opened.classes.colors  # the ones the run recorded: its dataset's
  Image.fromarray(samples.grid(grid.images, preds, colors)).save(output / name)
  print(f'report: drew {run.name} (checkpoint {opened.step})', flush=True)
  return Drawn(run, opened.step, name, depth, split, colors)


def _depth_over(source, grid: samples.SampleGrid, opened) -> distance.Totals:
  """The depth errors of an `experiment.RestoredRun` over the whole eval `source`, batch by
  batch through the grid's compiled predict step."""
  from mtl_jax.data import pipeline  # pylint: disable=g-import-not-at-top  # grain

  def predict_depth(images):
    return samples.predict(grid.predict_fn, opened.state, images, grid.mesh)['depth']

  batches = pipeline.eval_batches(source, batch_size=opened.config.train.eval_batch_size)
  return distance.over_split(predict_depth, batches)


def _depth_section(drawn: list[Drawn], output: Path) -> str:
  with_depth = [d for d in drawn if d.depth]
  if not with_depth:
    return ''
  # A colour per run, not per setting: the bars of two seeds stand side by side.
  entries = [
    (d.run.name, color, distance.errors(d.depth))
    for d, color in zip(with_depth, plots.colors(len(with_depth)))
  ]
  bins = distance.bin_names()
  plots.depth_by_distance(bins, entries, output / DEPTH)
  rows = [
    [name, d.step]
    + [
      f'{a:.3f} / {m:.2f} m / {p}' if p else '—'
      for a, m, p in zip(errors['abs_rel'], errors['mae'], errors['pixels'])
    ]
    for d, (name, _, errors) in zip(with_depth, entries)
  ]
  # The runs share their eval data (runs.check_comparable), so one count holds for all.
  images, split = with_depth[0].depth.images, with_depth[0].split
  return html.section(
    'Depth error by distance',
    html.figure(DEPTH, 'depth error by distance'),
    html.note(
      f'Best checkpoint of each run on all {_count(images, "image")} of the {split} split, '
      'pixels of all images pooled per ground-truth distance bin; predictions clamped as the '
      'metrics clamp them. Table: abs rel / mean abs error / pixels.'
    ),
    html.plain_table(['run', 'checkpoint', *bins], rows),
  )


def _samples_section(drawn: list[Drawn], runs: list[ReportRun]) -> str:
  colors = next((d.class_colors for d in drawn if d.class_colors), None)
  names = next((r.class_names for r in runs if r.class_names), ())
  parts = [
    html.note(
      f'The first {samples.NUM_IMAGES} eval images; columns: {", ".join(samples.COLUMNS)}. '
      f'Depth on a log scale from {samples.DEPTH_RANGE_M[0]:g} m (yellow) to '
      f'{samples.DEPTH_RANGE_M[1]:g} m (purple); error |p − g| / g from 0 (pale yellow) to '
      f'{samples.ERROR_MAX:g} and above (dark red); black: no ground truth; grey: a task the '
      'model does not predict.'
    )
  ]
  if colors is not None:
    parts.append(html.swatches(names, colors))
  for d in drawn:
    if d.grid:
      parts.append(f'<h3>{html.esc(d.run.name)}: checkpoint {d.step}</h3>')
      parts.append(html.figure(d.grid, f'samples of {d.run.name}', css_class='grid'))
    else:
      parts.append(f'<h3>{html.esc(d.run.name)}</h3>' + html.note(f'Not drawn: {d.problem}'))
  return html.section("Samples from each run's best checkpoint", *parts)
