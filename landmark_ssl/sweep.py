r"""Runs the sweep of an experiment file (a paper table) locally, or prints it
as command lines for a cluster.

  python -m landmark_ssl.sweep --config=experiments/blocks.py --workdir=DIR \
      [--parallel=N] [--only=REGEX] [--seeds=0,1] [--quick] \
      [--override=data.data_dir=/data/tfds ...] [--dry_run]

Each run of ``sweep()`` in the experiment file becomes one process

  python -m landmark_ssl.main --config=<file>:<config_arg> \
      --config.<key>=<value> ... --workdir=DIR/<run name>

with its output appended to ``DIR/<run name>/log.txt``; ``N`` run at a time.
A run whose ``results.json`` says ``"status": "finished"`` is skipped; any
other run is started again, and ``main`` resumes it from its last checkpoint,
so an interrupted sweep is resumed by repeating the command. While a run is
in progress its directory holds a lock (``flock`` on ``sweep.lock``, held by
the training process itself), so a second sweep, or a resumed one whose
predecessor was killed without its runs, skips it instead of training it
twice.

With ``--parallel`` above 1 the runs get ``XLA_PYTHON_CLIENT_PREALLOCATE=false``
(unless set), so that several share one GPU; on CPU each uses every core.

``--dry_run`` prints one command per run that is not finished yet, for a
cluster scheduler (one line per job). ``--quick`` trains the experiment's
small variant; its runs are named ``<name>_quick`` so they never mix with
full runs.

Exit status: the number of failed runs (at most 125); 128 + signal number if
the sweep was interrupted (its runs are stopped and resume next time).
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from typing import Dict, List, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging

from landmark_ssl import configs

LOG_FILE = "log.txt"
LOCK_FILE = "sweep.lock"
RESULTS_FILE = "results.json"
MAX_EXIT_STATUS = 125


@dataclasses.dataclass(frozen=True)
class Job:
  """One process of a sweep."""
  name: str
  argv: tuple  # the command, program first
  run_dir: str

  @property
  def command_line(self) -> str:
    return shlex.join(self.argv)


def run_status(run_dir: str) -> str:
  """``'finished'`` if ``run_dir/results.json`` says so, else ``'todo'``."""
  path = os.path.join(run_dir, RESULTS_FILE)
  try:
    with open(path) as f:
      status = json.load(f).get("status")
  except (OSError, ValueError, AttributeError):
    return "todo"
  return "finished" if status == "finished" else "todo"


def parse_overrides(items: Sequence[str]) -> Dict[str, str]:
  """``['data.data_dir=/x', ...]`` -> ``{'data.data_dir': '/x', ...}``."""
  out = {}
  for item in items or ():
    key, sep, val = item.partition("=")
    key = key.strip()
    if key.startswith("config."):
      key = key[len("config."):]
    if not sep or not key:
      raise ValueError(f"--override={item!r} is not key=value; write e.g. "
                       "--override=data.data_dir=/data/tfds.")
    out[key] = val
  return out


def _format(value) -> str:
  """A config value as ``--config.key=`` text that config_flags parses back."""
  if isinstance(value, (list, tuple)):
    return str(tuple(value))
  return str(value)


def select_runs(runs: Sequence[Mapping], only: str | None = None,
                quick: bool = False) -> List[Dict]:
  """Filters ``runs`` by the regular expression ``only`` (searched in the
  name) and, with ``quick``, switches them to the quick variant (the config
  argument gains ``quick`` and the name ``_quick``)."""
  names = [r["name"] for r in runs]
  if len(set(names)) != len(names):
    dup = sorted({n for n in names if names.count(n) > 1})
    raise ValueError(f"The sweep lists run names twice: {dup}.")
  pattern = re.compile(only) if only else None
  out = []
  for r in runs:
    if pattern and not pattern.search(r["name"]):
      continue
    r = dict(r, overrides=dict(r["overrides"]))
    if quick:
      r["name"] += "_quick"
      r["config_arg"] = ",".join(p for p in (r["config_arg"], "quick") if p)
    out.append(r)
  return out


def make_jobs(runs: Sequence[Mapping], experiment_file: str, workdir: str,
              overrides: Mapping[str, str] | None = None,
              python: str = sys.executable) -> List[Job]:
  """The ``landmark_ssl.main`` command of each run.

  Args:
    runs: ``{"name", "config_arg", "overrides"}`` dicts (``sweep()``).
    experiment_file: the path given to ``--config``.
    workdir: the sweep's directory; run ``r`` trains in ``workdir/r.name``.
    overrides: extra ``--config.<key>=<value>`` for every run (e.g. the data
      directory); may not set a key the sweep itself sets.
    python: the interpreter of the commands.
  """
  overrides = dict(overrides or {})
  jobs = []
  for r in runs:
    clash = sorted(set(overrides) & set(r["overrides"]))
    if clash:
      raise ValueError(
          f"--override sets {clash}, which the sweep sets per run (run "
          f"{r['name']}); select runs with --only / --seeds instead.")
    arg = r["config_arg"]
    argv = [python, "-m", "landmark_ssl.main",
            f"--config={experiment_file}" + (f":{arg}" if arg else "")]
    for key, val in list(r["overrides"].items()) + list(overrides.items()):
      argv.append(f"--config.{key}={_format(val)}")
    run_dir = os.path.join(workdir, r["name"])
    argv.append(f"--workdir={run_dir}")
    jobs.append(Job(r["name"], tuple(argv), run_dir))
  return jobs


class _Interrupted(Exception):

  def __init__(self, signum):
    super().__init__(signum)
    self.signum = signum


def _try_lock(run_dir: str):
  """An open, exclusively ``flock``-ed lock file of ``run_dir``, or ``None``
  if another process holds it."""
  fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    os.close(fd)
    return None
  return fd


def execute(jobs: Sequence[Job], parallel: int = 1,
            env: Mapping[str, str] | None = None,
            poll_s: float = 0.2) -> Dict[str, List[str]]:
  """Runs ``jobs``, ``parallel`` at a time, skipping finished ones.

  Each job's output is appended to ``run_dir/log.txt``. The lock on
  ``run_dir/sweep.lock`` is inherited by the job's process, so it is held
  as long as the job runs, even if this process dies.

  Returns:
    ``{"finished": [...], "failed": [...], "skipped": [...], "busy": [...]}``
    names: trained to the end now, exited non-zero or without a finished
    ``results.json``, finished before, locked by another process.

  Raises:
    _Interrupted: on SIGINT / SIGTERM, after stopping the running jobs.
  """
  if parallel < 1:
    raise ValueError(f"--parallel must be at least 1, got {parallel}.")
  env = dict(os.environ if env is None else env)
  if parallel > 1:
    # Several JAX processes on one accelerator must not each grab most of it.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  out = {"finished": [], "failed": [], "skipped": [], "busy": []}
  pending = list(jobs)
  running = {}  # Popen -> (job, lock fd, log file, start time)
  interrupted = []

  def on_signal(signum, frame):
    del frame
    interrupted.append(signum)

  old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    total = len(jobs)
    done = 0
    while pending or running:
      if interrupted:
        raise _Interrupted(interrupted[0])
      while pending and len(running) < parallel:
        job = pending.pop(0)
        if run_status(job.run_dir) == "finished":
          out["skipped"].append(job.name)
          done += 1
          logging.info("[%d/%d] %s: finished before, skipped", done, total,
                       job.name)
          continue
        os.makedirs(job.run_dir, exist_ok=True)
        fd = _try_lock(job.run_dir)
        if fd is None:
          out["busy"].append(job.name)
          done += 1
          logging.warning("[%d/%d] %s: another process holds %s (still "
                          "training?); skipped", done, total, job.name,
                          os.path.join(job.run_dir, LOCK_FILE))
          continue
        log = open(os.path.join(job.run_dir, LOG_FILE), "ab")
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        log.write(f"=== {stamp} sweep starts: {job.command_line}\n".encode())
        log.flush()
        proc = subprocess.Popen(job.argv, stdout=log, stderr=subprocess.STDOUT,
                                env=env, pass_fds=(fd,),
                                start_new_session=True)
        running[proc] = (job, fd, log, time.monotonic())
        logging.info("started %s (pid %d)", job.name, proc.pid)
      for proc in [p for p in running if p.poll() is not None]:
        job, fd, log, start = running.pop(proc)
        log.close()
        os.close(fd)
        done += 1
        took = time.monotonic() - start
        if proc.returncode == 0 and run_status(job.run_dir) == "finished":
          out["finished"].append(job.name)
          logging.info("[%d/%d] %s: finished in %.0f s", done, total, job.name,
                       took)
        else:
          out["failed"].append(job.name)
          why = (f"exit status {proc.returncode}" if proc.returncode else
                 f"exit status 0 but no finished {RESULTS_FILE}")
          logging.error("[%d/%d] %s: FAILED (%s) after %.0f s; see %s", done,
                        total, job.name, why, took,
                        os.path.join(job.run_dir, LOG_FILE))
      if running:
        time.sleep(poll_s)
    return out
  finally:
    for s, handler in old.items():
      signal.signal(s, handler)
    if running:
      _stop(running)


def _stop(running, grace_s: float = 30.0):
  """Stops the running jobs: SIGTERM, then SIGKILL after ``grace_s``."""
  for proc, (job, _, _, _) in running.items():
    logging.warning("stopping %s (pid %d); it resumes next time", job.name,
                    proc.pid)
    proc.terminate()
  deadline = time.monotonic() + grace_s
  for proc, (_, fd, log, _) in running.items():
    try:
      proc.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
    log.close()
    os.close(fd)
  running.clear()


def parse_seeds(text: str | None):
  """``'0,1,2'`` -> ``(0, 1, 2)``; empty -> ``None`` (the sweep's own)."""
  if not text:
    return None
  try:
    return tuple(int(s) for s in text.split(","))
  except ValueError:
    raise ValueError(f"--seeds={text!r}: give comma-separated integers, "
                     "e.g. --seeds=0,1,2.") from None


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_string("config", None, "Experiment file, e.g. "
                      "experiments/blocks.py (its sweep() lists the runs).",
                      flag_values=flag_values)
  flags.DEFINE_string("workdir", None, "Sweep directory: one sub-directory "
                      "per run.", flag_values=flag_values)
  flags.DEFINE_integer("parallel", 1, "Runs at a time.",
                       flag_values=flag_values)
  flags.DEFINE_string("only", None, "Regular expression: only runs whose "
                      "name matches, e.g. 'seq_mt_L\\+T\\+C_f0.05'.",
                      flag_values=flag_values)
  flags.DEFINE_string("seeds", None, "Comma-separated seeds instead of the "
                      "sweep's (0,1,2,3,4).", flag_values=flag_values)
  flags.DEFINE_bool("quick", False, "The experiment's small variant.",
                    flag_values=flag_values)
  flags.DEFINE_multi_string("override", [], "key=value: --config.key=value "
                            "for every run, e.g. data.data_dir=/data/tfds.",
                            flag_values=flag_values)
  flags.DEFINE_bool("dry_run", False, "Print one command per unfinished run "
                    "and exit.", flag_values=flag_values)
  flags.DEFINE_string("python", sys.executable, "Interpreter of the run "
                      "commands (e.g. 'python' for a cluster).",
                      flag_values=flag_values)
  flags.mark_flags_as_required(["config", "workdir"], flag_values=flag_values)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  FLAGS = flags.FLAGS
  try:
    experiment = configs.load_experiment(FLAGS.config)
    seeds = parse_seeds(FLAGS.seeds)
    runs = experiment.sweep() if seeds is None else experiment.sweep(seeds=seeds)
    runs = select_runs(runs, FLAGS.only, FLAGS.quick)
    if not runs:
      raise ValueError(f"No run of {FLAGS.config} matches --only="
                       f"{FLAGS.only!r} / --seeds={FLAGS.seeds!r}.")
    jobs = make_jobs(runs, FLAGS.config, FLAGS.workdir,
                     parse_overrides(FLAGS.override), FLAGS.python)
  except (ValueError, FileNotFoundError, re.error) as e:
    raise app.UsageError(str(e)) from None
  if FLAGS.dry_run:
    todo = [j for j in jobs if run_status(j.run_dir) != "finished"]
    for job in todo:
      print(job.command_line)
    logging.info("%d runs, %d finished already (not printed).", len(jobs),
                 len(jobs) - len(todo))
    return 0
  logging.info("%d runs of %s in %s, %d at a time.", len(jobs), FLAGS.config,
               FLAGS.workdir, FLAGS.parallel)
  try:
    out = execute(jobs, FLAGS.parallel)
  except _Interrupted as e:
    logging.warning("Interrupted by signal %d; repeat the command to resume.",
                    e.signum)
    return 128 + e.signum
  logging.info("finished now: %d, finished before: %d, failed: %d, busy "
               "elsewhere: %d.", len(out["finished"]), len(out["skipped"]),
               len(out["failed"]), len(out["busy"]))
  if out["failed"]:
    logging.error("Failed runs (see their log.txt): %s", " ".join(out["failed"]))
  if out["busy"]:
    logging.warning("Runs locked by another process: %s", " ".join(out["busy"]))
  return min(len(out["failed"]), MAX_EXIT_STATUS)


if __name__ == "__main__":
  define_flags()
  app.run(main)
