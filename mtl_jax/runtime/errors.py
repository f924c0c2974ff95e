"""User errors and registry look-ups.

`UserError` is the one exception type for mistakes a user must fix (a config value, a path, a data
file). Entry points print it as a single `<program>: error: <message>` line and exit 2; any other
exception is a bug and keeps its traceback.
"""


class UserError(ValueError):
  """Something the user gave us is wrong; the message names it and says what is expected."""


class DiskFull(UserError):
  """The disk filled up while a run wrote to it; every complete checkpoint is intact. Not the
  user's mistake, but theirs to fix, and reported the same way: one line."""


def lookup(registry: dict, name, what: str):
  """`registry[name]`; an unknown name is a ValueError that lists the valid ones."""
  if name not in registry:
    raise ValueError(f'unknown {what} {name!r}; valid names: {", ".join(map(str, registry))}')
  return registry[name]
