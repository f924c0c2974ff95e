"""Every generated block of README.md and docs/ is what scripts/docs_tables.py writes."""

import importlib.util
import json
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location('docs_tables', REPO / 'scripts' / 'docs_tables.py')
docs_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_tables)

SUMMARY = """\
| setting | model | best mIoU | state | runs |
|---|---|---:|---|---|
| a=1 | joint | 41.50 | finished | a=1,seed=0 |
| a=2 | branched | 44.80 | training (epoch 3/7) | a=2,seed=0 |
"""


@pytest.fixture(scope='module')
def blocks() -> dict[str, str]:
  return {name: write() for name, write in docs_tables.BLOCKS.items()}


def test_every_generated_block_is_what_the_script_writes(blocks):
  stale = docs_tables.stale(blocks)
  assert not stale, (
    f'generated blocks differ in {", ".join(str(p.relative_to(REPO)) for p in stale)}: '
    'run python scripts/docs_tables.py'
  )


def test_every_block_appears_somewhere_and_the_results_in_the_readme():
  pages = docs_tables.pages()
  found = {name for page in pages for name in docs_tables.block_names(page.read_text())}
  assert found == set(docs_tables.BLOCKS)
  assert 'results' in docs_tables.block_names((REPO / 'README.md').read_text())


def test_results_name_their_date_commit_and_machine(blocks):
  assert 'Measured 2026-11-29, commit `b0b9a79`, 2-core x86_64 CPU' in blocks['results']
  for name in ('parameters', 'synthetic-classes'):
    assert 'commit `' in blocks[name] and ' CPU' in blocks[name], name


def test_parameter_counts_cover_every_architecture_and_the_full_and_cpu_presets():
  models = json.loads(docs_tables.PARAMETERS.read_text())['models']
  rows = {(m['config'], m['presets']) for m in models}
  for config in ('joint.py', 'branched.py', 'distilled.py', 'single_task.py'):
    assert {(config, ''), (config, 'cpu')} <= rows
  assert all(m['parameters'] > m['encoder_parameters'] > 0 for m in models)


def test_table_keeps_the_chosen_columns_in_order_with_their_alignment():
  table = docs_tables.summary_table(SUMMARY, columns=('best mIoU', 'model'))
  assert table.splitlines() == [
    '| best mIoU | model |',
    '|---:|---|',
    '| 41.50 | joint |',
    '| 44.80 | branched |',
  ]


def test_a_missing_column_is_named():
  with pytest.raises(SystemExit, match='no column Δm %; it has setting, model'):
    docs_tables.summary_table(SUMMARY, columns=('model', 'Δm %'))


def test_blocks_between_markers_are_replaced_and_the_rest_kept():
  a, b = ('<!-- a:begin -->', '<!-- a:end -->'), ('<!-- b:begin -->', '<!-- b:end -->')
  text = f'intro\n{a[0]}\nold\n{a[1]}\nmid\n{b[0]}\n{b[1]}\nend\n'
  assert docs_tables.replace_blocks(text, {'a': 'A', 'b': 'B'}) == (
    f'intro\n{a[0]}\nA\n{a[1]}\nmid\n{b[0]}\nB\n{b[1]}\nend\n'
  )


def test_an_unknown_or_unclosed_block_is_named():
  with pytest.raises(SystemExit, match="page.md: no generator for block 'c'"):
    docs_tables.replace_blocks('<!-- c:begin -->\n<!-- c:end -->\n', {'a': 'A'}, 'page.md')
  with pytest.raises(SystemExit, match='page.md: <!-- a:begin --> has no <!-- a:end -->'):
    docs_tables.replace_blocks('<!-- a:begin -->\nold\n', {'a': 'A'}, 'page.md')


def test_balancing_steps_give_each_methods_ratio_to_fixed(tmp_path, monkeypatch):
  steps = dict(
    date='2026-12-07',
    commit='def5678',
    machine='2-core x86_64 CPU',
    command='bench',
    config='c.py:cpu',
    steps=5,
    rounds=3,
    methods=[
      dict(method='upgrad', compile_s=20.0, step_s=0.9),
      dict(method='fixed', compile_s=18.0, step_s=0.5),
    ],
  )
  (tmp_path / 'steps.json').write_text(json.dumps(steps))
  monkeypatch.setattr(docs_tables, 'BALANCING_STEPS', tmp_path / 'steps.json')
  lines = docs_tables.balancing_steps_block().splitlines()
  assert lines[0].startswith('*2026-12-07, commit `def5678`, 2-core x86_64 CPU: `bench`* (')
  assert lines[4:] == ['| `upgrad` | 20.0 | 0.900 | 1.80 |', '| `fixed` | 18.0 | 0.500 | 1.00 |']
