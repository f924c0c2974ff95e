"""What a report reads before drawing anything: which folder it may write into (new, empty or an
earlier report's, `build.earlier_report`) and which runs' metrics.jsonl it can read, naming the
corrupt line of one it cannot (`runs.metrics_problem`)."""

import json
import re

import pytest

from mtl_jax.reports import build, runs
from mtl_jax.runtime.errors import UserError
from mtl_jax.workdir import layout, writers

GOOD = json.dumps({'epoch': 1, 'miou': 10.0})


@pytest.mark.parametrize(
  'text, problem',
  [
    (None, None),
    ('', None),
    (f'{GOOD}\n{GOOD}\n', None),
    (f'{GOOD}\n\n{GOOD}\n{{"epoch": 3, "mi', None),  # torn by a kill mid-write: readers drop it
    (f'{GOOD}\n\n{{"epoch": 2, "mi\n{GOOD}\n', 'line 3 is not JSON (a corrupt line)'),
    ('garbage\n' * 3, 'line 1 is not JSON (a corrupt line)'),
    (f'{GOOD}\n[1, 2]\n', 'line 2 is not an eval record (a JSON object with an epoch)'),
    (f'{GOOD}\n{{"miou": 1}}\n', 'line 2 is not an eval record (a JSON object with an epoch)'),
    (b'\x00\xff\xfe garbage\n'.decode('latin-1'), 'line 1 is not text (a corrupt line)'),
  ],
)
def test_a_corrupt_metrics_line_is_named(tmp_path, text, problem):
  path = tmp_path / layout.METRICS_FILE
  if text is not None:
    path.write_bytes(text.encode('latin-1'))
  found = runs.metrics_problem(tmp_path)
  assert found == (problem and f'{path} {problem}')
  if problem is None and text is not None:
    writers.read_records(path)  # what the problem stands for: reading it would raise
  elif problem is not None:
    with pytest.raises((ValueError, AttributeError, KeyError, TypeError)):
      records = writers.read_records(path)
      [r['epoch'] for r in records]


def test_a_report_goes_into_a_new_or_empty_folder_or_an_earlier_report(tmp_path):
  assert build.earlier_report(tmp_path / 'new') == set()
  (tmp_path / 'empty').mkdir()
  assert build.earlier_report(tmp_path / 'empty') == set()
  mine = tmp_path / 'mine'
  mine.mkdir()
  (mine / 'notes.txt').write_text('my notes')
  message = (
    f'{mine} holds files and no earlier report (it has no {build.REPORT_FILES}); name a new or '
    'empty folder for the report'
  )
  with pytest.raises(UserError, match=f'^{re.escape(message)}$'):
    build.earlier_report(mine)
  # An earlier report: the files it listed, never a path outside the folder.
  earlier = tmp_path / 'earlier'
  earlier.mkdir()
  (earlier / build.REPORT_FILES).write_text(
    '# comment\nindex.html\nsamples/000_a.png\n\n../outside.txt\n/etc/hostname\n'
  )
  (earlier / 'notes.txt').write_text('kept')
  assert build.earlier_report(earlier) == {'index.html', 'samples/000_a.png'}
