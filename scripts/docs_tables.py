"""Writes every generated block of README.md and docs/ from committed results and the code.

  python scripts/docs_tables.py            # rewrite every block
  python scripts/docs_tables.py --check    # rewrite nothing; exit 1 naming each stale block
  python scripts/docs_tables.py --measure  # first re-measure docs/results/parameters.json and
                                           # docs/results/synthetic_classes.json, then rewrite

A generated block sits between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in README.md or any
page under docs/; `BLOCKS` says what writes each NAME, and a block may appear in several files.
The sources:

- `results`: the architectures sweep's report table, `docs/results/summary.md` (copied from
  `python -m mtl_jax.report ... --output DIR`), cut to `RESULT_COLUMNS`, with where and when it
  was measured from `docs/results/summary_meta.json`;
- `parameters`: parameter counts of every distinct model the shipped configs and their presets
  build, `docs/results/parameters.json` (`--measure` rebuilds each model abstractly and counts);
- `synthetic-classes`: the share of samples and pixels of each class in the synthetic train
  split, `docs/results/synthetic_classes.json` (`--measure` renders the samples again);
- `knobs`: every config knob with its default, meaning and valid values, read from
  `mtl_jax.config.schema` itself;
- `balancing-steps`: the train step's time per task-balancing method,
  `docs/results/balancing_steps.json` (`python scripts/bench_balancing.py --save ...`);
- `balancing-results`: the balancing sweep's report table, `docs/results/balancing_summary.csv`
  (copied from the report's summary.csv) with `docs/results/balancing_meta.json`, ranked by Δm,
  beside each method's step time relative to `fixed` from `balancing_steps.json`;
- `study-claims`, `study-split`, `study-times` and `study-<experiment>`: the study's claims
  judged, its sweeps' run counts and training time, its tables 1-3 beside ours, and each
  experiment's results table (`mtl_jax.study.page`), from `docs/results/study/` (the reports'
  summary.csv files and meta.json, saved by `scripts/study_results.py`).

tests/docs/docs_tables_test.py fails when any block differs from what this script writes, so a
number in the docs cannot drift from its results file or from the code.
"""

import argparse
import csv
import datetime
import importlib.util
import json
import math
import os
import pathlib
import platform
import re
import subprocess
import sys
from collections.abc import Callable

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = REPO / 'docs' / 'results'
SUMMARY = RESULTS / 'summary.md'
SUMMARY_META = RESULTS / 'summary_meta.json'
PARAMETERS = RESULTS / 'parameters.json'
SYNTHETIC_CLASSES = RESULTS / 'synthetic_classes.json'
BALANCING_SUMMARY = RESULTS / 'balancing_summary.csv'
BALANCING_META = RESULTS / 'balancing_meta.json'
BALANCING_STEPS = RESULTS / 'balancing_steps.json'
CONFIGS = REPO / 'mtl_jax' / 'configs'
CONFIG_ORDER = ('joint', 'branched', 'distilled', 'single_task')  # then any other, by name
SYNTHETIC_SAMPLES = 200  # train samples counted by --measure, at the dataset's default size

RESULT_COLUMNS = (
  'model',
  'weights semseg/depth',
  'best mIoU',
  'best SI-log',
  'best total',
  'best grader',
  'wall time',
  'time/epoch',
  'state',
)
MARKER = re.compile(r'<!-- ([a-z][a-z-]*):(begin|end) -->')


# --- the results table --------------------------------------------------------------------------


def _cells(line: str) -> list[str]:
  return [cell.strip() for cell in line.strip().strip('|').split('|')]


def summary_table(summary_md: str, columns=RESULT_COLUMNS) -> str:
  """The markdown table of `summary_md` cut to `columns` (in that order), alignment kept."""
  header, rule, *rows = [line for line in summary_md.splitlines() if line.startswith('|')]
  names = _cells(header)
  missing = [c for c in columns if c not in names]
  if missing:
    raise SystemExit(f'summary.md has no column {", ".join(missing)}; it has {", ".join(names)}')
  keep = [names.index(c) for c in columns]
  line = lambda cells: '| ' + ' | '.join(cells[i] for i in keep) + ' |'
  return '\n'.join(
    [line(names), '|' + '|'.join(_cells(rule)[i] for i in keep) + '|']
    + [line(_cells(row)) for row in rows]
  )


def measured_on(meta: dict) -> str:
  """'2026-11-29, commit `abc1234`, <machine>' from a results file's metadata."""
  parts = [meta['date'], f'commit `{meta["commit"]}`']
  if meta.get('machine'):
    parts.append(meta['machine'])
  return ', '.join(parts)


