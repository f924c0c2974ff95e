"""What every command shares, so that a new one cannot forget it: `run` (absl flags) or `command`
(any other parser) gives it quiet start-up, one-line errors for user mistakes and flag errors, and
Ctrl-C as one line; `directory_flag` and `file_flag` check its path flags.
structure_test checks that every command opens through them."""

import contextlib
import logging as std_logging
import os
import sys
from pathlib import Path

from absl import app, flags, logging

from mtl_jax.runtime.errors import DiskFull, UserError

DEFAULT_XLA_CACHE = '~/.cache/mtl_jax/xla'


def setup() -> None:
  """Quiet logs (orbax and TFDS log every save at INFO) and a persistent compilation cache.

  The cache makes a second run of the same config start in seconds instead of recompiling;
  JAX_COMPILATION_CACHE_DIR overrides its location.
  """
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  logging.set_verbosity(logging.ERROR)
  for logger in (logging.get_absl_logger(), std_logging.getLogger('asyncio')):
    logger.addFilter(_not_an_orbax_background_failure)
  import jax  # pylint: disable=g-import-not-at-top

  cache = os.environ.get('JAX_COMPILATION_CACHE_DIR', os.path.expanduser(DEFAULT_XLA_CACHE))
  jax.config.update('jax_compilation_cache_dir', cache)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


def _not_an_orbax_background_failure(record: std_logging.LogRecord) -> bool:
  """Drops what orbax's background work logs when it fails, tracebacks and all: the log of an
  exception in a writer thread (orbax raises the same error where it saves, which reports it: a
  full disk is one line), and asyncio's "Task exception was never retrieved" for the reads of a
  checkpoint that retention deleted under a reader (which then reads another one)."""
  if record.pathname.replace(os.sep, '/').endswith('orbax/checkpoint/_src/futures/future.py'):
    return False
  message = record.getMessage()
  return not ('never retrieved' in message and '/orbax/' in message)


@contextlib.contextmanager
def user_errors(program: str):
  """Turns a user-facing error into `<program>: error: <message>` on stderr and exit 2.

  After a full disk the exit is immediate: at-exit flushes (TensorBoard's writer) and orbax's
  pending writes would only fail again on the same disk, each with its own traceback. Every
  complete checkpoint and metrics.jsonl line is already on disk (fsynced)."""
  try:
    yield
  except DiskFull as e:
    print(f'{program}: error: {e}', file=sys.__stderr__, flush=True)  # stderr may be held
    sys.stdout.flush()
    os._exit(2)  # pylint: disable=protected-access
  except UserError as e:
    print(f'{program}: error: {e}', file=sys.stderr, flush=True)
    sys.exit(2)


@contextlib.contextmanager
def _interrupt_is_one_line(program: str):
  """Ctrl-C (SIGINT's KeyboardInterrupt) as one line and the shell's exit 130, not a traceback.
  Every file a command writes is written whole or not at all, so a rerun goes on. (train handles
  SIGINT itself: it saves a checkpoint first, `runtime.preemption`.)"""
  try:
    yield
  except KeyboardInterrupt:
    print(f'\n{program}: interrupted; nothing half-written is kept', file=sys.stderr, flush=True)
    sys.exit(130)


@contextlib.contextmanager
def command(program: str):
  """What a command's work runs in, whatever parsed its arguments: `setup`, `user_errors` and
  Ctrl-C as one line."""
  setup()
  with _interrupt_is_one_line(program), user_errors(program):
    yield


def _last_line(error: Exception) -> str:
  """The final line of a message; config_flags embeds a whole traceback in its error text."""
  lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
  return lines[-1] if lines else type(error).__name__


def flag_value(argv: list[str], name: str) -> str:
  """The raw value of --name=v or --name v in argv ('?' if absent)."""
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      return arg.split('=', 1)[1]
    if arg == f'--{name}' and i + 1 < len(argv):
      return argv[i + 1]
  return '?'


def _file_in_the_way(path: Path) -> Path | None:
  """The nearest existing ancestor of `path`, if it is not a directory (so `path` cannot be
  created; a missing ancestor is created with it)."""
  for parent in path.absolute().parents:
    if parent.exists():
      return None if parent.is_dir() else parent
  return None


