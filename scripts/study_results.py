"""Saves the study's reports as the results files docs/study.md is generated from.

  python scripts/study_results.py [--root runs/study] [--scale lite] [--output docs/results/study]
      [--longer runs/study_longer --longer_scale 1]

Copies each experiment's report table (ROOT/<experiment>/report/summary.csv, written by its
sweep, or by `python -m mtl_jax.report ROOT/<experiment> --output ROOT/<experiment>/report`)
to OUTPUT/<experiment>.csv, and writes OUTPUT/meta.json: the date, commit, machine and command,
the scale, the runs each experiment plans, and whether converted ImageNet weights were present.
An experiment without a report is left out (its claims read 'not run'). --longer names the
root of the learning-rate sweep trained with --config.train.epoch_scale=LONGER_SCALE (the check
that `lite` ranks the rates as longer runs do): its report is saved as
learning_rates_longer.csv. Then run `python scripts/docs_tables.py`.
"""

import argparse
import csv
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from docs_tables import REPO, STUDY_LONGER, provenance  # noqa: E402  # pylint: disable=g-import-not-at-top

from mtl_jax.config import presets, schema  # noqa: E402
from mtl_jax.models import pretrained_cache  # noqa: E402
from mtl_jax.study import experiments, page  # noqa: E402


def draw_samples(root: pathlib.Path, output: pathlib.Path) -> list[int]:
  """docs/study/figure_<n>.png for each of the study's figures 12-16 whose ladder run finished:
  the report's sample grid of that run's best checkpoint."""
  with open(output / 'ladder.csv', newline='') as f:
    ladder = list(csv.DictReader(f))
  drawn = []
  for figure in page.SAMPLE_FIGURES:
    run = page.sample_run(ladder, figure)
    if run is None:
      continue
    with tempfile.TemporaryDirectory() as report:
      command = [sys.executable, '-m', 'mtl_jax.report', str(root / 'ladder' / run)]
      subprocess.run([*command, '--output', report], check=True, capture_output=True)
      (grid,) = pathlib.Path(report, 'samples').glob('*.png')
      shutil.copyfile(grid, REPO / 'docs' / page.SAMPLES_DIR / f'figure_{figure}.png')
    drawn.append(figure)
  return drawn


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--root', type=pathlib.Path, default=pathlib.Path('runs/study'))
  parser.add_argument('--scale', choices=experiments.SCALES, default='lite')
  parser.add_argument('--output', type=pathlib.Path, default=REPO / 'docs/results/study')
  parser.add_argument('--longer', type=pathlib.Path, help='root of the longer learning-rate runs')
  parser.add_argument('--longer_scale', type=float, default=1.0)
  parser.add_argument(
    '--commit', help='the commit the runs trained at, when it is not the checkout (a worktree)'
  )
  args = parser.parse_args(argv)
  args.output.mkdir(parents=True, exist_ok=True)
  saved = []
  for experiment in experiments.EXPERIMENTS:
    report = args.root / experiment.name / 'report' / 'summary.csv'
    target = args.output / f'{experiment.name}.csv'
    if report.is_file():
      shutil.copyfile(report, target)
      saved.append(experiment.name)
    elif target.exists():
      target.unlink()
  longer = {}
  if args.longer:
    shutil.copyfile(
      args.longer / 'learning_rates' / 'report' / 'summary.csv',
      args.output / f'{STUDY_LONGER}.csv',
    )
    longer = {'longer_epoch_scale': args.longer_scale, 'longer_root': str(args.longer)}
  command = f'python -m mtl_jax.study --scale {args.scale} --root {args.root}'
  (REPO / 'docs' / page.SAMPLES_DIR).mkdir(exist_ok=True)
  drawn = draw_samples(args.root, args.output) if 'ladder' in saved else []
  encoder = presets.lite(schema.base_config()).model.encoder
  imagenet = pathlib.Path(pretrained_cache.cache_dir(encoder)).expanduser().is_dir()
  meta = dict(
    provenance(command),
    **({'commit': args.commit} if args.commit else {}),
    scale=args.scale,
    planned={e.name: len(e.plan(args.scale, str(args.root)).runs) for e in experiments.EXPERIMENTS},
    imagenet_weights=imagenet,
    samples=drawn,
    **longer,
  )
  (args.output / 'meta.json').write_text(json.dumps(meta, indent=1, ensure_ascii=False) + '\n')
  print(f'saved {", ".join(saved) or "no reports"} to {args.output}', file=sys.stderr)


if __name__ == '__main__':
  main()