def results_block() -> str:
  meta = json.loads(SUMMARY_META.read_text())
  return (
    summary_table(SUMMARY.read_text()) + f'\n\nMeasured {measured_on(meta)}: `{meta["command"]}` '
    '(all columns in `docs/results/summary.md`).'
  )


# --- parameter counts ---------------------------------------------------------------------------


def _group(n: int) -> str:
  return f'{n:,}'


def parameters_block() -> str:
  data = json.loads(PARAMETERS.read_text())
  rows = [
    '| config | architecture | encoder | output stride | heads | parameters | of which heads |',
    '|---|---|---|---:|---|---:|---:|',
  ]
  for m in data['models']:
    name = f'{m["config"]}:{m["presets"]}' if m['presets'] else f'{m["config"]} (full)'
    rows.append(
      f'| `{name}` | {m["arch"]} | {m["encoder"]} | {m["output_stride"]} | {m["heads"]} '
      f'| {_group(m["parameters"])} | {_group(m["parameters"] - m["encoder_parameters"])} |'
    )
  return '\n'.join(rows) + (
    f'\n\nCounted {measured_on(data)}: `{data["command"]}` (trainable parameters; BatchNorm '
    'statistics not included; counts do not depend on the machine).'
  )


def _load_module(path: pathlib.Path):
  spec = importlib.util.spec_from_file_location(f'{path.stem}_docs_tables', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def config_files() -> list[pathlib.Path]:
  order = {name: i for i, name in enumerate(CONFIG_ORDER)}
  return sorted(CONFIGS.glob('[!_]*.py'), key=lambda p: (order.get(p.stem, len(order)), p.stem))


# Model knobs that change neither the network nor its parameter count.
_NOT_THE_NETWORK = ('pretrained', 'dtype', 'zero_init_residual')


def model_cases() -> list[tuple[pathlib.Path, str]]:
  """(config file, preset) for each distinct network: no preset, then each of the file's own
  presets and each shared preset alone; a preset building a network already listed is left out."""
  from mtl_jax.config import files, presets

  cases, seen = [], set()
  for path in config_files():
    own = getattr(_load_module(path), 'PRESETS', {})
    for preset in ('', *own, *(p for p in presets.SHARED if p not in own)):
      model = files.load_config_file(path, preset).model.to_dict()
      key = (path.stem, json.dumps({k: v for k, v in model.items() if k not in _NOT_THE_NETWORK}))
      if key not in seen:
        seen.add(key)
        cases.append((path, preset))
  return cases


def measure_parameters() -> dict:
  from flax import nnx

  from mtl_jax import experiment
  from mtl_jax.config import files

  count = lambda module: sum(
    math.prod(v.shape) for _, v in nnx.to_flat_state(nnx.state(module, nnx.Param))
  )
  models = []
  for path, preset in model_cases():
    config = files.load_config_file(path, preset)
    model = nnx.eval_shape(lambda config=config: experiment.build_model(config))
    m = config.model
    models.append(
      dict(
        config=path.name,
        presets=preset,
        arch=m.arch if m.arch != 'single_task' else f'single_task ({",".join(m.tasks)})',
        encoder=m.encoder,
        output_stride=m.output_stride,
        heads=m.heads,
        parameters=count(model),
        encoder_parameters=count(model.encoder),
      )
    )
  return dict(provenance('python scripts/docs_tables.py --measure'), models=models)


# --- the synthetic data's classes ---------------------------------------------------------------


def synthetic_classes_block() -> str:
  data = json.loads(SYNTHETIC_CLASSES.read_text())
  classes = data['classes']
  half = math.ceil(len(classes) / 2)
  cell = lambda c: f'{c["name"]} | {c["samples_percent"]:.0f}% | {c["pixels_percent"]:.2f}%'
  rows = [
    '| class | samples | pixels | class | samples | pixels |',
    '|---|---:|---:|---|---:|---:|',
  ]
  for i in range(half):
    right = cell(classes[half + i]) if half + i < len(classes) else ' | | '
    rows.append(f'| {cell(classes[i])} | {right} |')
  return '\n'.join(rows) + (
    f'\n\n{data["num_samples"]} train samples at {data["height"]}×{data["width"]} (dataset seed '
    f'{data["seed"]}): the share of samples that contain each class and of all pixels it '
    f'covers. Counted {measured_on(data)}: `{data["command"]}` (the scenes are a pure function '
    'of seed, split and index).'
  )


def measure_synthetic_classes() -> dict:
  import numpy as np

  from mtl_jax.data.labels import CLASS_NAMES, IGNORE_LABEL
  from mtl_jax.data.registry import SYNTHETIC_DEFAULTS as size
  from mtl_jax.data.synthetic import render_sample

  names = [*CLASS_NAMES, f'ignore ({IGNORE_LABEL})']
  samples, pixels, total = np.zeros(len(names)), np.zeros(len(names)), 0
  for i in range(SYNTHETIC_SAMPLES):
    semseg = render_sample(i, split='train', seed=size.seed)['semseg']
    ids = np.where(semseg == IGNORE_LABEL, len(names) - 1, semseg).ravel()
    counts = np.bincount(ids, minlength=len(names))
    samples += counts > 0
    pixels += counts
    total += ids.size
  classes = [
    dict(name=n, samples_percent=100 * s / SYNTHETIC_SAMPLES, pixels_percent=100 * p / total)
    for n, s, p in zip(names, samples.tolist(), pixels.tolist())
  ]
  return dict(
    provenance('python scripts/docs_tables.py --measure'),
    num_samples=SYNTHETIC_SAMPLES,
    seed=size.seed,
    height=size.height,
    width=size.width,
    classes=classes,
  )


# --- the config knobs ---------------------------------------------------------------------------


def _md(text: str) -> str:
  return str(text).replace('|', '\\|')


def knobs_block() -> str:
  from mtl_jax.config import schema

  def valid(key: str, knob) -> str:
    if isinstance(knob.check, schema.OneOf):
      return ', '.join(f'`{v}`' for v in knob.check.valid())
    kind = schema.expected_type(key)
    if isinstance(knob.check, schema.Bound):
      return f'{kind} {"> 0" if knob.check.strict else "≥ 0"}'
    return kind

  def default(value) -> str:
    if isinstance(value, tuple):
      value = list(value)
    return f'`{json.dumps(value)}`'

  rows = ['| key | default | valid values | meaning |', '|---|---|---|---|']
  for key, knob in schema.KNOBS.items():
    rows.append(
      f'| `{key}` | {_md(default(knob.default))} | {_md(valid(key, knob))} | {_md(knob.meaning)} |'
    )
  return '\n'.join(rows)


# --- task balancing -----------------------------------------------------------------------------


def _step_ratios(methods: list[dict]) -> dict[str, float]:
  """Method → its step time over `fixed`'s (empty without `fixed`)."""
  step_s = {m['method']: m['step_s'] for m in methods}
  return {method: s / step_s['fixed'] for method, s in step_s.items()} if 'fixed' in step_s else {}


def steps_table(methods: list[dict]) -> str:
  """The step-time table of bench_balancing.py's rows (method, compile_s, step_s)."""
  ratios = _step_ratios(methods)
  rows = ['| method | compile + first step s | s/step (median) | × fixed |', '|---|---:|---:|---:|']
  for m in methods:
    ratio = f'{ratios[m["method"]]:.2f}' if ratios else '—'
    rows.append(f'| `{m["method"]}` | {m["compile_s"]:.1f} | {m["step_s"]:.3f} | {ratio} |')
  return '\n'.join(rows)


def balancing_steps_block() -> str:
  """A dated performance note's opening (date, commit, machine, command) and its table."""
  data = json.loads(BALANCING_STEPS.read_text())
  return (
    f'*{measured_on(data)}: `{data["command"]}`* (`{data["config"]}`; every method compiled '
    f'first, then timed in {data["rounds"]} alternating rounds of {data["steps"]} steps; the '
    f'median per method{"; " + data["note"] if "note" in data else ""}):\n\n'
    + steps_table(data['methods'])
  )


def _method_kind(method: str) -> str:
  from mtl_jax.balancing import training

  if method in training.GRADIENT_METHODS:
    return 'gradient'
  return 'weights (per-task gradients)' if method in training.JACOBIAN_LOSS_METHODS else 'weights'


def _cell(row: dict, key: str, fmt: str) -> str:
  """A summary.csv number as the report shows it (`reports.table.text`): mean ± std over seeds."""
  from mtl_jax.reports import scores, table

  if not row[key]:
    return table.text(None, fmt)
  std = row.get(f'{key}_std')
  stat = scores.Stat(float(row[key]), float(std) if std else None, len(row['seeds'].split(',')))
  return table.text(stat, fmt)


def balancing_results_block() -> str:
  """The sweep's rows ranked by Δm (the single-task baselines last), with step time × fixed."""
  from mtl_jax.runtime.progress import format_duration

  meta = json.loads(BALANCING_META.read_text())
  steps = json.loads(BALANCING_STEPS.read_text())
  ratios = _step_ratios(steps['methods'])
  with open(BALANCING_SUMMARY, newline='') as f:
    table = list(csv.DictReader(f))
  multi = sorted((r for r in table if r['delta_m']), key=lambda r: -float(r['delta_m']))
  rows = [
    '| method | kind | best mIoU | best SI-log | Δm % | step × fixed | time/epoch | seeds '
    '| state |',
    '|---|---|---:|---:|---:|---:|---:|---|---|',
  ]
  for r in multi + [r for r in table if not r['delta_m']]:
    method = r['balancing'] if r['delta_m'] else r['model']
    ratio = ratios.get(method)
    rows.append(
      f'| `{method}` | {_method_kind(method) if r["delta_m"] else "baseline"} '
      f'| {_cell(r, "best_miou", ".2f")} | {_cell(r, "best_silog", ".2f")} '
      f'| {_cell(r, "delta_m", "+.2f")} | {"—" if ratio is None else f"{ratio:.2f}"} '
      f'| {format_duration(float(r["epoch_time_s"]))} | {r["seeds"]} | {r["state"]} |'
    )
  runs = sum(len(r['seeds'].split(',')) for r in table)
  wall_s = sum(float(r['wall_time_s']) * len(r['seeds'].split(',')) for r in table)
  return '\n'.join(rows) + (
    f'\n\n{runs} runs, {format_duration(wall_s)} of training in all. Trained '
    f'{measured_on(meta)}: `{meta["command"]}`'
    f'{" (" + meta["note"] + ")" if "note" in meta else ""}; step times {measured_on(steps)}.'
  )


# --- the study, figure by figure ---------------------------------------------------------------

STUDY = RESULTS / 'study'  # scripts/study_results.py writes it
STUDY_LONGER = 'learning_rates_longer'  # the rate-ranking check's results file, .csv in STUDY


def _study() -> tuple[dict, dict[str, list[dict]]]:
  """(meta, {experiment: its report's rows}) from the saved study results."""
  meta = json.loads((STUDY / 'meta.json').read_text())
  summaries = {}
  for path in sorted(STUDY.glob('*.csv')):
    with open(path, newline='') as f:
      summaries[path.stem] = list(csv.DictReader(f))
  return meta, summaries


def study_claims_block() -> str:
  from mtl_jax.study import page

  meta, summaries = _study()
  imagenet = (
    ''
    if meta['imagenet_weights']
    else (
      ' No converted ImageNet weights were on the machine, so every run that starts from them '
      'stopped at its start, saying so (the sweep counts them as failed; they leave no run for '
      "the report), and their claims read 'not run'."
    )
  )
  return page.claims_table(summaries) + (
    f'\n\nFrom the `{meta["scale"]}` study, trained {measured_on(meta)}: `{meta["command"]}`.'
    + imagenet
  )


def study_split_block() -> str:
  from mtl_jax.study import page

  meta, summaries = _study()
  estimate = json.loads((STUDY / 'estimate.json').read_text())
  return page.split_table(summaries, meta['planned'], estimate['experiments']) + (
    f'\n\nEstimates {measured_on(estimate)}: `{estimate["command"]}`.'
  )


def study_times_block() -> str:
  from mtl_jax.study import page

  return page.times_table(_study()[1])


def study_ranking_block() -> str:
  from mtl_jax.config import presets, schema
  from mtl_jax.study import page

  meta, summaries = _study()
  if 'longer_epoch_scale' not in meta:
    return '*Not run yet.*'
  lite_scale = presets.lite(schema.base_config()).train.epoch_scale
  factor = f'{meta["longer_epoch_scale"] / lite_scale:g}×'
  return page.ranking_table(summaries['learning_rates'], summaries[STUDY_LONGER], factor) + (
    f'\n\nThe longer runs: `python -m mtl_jax.sweep --config configs/joint.py:plain,lite --root '
    f'{meta["longer_root"]}/learning_rates --sweep sweeps/study/learning_rates.py '
    f'--config.train.epoch_scale={meta["longer_epoch_scale"]:g}`, {measured_on(meta)}.'
  )


def study_samples_block() -> str:
  from mtl_jax.study import page

  meta, summaries = _study()
  return page.samples_section(summaries.get('ladder', []), set(meta['samples']))


def _study_results_block(name: str) -> Callable[[], str]:
  def block() -> str:
    from mtl_jax.study import page

    rows = _study()[1].get(name)
    return page.results_table(name, rows) if rows else '*Not run yet.*'

  return block


def _study_blocks() -> dict[str, Callable[[], str]]:
  from mtl_jax.study.experiments import EXPERIMENTS

  return {f'study-{e.name.replace("_", "-")}': _study_results_block(e.name) for e in EXPERIMENTS}


# --- blocks in files ----------------------------------------------------------------------------

BLOCKS: dict[str, Callable[[], str]] = {
  'results': results_block,
  'parameters': parameters_block,
  'synthetic-classes': synthetic_classes_block,
  'knobs': knobs_block,
  'balancing-steps': balancing_steps_block,
  'balancing-results': balancing_results_block,
  'study-claims': study_claims_block,
  'study-split': study_split_block,
  'study-times': study_times_block,
  'study-ranking': study_ranking_block,
  'study-samples': study_samples_block,
  **_study_blocks(),
}


def pages() -> list[pathlib.Path]:
  """README.md and every markdown page under docs/."""
  return [REPO / 'README.md', *sorted((REPO / 'docs').rglob('*.md'))]


def block_names(text: str) -> list[str]:
  return [m.group(1) for m in MARKER.finditer(text) if m.group(2) == 'begin']


def replace_blocks(text: str, blocks: dict[str, str], where: str = 'text') -> str:
  """`text` with every marked block's body replaced by `blocks[name]`; markers kept."""
  out, pos = [], 0
  for name in block_names(text):
    begin, end = f'<!-- {name}:begin -->', f'<!-- {name}:end -->'
    start = text.index(begin, pos) + len(begin)
    stop = text.find(end, start)
    if stop < 0:
      raise SystemExit(f'{where}: {begin} has no {end}')
    if name not in blocks:
      raise SystemExit(f'{where}: no generator for block {name!r}; known: {", ".join(blocks)}')
    out += [text[pos:start], '\n', blocks[name], '\n']
    pos = stop
  return ''.join(out) + text[pos:]


def stale(blocks: dict[str, str] | None = None) -> dict[pathlib.Path, str]:
  """Page → its text as this script writes it, for each page whose blocks differ."""
  blocks = blocks or {name: write() for name, write in BLOCKS.items()}
  changed = {}
  for page in pages():
    text = page.read_text()
    new = replace_blocks(text, blocks, str(page.relative_to(REPO)))
    if new != text:
      changed[page] = new
  return changed


# --- provenance -----------------------------------------------------------------------------------


def provenance(command: str) -> dict:
  """Date, commit ('+ local changes' when the package differs from it), machine and command, the
  machine written as the docs name it: '2-core x86_64 CPU, 24 GB, no GPU, jax 0.10.2'."""
  import jax

  git = lambda *a: subprocess.run(
    ['git', *a], cwd=REPO, capture_output=True, text=True, check=False
  ).stdout.strip()
  commit = git('rev-parse', '--short', 'HEAD') or 'unknown'
  if git('status', '--porcelain', '--', 'mtl_jax'):
    commit += ' + local changes'
  memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
  accelerators = sorted({d.device_kind for d in jax.devices() if d.platform != 'cpu'})
  return dict(
    date=datetime.date.today().isoformat(),
    commit=commit,
    machine=(
      f'{os.cpu_count()}-core {platform.machine()} CPU, {memory:.0f} GB, '
      f'{", ".join(accelerators) or "no GPU"}, jax {jax.__version__}'
    ),
    command=command,
  )


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--check', action='store_true', help='write nothing; exit 1 if stale')
  parser.add_argument('--measure', action='store_true', help='re-measure the results files first')
  args = parser.parse_args(argv)
  if args.measure:
    for path, measure in (
      (PARAMETERS, measure_parameters),
      (SYNTHETIC_CLASSES, measure_synthetic_classes),
    ):
      path.write_text(json.dumps(measure(), indent=1, ensure_ascii=False) + '\n')
      print(f'measured {path.relative_to(REPO)}', file=sys.stderr)
  changed = stale()
  for page, text in changed.items():
    name = page.relative_to(REPO)
    if args.check:
      print(f'{name}: generated blocks differ; run python scripts/docs_tables.py', file=sys.stderr)
    else:
      page.write_text(text)
      print(f'wrote {name}', file=sys.stderr)
  if args.check and changed:
    sys.exit(1)


if __name__ == '__main__':
  main()
