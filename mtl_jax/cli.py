"""What every entry point shares: quiet start-up and one-line errors for user mistakes."""

import contextlib
import os
import sys

from absl import logging

# Users' errors: reported as one line and exit code 2, never a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, KeyError)


def quiet_start() -> None:
  """Keeps the console to our own progress lines: orbax and TF log every save at INFO."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  logging.set_verbosity(logging.ERROR)


@contextlib.contextmanager
def user_errors(program: str):
  """Turns a user-facing error into `<program>: error: <message>` on stderr and exit 2."""
  try:
    yield
  except USER_ERRORS as e:
    message = e.args[0] if isinstance(e, KeyError) and e.args else e
    print(f'{program}: error: {message}', file=sys.stderr)
    sys.exit(2)
