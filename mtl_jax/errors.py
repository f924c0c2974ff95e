"""The one exception type for mistakes a user must fix (a config value, a path, a data file).

Entry points print it as a single `<program>: error: <message>` line and exit 2; any other
exception is a bug and keeps its traceback.
"""


class UserError(ValueError):
  """Something the user gave us is wrong; the message names it and says what is expected."""
