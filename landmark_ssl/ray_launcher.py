"""Runs a sweep's jobs as tasks of a Ray cluster (``sweep --launcher=ray``).

Each job (one run, or a table cell's seeds with ``--vectorize_seeds``) left
after the driver's :func:`launcher.triage` (finished runs skipped, runs of
another config reported) becomes one Ray task with ``--resources_per_run``
(Ray picks the node and sets ``CUDA_VISIBLE_DEVICES`` / ``TPU_VISIBLE_CHIPS``
for it). On its node the task takes the steps of the local launcher: it
locks the runs (``sweep.lock``), starts their ordinary ``python -m
landmark_ssl.main ...`` command as a fresh process with its output appended
to the run's ``log.txt``, and reports each run's end. Progress lines come to
the driver as the runs start and end (a Ray queue).

Faults:

- A run whose process is killed (a signal: the node's OOM killer, a lost
  worker, ...) or preempted (``main`` exits 75 after SIGTERM) is started
  again by Ray, up to ``--max_retries`` times, and resumes from its
  checkpoint. So is a task whose Ray worker or node dies: its training
  process dies with it (``PR_SET_PDEATHSIG``), releasing the run's locks.
- A run that fails for a reason of its own (a bad config: exit 2, a NaN:
  exit 3, ...) is not retried; it is reported with its log's last lines.
- SIGINT / SIGTERM of the driver cancels the tasks: their runs get SIGTERM
  (and checkpoint), then SIGKILL after a grace period; the next sweep
  resumes them. The stop reaches each task twice: through ``ray.cancel``
  (a ``KeyboardInterrupt`` in the task, which Ray delivers only on a best
  effort) and through a stop file the driver writes next to its marker in
  the shared workdir, which the task checks between polls of its run.

The sweep's ``--workdir`` must be a directory every node mounts at the same
path (a shared filesystem), and the driver's working directory (relative
``--config`` paths) must exist on every node: a task checks both and says
so. Ray itself is an optional extra: ``pip install -e ".[cluster]"``.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from typing import Dict, List, Mapping, Sequence

from absl import logging

from landmark_ssl import launcher
from landmark_ssl import rundir
from landmark_ssl import sweep_plan

INSTALL = 'pip install -e ".[cluster]"'
# Run in the task's child before the command: dies with the Ray worker that
# started it (Linux PR_SET_PDEATHSIG = 1), then becomes the command (exec).
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "  sys.exit(75)  # the worker is gone already\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n")
_RAY_OPTIONS = {"CPU": "num_cpus", "GPU": "num_gpus"}


class ClusterError(RuntimeError):
  """The Ray cluster cannot be reached."""


def require_ray():
  """The ``ray`` module; ``ValueError`` saying how to install it if absent."""
  try:
    import ray  # pylint: disable=g-import-not-at-top
  except ModuleNotFoundError as e:
    if e.name != "ray":
      raise
    raise ValueError(
        f"--launcher=ray needs Ray, which {sys.executable} lacks: install "
        f"the project's cluster extra, `{INSTALL}` (in the repository), or "
        "leave --launcher out to train on this machine.") from None
  return ray


def parse_resources(text: str) -> Dict:
  """``'GPU:1'`` / ``'CPU:2,GPU:0.5'`` / ``'TPU:4'`` -> the Ray task options
  (``num_cpus``, ``num_gpus``, ``resources``) of one run."""
  out: Dict = {}
  for item in (text or "").split(","):
    name, sep, amount = item.strip().partition(":")
    try:
      value = float(amount)
    except ValueError:
      value = -1.0
    if not sep or not name or value < 0:
      raise ValueError(f"--resources_per_run={text!r}: give RESOURCE:AMOUNT "
                       "pairs separated by commas, e.g. GPU:1, TPU:4, "
                       "CPU:2,GPU:0.5.")
    value = int(value) if value == int(value) else value
    if name in _RAY_OPTIONS:
      out[_RAY_OPTIONS[name]] = value
    else:
      out.setdefault("resources", {})[name] = value
  out.setdefault("num_cpus", 1 if not out.get("num_gpus") and
                 not out.get("resources") else 0)
  return out


def _resource_amounts(options: Mapping) -> Dict[str, float]:
  """:func:`parse_resources` options as ``{resource: amount}``."""
  amounts = {name: options.get(key, 0) for name, key in _RAY_OPTIONS.items()}
  amounts.update(options.get("resources", {}))
  return {k: v for k, v in amounts.items() if v}


def unmet_resources(options: Mapping, nodes: Sequence[Mapping]) -> str | None:
  """Why no node can run a run with these task ``options``, or ``None``.

  Args:
    options: :func:`parse_resources` output.
    nodes: ``ray.nodes()`` entries (``Alive``, ``Resources``).
  """
  want = _resource_amounts(options)
  alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
  if any(all(have.get(k, 0) >= v for k, v in want.items()) for have in alive):
    return None
  has = "; ".join(", ".join(f"{k}:{v:g}" for k, v in sorted(have.items())
                            if k in ("CPU", "GPU", "TPU") or
                            k in want) for have in alive)
  need = ",".join(f"{k}:{v:g}" for k, v in want.items())
  return (f"no node of the Ray cluster has --resources_per_run={need} "
          f"(its nodes have: {has or 'none alive'}): ask for what one node "
          "has, or add nodes that have it (ray start --address=HEAD:PORT "
          "--num-gpus=N / --resources='{\"TPU\": 4}').")


class RunStopped(Exception):
  """A run's process was killed or preempted: Ray starts the task again."""


