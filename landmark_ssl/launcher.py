"""Runs a sweep's jobs as processes: the steps every launcher takes with one
job, and the local launcher, which runs ``N`` jobs at a time on this
machine (``landmark_ssl.ray_launcher`` takes the same steps on a Ray
cluster's nodes).

For each job (``sweep_plan.Job``: one run, or a table cell's seeds):

1. :func:`triage`: a run whose ``results.json`` says ``finished`` is skipped;
   a run directory holding a run of another config than the command
   requests (its ``config.json``, compared as ``main`` compares it) is
   reported with the differing keys and not run, unless ``rerun_changed``
   (then ``main --overwrite`` replaces it).
2. :func:`claim`: each run left is locked (``flock`` on its ``sweep.lock``);
   a run another process holds is skipped as busy.
3. :func:`start`: the job's command (``sweep_plan.command``) runs as a
   process that inherits the locks, so they are held as long as it trains,
   even if the launcher dies; its output is appended to the first run's
   ``log.txt`` (the others' say where).
4. :func:`outcome`: each run is finished if its ``results.json`` says so,
   else failed, with the exit status and the last lines of the log.

Every step yields :class:`Event` s, which a :class:`Tally` counts and logs as
progress lines (``sweep_progress``).
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import os
import shlex
import signal
import subprocess
import time
from typing import Dict, List, Mapping, Sequence, Tuple

from absl import flags
from absl import logging
from ml_collections import config_flags

from landmark_ssl import configs
from landmark_ssl import rundir
from landmark_ssl import sweep_plan
from landmark_ssl import sweep_progress

# landmark_ssl.main's exit status after SIGTERM (preemption): run it again.
EXIT_PREEMPTED = 75
LOG_TAIL_LINES = 15


@dataclasses.dataclass(frozen=True)
class Event:
  """Something that happened to a run of a sweep.

  Attributes:
    run: the run's name.
    kind: ``'started'``, ``'stopped'`` (its process ended without an end
      and it is started again), or one of ``sweep_progress.DONE_KINDS``.
    text: what to log after the run's name.
    level: its absl logging level.
    timing: ``sweep_progress.run_timing`` of a finished run.
    epochs_done: of a started run, the epochs it trained before
      (``Claim.epochs_done``); it resumes from its latest checkpoint, at
      most a checkpoint interval earlier.
  """
  run: str
  kind: str
  text: str
  level: int = logging.INFO
  timing: tuple | None = None
  epochs_done: float = 0.0


def run_status(run_dir: str) -> str:
  """``'finished'`` if ``run_dir/results.json`` says so, else ``'todo'``."""
  return "finished" if rundir.RunDir(run_dir).is_finished() else "todo"


def requested_config(spec: sweep_plan.RunSpec) -> dict:
  """The config a run's ``landmark_ssl.main`` command trains, as ``main``
  parses its ``--config`` and ``--config.<key>=`` flags and stores it in the
  run's ``config.json``."""
  args = ["main"] + list(sweep_plan.command([spec], "python")[3:])
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=fv, sys_argv=args,
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "", flag_values=fv)
  fv(args)
  return json.loads(fv.config.to_json(sort_keys=True))


def config_changes(spec: sweep_plan.RunSpec) -> List[str]:
  """The keys (``configs.config_differences``) in which the run stored in
  ``spec.run_dir`` (its ``config.json``) differs from the config its command
  requests; empty without a readable ``config.json`` (``main`` then names
  the problem) or a command that does not parse."""
  try:
    with open(os.path.join(spec.run_dir, rundir.CONFIG)) as f:
      stored = json.load(f)
  except (OSError, ValueError):
    return []
  if not isinstance(stored, dict):
    return []
  try:
    requested = requested_config(spec)
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("%s: cannot compare with %s: %s", spec.name,
                    os.path.join(spec.run_dir, rundir.CONFIG), e)
    return []
  return configs.config_differences(stored, requested)


@dataclasses.dataclass(frozen=True)
class Triage:
  """What of a job is left to train (:func:`triage`)."""
  runs: Tuple[sweep_plan.RunSpec, ...]  # to train
  replaced: Tuple[str, ...]  # those that replace a run of another config
  events: Tuple[Event, ...]  # the others' ends


