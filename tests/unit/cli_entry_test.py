"""cli.command and cli.run: the one opening every command shares (user mistakes and Ctrl-C as one
line; arguments that are not flags refused)."""

import pytest
from commands import assert_one_line_error, run

from mtl_jax import cli
from mtl_jax.runtime.errors import UserError


def _exit_of(body, capsys) -> tuple[int, list[str]]:
  with pytest.raises(SystemExit) as exited, cli.command('demo'):
    body()
  return exited.value.code, capsys.readouterr().err.strip().splitlines()


def test_a_user_mistake_is_one_line_and_exit_2(capsys):
  def mistake():
    raise UserError('--input photos/ holds no images')

  assert _exit_of(mistake, capsys) == (2, ['demo: error: --input photos/ holds no images'])


def test_ctrl_c_is_one_line_and_the_shells_exit_130(capsys):
  def interrupted():
    raise KeyboardInterrupt

  assert _exit_of(interrupted, capsys) == (
    130,
    ['demo: interrupted; nothing half-written is kept'],
  )


def test_a_bug_keeps_its_traceback():
  with pytest.raises(ZeroDivisionError), cli.command('demo'):
    _ = 1 / 0


def test_every_command_refuses_arguments_that_are_not_flags_in_one_line():
  assert_one_line_error(
    run('mtl_jax.evaluate', '--workdir', 'runs/x', 'stray'),
    'evaluate',
    'unexpected arguments: stray (flags take the form --name=value)',
  )


def test_the_ctrl_c_line_is_what_a_real_sigint_gives(tmp_path):
  script = tmp_path / 'slow.py'
  script.write_text(
    'import os, signal\n'
    # Ctrl-C in a terminal: Python's handler. A shell without job control starts background
    # jobs with SIGINT ignored (a CI run launched with `&`), and Python keeps it ignored.
    'signal.signal(signal.SIGINT, signal.default_int_handler)\n'
    'from mtl_jax import cli\n'
    'def main(argv):\n'
    '  os.kill(os.getpid(), signal.SIGINT)\n'
    'cli.run(main, "slow")\n'
  )
  result = run(str(script), cwd=tmp_path)
  assert result.returncode == 130
  assert result.stderr.strip() == 'slow: interrupted; nothing half-written is kept'
  assert 'Traceback' not in result.stderr
