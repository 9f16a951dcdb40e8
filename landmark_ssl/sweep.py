r"""Runs the sweep of an experiment file (a paper table) on this machine or a
Ray cluster, or prints it as command lines for a cluster scheduler.

  python -m landmark_ssl.sweep --config=experiments/blocks.py --workdir=DIR \
      [--parallel=N] [--only=REGEX] [--seeds=0,1] [--quick] \
      [--override=data.data_dir=/data/tfds ...] [--grid=model.beta=0.1,1,3 ...] \
      [--order=table|seed] [--vectorize_seeds] [--rerun_changed] [--dry_run] \
      [--launcher=local|ray [--ray_address=auto|HOST:PORT] \
       [--resources_per_run=GPU:1] [--max_retries=3]]

Each run of ``sweep()`` in the experiment file becomes a run spec
(``sweep_plan.RunSpec``), trained by one process

  python -m landmark_ssl.main --config=<file>:<config_arg> \
      --config.<key>=<value> ... --workdir=DIR/<run name>

with its output appended to ``DIR/<run name>/log.txt``. The local launcher
(``launcher``, the default) runs ``N`` at a time on this machine;
``--launcher=ray`` (``ray_launcher``) runs each as a Ray task on the nodes of
a Ray cluster, with ``--resources_per_run`` each, retrying a run whose
process or node is lost. A run whose ``results.json`` says ``"status":
"finished"`` is skipped; any other run is started again, and ``main``
resumes it from its last checkpoint, so an interrupted sweep is resumed by
repeating the command. A run directory holding a run of another config than
the command requests (its ``config.json``, compared as ``main`` compares it:
e.g. a changed ``--override``) is reported with the differing keys and left
alone, finished or not; ``--rerun_changed`` runs those again with ``main
--overwrite``. While a run is in progress its directory holds a lock
(``flock`` on ``sweep.lock``, held by the training process itself), so a
second sweep, or a resumed one whose predecessor was killed without its
runs, skips it instead of training it twice. Each start and end of a run is
logged with where the sweep stands: runs done, running and left, and an ETA
from the finished runs' wall times (``sweep_progress``).

With ``--parallel`` above 1 the runs get ``XLA_PYTHON_CLIENT_PREALLOCATE=false``
(unless set), so that several share one GPU; on CPU each uses every core.

``--vectorize_seeds`` trains the runs of a table cell together: runs whose
specs differ only in their seed (and directory) become one process

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
(the seeds in the table's order, whatever ``--only`` keeps; default
``table``: cell by cell, as ``sweep()`` lists them), so a sweep cut
short leaves paired seeds of every row. Two sweeps over the same runs at once
(e.g. one per core) share the work through the locks.

``--dry_run`` prints one command per job that is not finished yet, for a
cluster scheduler (one line per job; with ``--vectorize_seeds``, one line
per cell with its unfinished seeds), as the sweep would train them: a run
whose directory holds another config is left out (``--rerun_changed``:
printed with ``--overwrite``), and the estimate counts the epochs each run
has left. ``--quick`` trains the experiment's
small variant; its runs are named ``<name>_quick`` so they never mix with
full runs.

Exit status: the number of failed runs plus those left alone because their
config changed (at most 125); 128 + signal number if the sweep was
interrupted (its runs are stopped and resume next time); 255 if it did not
start (a usage error: a flag, a key or value of ``--override``/``--grid``,
no matching run, an unreachable cluster), so that 1 always means one run,
as in GNU parallel.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import math
import os
import re
import shlex
import sys
from typing import Dict, List, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
from ml_collections.config_flags import config_path

from landmark_ssl import configs
from landmark_ssl import launcher
from landmark_ssl import rundir
from landmark_ssl import sweep_plan
from landmark_ssl import sweep_progress
from landmark_ssl import usage

MAX_EXIT_STATUS = 125
EXIT_USAGE = 255  # above any count of runs and any 128 + signal
LAUNCHERS = ("local", "ray")


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


def check_keys(keys: Sequence[str], config, flag: str = "--grid") -> None:
  """Raises ``ValueError`` naming a key of ``flag`` (``--grid``,
  ``--override``) that ``config`` (an experiment's ``ConfigDict``) does not
  have, with the nearest keys it has."""
  if not keys:
    return
  known = [k for k, _ in configs.flat_items(config.to_dict())]
  for key in keys:
    if key not in known:
      near = difflib.get_close_matches(key, known, n=3) or [
          "model.beta", "loss.alpha", "loss.gamma"]
      raise ValueError(f"{flag} key {key!r} is not a setting of the "
                       f"experiment's config; did you mean {' or '.join(near)}? "
                       f"(a run's {rundir.CONFIG} lists every key)")


def check_values(settings: Sequence[tuple], config, where: str) -> None:
  """Raises ``ValueError`` naming a ``(key, value)`` setting whose value
  text does not parse as the type of ``config``'s field ``key``, as
  ``--config.key=value`` would be parsed in each run (ml_collections' field
  parsers), so that a typo fails here, not in every run; ``where`` names
  the config."""
  # ml_collections keeps its parser per field type in a private table; if a
  # version lacks it, the runs themselves still refuse the value.
  parsers = getattr(config_flags.config_flags, "_FIELD_TYPE_TO_PARSER", {})
  for key, value in settings:
    try:
      field_type = config_path.get_type(key, config)
    except (KeyError, AttributeError, ValueError):
      continue  # an unknown key: check_keys names it
    parser = parsers.get(field_type)
    if parser is None:
      continue
    try:
      parser.parse(value)
    except (ValueError, TypeError, SyntaxError, flags.Error) as e:
      raise ValueError(
          f"{key}={value!r} (--grid or --override) is not of type "
          f"{field_type.__name__} ({e}); in {where} it is "
          f"{config_path.get_value(key, config)!r}.") from None


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


def select_runs(runs: Sequence[Mapping], only: str | None = None,
                quick: bool = False) -> List[Dict]:
  """Filters ``runs`` by the regular expression ``only`` (searched in the
  name) and, with ``quick``, switches them to the quick variant (the config
  argument gains ``quick`` and the name ``_quick``)."""
  names = [r["name"] for r in runs]
  if len(set(names)) != len(names):
    dup = sorted({n for n in names if names.count(n) > 1})
    raise ValueError(f"The sweep lists run names twice: {dup}.")
  try:
    pattern = re.compile(only) if only else None
  except re.error as e:
    raise ValueError(
        f"--only={only!r} is not a regular expression ({e}); it is searched "
        r"in the run names, e.g. --only='^seq_mt_L_f0\.05_s[0-2]$'.") from None
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


def no_match_message(config: str, only: str | None, seeds: str | None,
                     names: Sequence[str]) -> str:
  """Why no run was selected, with what would match: ``--only`` is a
  regular expression, so a ``+`` in a run name must be escaped."""
  text = f"No run of {config} matches --only={only!r} / --seeds={seeds!r}."
  if only and re.search(r"(?<!\\)\+", only):
    escaped = re.sub(r"(?<!\\)\+", r"\\+", only)
    try:
      if any(re.search(escaped, n) for n in names):
        text += (f" --only is a regular expression, where + repeats: "
                 f"escape it, --only='{escaped}'.")
    except re.error:
      pass
  if names:
    sample = dict.fromkeys([names[0], names[len(names) // 2], names[-1]])
    text += f" Its runs are named like {', '.join(sample)}."
  return text


def seed_order(runs: Sequence[Mapping]) -> List[int]:
  """The seeds of ``runs``, in the order they first appear."""
  seeds = []
  for r in runs:
    seed = r["overrides"].get("seed")
    if seed is not None and seed not in seeds:
      seeds.append(seed)
  return seeds


def order_runs(runs: Sequence[Mapping], order: str = "table",
               seeds: Sequence[int] | None = None) -> List[Mapping]:
  """The runs in the order they are trained.

  ``'table'``: as ``sweep()`` lists them (the paper's rows, each cell's seeds
  together). ``'seed'``: every run of the first seed, then of the next, each
  seed's runs in table order; an interrupted sweep then leaves whole seeds
  of every cell (rows compared paired by seed) rather than whole cells.
  ``seeds`` gives the seeds' order (default :func:`seed_order` of ``runs``);
  the sweep passes its whole table's, before ``--only``, so that a filter
  that leaves out a first cell's early seeds does not move later seeds
  ahead. Runs without a ``seed`` override come first, in table order.
  """
  if order not in ORDERS:
    raise ValueError(f"--order={order!r} is not one of {list(ORDERS)}.")
  if order == "table":
    return list(runs)
  seeds = list(seeds) if seeds is not None else seed_order(runs)
  seeds += [s for s in seed_order(runs) if s not in seeds]
  rank = {seed: i for i, seed in enumerate(seeds)}
  return sorted(runs, key=lambda r: rank.get(r["overrides"].get("seed"), -1))


def parse_seeds(text: str | None):
  """``'0,1,2'`` -> ``(0, 1, 2)``; empty -> ``None`` (the sweep's own)."""
  if not text:
    return None
  try:
    seeds = tuple(int(s) for s in text.split(","))
  except ValueError:
    raise ValueError(f"--seeds={text!r}: give comma-separated integers, "
                     "e.g. --seeds=0,1,2.") from None
  twice = sorted({s for s in seeds if seeds.count(s) > 1})
  if twice:
    raise ValueError(f"--seeds={text!r} names seed {twice[0]} twice; give "
                     "each seed once.")
  if min(seeds) < 0:
    raise ValueError(f"--seeds={text!r}: a seed is a non-negative integer "
                     "(it seeds numpy's generators), e.g. --seeds=0,1,2.")
  return seeds


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
                            "for every run, e.g. data.data_dir=/data/tfds; it "
                            "replaces a column's own setting (e.g. Blocks' "
                            "200 epochs at 20%), not a label fraction, seed "
                            "or grid value.",
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
  flags.DEFINE_enum("launcher", "local", list(LAUNCHERS), "Where the runs "
                    "train: 'local' (--parallel processes of this machine) "
                    "or 'ray' (tasks of a Ray cluster; pip install -e "
                    "\".[cluster]\").", flag_values=flag_values)
  flags.DEFINE_string("ray_address", None, "With --launcher=ray: the "
                      "cluster to use, 'auto' (the one started on this node "
                      "by `ray start`) or HOST:PORT of its head; default: "
                      "RAY_ADDRESS, else a new cluster of this machine alone.",
                      flag_values=flag_values)
  flags.DEFINE_string("resources_per_run", "CPU:1", "With --launcher=ray: "
                      "what each run (each cell with --vectorize_seeds) "
                      "takes of a node, RESOURCE:AMOUNT[,...], e.g. GPU:1, "
                      "GPU:0.5 (two per GPU), TPU:4, CPU:2.",
                      flag_values=flag_values)
  flags.DEFINE_integer("max_retries", 3, "With --launcher=ray: how often a "
                       "run whose process or node is lost, or that is "
                       "preempted (exit 75), is started again (it resumes "
                       "from its checkpoint).", lower_bound=0,
                       flag_values=flag_values)
  flags.mark_flags_as_required(["config", "workdir"], flag_values=flag_values)


def check_launcher_flags(launcher_name: str, present: Sequence[str]) -> None:
  """Raises ``ValueError`` naming a flag given that the launcher does not
  use (``present``: the names of the flags given)."""
  ray_only = ("ray_address", "resources_per_run", "max_retries")
  if launcher_name == "ray" and "parallel" in present:
    raise ValueError("--parallel is for --launcher=local; with "
                     "--launcher=ray, --resources_per_run sets how many runs "
                     "share a node (e.g. GPU:1: one per GPU).")
  if launcher_name == "local":
    given = [f"--{name}" for name in ray_only if name in present]
    if given:
      raise ValueError(f"{', '.join(given)} go with --launcher=ray; add it, "
                       "or leave them out for the local launcher.")


def check_workdir_is_a_directory(workdir: str) -> None:
  """Raises ``ValueError`` if ``workdir`` (or a folder above it) is a file:
  the runs' directories go under it."""
  if "://" in workdir:
    return
  path = os.path.abspath(os.path.expanduser(workdir))
  while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    raise ValueError(
        f"--workdir={workdir}: {path} is a file, not a directory; the sweep "
        "puts one directory per run under --workdir. Give a directory (new "
        "or a sweep's).")


def check_workdir_launchable(workdir: str) -> None:
  """Raises ``ValueError`` if runs cannot be launched in ``workdir``: the
  per-run locks need a filesystem."""
  if "://" in workdir:
    raise ValueError(
        f"--workdir={workdir}: a sweep locks each run with a file lock "
        "(flock), which object stores lack. Give a directory of a "
        "filesystem (for --launcher=ray, one that every node mounts at the "
        "same path: NFS, Filestore, Lustre, ...); or print the runs' "
        "commands with --dry_run and schedule those (main itself takes a "
        "gs:// --workdir).")


def log_summary(out: Mapping[str, Sequence[str]]) -> int:
  """Logs how a sweep's runs ended; returns its exit status."""
  logging.info("finished now: %d, finished before: %d, failed: %d, busy "
               "elsewhere: %d, config changed (not run): %d.",
               len(out["finished"]), len(out["skipped"]), len(out["failed"]),
               len(out["busy"]), len(out["changed"]))
  if out["failed"]:
    logging.error("Failed runs (see their %s): %s", rundir.LOG,
                  " ".join(out["failed"]))
  if out["busy"]:
    logging.warning("Runs locked by another process: %s", " ".join(out["busy"]))
  if out["changed"]:
    logging.warning("Runs not run because their directory holds a run of "
                    "another config (the differing keys are listed above; "
                    "--rerun_changed replaces them): %s",
                    " ".join(out["changed"]))
  return min(len(out["failed"]) + len(out["changed"]), MAX_EXIT_STATUS)


def _dry_run(jobs: Sequence[sweep_plan.Job], python: str,
             timings_from: str, parallel: int,
             rerun_changed: bool = False) -> None:
  """Prints the command of each job's runs that the sweep would train (as
  its launcher triages them: not finished, and not holding another config
  unless ``rerun_changed``), and logs the estimated compute they need: the
  epochs each has left (:func:`sweep_progress.read_epochs_done`)."""
  left, replaced, changed, finished = [], set(), [], 0
  for job in jobs:
    found = launcher.triage(job, rerun_changed)
    finished += sum(e.kind == "skipped" for e in found.events)
    changed += [e.run for e in found.events if e.kind == "changed"]
    if found.runs:
      print(shlex.join(sweep_plan.command(found.runs, python,
                                          overwrite=bool(found.replaced))))
      left.extend(found.runs)
      replaced.update(found.replaced)
  num_runs = sum(len(j.runs) for j in jobs)
  logging.info("%d runs, %d finished already (not printed).", num_runs,
               finished)
  if changed:
    logging.warning(
        "%d runs hold a run of another config than requested and are not "
        "printed (--rerun_changed replaces them): %s", len(changed),
        ", ".join(changed))
  if replaced:
    logging.info("%d runs replace a run of another config (printed with "
                 "--overwrite; they train from the start): %s",
                 len(replaced), ", ".join(sorted(replaced)))
  if not left:
    return
  by_kind = sweep_progress.read_epoch_timings(timings_from)
  if not by_kind:
    logging.info("No finished run under %s to estimate the remaining "
                 "compute from (--timings_from=DIR of finished runs, e.g. "
                 "results/blocks).", timings_from)
    return
  if any(r.epochs is None for r in left):
    logging.info("No estimate of the remaining compute: the epochs of some "
                 "runs are unknown (their experiment's get_config failed).")
    return
  epochs = [max(r.epochs - (0.0 if r.name in replaced else
                            sweep_progress.read_epochs_done(r.run_dir)), 0.0)
            for r in left]
  for kind, timings in sorted(by_kind.items()):
    seconds, own = sweep_progress.estimate_seconds(
        [r.key for r in left], timings, epochs)
    logging.info(
        "Estimated compute of the %d unfinished runs (%.0f epochs left) on "
        "%s: %.1f h of one process (%.1f h at --parallel=%d), from the time "
        "per epoch of %d finished runs on %s under %s (%d runs by their "
        "own model and costs, the others by the mean of all; runs that "
        "shared a device or a vectorised process count their whole wall "
        "time, so the hours are those of as many processes).",
        len(left), sum(epochs), kind, seconds / 3600,
        seconds / 3600 / parallel, parallel,
        sum(len(t) for t in timings.values()), kind, timings_from, own)


def _epochs(spec: sweep_plan.RunSpec) -> float | None:
  """The epochs ``spec`` trains, for the estimates of the time left: its
  ``train.max_epochs`` override, else its experiment's default; None where
  neither can be read (the run itself then reports why)."""
  try:
    given = dict(spec.overrides).get("train.max_epochs")
    if given is not None:
      return float(given)
    return _default_epochs(spec.experiment, spec.config_arg)
  except Exception:  # pylint: disable=broad-except
    return None


@functools.lru_cache(maxsize=None)
def _default_epochs(experiment: str, config_arg: str) -> float:
  return float(configs.load_experiment(experiment).get_config(
      config_arg or None).train.max_epochs)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  FLAGS = flags.FLAGS
  try:
    experiment = configs.load_experiment(FLAGS.config)
    seeds = parse_seeds(FLAGS.seeds)
    runs = experiment.sweep() if seeds is None else experiment.sweep(seeds=seeds)
    table_seeds = seed_order(runs)  # --order=seed's order, whatever --only keeps
    everything, runs = runs, select_runs(runs, FLAGS.only, FLAGS.quick)
    if not runs:
      raise ValueError(no_match_message(FLAGS.config, FLAGS.only, FLAGS.seeds,
                                        [r["name"] for r in everything]))
    grid = parse_grid(FLAGS.grid)
    overrides = parse_overrides(FLAGS.override)
    for arg in sorted({r["config_arg"] for r in runs} if grid or overrides
                      else ()):  # e.g. per model
      config = experiment.get_config(arg)
      for keys, flag in (([k for k, _ in grid], "--grid"),
                         (list(overrides), "--override")):
        try:
          check_keys(keys, config, flag)
        except ValueError as e:
          raise ValueError(f"{e} [--config={FLAGS.config}:{arg}; narrow "
                           "--only to the runs that have it]") from None
      check_values([(k, v) for k, values in grid for v in values] +
                   list(overrides.items()), config,
                   f"--config={FLAGS.config}:{arg}")
    if grid:
      runs = expand_grid(runs, grid)
    if FLAGS.vectorize_seeds and FLAGS.order != "table":
      raise ValueError("--vectorize_seeds trains each cell's seeds together; "
                       "it needs --order=table (the default).")
    runs = order_runs(runs, FLAGS.order, table_seeds)
    specs = sweep_plan.make_specs(
        runs, FLAGS.config, FLAGS.workdir, overrides,
        fixed={"data.labeled_fraction", sweep_plan.SEED_KEY} |
        {k for k, _ in grid})
    specs = [dataclasses.replace(s, epochs=_epochs(s)) for s in specs]
    jobs = (sweep_plan.group_seeds(specs) if FLAGS.vectorize_seeds else
            sweep_plan.single_jobs(specs))
    check_launcher_flags(FLAGS.launcher,
                         [name for name in FLAGS if FLAGS[name].present])
    check_workdir_is_a_directory(FLAGS.workdir)
    if not FLAGS.dry_run:
      check_workdir_launchable(FLAGS.workdir)
  except (ValueError, FileNotFoundError, re.error) as e:
    raise app.UsageError(str(e)) from None
  if FLAGS.dry_run:
    _dry_run(jobs, FLAGS.python, FLAGS.timings_from or FLAGS.workdir,
             FLAGS.parallel, FLAGS.rerun_changed)
    return 0
  num_runs = sum(len(j.runs) for j in jobs)
  try:
    if FLAGS.launcher == "ray":
      from landmark_ssl import ray_launcher  # pylint: disable=g-import-not-at-top
      try:
        resources = ray_launcher.parse_resources(FLAGS.resources_per_run)
        ray_launcher.require_ray()
      except ValueError as e:
        raise app.UsageError(str(e)) from None
      logging.info("%d runs of %s in %s (%d tasks) on Ray, %s each.",
                   num_runs, FLAGS.config, FLAGS.workdir, len(jobs),
                   FLAGS.resources_per_run)
      try:
        out = ray_launcher.execute(
            jobs, FLAGS.python, FLAGS.workdir, address=FLAGS.ray_address,
            resources=resources, max_retries=FLAGS.max_retries,
            rerun_changed=FLAGS.rerun_changed)
      except ray_launcher.ClusterError as e:
        raise app.UsageError(str(e)) from None
    else:
      logging.info("%d runs of %s in %s (%d processes), %d processes at a "
                   "time.", num_runs, FLAGS.config, FLAGS.workdir, len(jobs),
                   FLAGS.parallel)
      out = launcher.execute(jobs, FLAGS.python, FLAGS.parallel,
                             rerun_changed=FLAGS.rerun_changed)
  except launcher.Interrupted as e:
    logging.warning("Interrupted by signal %d; repeat the command to resume.",
                    e.signum)
    return 128 + e.signum
  return log_summary(out)


if __name__ == "__main__":
  define_flags()
  app.run(usage.message_alone(main, EXIT_USAGE),
          flags_parser=usage.flags_parser(EXIT_USAGE))