def triage(job: sweep_plan.Job, rerun_changed: bool = False) -> Triage:
  """Skips the runs of ``job`` that finished before, and those whose
  directory holds a run of another config (unless ``rerun_changed``)."""
  runs, events, replaced = [], [], []
  for run in job.runs:
    changes = config_changes(run)
    if changes and not rerun_changed:
      events.append(Event(
          run.name, "changed",
          f"{os.path.join(run.run_dir, rundir.CONFIG)} holds a run of another "
          f"config than requested ({'; '.join(changes)}); not run. Pass "
          "--rerun_changed to replace it, or use another --workdir.",
          logging.WARNING))
      continue
    if changes:
      logging.info("%s: config changed (%s); running it again with "
                   "--overwrite.", run.name, "; ".join(changes))
      replaced.append(run.name)
    elif run_status(run.run_dir) == "finished":
      events.append(Event(run.name, "skipped", "finished before, skipped",
                          timing=sweep_progress.read_timing(run.run_dir)))
      continue
    runs.append(run)
  return Triage(tuple(runs), tuple(replaced), tuple(events))


def remaining(jobs: Sequence[sweep_plan.Job], tally: "Tally",
              rerun_changed: bool = False) -> List[sweep_plan.Job]:
  """The jobs with the runs :func:`triage` leaves to train, the others'
  ends noted in ``tally`` first: the whole sweep is scanned before its
  first start, so that the first progress line counts only what is left
  (a run found finished later, by another sweep, is noted then)."""
  left = []
  for job in jobs:
    found = triage(job, rerun_changed)
    for event in found.events:
      tally.note(event)
    if found.runs:
      left.append(sweep_plan.Job(found.runs))
  return left


def try_lock(run_dir: str, wait_s: float = 0.0):
  """An open, exclusively ``flock``-ed ``run_dir/sweep.lock``, or ``None``
  if another process still holds it after ``wait_s`` seconds."""
  fd = os.open(os.path.join(run_dir, rundir.SWEEP_LOCK), os.O_RDWR | os.O_CREAT, 0o644)
  deadline = time.monotonic() + wait_s
  while True:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      return fd
    except OSError:
      if time.monotonic() >= deadline:
        os.close(fd)
        return None
      time.sleep(0.2)


@dataclasses.dataclass(frozen=True)
class Claim:
  """The runs of a job this process has locked, to train (:func:`claim`)."""
  runs: Tuple[sweep_plan.RunSpec, ...]
  fds: Tuple[int, ...]  # their locks, in order
  replaced: Tuple[str, ...]  # runs that replace a run of another config
  events: Tuple[Event, ...]  # the other runs' ends

  @property
  def overwrite(self) -> bool:
    """Whether the command needs ``--overwrite`` (some run is replaced)."""
    return bool(self.replaced)

  def epochs_done(self) -> List[float]:
    """Per run, the epochs it trained before (it resumes there, from its
    latest checkpoint): 0 for a run that replaces another config's.
    Read before the command starts, as a run rewrites its files."""
    return [0.0 if run.name in self.replaced else
            sweep_progress.read_epochs_done(run.run_dir) for run in self.runs]

  def release(self) -> None:
    for fd in self.fds:
      os.close(fd)


def claim(job: sweep_plan.Job, rerun_changed: bool = False,
          lock_wait_s: float = 0.0) -> Claim:
  """:func:`triage`, then locks each run left; one that another process
  holds (after ``lock_wait_s``) is skipped as busy."""
  found = triage(job, rerun_changed)
  runs, fds, events = [], [], list(found.events)
  for run in found.runs:
    os.makedirs(run.run_dir, exist_ok=True)
    fd = try_lock(run.run_dir, lock_wait_s)
    if fd is None:
      events.append(Event(
          run.name, "busy", f"another process holds "
          f"{os.path.join(run.run_dir, rundir.SWEEP_LOCK)} (still training?); skipped",
          logging.WARNING))
      continue
    runs.append(run)
    fds.append(fd)
  return Claim(tuple(runs), tuple(fds),
               tuple(r.name for r in runs if r.name in found.replaced),
               tuple(events))


def _log_header(log, text: str) -> None:
  stamp = datetime.datetime.now().isoformat(timespec="seconds")
  log.write(f"=== {stamp} {text}\n".encode())
  log.flush()


