"""Running the package's commands in a child process, and the one-line error every user mistake
must give (`<program>: error: ...`, exit 2, no traceback)."""

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def run(module: str, *args: str, cwd=REPO) -> subprocess.CompletedProcess:
  """`python -m module args` (or `python module args` for a script path) in `cwd`."""
  program = [module] if module.endswith('.py') else ['-m', module]
  return subprocess.run(
    [sys.executable, *program, *args], cwd=cwd, capture_output=True, text=True, timeout=300
  )


def assert_one_line_error(result: subprocess.CompletedProcess, program: str, *fragments: str):
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith(f'{program}: error: ')
  for fragment in fragments:
    assert fragment in lines[0]
  assert 'Traceback' not in result.stderr + result.stdout
