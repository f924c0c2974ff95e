"""README.md and docs/: the front page's shape, its links into docs/, dated performance notes,
commands that exist, and no wording that goes stale."""

import re
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / 'README.md'
DOCS = REPO / 'docs'
PAGES = [README, *sorted(DOCS.glob('*.md'))]
README_MAX_LINES = 200
TEST_LINE = (
  'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && ruff check . '
  '&& ruff format --check . && mkdocs build --strict && python -m pytest -q'
)
COMMANDS = (
  'train', 'evaluate', 'predict', 'export', 'sweep', 'study', 'report', 'prepare_data', 'convert',
)  # fmt: skip
# Pages that may show `python scripts/...`: scripts are maintainers' tools, never a user's step.
SCRIPT_PAGES = ('development.md', 'performance.md')
STALE = re.compile(r'\btoday\b|\bthat day\b|\bissue \d+|\bpaste\b|\bTODO\b|\bTBD\b', re.I)
GENERATED = re.compile(r'<!-- ([a-z-]+):begin -->.*?<!-- \1:end -->', re.S)
NOTE_FIRST_LINE = re.compile(
  r'^\*(?P<date>\d{4}-\d{2}-\d{2}), commits? `[0-9a-f]{7,}`.*?, [^,]*CPU[^:]*jax [\d.]+: .*`'
)


def slug(heading: str) -> str:
  """The anchor mkdocs (and GitHub, for these headings) gives a heading."""
  text = re.sub(r'`|\[|\]\([^)]*\)', '', heading)
  text = unicodedata.normalize('NFKD', text).encode('ascii', 'ignore').decode()
  return re.sub(r'[-\s]+', '-', re.sub(r'[^\w\s-]', '', text).strip().lower())


def anchors(page: Path) -> set[str]:
  text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)
  return {slug(m.group(1)) for m in re.finditer(r'^#{1,6} (.+)$', text, re.M)}


def test_readme_is_a_front_page():
  lines = README.read_text().splitlines()
  assert len(lines) <= README_MAX_LINES, f'README.md has {len(lines)} lines'


def test_ci_reads_the_test_line_two_lines_after_its_marker():
  lines = README.read_text().splitlines()
  at = lines.index('<!-- ci:test -->')
  assert lines[at + 1 : at + 4] == ['```bash', TEST_LINE, '```']


def test_readme_links_into_docs_resolve():
  links = re.findall(r'\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)', README.read_text())
  assert links
  for path, anchor in links:
    target = REPO / path
    assert target.is_file(), f'README.md links to missing {path}'
    if anchor:
      assert anchor in anchors(target), f'README.md links to missing {path}#{anchor}'


@pytest.mark.parametrize('page', PAGES, ids=lambda p: p.name)
def test_no_wording_that_goes_stale(page):
  found = sorted({m.group(0) for m in STALE.finditer(page.read_text())})
  assert not found, f'{page.name}: {found}'


@pytest.mark.parametrize('page', PAGES, ids=lambda p: p.name)
def test_commands_are_the_packages_and_scripts_are_not_a_users_step(page):
  # A generated block may name the script that measured it: a record, not a step.
  text = GENERATED.sub('', page.read_text())
  for name in re.findall(r'python -m mtl_jax\.(\w+)', text):
    assert name in COMMANDS, f'{page.name}: python -m mtl_jax.{name}'
  if page.name not in SCRIPT_PAGES:
    assert 'python scripts/' not in text, f'{page.name} sends a user to python scripts/'


def test_every_performance_note_opens_with_its_date_commit_machine_and_command():
  text = (DOCS / 'performance.md').read_text()
  notes = re.findall(r'^## (.+)\n\n((?:.+\n)+)', text, re.M)
  assert notes
  for heading, paragraph in notes:
    # A note generated from a results file opens inside its block (scripts/docs_tables.py).
    first = re.sub(r'^<!-- [a-z-]+:begin --> ', '', ' '.join(paragraph.split()))
    match = NOTE_FIRST_LINE.match(first)
    assert match, f'performance note {heading!r} opens with {first!r}'
    assert heading.startswith(f'{match.group("date")}: '), heading


def test_figures_in_the_readme_are_only_the_generated_ones():
  """Outside the results block the README names no timing or speed: those are dated notes."""
  text = README.read_text()
  before, _, rest = text.partition('<!-- results:begin -->')
  _, _, after = rest.partition('<!-- results:end -->')
  units = r'\d+(?:\.\d+)?\s?(?:ms|min|GiB|GB|samples/s|images/s|img/s)\b|\d+m\d+s|mIoU \d'
  assert not re.findall(units, before + after)
