"""Every generated block of README.md and docs/ is what scripts/docs_tables.py writes."""

import importlib.util
import json
import pathlib
import re

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
  assert re.search(
    r'Measured \d{4}-\d\d-\d\d, commit `[0-9a-f]{7,}`, 2-core x86_64 CPU', blocks['results']
  )
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


def _steps_file(tmp_path, monkeypatch) -> dict:
  """A balancing_steps.json of two methods (upgrad 1.8× fixed), in place of the committed one."""
  times = {'fixed': (18.0, 0.5), 'upgrad': (20.0, 0.9)}
  steps = dict(
    date='2026-12-07',
    commit='def5678',
    machine='2-core x86_64 CPU',
    command='bench',
    config='c.py:cpu',
    steps=5,
    rounds=3,
    methods=[
      dict(method=m, compile_s=times[m][0], step_s=times[m][1]) for m in ('upgrad', 'fixed')
    ],
  )
  (tmp_path / 'steps.json').write_text(json.dumps(steps))
  monkeypatch.setattr(docs_tables, 'BALANCING_STEPS', tmp_path / 'steps.json')
  return steps


def test_balancing_steps_give_each_methods_ratio_to_fixed(tmp_path, monkeypatch):
  _steps_file(tmp_path, monkeypatch)
  lines = docs_tables.balancing_steps_block().splitlines()
  assert lines[0].startswith('*2026-12-07, commit `def5678`, 2-core x86_64 CPU: `bench`* (')
  assert lines[4:] == ['| `upgrad` | 20.0 | 0.900 | 1.80 |', '| `fixed` | 18.0 | 0.500 | 1.00 |']


BALANCING_CSV = """\
model,balancing,best_miou,best_miou_std,best_silog,best_silog_std,delta_m,delta_m_std,\
wall_time_s,wall_time_s_std,epoch_time_s,epoch_time_s_std,seeds,state
branched,fixed,40.0,1.5,30.0,0.5,-2.0,1.0,200,,100,,"0,1,2",finished
branched,upgrad,42.0,,29.0,,+1.25,,400,,200,,0,finished
single-task semseg,fixed,41.0,,,,,,100,,50,,0,finished
branched,dwa,39.0,,31.0,,-3.5,,210,,105,,0,stopped at epoch 1/2
"""


def test_balancing_results_rank_by_delta_m_baselines_last_with_step_ratios(tmp_path, monkeypatch):
  (tmp_path / 'summary.csv').write_text(BALANCING_CSV)
  meta = dict(date='2026-12-07', commit='abc1234', machine='2-core x86_64 CPU', command='sweep')
  _steps_file(tmp_path, monkeypatch)
  (tmp_path / 'meta.json').write_text(json.dumps(meta))
  monkeypatch.setattr(docs_tables, 'BALANCING_SUMMARY', tmp_path / 'summary.csv')
  monkeypatch.setattr(docs_tables, 'BALANCING_META', tmp_path / 'meta.json')
  lines = docs_tables.balancing_results_block().splitlines()
  assert lines[2:6] == [
    '| `upgrad` | gradient | 42.00 | 29.00 | +1.25 | 1.80 | 3m20s | 0 | finished |',
    '| `fixed` | weights | 40.00 ± 1.50 | 30.00 ± 0.50 | -2.00 ± 1.00 | 1.00 | 1m40s | 0,1,2 '
    '| finished |',
    '| `dwa` | weights | 39.00 | 31.00 | -3.50 | — | 1m45s | 0 | stopped at epoch 1/2 |',
    '| `single-task semseg` | baseline | 41.00 | — | — | — | 0m50s | 0 | finished |',
  ]
  assert lines[-1] == (
    '6 runs, 21m50s of training in all. Trained 2026-12-07, commit `abc1234`, 2-core x86_64 '
    'CPU: `sweep`; step times 2026-12-07, commit `def5678`, 2-core x86_64 CPU.'
  )