def start(claimed: Claim, python: str, env: Mapping[str, str] | None = None,
          cwd: str | None = None, wrapper: Sequence[str] = ()
          ) -> Tuple[subprocess.Popen, object]:
  """Starts the command of the claimed runs in a new session, its output
  appended to the first run's ``log.txt`` (the others' ``log.txt`` say
  where), the locks inherited. ``wrapper`` goes before the command (e.g.
  a program that execs it). Returns the process and the open log file."""
  argv = sweep_plan.command(claimed.runs, python, claimed.overwrite)
  line = shlex.join(argv)
  first = claimed.runs[0].run_dir
  log = open(os.path.join(first, rundir.LOG), "ab")
  _log_header(log, f"sweep starts: {line}")
  for run in claimed.runs[1:]:
    with open(os.path.join(run.run_dir, rundir.LOG), "ab") as other:
      _log_header(other, f"sweep starts (with other seeds; output in "
                  f"{os.path.join(first, rundir.LOG)}): {line}")
  try:
    proc = subprocess.Popen(tuple(wrapper) + argv, stdout=log,
                            stderr=subprocess.STDOUT,
                            env=None if env is None else dict(env), cwd=cwd,
                            pass_fds=claimed.fds, start_new_session=True)
  except OSError:
    log.close()
    raise
  return proc, log


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
  """The last ``lines`` lines of the text file ``path`` ('' if unreadable)."""
  try:
    with open(path, "rb") as f:
      f.seek(0, os.SEEK_END)
      f.seek(max(f.tell() - 64 * 1024, 0))
      text = f.read().decode(errors="replace")
  except OSError:
    return ""
  return "\n".join(text.splitlines()[-lines:])


def describe_exit(returncode: int) -> str:
  if returncode < 0:
    try:
      return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
      return f"killed by signal {-returncode}"
  return f"exit status {returncode}"


def outcome(runs: Sequence[sweep_plan.RunSpec], returncode: int,
            seconds: float) -> List[Event]:
  """The end of each of ``runs`` after their process exited with
  ``returncode`` after ``seconds``: finished if its ``results.json`` says
  so (a group exits non-zero if any of its runs failed), else failed, with
  the last lines of the process's log."""
  events = []
  log = os.path.join(runs[0].run_dir, rundir.LOG)
  for run in runs:
    ok = returncode == 0 or len(runs) > 1
    if ok and run_status(run.run_dir) == "finished":
      events.append(Event(run.name, "finished", f"finished in {seconds:.0f} s",
                          timing=sweep_progress.read_timing(run.run_dir)))
      continue
    why = (describe_exit(returncode) if returncode else
           f"exit status 0 but no finished {rundir.RESULTS}")
    events.append(failure(run.name, f"{why} after {seconds:.0f} s", log))
  return events


def failure(name: str, why: str, log: str) -> Event:
  """A failed run's event: why, and the last lines of its ``log``."""
  tail = log_tail(log)
  text = f"FAILED ({why}); see {log}"
  if tail:
    text += ". Its last lines:\n" + "\n".join(f"    {l}" for l in
                                              tail.splitlines())
  return Event(name, "failed", text, logging.ERROR)


class Tally:
  """A sweep's runs by how they ended, with a progress line logged per
  event (``sweep_progress.Progress``).

  The ETA counts from the first line what the unfinished runs trained
  before, and the pace of every finished run in the sweep's directories,
  the sweep's or not (``--only`` and ``--seeds`` leave some out).

  Args:
    jobs: every job of the sweep.
    clock: seconds, monotonic.
    parallel: how many jobs run at once, if the launcher knows; the ETA
      shares the work among them from the first line.
  """

  def __init__(self, jobs: Sequence[sweep_plan.Job], clock=time.monotonic,
               parallel: int | None = None):
    self.out: Dict[str, List[str]] = {k: [] for k in
                                      sweep_progress.DONE_KINDS}
    runs = [r for job in jobs for r in job.runs]
    # ``parallel`` jobs at once, each training its runs together
    per_job = max((len(job.runs) for job in jobs), default=1)
    self.progress = sweep_progress.Progress(
        {r.name: r.key for r in runs}, clock,
        epochs={r.name: r.epochs for r in runs},
        slots=parallel * per_job if parallel else None,
        epochs_done={r.name: sweep_progress.read_epochs_done(r.run_dir)
                     for r in runs if run_status(r.run_dir) != "finished"},
        history=sweep_progress.read_history(
            {os.path.dirname(os.path.abspath(r.run_dir)) for r in runs},
            exclude=[r.run_dir for r in runs]))

  def note(self, event: Event) -> None:
    if event.kind == "started":
      first = self.progress.started(event.run, event.epochs_done)
      text = event.text if first else f"{event.text} (again)"
      if event.epochs_done:
        text += f", resuming after epoch {event.epochs_done:g}"
    elif event.kind == "stopped":
      self.progress.stopped(event.run)
      text = event.text
    else:
      self.progress.done(event.run, event.kind, event.timing)
      self.out[event.kind].append(event.run)
      text = event.text
    logging.log(event.level, "%s", self.progress.line(event.run, text))


