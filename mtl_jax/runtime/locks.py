"""Advisory locks: one writer per workdir, one builder per dataset.

A lock is `fcntl.flock` on a small file. The OS releases it when the holding process exits, however
it dies (SIGKILL and power loss included), so there is never a stale lock to clear by hand. The
holder writes who it is (pid, host, since when) into the file so that a refused process can name
it. The file itself is never deleted: removing a lock file races with a process that has just
opened it, and two processes would then hold "the" lock on two different files.

flock works on local filesystems and on NFSv4 (Linux emulates it with byte-range locks there); on a
filesystem without lock support the lock is refused with the OS's reason.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from mtl_jax.runtime.errors import UserError

_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


class Locked(UserError):
  """Another live process holds the lock."""


def _holder_text(path: Path) -> str:
  """'pid 123 on host since 2026-11-29 07:15:02 UTC', from what the holder wrote."""
  try:
    who = json.loads(path.read_text())
    return f'pid {who["pid"]} on {who["host"]} since {who["since"]}'
  except (OSError, ValueError, KeyError, TypeError):  # written a moment ago, or by an old version
    return 'another process'


def _open(path: Path) -> int | None:
  """A descriptor to lock; None when the file cannot exist here (a read-only filesystem without
  it: then nothing can write there either, so there is nothing to exclude)."""
  try:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    if e.errno not in _READ_ONLY:
      raise
  try:
    return os.open(path, os.O_RDONLY)  # flock needs no write access
  except FileNotFoundError:
    return None


def _record_holder(fd: int) -> None:
  since = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')
  text = json.dumps({'pid': os.getpid(), 'host': socket.gethostname(), 'since': since})
  try:
    os.ftruncate(fd, 0)
    os.pwrite(fd, (text + '\n').encode(), 0)
  except OSError:  # opened read-only (read-only filesystem): the lock still holds
    pass


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, *, what: str, wait: bool = False) -> Iterator[None]:
  """Holds the lock at `path` for the duration of the block.

  wait=False: a held lock is a `Locked` error naming `what` and its holder. wait=True: says on
  stderr whom it waits for, then blocks until the holder releases the lock (dataset builds: the
  waiter then finds the finished build).
  """
  path = Path(path)
  fd = _open(path)
  if fd is None:
    yield
    return
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      if not wait:
        raise Locked(
          f'{what} is in use by {_holder_text(path)} (lock {path}); wait for it to finish or '
          'stop it first'
        ) from None
      print(
        f'waiting for {what}: in use by {_holder_text(path)} (lock {path})',
        file=sys.stderr,
        flush=True,
      )
      fcntl.flock(fd, fcntl.LOCK_EX)
    _record_holder(fd)
    yield
  finally:
    os.close(fd)  # closing releases the flock


def is_held(path: str | os.PathLike) -> bool:
  """Whether a live process holds the lock at `path` (for status displays; taking a lock is what
  excludes). Probing takes a shared lock for a moment, which a process asking for the lock at
  that very instant without waiting would see as held."""
  try:
    fd = os.open(path, os.O_RDONLY)
  except FileNotFoundError:
    return False
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except BlockingIOError:
    return True
  finally:
    os.close(fd)
  return False
