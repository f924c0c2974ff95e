"""Runs a sweep's train commands N at a time as child processes, with a progress display.

Before launching a run it reads the run's state (`run_status`): a finished run is skipped, a
stopped one resumed (its train command continues from the newest checkpoint), a diverged one
reported (rerunning would repeat it) and one another process is training (a second sweep on the
same root) left to that process; one whose metrics.jsonl holds a corrupt line (its state cannot be
told) fails, naming the line. A run that fails does not stop the others; the failures are
listed at the end with their workdir and the last line of their log, and the exit code is 1.

Each child's stdout and stderr are appended to `<workdir>/train.log`. The children run in their
own session, so a Ctrl-C in the terminal reaches the sweep only: the sweep forwards SIGTERM and
SIGINT to them once (they save a checkpoint and exit), waits for them, and exits 0 without
starting more runs; a second signal is forwarded too (the children then exit at once). If the
sweep itself is killed, Linux sends each child SIGTERM (PR_SET_PDEATHSIG), so none trains on
unwatched.
"""

import contextlib
import ctypes
import dataclasses
import datetime
import functools
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from mtl_jax.config.schema import ConfigError
from mtl_jax.reports import runs as report_runs
from mtl_jax.runtime import progress
from mtl_jax.runtime.errors import UserError
from mtl_jax.sweep.planning import PlannedRun, Sweep, config_differences, shell_line
from mtl_jax.workdir import layout, run_status, writers

POLL_S = 0.5
_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # passed on to the runs
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
FINISHED, FAILED, BUSY, INTERRUPTED = 'finished', 'failed', 'busy', 'interrupted'


def _die_with_parent(parent_pid: int) -> None:
  """In the child before exec: SIGTERM when the sweep dies (the train command saves and exits)."""
  ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
  if os.getppid() != parent_pid:  # the sweep died before prctl took effect
    os.kill(os.getpid(), signal.SIGTERM)


def outcome(returncode: int, last_line: str, state: str | None, stopping: bool) -> str:
  """How a child's exit counts: FINISHED, BUSY (another process trains the run: train refused
  with the workdir lock's line), INTERRUPTED (stopped by the sweep's signal) or FAILED."""
  if returncode == 0 and state == run_status.FINISHED:
    return FINISHED
  if returncode == 2 and 'is in use by' in last_line:
    return BUSY
  if stopping and (returncode == 0 or returncode < 0 or returncode > 128):
    return INTERRUPTED
  return FAILED


def exit_text(returncode: int) -> str:
  if returncode < 0:
    return f'killed by {signal.Signals(-returncode).name}'
  return f'exit {returncode}'


def last_line(path: Path, offset: int = 0) -> str:
  """The last non-empty line of a log from byte `offset` on (progress bars' \\r parts dropped)."""
  try:
    with open(path, 'rb') as f:
      f.seek(offset)
      text = f.read().decode(errors='replace')
  except OSError:
    return ''
  lines = [line.split('\r')[-1].strip() for line in text.splitlines()]
  lines = [line for line in lines if line]
  return lines[-1][:500] if lines else '(no output)'


def epochs_done(workdir: Path) -> int:
  """Evals recorded in the run's metrics.jsonl (its progress, for the sweep's ETA); 0 if a line
  of it is corrupt (`state_before_launch` fails the run, saying which)."""
  try:
    records = writers.read_records(workdir / layout.METRICS_FILE)
  except writers.CorruptRecords:
    return 0
  return records[-1]['epoch'] if records else 0


def state_before_launch(workdir: Path) -> tuple[str | None, str]:
  """(run_status state or None for a run not started, what is wrong if it cannot be read)."""
  if not (workdir / layout.CONFIG_FILE).is_file():
    return None, ''
  corrupt = report_runs.metrics_problem(workdir)
  if corrupt:  # its state cannot be told: finished, or to resume?
    return None, f'{corrupt}; repair or delete that line, then run the sweep again'
  try:
    return run_status.status(workdir).state, ''
  except ConfigError as e:
    return None, str(e)


@dataclasses.dataclass
class _Child:
  run: PlannedRun
  process: subprocess.Popen
  log_offset: int  # where this attempt's output starts in train.log
  started: float