def _check_path(flag: str, path: str) -> Path:
  # An unset shell variable (--workdir=$RUN) would otherwise mean the working directory.
  if not path.strip():
    raise UserError(f'{flag} is empty (an unset shell variable?); give a path')
  blocker = _file_in_the_way(Path(path))
  if blocker:
    raise UserError(f'{flag} {path}: {blocker} is a file, not a directory')
  return Path(path)


def directory_flag(flag: str, path: str) -> Path:
  """The value of a flag naming a directory (to create, or one that exists); a UserError if it
  is empty or names a file, or a file stands where one of its parents would go."""
  directory = _check_path(flag, path)
  if directory.exists() and not directory.is_dir():
    raise UserError(f'{flag} {path} is a file, not a directory')
  return directory


def file_flag(flag: str, path: str) -> Path:
  """The value of a flag naming a file to write; a UserError if it is empty or names a
  directory, or a file stands where one of its parents would go."""
  file = _check_path(flag, path)
  if file.is_dir():
    raise UserError(f'{flag} {path} is a directory; name a file in it, e.g. {file / "out.json"}')
  return file


def _config_resolved(argv: list[str]) -> list[str]:
  """argv with the file of --config looked up among the shipped configs when it is not on disk
  (`files.resolve_config_ref`): config_flags itself opens the path relative to the cwd only."""
  from mtl_jax.config import files  # pylint: disable=g-import-not-at-top  # entry points only

  argv = list(argv)
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      argv[i] = '--config=' + files.resolve_config_ref(arg.split('=', 1)[1])
    elif arg == '--config' and i + 1 < len(argv):
      argv[i + 1] = files.resolve_config_ref(argv[i + 1])
  return argv


def _missing_name(error: AttributeError | KeyError, argv: list[str]) -> str:
  """The config file lacks get_config, or an override names a key the config lacks."""
  if getattr(error, 'name', None) == 'get_config':  # the module's AttributeError
    return f'{flag_value(argv, "config").partition(":")[0]} does not define get_config()'
  key = str(error).strip('"\'').split("'")[0]
  culprit = next((a for a in argv if a.startswith('--config.') and key in a), key)
  return f'unknown config key in {culprit}'


def config_error_message(error: Exception, argv: list[str]) -> str | None:
  """One line for an error raised while parsing `argv` with a config_flags --config (None for
  any other exception: a bug, which keeps its traceback)."""
  if isinstance(error, UserError):
    return str(error)
  if isinstance(error, SyntaxError):  # in the config file, which config_flags runs as Python
    return f'{error.filename}:{error.lineno}: {error.msg}'
  if isinstance(error, (AttributeError, KeyError)):
    return _missing_name(error, argv)
  if isinstance(error, OSError):  # config_flags' own message is many lines of the paths it tried
    path = flag_value(argv, 'config').partition(':')[0]
    return f'cannot load config file {path!r} (no such file, or unreadable)'
  if isinstance(error, (flags.Error, ValueError, TypeError)):
    return _last_line(error)
  return None


def _flags_parser(program: str):
  def parse(argv):
    try:
      has_config = 'config' in flags.FLAGS
      args = flags.FLAGS(_config_resolved(argv) if has_config else argv)
      if has_config:
        flags.FLAGS.config.keys()  # config_flags defers a file's load error to first access
      return args
    except Exception as e:  # pylint: disable=broad-except  # a bug is re-raised below
      message = config_error_message(e, argv)
      if message is None:
        raise
    print(f'{program}: error: {message}', file=sys.stderr)
    sys.exit(2)

  return parse


def run(main, program: str, *, takes_arguments: bool = False) -> None:
  """Every absl command's entry: app.run with flag and config errors as one line (exit 2), then
  main(argv) inside `command(program)`. Arguments that are not flags are refused unless
  takes_arguments (argv[1:] then holds them)."""

  def guarded(argv: list[str]):
    with command(program):
      if len(argv) > 1 and not takes_arguments:
        raise UserError(
          f'unexpected arguments: {" ".join(argv[1:])} (flags take the form --name=value)'
        )
      return main(argv)

  app.run(guarded, flags_parser=_flags_parser(program))
