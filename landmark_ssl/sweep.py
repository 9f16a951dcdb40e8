r"""Runs the sweep of an experiment file (a paper table) locally, or prints it
as command lines for a cluster.

  python -m landmark_ssl.sweep --config=experiments/blocks.py --workdir=DIR \
      [--parallel=N] [--only=REGEX] [--seeds=0,1] [--quick] \
      [--override=data.data_dir=/data/tfds ...] [--grid=model.beta=0.1,1,3 ...] \
      [--order=table|seed] [--vectorize_seeds] [--rerun_changed] [--dry_run]

Each run of ``sweep()`` in the experiment file becomes one process

  python -m landmark_ssl.main --config=<file>:<config_arg> \
      --config.<key>=<value> ... --workdir=DIR/<run name>

with its output appended to ``DIR/<run name>/log.txt``; ``N`` run at a time.
A run whose ``results.json`` says ``"status": "finished"`` is skipped; any
other run is started again, and ``main`` resumes it from its last checkpoint,
so an interrupted sweep is resumed by repeating the command. A run directory
holding a run of another config than the command requests (its
``config.json``, compared as ``main`` compares it: e.g. a changed
``--override``) is reported with the differing keys and left alone, finished
or not; ``--rerun_changed`` runs those again with ``main --overwrite``. While a run is
in progress its directory holds a lock (``flock`` on ``sweep.lock``, held by
the training process itself), so a second sweep, or a resumed one whose
predecessor was killed without its runs, skips it instead of training it
twice.

With ``--parallel`` above 1 the runs get ``XLA_PYTHON_CLIENT_PREALLOCATE=false``
(unless set), so that several share one GPU; on CPU each uses every core.

``--vectorize_seeds`` trains the runs of a table cell together: runs whose
commands differ only in ``--config.seed`` (and their ``--workdir``) become
one process

  python -m landmark_ssl.main --config=<file>:<config_arg> \
      --config.<key>=<value> ... --seeds=0,1,2,3,4 \
      --workdirs=DIR/<run name s0>,...,DIR/<run name s4>

which trains them in one compiled program (``jax.vmap`` over the runs;
``main --seeds``) and writes each run's files to its own directory, as if
run alone. Only the cell's unfinished runs that no other process holds are
put in the command (one left: its ordinary command). The process's output
goes to the first of those runs' ``log.txt``; the others' ``log.txt`` say
where. Finished, failed and busy are still counted per run.

``--grid=KEY=V1,V2,...`` (repeatable) trains every selected run once per
value (per combination of values, with several ``--grid`` flags), to choose
settings the paper leaves open on the validation split: the run gains
``--config.KEY=V`` and its name the suffix ``_KEY=V`` (e.g.
``seq_mt_L_f0.05_s0_model.beta=3``), so a grid's runs sit beside the
table's in one directory and resume like them. ``--only`` and ``--seeds``
select the table runs first. ``python -m landmark_ssl.report --by=KEY``
then shows one row per value and picks the value with the best mean
validation result. Values are split at commas outside brackets, so
``--grid=model.kernel_sizes=(9,9),(7,7)`` gives two tuples.

``--order=seed`` trains every cell of the first seed before the next seed
(default ``table``: cell by cell, as ``sweep()`` lists them), so a sweep cut
short leaves paired seeds of every row. Two sweeps over the same runs at once
(e.g. one per core) share the work through the locks.

``--dry_run`` prints one command per job that is not finished yet, for a
cluster scheduler (one line per job; with ``--vectorize_seeds``, one line
per cell with its unfinished seeds). ``--quick`` trains the experiment's
small variant; its runs are named ``<name>_quick`` so they never mix with
full runs.

Exit status: the number of failed runs plus those left alone because their
config changed (at most 125); 128 + signal number if the sweep was
interrupted (its runs are stopped and resume next time).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime
import difflib
import fcntl
import io
import itertools
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from typing import Dict, List, Mapping, Sequence, Tuple

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from landmark_ssl import configs

LOG_FILE = "log.txt"
LOCK_FILE = "sweep.lock"
RESULTS_FILE = "results.json"
MAX_EXIT_STATUS = 125


@dataclasses.dataclass(frozen=True)
class Job:
  """One process of a sweep: one run, or the runs of ``members`` together."""
  name: str
  argv: tuple  # the command, program first
  run_dir: str  # where its output goes (a group: its first member's)
  members: tuple = ()  # a group's single-run jobs (see group_seeds)

  @property
  def command_line(self) -> str:
    return shlex.join(self.argv)

  @property
  def runs(self) -> tuple:
    """The single-run jobs this job trains."""
    return self.members or (self,)


def run_status(run_dir: str) -> str:
  """``'finished'`` if ``run_dir/results.json`` says so, else ``'todo'``."""
  path = os.path.join(run_dir, RESULTS_FILE)
  try:
    with open(path) as f:
      status = json.load(f).get("status")
  except (OSError, ValueError, AttributeError):
    return "todo"
  return "finished" if status == "finished" else "todo"


def read_timings(workdir: str) -> Dict[tuple, List[float]]:
  """``{(row model, costs): [wall seconds, ...]}`` of the finished runs under
  ``workdir`` (their ``results.json``); unreadable files are ignored."""
  out = collections.defaultdict(list)
  if not os.path.isdir(workdir):
    return out
  for root, dirs, files in os.walk(workdir):
    dirs.sort()
    if RESULTS_FILE not in files:
      continue
    try:
      with open(os.path.join(root, RESULTS_FILE)) as f:
        data = json.load(f)
      if data.get("status") != "finished":
        continue
      key = (configs.row_model(data["config"]["model"]),
             data["config"]["costs"])
      out[key].append(float(data["wall_time_s"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
      continue
  return out


def run_key(run: Mapping) -> tuple:
  """``(model, costs)`` of a sweep run, from its config argument."""
  items = dict(item.split("=", 1) for item in run["config_arg"].split(",")
               if "=" in item)
  return items.get("model"), items.get("costs")


def estimate_seconds(keys: Sequence[tuple], timings: Mapping[tuple, Sequence[float]]
                     ) -> Tuple[float, int]:
  """Estimated wall seconds of runs with these ``(model, costs)`` keys.

  Each run counts the mean wall time of the finished runs of its key, or,
  without any, of all finished runs. Returns ``(seconds, number of runs
  estimated from their own key)``; ``(nan, 0)`` without any finished run.
  """
  everything = [t for ts in timings.values() for t in ts]
  if not everything:
    return math.nan, 0
  overall = sum(everything) / len(everything)
  total, own = 0.0, 0
  for key in keys:
    times = timings.get(key)
    if times:
      total += sum(times) / len(times)
      own += 1
    else:
      total += overall
  return total, own


def _config_key(key: str) -> str:
  """``' config.data.data_dir'`` -> ``'data.data_dir'``."""
  key = key.strip()
  return key[len("config."):] if key.startswith("config.") else key


def parse_overrides(items: Sequence[str]) -> Dict[str, str]:
  """``['data.data_dir=/x', ...]`` -> ``{'data.data_dir': '/x', ...}``."""
  out = {}
  for item in items or ():
    key, sep, val = item.partition("=")
    key = _config_key(key)
    if not sep or not key:
      raise ValueError(f"--override={item!r} is not key=value; write e.g. "
                       "--override=data.data_dir=/data/tfds.")
    out[key] = val
  return out


def _split_values(text: str) -> List[str]:
  """``'0.1,(9,9),3'`` -> ``['0.1', '(9,9)', '3']``: commas inside brackets
  belong to the value."""
  out, depth, start = [], 0, 0
  for i, ch in enumerate(text):
    if ch in "([":
      depth += 1
    elif ch in ")]":
      depth -= 1
    elif ch == "," and depth == 0:
      out.append(text[start:i].strip())
      start = i + 1
  out.append(text[start:].strip())
  return out


def parse_grid(items: Sequence[str]) -> List[tuple]:
  """``['model.beta=0.1,1', 'loss.alpha=1']`` ->
  ``[('model.beta', ('0.1', '1')), ('loss.alpha', ('1',))]``."""
  out, seen = [], set()
  for item in items or ():
    key, sep, text = item.partition("=")
    key = _config_key(key)
    values = tuple(_split_values(text)) if sep else ()
    if not key or not values or "" in values:
      raise ValueError(f"--grid={item!r} is not key=value,value,...; write "
                       "e.g. --grid=model.beta=0.1,1,3.")
    if key in seen:
      raise ValueError(f"--grid names {key} twice; give all its values in "
                       f"one flag, e.g. --grid={key}=a,b.")
    if len(set(values)) != len(values):
      raise ValueError(f"--grid={item!r} repeats a value.")
    seen.add(key)
    out.append((key, values))
  return out


def check_grid_keys(grid: Sequence[tuple], config) -> None:
  """Raises ``ValueError`` naming a grid key that ``config`` (an experiment's
  ``ConfigDict``) does not have, with the nearest keys it has."""
  known = [k for k, _ in configs.flat_items(config.to_dict())]
  for key, _ in grid:
    if key not in known:
      near = difflib.get_close_matches(key, known, n=3) or [
          "model.beta", "loss.alpha", "loss.gamma"]
      raise ValueError(f"--grid key {key!r} is not a setting of the "
                       f"experiment's config; did you mean {' or '.join(near)}? "
                       "(a run's config.json lists every key)")


def expand_grid(runs: Sequence[Mapping], grid: Sequence[tuple]) -> List[Dict]:
  """Each run once per combination of the grid's values (:func:`parse_grid`),
  in the runs' order and, within a run, the values' order: the run's
  overrides gain ``key: value`` and its name ``_key=value`` per key. A
  grid key the sweep sets per run (e.g. ``seed``) is refused."""
  if not grid:
    return [dict(r) for r in runs]
  keys = [k for k, _ in grid]
  out = []
  for r in runs:
    clash = sorted(set(keys) & set(r["overrides"]))
    if clash:
      raise ValueError(f"--grid sets {clash}, which the sweep sets per run "
                       f"(run {r['name']}); select those with --only / "
                       "--seeds instead.")
    for values in itertools.product(*(v for _, v in grid)):
      setting = dict(zip(keys, values))
      out.append(dict(
          r, name=r["name"] + "".join(f"_{k}={v}" for k, v in setting.items()),
          overrides=dict(r["overrides"], **setting)))
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


ORDERS = ("table", "seed")


def order_runs(runs: Sequence[Mapping], order: str = "table") -> List[Mapping]:
  """The runs in the order they are trained.

  ``'table'``: as ``sweep()`` lists them (the paper's rows, each cell's seeds
  together). ``'seed'``: every run of the first seed, then of the next, each
  seed's runs in table order; an interrupted sweep then leaves whole seeds
  of every cell (rows compared paired by seed) rather than whole cells.
  Runs without a ``seed`` override come first, in table order.
  """
  if order not in ORDERS:
    raise ValueError(f"--order={order!r} is not one of {list(ORDERS)}.")
  if order == "table":
    return list(runs)
  seeds = []
  for r in runs:
    seed = r["overrides"].get("seed")
    if seed is not None and seed not in seeds:
      seeds.append(seed)
  rank = {seed: i for i, seed in enumerate(seeds)}
  return sorted(runs, key=lambda r: rank.get(r["overrides"].get("seed"), -1))


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


_SEED_ARG = "--config.seed="
_WORKDIR_ARG = "--workdir="
_OVERWRITE_ARG = "--overwrite"


def _cell_key(job: Job) -> tuple | None:
  """A job's command without its seed and workdir (``None`` if it sets no
  seed): jobs with equal keys are seeds of one table cell."""
  if job.members or not any(a.startswith(_SEED_ARG) for a in job.argv):
    return None
  return tuple(a for a in job.argv
               if not a.startswith((_SEED_ARG, _WORKDIR_ARG)))


def _csv(items: Sequence[str]) -> str:
  """A list flag value (absl parses list flags as one CSV row)."""
  out = io.StringIO()
  csv.writer(out, lineterminator="").writerow(items)
  return out.getvalue()


def vectorized_job(members: Sequence[Job]) -> Job:
  """One ``main --seeds=... --workdirs=...`` job training ``members`` (runs
  whose commands differ only in seed and workdir) in one program; a single
  member is returned as it is."""
  members = tuple(members)
  if len(members) == 1:
    return members[0]
  keys = {_cell_key(m) for m in members}
  if len(keys) != 1 or None in keys:
    names = [m.name for m in members]
    raise ValueError("Only runs whose commands differ in --config.seed and "
                     f"--workdir alone can share a process: {names}.")
  seeds = [next(a for a in m.argv if a.startswith(_SEED_ARG))[len(_SEED_ARG):]
           for m in members]
  argv = keys.pop() + (f"--seeds={_csv(seeds)}",
                       f"--workdirs={_csv([m.run_dir for m in members])}")
  return Job(",".join(m.name for m in members), argv, members[0].run_dir,
             members)


def group_seeds(jobs: Sequence[Job]) -> List[Job]:
  """Puts the jobs of each table cell (same command but for seed and
  workdir) into one :func:`vectorized_job`, in the order of each cell's
  first run; other jobs stay as they are."""
  cells: Dict[tuple, List[Job]] = {}
  order: List = []
  for job in jobs:
    key = _cell_key(job)
    if key is None:
      order.append(job)
    else:
      if key not in cells:
        cells[key] = []
        order.append(key)
      cells[key].append(job)
  return [vectorized_job(cells[k]) if isinstance(k, tuple) else k
          for k in order]


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


def requested_config(job: Job) -> dict:
  """The config a single-run job's ``landmark_ssl.main`` command trains, as
  ``main`` parses its ``--config`` and ``--config.<key>=`` flags and stores
  it in the run's ``config.json``."""
  args = ["main"] + [a for a in job.argv[3:] if a != _OVERWRITE_ARG]
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=fv, sys_argv=args,
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "", flag_values=fv)
  fv(args)
  return json.loads(fv.config.to_json(sort_keys=True))