@dataclasses.dataclass
class Runner:
  """The loop: start runs while fewer than `parallel` run, reap ended children, show progress."""

  sweep: Sweep
  parallel: int
  out: object = sys.stdout

  def __post_init__(self):
    self.pending = deque(self.sweep.runs)
    self.children: list[_Child] = []
    self.results: dict[PlannedRun, tuple[str, str]] = {}  # outcome, detail
    self.epochs = {run: epochs_done(self.sweep.workdir(run)) for run in self.sweep.runs}
    self.epochs_at_start = dict(self.epochs)
    self.signals: list[int] = []  # received, not yet passed on
    self.stopped_by: str | None = None
    self.t0 = time.monotonic()
    self._shown = None

  def say(self, text: str) -> None:
    print(text, file=self.out, flush=True)

  def run(self) -> int:
    """Runs the sweep; the exit code (1 if a run failed)."""
    with self._catching_signals():
      while self.children or (self.pending and not self.stopped_by):
        self._pass_on_signals()
        while self.pending and not self.stopped_by and len(self.children) < self.parallel:
          self._start(self.pending.popleft())
        self._reap()
        self._show_progress()
        if self.children:
          time.sleep(POLL_S)
    return self._summary()

  @contextlib.contextmanager
  def _catching_signals(self):
    # The handler only records: printing from it could interrupt a print on the same stream.
    previous = {s: signal.signal(s, lambda n, _: self.signals.append(n)) for s in _SIGNALS}
    try:
      yield
    finally:
      for s, handler in previous.items():
        signal.signal(s, handler)

  def _pass_on_signals(self) -> None:
    while self.signals:
      signum = self.signals.pop(0)
      again = self.stopped_by is not None
      self.stopped_by = self.stopped_by or signal.Signals(signum).name
      for child in self.children:
        with contextlib.suppress(ProcessLookupError):
          os.kill(child.process.pid, signum)
      self.say(
        f'{signal.Signals(signum).name} passed on to {len(self.children)} running: '
        + ('they exit now, without saving' if again else 'each saves a checkpoint and exits')
        + '; no new runs start'
      )

  def _start(self, run: PlannedRun) -> None:
    workdir = self.sweep.workdir(run)
    state, problem = state_before_launch(workdir)
    differences = config_differences(self.sweep, run) if state and not problem else None
    if problem:
      self._record(run, FAILED, problem)
    elif differences:
      self._record(
        run,
        FAILED,
        f'trained with another config ({differences}); sweep into another --root, or delete '
        f'{workdir} to train it with this one',
      )
    elif state == run_status.FINISHED:
      self._record(run, FINISHED, 'already finished')
    elif state == run_status.TRAINING:
      self._record(run, BUSY, 'being trained by another process')
    elif state == run_status.DIVERGED:
      self._record(
        run, FAILED, f'diverged (rerunning repeats it): see {workdir / layout.TRAIN_LOG_FILE}'
      )
    else:
      self.children.append(self._launch(run))
      self.say(f'start   {run.name}' + (' (resuming)' if state else ''))

  def _launch(self, run: PlannedRun) -> _Child:
    command = self.sweep.command(run, sys.executable)
    workdir = self.sweep.workdir(run)
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / layout.TRAIN_LOG_FILE, 'ab') as log:
      stamp = datetime.datetime.now().isoformat(timespec='seconds')
      log.write(f'\n=== {stamp} sweep runs: {shell_line(command)}\n'.encode())
      log.flush()
      process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # terminal signals reach the sweep only; it passes them on
        preexec_fn=_pdeathsig(),
        env={**os.environ, 'PYTHONUNBUFFERED': '1'},
      )
      return _Child(run, process, log.tell(), time.monotonic())

  def _reap(self) -> None:
    for child in list(self.children):
      workdir = self.sweep.workdir(child.run)
      self.epochs[child.run] = epochs_done(workdir)
      code = child.process.poll()
      if code is None:
        continue
      self.children.remove(child)
      line = last_line(workdir / layout.TRAIN_LOG_FILE, child.log_offset)
      state = state_before_launch(workdir)[0] if code == 0 else None
      result = outcome(code, line, state, self.stopped_by is not None)
      took = progress.format_duration(time.monotonic() - child.started)
      self._record(child.run, result, took if result == FINISHED else f'{exit_text(code)}: {line}')

  def _record(self, run: PlannedRun, result: str, detail: str) -> None:
    self.results[run] = (result, detail)
    if result == FINISHED:
      self.epochs[run] = run.num_epochs
    self.say(f'{result:<7} {run.name}: {detail}')

  def _show_progress(self) -> None:
    """One line whenever a run starts or ends or an epoch completes; the ETA from the epochs
    trained since the sweep started."""
    counts = [result for result, _ in self.results.values()]
    left = [run for run in self.sweep.runs if run not in self.results]
    remaining = sum(max(run.num_epochs - self.epochs[run], 0) for run in left)
    trained = sum(self.epochs[run] - self.epochs_at_start[run] for run in self.epochs)
    rate = trained / max(time.monotonic() - self.t0, 1e-9)
    eta = progress.format_duration(remaining / rate) if rate > 0 else '?'
    key = (tuple(counts), len(self.children), sum(self.epochs.values()))
    if key != self._shown:
      self._shown = key
      self.say(
        f'sweep: {counts.count(FINISHED)}/{len(self.sweep.runs)} done | {len(self.children)} '
        f'running | {counts.count(FAILED)} failed | {len(self.pending)} waiting | ETA {eta}'
      )

  def _summary(self) -> int:
    by = lambda kind: [run for run, (result, _) in self.results.items() if result == kind]
    failed, busy = by(FAILED), by(BUSY)
    self.say(
      f'sweep: {len(by(FINISHED))}/{len(self.sweep.runs)} finished, {len(failed)} failed, '
      f'{len(busy)} trained elsewhere | wall time '
      + progress.format_duration(time.monotonic() - self.t0)
    )
    for run in failed:
      self.say(f'  failed: {self.sweep.workdir(run)}: {self.results[run][1]}')
    for run in busy:
      self.say(f'  not launched, being trained by another process: {self.sweep.workdir(run)}')
    unfinished = len(by(INTERRUPTED)) + len(self.pending)
    if unfinished:  # only a stop leaves runs unfinished
      self.say(
        f'stopped by {self.stopped_by}; unfinished runs: {unfinished}. Run the same command '
        'again to continue.'
      )
    else:
      write_report(self.sweep.root, self.say)
    return 1 if failed else 0


def _pdeathsig():
  return functools.partial(_die_with_parent, os.getpid()) if sys.platform == 'linux' else None


def write_report(root: Path, say: Callable[[str], None]) -> None:
  """The sweep's report in root/report; a report that cannot be written (root/report holds the
  user's own files, say) is a line, not the sweep's error: its runs are done."""
  from mtl_jax.reports import build  # pylint: disable=g-import-not-at-top  # written only when done

  try:
    say(f'report: {build.write_report([root], root / "report")}')
  except UserError as e:
    say(f'report: not written: {e}')
