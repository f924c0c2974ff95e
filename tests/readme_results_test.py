"""The README's results table is the committed report's summary.md, cut to its columns."""

import importlib.util

import pytest
from conftest import REPO

_spec = importlib.util.spec_from_file_location('readme_results', REPO / 'scripts/readme_results.py')
readme_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_results)

SUMMARY = """\
| setting | model | best mIoU | state | runs |
|---|---|---:|---|---|
| a=1 | joint | 41.50 | finished | a=1,seed=0 |
| a=2 | branched | 44.80 | training (epoch 3/7) | a=2,seed=0 |
"""


def test_readme_block_is_the_committed_summary():
  readme = (REPO / 'README.md').read_text()
  _, _, rest = readme.partition(readme_results.BEGIN)
  block, _, _ = rest.partition(readme_results.END)
  expected = readme_results.readme_table(readme_results.SUMMARY.read_text())
  assert block.strip() == expected, 'run python scripts/readme_results.py'


def test_table_keeps_the_chosen_columns_in_order_with_their_alignment():
  table = readme_results.readme_table(SUMMARY, columns=('best mIoU', 'model'))
  assert table.splitlines() == [
    '| best mIoU | model |',
    '|---:|---|',
    '| 41.50 | joint |',
    '| 44.80 | branched |',
  ]


def test_a_missing_column_is_named():
  with pytest.raises(SystemExit, match='no column Δm %; it has setting, model'):
    readme_results.readme_table(SUMMARY, columns=('model', 'Δm %'))


def test_block_between_the_markers_is_replaced_and_the_rest_kept():
  readme = f'intro\n{readme_results.BEGIN}\nold\n{readme_results.END}\nafter\n'
  assert readme_results.replace_block(readme, 'new') == (
    f'intro\n{readme_results.BEGIN}\nnew\n{readme_results.END}\nafter\n'
  )
  with pytest.raises(SystemExit, match='lacks the markers'):
    readme_results.replace_block('no markers', 'new')
