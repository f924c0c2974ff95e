"""Files written whole or not at all: each is written to a hidden partial file beside it (the
same filesystem, so the rename is atomic) and renamed over it once complete. A kill, Ctrl-C or a
full disk mid-write leaves the old file (or none), never a torn one a later run would trust."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def partial_path(path: Path) -> Path:
  """Where `path` is written before it is renamed into place."""
  return path.with_name(f'.{path.name}.partial')


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
  """Yields the partial path to write; renames it over `path` when the block completes, and
  removes it when the block raises (or is interrupted)."""
  partial = partial_path(path)
  try:
    yield partial
    os.replace(partial, path)
  finally:
    partial.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
  with replacing(Path(path)) as partial:
    partial.write_text(text)
