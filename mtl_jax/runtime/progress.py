"""Console progress: throughput and ETA during training, one line per eval."""

import time


def is_primary() -> bool:
  """Whether this process writes what a run writes once (metrics, config, progress lines): in a
  multi-process job (`mtl_jax.distributed`) process 0 does, for the whole job."""
  import jax  # pylint: disable=g-import-not-at-top  # progress lines need no JAX otherwise

  return jax.process_index() == 0


def say(line: str) -> None:
  """Prints a progress line once per job, from the primary process."""
  if is_primary():
    print(line, flush=True)


def format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


class Progress:
  """Measures steps/s since the first logged step (so compilation does not skew the ETA)."""

  def __init__(self, total_steps: int, start_step: int, batch_size: int):
    self.total_steps = total_steps
    self.batch_size = batch_size
    self._t0, self._step0 = None, start_step

  def line(self, step: int, scalars: dict[str, float]) -> str:
    now = time.perf_counter()
    if self._t0 is None:
      self._t0, self._step0 = now, step
      rate_text, eta = 'warming up', ''
    else:
      rate = (step - self._step0) / max(now - self._t0, 1e-9)
      rate_text = f'{rate * self.batch_size:.1f} img/s'
      eta = f' | ETA {format_duration((self.total_steps - step) / max(rate, 1e-9))}'
    losses = ' '.join(
      f'{k.split("/")[-1]} {v:.4f}' for k, v in scalars.items() if k.startswith('loss/')
    )
    if scalars.get('nonfinite'):  # its losses are reported as 0: say why
      losses = f'skipped: non-finite ({int(scalars["nonfinite_streak"])} in a row)'
    return f'step {step}/{self.total_steps} | {losses} | {rate_text}{eta}'