def config_changes(job: Job) -> List[str]:
  """The keys (``configs.config_differences``) in which the run of a
  single-run ``job`` stored in its directory (``config.json``) differs from
  the config its command requests; empty without a readable ``config.json``
  (``main`` then names the problem) or a command that does not parse."""
  try:
    with open(os.path.join(job.run_dir, configs.CONFIG_FILE)) as f:
      stored = json.load(f)
  except (OSError, ValueError):
    return []
  if not isinstance(stored, dict):
    return []
  try:
    requested = requested_config(job)
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("%s: cannot compare with %s: %s", job.name,
                    os.path.join(job.run_dir, configs.CONFIG_FILE), e)
    return []
  return configs.config_differences(stored, requested)


def _log_header(log, text: str) -> None:
  stamp = datetime.datetime.now().isoformat(timespec="seconds")
  log.write(f"=== {stamp} {text}\n".encode())
  log.flush()


def execute(jobs: Sequence[Job], parallel: int = 1,
            env: Mapping[str, str] | None = None,
            poll_s: float = 0.2,
            rerun_changed: bool = False) -> Dict[str, List[str]]:
  """Runs ``jobs``, ``parallel`` at a time, skipping finished runs.

  A run whose directory holds a run of another config than its command's
  (``config.json``; finished or not: :func:`config_changes`) is neither
  skipped as finished nor replaced: it is reported (the message names the
  differing keys) and not run, unless ``rerun_changed``, which runs it with
  ``--overwrite`` (``main`` then replaces that run).

  Each job's output is appended to ``run_dir/log.txt``. The lock on
  ``run_dir/sweep.lock`` is inherited by the job's process, so it is held
  as long as the job runs, even if this process dies. A group job (from
  :func:`group_seeds`) locks each of its runs and trains those that are
  neither finished nor locked elsewhere (:func:`vectorized_job`).

  Returns:
    ``{"finished": [...], "failed": [...], "skipped": [...], "busy": [...],
    "changed": [...]}`` run names: trained to the end now, exited non-zero
    or without a finished ``results.json``, finished before, locked by
    another process, holding a run of another config (not run).

  Raises:
    _Interrupted: on SIGINT / SIGTERM, after stopping the running jobs.
  """
  if parallel < 1:
    raise ValueError(f"--parallel must be at least 1, got {parallel}.")
  env = dict(os.environ if env is None else env)
  if parallel > 1:
    # Several JAX processes on one accelerator must not each grab most of it.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  out = {"finished": [], "failed": [], "skipped": [], "busy": [],
         "changed": []}
  pending = list(jobs)
  running = {}  # Popen -> (job, lock fds, log file, start time)
  interrupted = []
  total = sum(len(job.runs) for job in jobs)
  done = [0]

  def count(kind, name, level, message, *args):
    out[kind].append(name)
    done[0] += 1
    logging.log(level, "[%d/%d] %s: " + message, done[0], total, name, *args)

  def on_signal(signum, frame):
    del frame
    interrupted.append(signum)

  old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    while pending or running:
      if interrupted:
        raise _Interrupted(interrupted[0])
      while pending and len(running) < parallel:
        job = pending.pop(0)
        todo, fds, replaced = [], [], []
        for run in job.runs:
          changes = config_changes(run)
          if changes and not rerun_changed:
            count("changed", run.name, logging.WARNING,
                  "%s holds a run of another config than requested (%s); not "
                  "run. Pass --rerun_changed to replace it, or use another "
                  "--workdir.", os.path.join(run.run_dir, configs.CONFIG_FILE),
                  "; ".join(changes))
            continue
          if changes:
            logging.info("%s: config changed (%s); running it again with "
                         "--overwrite.", run.name, "; ".join(changes))
          elif run_status(run.run_dir) == "finished":
            count("skipped", run.name, logging.INFO, "finished before, skipped")
            continue
          os.makedirs(run.run_dir, exist_ok=True)
          fd = _try_lock(run.run_dir)
          if fd is None:
            count("busy", run.name, logging.WARNING, "another process holds %s "
                  "(still training?); skipped",
                  os.path.join(run.run_dir, LOCK_FILE))
            continue
          todo.append(run)
          fds.append(fd)
          if changes:
            replaced.append(run)
        if not todo:
          continue
        job = vectorized_job(todo)
        if replaced:  # main --overwrite resumes members of the same config
          job = dataclasses.replace(job, argv=job.argv + (_OVERWRITE_ARG,))
        log = open(os.path.join(job.run_dir, LOG_FILE), "ab")
        _log_header(log, f"sweep starts: {job.command_line}")
        for run in todo[1:]:
          with open(os.path.join(run.run_dir, LOG_FILE), "ab") as other:
            _log_header(other, f"sweep starts (with other seeds; output in "
                        f"{os.path.join(job.run_dir, LOG_FILE)}): "
                        f"{job.command_line}")
        proc = subprocess.Popen(job.argv, stdout=log, stderr=subprocess.STDOUT,
                                env=env, pass_fds=tuple(fds),
                                start_new_session=True)
        running[proc] = (job, fds, log, time.monotonic())
        logging.info("started %s (pid %d)", job.name, proc.pid)
      for proc in [p for p in running if p.poll() is not None]:
        job, fds, log, start = running.pop(proc)
        log.close()
        for fd in fds:
          os.close(fd)
        took = time.monotonic() - start
        for run in job.runs:
          # A group exits non-zero if any of its runs failed; each run's own
          # results.json tells whether it finished.
          ok = proc.returncode == 0 or len(job.runs) > 1
          if ok and run_status(run.run_dir) == "finished":
            count("finished", run.name, logging.INFO, "finished in %.0f s",
                  took)
          else:
            why = (f"exit status {proc.returncode}" if proc.returncode else
                   f"exit status 0 but no finished {RESULTS_FILE}")
            count("failed", run.name, logging.ERROR,
                  "FAILED (%s) after %.0f s; see %s", why, took,
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
  for proc, (_, fds, log, _) in running.items():
    try:
      proc.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
    log.close()
    for fd in fds:
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
  flags.DEFINE_integer("parallel", 1, "Runs at a time (>= 1).", lower_bound=1,
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
  flags.DEFINE_multi_string("grid", [], "KEY=V1,V2,...: train each run once "
                            "per value (name suffix _KEY=V), e.g. "
                            "model.beta=0.1,1,3; repeat for a product.",
                            flag_values=flag_values)
  flags.DEFINE_bool("vectorize_seeds", False, "Train the seeds of each table "
                    "cell in one process and one compiled program (main "
                    "--seeds); each run still gets its own directory.",
                    flag_values=flag_values)
  flags.DEFINE_enum("order", "table", list(ORDERS), "Training order: "
                    "'table' (cell by cell, each cell's seeds together) or "
                    "'seed' (every cell of one seed, then the next seed).",
                    flag_values=flag_values)
  flags.DEFINE_string(
      "timings_from", None, "With --dry_run: a directory of finished runs "
      "whose wall times estimate the remaining compute (default: --workdir).",
      flag_values=flag_values)
  flags.DEFINE_bool("dry_run", False, "Print one command per unfinished run "
                    "(with --vectorize_seeds: per cell) and exit.",
                    flag_values=flag_values)
  flags.DEFINE_bool("rerun_changed", False, "Run again, replacing them "
                    "(main --overwrite), the runs whose directory holds a "
                    "run of another config than requested (by default they "
                    "are reported and left alone).", flag_values=flag_values)
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
    grid = parse_grid(FLAGS.grid)
    if grid:
      for arg in sorted({r["config_arg"] for r in runs}):  # e.g. per model
        try:
          check_grid_keys(grid, experiment.get_config(arg))
        except ValueError as e:
          raise ValueError(f"{e} [--config={FLAGS.config}:{arg}; narrow "
                           "--only to the runs that have it]") from None
      runs = expand_grid(runs, grid)
    if FLAGS.vectorize_seeds and FLAGS.order != "table":
      raise ValueError("--vectorize_seeds trains each cell's seeds together; "
                       "it needs --order=table (the default).")
    runs = order_runs(runs, FLAGS.order)
    jobs = make_jobs(runs, FLAGS.config, FLAGS.workdir,
                     parse_overrides(FLAGS.override), FLAGS.python)
    if FLAGS.vectorize_seeds:
      jobs = group_seeds(jobs)
  except (ValueError, FileNotFoundError, re.error) as e:
    raise app.UsageError(str(e)) from None
  num_runs = sum(len(j.runs) for j in jobs)
  if FLAGS.dry_run:
    left = []
    for job in jobs:
      todo = [r for r in job.runs if run_status(r.run_dir) != "finished"]
      if todo:
        print(vectorized_job(todo).command_line)
        left.extend(todo)
    logging.info("%d runs, %d finished already (not printed).", num_runs,
                 num_runs - len(left))
    if left:
      by_name = {r["name"]: r for r in runs}
      source = FLAGS.timings_from or FLAGS.workdir
      timings = read_timings(source)
      seconds, own = estimate_seconds(
          [run_key(by_name[r.name]) for r in left if r.name in by_name],
          timings)
      if math.isnan(seconds):
        logging.info("No finished run under %s to estimate the remaining "
                     "compute from (--timings_from=DIR of finished runs, e.g. "
                     "results/blocks).", source)
      else:
        logging.info(
            "Estimated compute of the %d unfinished runs: %.1f h of one "
            "process (%.1f h at --parallel=%d), from the wall times of %d "
            "finished runs under %s (%d runs by their own model and costs, "
            "the others by the mean of all), on the machine that ran them.",
            len(left), seconds / 3600, seconds / 3600 / max(FLAGS.parallel, 1),
            max(FLAGS.parallel, 1), sum(len(t) for t in timings.values()),
            source, own)
    return 0
  logging.info("%d runs of %s in %s (%d processes), %d processes at a time.",
               num_runs, FLAGS.config, FLAGS.workdir, len(jobs), FLAGS.parallel)
  try:
    out = execute(jobs, FLAGS.parallel, rerun_changed=FLAGS.rerun_changed)
  except _Interrupted as e:
    logging.warning("Interrupted by signal %d; repeat the command to resume.",
                    e.signum)
    return 128 + e.signum
  logging.info("finished now: %d, finished before: %d, failed: %d, busy "
               "elsewhere: %d, config changed (not run): %d.",
               len(out["finished"]), len(out["skipped"]), len(out["failed"]),
               len(out["busy"]), len(out["changed"]))
  if out["failed"]:
    logging.error("Failed runs (see their log.txt): %s", " ".join(out["failed"]))
  if out["busy"]:
    logging.warning("Runs locked by another process: %s", " ".join(out["busy"]))
  if out["changed"]:
    logging.warning("Runs not run because their directory holds a run of "
                    "another config (the differing keys are listed above; "
                    "--rerun_changed replaces them): %s",
                    " ".join(out["changed"]))
  return min(len(out["failed"]) + len(out["changed"]), MAX_EXIT_STATUS)


if __name__ == "__main__":
  define_flags()
  app.run(main)
