"""SIGTERM / SIGINT as a request to stop cleanly: finish the step, save, exit 0.

A single-GPU or CPU job gets no preemption notice from `jax.distributed`, so the training loop
polls `StopRequest.requested` after every step. A second signal means "now": it exits at once
with the conventional 128 + signal number (no save; the last checkpoint is intact).
"""

import os
import signal
import sys
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
  """Context manager installing the handlers (main thread only); restores them on exit."""

  def __init__(self):
    self.signal_name: str | None = None
    self._previous = {}

  @property
  def requested(self) -> bool:
    return self.signal_name is not None

  def _handle(self, signum, frame):
    del frame
    if self.requested:
      print(
        f'\nsecond {signal.Signals(signum).name}: exiting now without saving',
        file=sys.stderr,
        flush=True,
      )
      os._exit(128 + signum)  # pylint: disable=protected-access  # no cleanup: "now" means now
    self.signal_name = signal.Signals(signum).name
    print(
      f'\n{self.signal_name}: finishing this step, saving a checkpoint, then exiting '
      '(send it again to exit at once)',
      file=sys.stderr,
      flush=True,
    )

  def __enter__(self) -> 'StopRequest':
    if threading.current_thread() is threading.main_thread():  # signal() only works there
      self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
    return self

  def __exit__(self, *exc_info) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)
