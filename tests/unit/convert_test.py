"""`python -m mtl_jax.convert SUBCOMMAND`: the dispatcher lists, refuses and hands on argv."""

import pytest
from commands import assert_one_line_error, run

from mtl_jax import convert

SUBCOMMANDS = ('torchvision', 'template', 'miniscapes')


def test_help_lists_each_subcommand_on_one_line():
  result = run('mtl_jax.convert', '--help')
  assert (result.returncode, result.stderr) == (0, '')
  assert result.stdout == convert.usage() + '\n'
  listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith('  ')]
  assert listed == list(SUBCOMMANDS)


@pytest.mark.parametrize(
  'args, what',
  [(('tensorflow', '--input=x'), "unknown subcommand 'tensorflow'"), ((), 'no subcommand given')],
  ids=['unknown', 'none'],
)
def test_a_missing_or_unknown_subcommand_is_one_line_naming_the_valid_ones(args, what):
  result = run('mtl_jax.convert', *args)
  assert_one_line_error(result, 'convert', what, 'give one of torchvision, template, miniscapes')
  assert result.stdout == ''


def test_a_subcommand_help_shows_its_flags_under_its_name():
  result = run('mtl_jax.convert', 'torchvision', '--help')
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith('usage: convert torchvision [-h] --input INPUT --output OUTPUT')
  for flag in ('--input', '--output', '--depth'):
    assert f'\n  {flag} ' in result.stdout


def test_argparse_subcommands_define_no_absl_flags(monkeypatch, capsys):
  from absl import flags  # pylint: disable=g-import-not-at-top

  before = set(flags.FLAGS)
  monkeypatch.setattr('sys.argv', ['convert.py'])
  for name in ('torchvision', 'miniscapes'):
    with pytest.raises(SystemExit) as exited:
      convert.main([name, '--help'])
    assert exited.value.code == 0
  assert f'usage: {convert.PROGRAM} miniscapes' in capsys.readouterr().out
  assert set(flags.FLAGS) == before


def test_a_subcommand_usage_error_names_the_subcommand():
  result = run('mtl_jax.convert', 'template', '--input=x.ckpt', '--config=configs/joint.py')
  assert_one_line_error(result, 'convert template', 'Flag --workdir must have a value')


def test_template_help_shows_its_description_and_absl_flags():
  result = run('mtl_jax.convert', 'template', '--help')
  assert result.returncode == 1, result.stderr  # absl's --help exits 1, as the other commands do
  assert result.stdout.startswith('Converts a course-template PyTorch checkpoint into an mtl_jax')
  for flag in ('--config', '--input', '--workdir'):
    assert f'\n  {flag}: ' in result.stdout