def _put(events, event) -> None:
  try:
    events.put(event)
  except Exception:  # pylint: disable=broad-except
    pass  # the driver is gone: the run goes on all the same


def _stop_child(proc, grace_s: float) -> None:
  proc.terminate()  # main checkpoints and exits 75
  try:
    proc.wait(grace_s)
  except Exception:  # pylint: disable=broad-except
    proc.kill()
    proc.wait()


def _unreachable(job: sweep_plan.Job, why: str) -> List[launcher.Event]:
  return [launcher.Event(r.name, "failed", f"FAILED: {why}", logging.ERROR)
          for r in job.runs]


def run_job(job: sweep_plan.Job, python: str, cwd: str, marker: str,
            rerun_changed: bool, events, share_gpu: bool,
            lock_wait_s: float = 10.0, grace_s: float = 30.0,
            poll_s: float = 0.5) -> List[launcher.Event]:
  """The Ray task of one job, on its node: claims its runs, trains them in
  a child process, and returns their ends.

  Args:
    job: the runs.
    python: the interpreter of the command.
    cwd: the driver's working directory: the task works there (the runs'
      relative paths are the driver's).
    marker: the absolute path of a file the driver made in the sweep's
      workdir: this node sees the sweep's directory if it sees this file.
    rerun_changed: ``sweep --rerun_changed``.
    events: a ``ray.util.queue.Queue`` for the runs' start events.
    share_gpu: several runs share a GPU: ``XLA_PYTHON_CLIENT_PREALLOCATE``
      is set to ``false`` unless set.
    lock_wait_s: how long to wait for a run's lock (a process of a lost
      worker may still be dying) before calling it busy.
    grace_s: on cancel, how long the run may take to checkpoint after
      SIGTERM.
    poll_s: how often the child and the driver's stop file (``marker``
      + ``.stop``) are checked (a cancel lands in between).

  Raises:
    RunStopped: the child was killed by a signal or exited 75.
  """
  host = socket.gethostname()
  if not os.path.isdir(cwd):
    return _unreachable(job, (
        f"the sweep's working directory {cwd} does not exist on node {host}."
        " Start the sweep from a directory every node has at the same path "
        "(the repository on the shared filesystem), or give --config and "
        "--workdir as absolute paths."))
  os.chdir(cwd)  # the runs' relative paths are the driver's
  if not os.path.exists(marker):
    return _unreachable(job, (
        f"node {host} does not see the sweep's --workdir "
        f"{os.path.dirname(marker)} ({os.path.basename(marker)}, which the "
        "sweep wrote there, is missing on that node). Put --workdir on a "
        "filesystem every node mounts at the same path (NFS, Filestore, "
        "Lustre, ...)."))
  claimed = launcher.claim(job, rerun_changed, lock_wait_s)
  ends = list(claimed.events)
  if not claimed.runs:
    return ends
  env = dict(os.environ)
  if share_gpu:
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  wrapper = (sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()))
  try:
    done_before = claimed.epochs_done()  # before the runs rewrite their files
    proc, log = launcher.start(claimed, python, env, cwd=cwd, wrapper=wrapper)
  except OSError:
    claimed.release()
    raise
  began = time.monotonic()
  try:  # from here a cancel stops the child as it should, wherever it lands
    # (posting to the driver's queue can take long)
    for run, done in zip(claimed.runs, done_before):
      _put(events, launcher.Event(
          run.name, "started", f"started on {host} (pid {proc.pid})",
          epochs_done=done))
    stopped = False
    while proc.poll() is None:  # not wait(): a cancel lands between polls
      if os.path.exists(stop_file(marker)):  # the driver was interrupted
        _stop_child(proc, grace_s)
        stopped = True
        break
      time.sleep(poll_s)
  except KeyboardInterrupt:  # ray.cancel
    _stop_child(proc, grace_s)
    raise
  finally:
    log.close()
    claimed.release()
  code = proc.returncode
  if stopped:  # returns rather than raising RunStopped: Ray must not retry
    return ends + [launcher.Event(
        run.name, "stopped", f"{launcher.describe_exit(code)} on {host}: the "
        "sweep was interrupted; the next sweep resumes it", logging.WARNING)
                   for run in claimed.runs]
  if code < 0 or code == launcher.EXIT_PREEMPTED:
    for run in claimed.runs:
      _put(events, launcher.Event(
          run.name, "stopped", f"{launcher.describe_exit(code)} on {host}; "
          "Ray starts it again (it resumes from its checkpoint) while "
          "--max_retries allows", logging.WARNING))
    raise RunStopped(f"{launcher.describe_exit(code)} on {host}")
  return ends + launcher.outcome(claimed.runs, code, time.monotonic() - began)


