"""Writes a report's summary table into README.md's results section.

    python -m mtl_jax.report runs/architectures --output report/architectures
    cp report/architectures/summary.md docs/results/summary.md
    python scripts/readme_results.py            # docs/results/summary.md → README.md

The README shows the columns a reader compares (`COLUMNS`), taken from the report's
summary.md, between the `<!-- results:begin -->` and `<!-- results:end -->` markers;
tests/readme_results_test.py checks the README's block is exactly that, so the README's numbers
and the report's cannot drift apart.
"""

import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
SUMMARY = REPO / 'docs' / 'results' / 'summary.md'
README = REPO / 'README.md'
BEGIN, END = '<!-- results:begin -->', '<!-- results:end -->'
COLUMNS = (
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


def _cells(line: str) -> list[str]:
  return [cell.strip() for cell in line.strip().strip('|').split('|')]


def readme_table(summary_md: str, columns=COLUMNS) -> str:
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


def replace_block(readme: str, block: str) -> str:
  """`readme` with the text between the markers replaced by `block`."""
  before, begin, rest = readme.partition(BEGIN)
  _, end, after = rest.partition(END)
  if not begin or not end:
    raise SystemExit(f'README.md lacks the markers {BEGIN} … {END}')
  return f'{before}{BEGIN}\n{block}\n{END}{after}'


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--summary', default=SUMMARY, type=pathlib.Path)
  parser.add_argument('--readme', default=README, type=pathlib.Path)
  args = parser.parse_args(argv)
  block = readme_table(args.summary.read_text())
  args.readme.write_text(replace_block(args.readme.read_text(), block))
  print(f'{args.readme}: results table from {args.summary}', file=sys.stderr)


if __name__ == '__main__':
  main()