class Interrupted(Exception):
  """A launcher stopped on SIGINT / SIGTERM (its runs resume next time)."""

  def __init__(self, signum):
    super().__init__(signum)
    self.signum = signum


class catch_signals:  # pylint: disable=invalid-name
  """Within the block, SIGINT and SIGTERM are noted in ``self.signals``
  instead of stopping the process (a launcher checks it between steps)."""

  def __init__(self):
    self.signals: List[int] = []

  def __enter__(self):
    self._old = {s: signal.signal(s, self._note)
                 for s in (signal.SIGINT, signal.SIGTERM)}
    return self

  def _note(self, signum, frame):
    del frame
    self.signals.append(signum)

  def check(self) -> None:
    """Raises :class:`Interrupted` if a signal came."""
    if self.signals:
      raise Interrupted(self.signals[0])

  def __exit__(self, *exc):
    for s, handler in self._old.items():
      signal.signal(s, handler)
    return False


def execute(jobs: Sequence[sweep_plan.Job], python: str, parallel: int = 1,
            env: Mapping[str, str] | None = None, poll_s: float = 0.2,
            rerun_changed: bool = False) -> Dict[str, List[str]]:
  """The local launcher: runs ``jobs``, ``parallel`` at a time, as
  processes of this machine (steps 1 to 4 of the module docstring).

  With ``parallel`` above 1 the runs get ``XLA_PYTHON_CLIENT_PREALLOCATE=false``
  (unless set), so that several share one GPU.

  Returns:
    ``{"finished": [...], "failed": [...], "skipped": [...], "busy": [...],
    "changed": [...]}`` run names: trained to the end now, exited non-zero
    or without a finished ``results.json``, finished before, locked by
    another process, holding a run of another config (not run).

  Raises:
    Interrupted: on SIGINT / SIGTERM, after stopping the running jobs
      (SIGTERM, then SIGKILL after 30 s); they resume next time.
  """
  if parallel < 1:
    raise ValueError(f"--parallel must be at least 1, got {parallel}.")
  env = dict(os.environ if env is None else env)
  if parallel > 1:
    # Several JAX processes on one accelerator must not each grab most of it.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  tally = Tally(jobs, parallel=parallel)
  pending = remaining(jobs, tally, rerun_changed)
  running = {}  # Popen -> (claim, log file, start time)
  with catch_signals() as signals:
    try:
      while pending or running:
        signals.check()
        while pending and len(running) < parallel:
          claimed = claim(pending.pop(0), rerun_changed)
          for event in claimed.events:
            tally.note(event)
          if not claimed.runs:
            continue
          done_before = claimed.epochs_done()
          proc, log = start(claimed, python, env)
          running[proc] = (claimed, log, time.monotonic())
          for run, done in zip(claimed.runs, done_before):
            tally.note(Event(run.name, "started", f"started (pid {proc.pid})",
                             epochs_done=done))
        for proc in [p for p in running if p.poll() is not None]:
          claimed, log, began = running.pop(proc)
          log.close()
          claimed.release()
          for event in outcome(claimed.runs, proc.returncode,
                               time.monotonic() - began):
            tally.note(event)
        if running:
          time.sleep(poll_s)
      return tally.out
    finally:
      if running:
        _stop(running)


def _stop(running, grace_s: float = 30.0):
  """Stops the running jobs: SIGTERM, then SIGKILL after ``grace_s``."""
  for proc, (claimed, _, _) in running.items():
    logging.warning("stopping %s (pid %d); it resumes next time",
                    ",".join(r.name for r in claimed.runs), proc.pid)
    proc.terminate()
  deadline = time.monotonic() + grace_s
  for proc, (claimed, log, _) in running.items():
    try:
      proc.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
    log.close()
    claimed.release()
  running.clear()