def stop_file(marker: str) -> str:
  """The file by which the driver of ``marker`` tells its tasks to stop."""
  return marker + ".stop"


def _check_port(address: str | None, timeout_s: float = 5.0) -> None:
  """Raises ``OSError`` if ``address`` names a ``host:port`` (optionally
  ``ray://``) where nothing accepts a connection; other forms (``auto``,
  ``None``) are left to Ray."""
  host, sep, port = (address or "").removeprefix("ray://").rpartition(":")
  if not sep or not host or not port.isdigit():
    return
  try:
    socket.create_connection((host, int(port)), timeout=timeout_s).close()
  except OSError as e:
    raise OSError(f"nothing answers at {host}:{port} ({e})") from None


def _connect(ray, address: str | None) -> bool:
  """Connects this process to the cluster at ``address`` (``None``:
  ``RAY_ADDRESS``, else a new cluster of this machine); ``True`` if it did
  (``False``: it was connected already)."""
  if ray.is_initialized():
    return False
  kwargs = {"address": address, "log_to_driver": False}
  if not address and not os.environ.get("RAY_ADDRESS"):
    # A new cluster of this machine: "local", as address=None would join a
    # cluster that `ray start` left on record here (even a dead one).
    kwargs.update(address="local", include_dashboard=False)
  try:
    _check_port(address)  # ray.init retries an unanswered address for minutes
    ray.init(**kwargs)
  except Exception as e:  # pylint: disable=broad-except
    raise ClusterError(
        f"Cannot reach a Ray cluster at --ray_address={address}: {e}. Start "
        "one (`ray start --head` on one host, `ray start --address=HEAD:6379`"
        " on the others) and give its address, or leave --ray_address out to "
        "start one on this machine alone.") from None
  return True


def _ended_with_error(ray, job: sweep_plan.Job, error: Exception,
                      max_retries: int) -> List[launcher.Event]:
  """The runs' ends when their task raised ``error`` (retries used up)."""
  cause = getattr(error, "cause", None) or error
  if isinstance(cause, RunStopped):
    why = (f"its process was stopped {max_retries + 1} times "
           f"(--max_retries={max_retries}), the last: {cause}")
  elif isinstance(error, ray.exceptions.RayTaskError):
    why = f"its Ray task raised {type(cause).__name__}: {cause}"
  else:
    why = (f"its Ray worker or node was lost ({type(error).__name__}), "
           f"after --max_retries={max_retries} retries")
  log = os.path.join(job.run_dir, rundir.LOG)
  events = []
  for run in job.runs:
    if launcher.run_status(run.run_dir) == "finished":
      events.append(launcher.Event(run.name, "finished", "finished"))
    else:
      events.append(launcher.failure(run.name, why, log))
  return events


def _drain(events, tally: launcher.Tally) -> None:
  size = events.qsize()
  if size:
    for event in events.get_nowait_batch(size):
      tally.note(event)


def execute(jobs: Sequence[sweep_plan.Job], python: str, workdir: str,
            address: str | None = None, resources: Mapping | None = None,
            max_retries: int = 3, rerun_changed: bool = False,
            poll_s: float = 0.5, lock_wait_s: float = 10.0,
            grace_s: float = 30.0) -> Dict[str, List[str]]:
  """Runs ``jobs`` as tasks of the Ray cluster at ``address``.

  Args:
    jobs: the sweep's jobs.
    python: the interpreter of the commands on the nodes.
    workdir: the sweep's directory (on a filesystem every node mounts).
    address: ``ray.init``'s address (``None``: ``RAY_ADDRESS``, else a new
      cluster of this machine alone); unused if this process is connected
      already.
    resources: each task's :func:`parse_resources` options (default 1 CPU).
    max_retries: how often a task whose process or worker is lost is
      started again.
    rerun_changed: ``sweep --rerun_changed``.
    poll_s, lock_wait_s, grace_s: see :func:`run_job`.

  Returns:
    As ``launcher.execute``.

  Raises:
    ClusterError: the cluster cannot be reached.
    launcher.Interrupted: on SIGINT / SIGTERM, after cancelling the tasks.
  """
  ray = require_ray()
  from ray.util import queue as ray_queue  # pylint: disable=g-import-not-at-top
  options = dict(resources or parse_resources("CPU:1"))
  tally = launcher.Tally(jobs)
  started_ray = _connect(ray, address)
  marker = os.path.abspath(os.path.join(workdir,
                                        f".ray_sweep_{uuid.uuid4().hex}"))
  events = None
  try:
    problem = unmet_resources(options, ray.nodes())
    if problem:  # an autoscaler may add such a node; Ray waits for it
      logging.warning("Now %s The runs wait until such a node joins.",
                      problem)
    os.makedirs(workdir, exist_ok=True)
    with open(marker, "w") as f:
      f.write(f"{socket.gethostname()} {os.getpid()}\n")
    events = ray_queue.Queue(actor_options={"num_cpus": 0})
    task = ray.remote(run_job).options(
        max_retries=max_retries, retry_exceptions=[RunStopped], **options)
    share_gpu = 0 < options.get("num_gpus", 0) < 1
    with launcher.catch_signals() as signals:
      refs = {}
      for todo in launcher.remaining(jobs, tally, rerun_changed):
        refs[task.remote(todo, python, os.getcwd(), marker, rerun_changed,
                         events, share_gpu, lock_wait_s, grace_s)] = todo
      pending = list(refs)
      try:
        while pending:
          signals.check()
          ready, pending = ray.wait(pending, num_returns=len(pending),
                                    timeout=poll_s)
          _drain(events, tally)
          for ref in ready:
            try:
              ends = ray.get(ref)
            except ray.exceptions.RayError as e:
              ends = _ended_with_error(ray, refs[ref], e, max_retries)
            for event in ends:
              tally.note(event)
        _drain(events, tally)
      except launcher.Interrupted:
        _cancel(ray, pending, marker, grace_s)
        _drain(events, tally)
        raise
    return tally.out
  finally:
    if events is not None:
      events.shutdown()
    for path in (marker, stop_file(marker)):
      try:
        os.remove(path)
      except OSError:
        pass
    if started_ray:
      ray.shutdown()


def _cancel(ray, refs, marker: str, grace_s: float) -> None:
  """Cancels the tasks: each running run gets SIGTERM (it checkpoints),
  then, after ``grace_s``, the tasks left are killed."""
  if not refs:
    return
  logging.warning("Cancelling %d Ray tasks; their runs resume next time.",
                  len(refs))
  for ref in refs:  # first: a cancelled task is never retried
    ray.cancel(ref)
  with open(stop_file(marker), "w") as f:  # for tasks Ray did not interrupt
    f.write(f"{socket.gethostname()} {os.getpid()}\n")
  _, left = ray.wait(refs, num_returns=len(refs), timeout=grace_s + 10)
  for ref in left:
    ray.cancel(ref, force=True)
