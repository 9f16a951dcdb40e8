r"""Trains and evaluates one run, or several seeds of it in one program.

  python -m landmark_ssl.main --config=experiments/blocks.py \
      --workdir=runs/blocks [--config.seed=1 ...] [--overwrite] [--multihost]

  python -m landmark_ssl.main --config=experiments/blocks.py \
      --seeds=0,1,2,3,4 --workdir=runs/blocks          # runs/blocks/s0 ... s4
  python -m landmark_ssl.main --config=experiments/blocks.py \
      --seeds=0,1 --workdirs=runs/a_s0,runs/a_s1       # one workdir per seed

``--config`` is an ml_collections config file (``path[:arg]``); any setting
can be overridden with ``--config.<key>=<value>``. The config is locked: a
key that does not exist is an error that lists the valid keys.

``--seeds`` trains one run per seed (``config.seed`` replaced; each with its
own label subset, data order and random keys) in one compiled program
(``train.train_and_evaluate_seeds``: ``jax.vmap`` of the train step over
the runs), so the seeds share every pass over the hardware. Each run gets
its own workdir, ``--workdir/s<seed>`` or the matching entry of
``--workdirs``, holding exactly the files of a run trained alone.

Running the same command again resumes from the latest checkpoint(s); a
finished run does nothing. A workdir holding a run of another config is
refused unless ``--overwrite`` (which replaces that run; with the same
config, ``--overwrite`` changes nothing and the run resumes). A run deletes
only files it can show a run of this program wrote: run files of another
program, a user's files under a run's names, or run files without their
``config.json`` are refused, naming them, unless ``--overwrite`` (files
under other names are never touched). With
``--seeds``, a workdir that holds a run of the same config and seed,
trained alone or with other seeds, counts as that run.

Exit codes:
  0   finished (or had already finished): every run, with ``--seeds``;
  2   a usage or data error (bad config value or key, config mismatch with
      the workdir, missing dataset): the message says what to fix;
  3   a cost became NaN or infinite (the message names the step and term);
      with ``--seeds``, the other runs still finish;
  4   another process is training in the workdir (it holds the workdir's
      ``run.lock`` for as long as it runs; the message names its pid and
      host): nothing was read or written;
  75  stopped by SIGTERM (EX_TEMPFAIL): in the training loop after saving
      a checkpoint; during start-up (data, compilation) without training a
      step (nothing new to save); run the same command again to continue.
      (SIGTERM during the final evaluation lets it finish.)
"""

from __future__ import annotations

import os
import signal
import sys

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from landmark_ssl import configs
from landmark_ssl import metrics_log
from landmark_ssl import rundir
from landmark_ssl import usage

EXIT_USAGE = 2
EXIT_NON_FINITE = 3
EXIT_BUSY = 4
EXIT_PREEMPTED = 75

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. experiments/blocks.py[:arg].",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory of the run (with --seeds: of the runs, each in "
    "its sub-directory s<seed>).")
_SEEDS = flags.DEFINE_list(
    "seeds", None, "Comma-separated seeds: train one run per seed (replacing "
    "config.seed) in one program.")
_WORKDIRS = flags.DEFINE_list(
    "workdirs", None, "With --seeds, instead of --workdir: one directory per "
    "seed, in the same order.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace a run of a different config in --workdir.")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Call jax.distributed.initialize() first (one process "
    "per host; the cluster environment gives the coordinator).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "HOST:PORT of process 0 of a multi-process "
    "run (with --num_processes and --process_id; instead of --multihost "
    "where JAX cannot detect the cluster, e.g. CPU machines).")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Processes of a multi-process run.", lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index, 0..num_processes-1.",
    lower_bound=0)
_LOCAL_DEVICE_IDS = flags.DEFINE_list(
    "local_device_ids", None, "Devices this process uses (default: all it "
    "sees).")
_HEARTBEAT_TIMEOUT = flags.DEFINE_integer(
    "heartbeat_timeout_s", 100, "Multi-process runs: when a process has been "
    "silent this long (killed, its host lost), the others stop with an error "
    "instead of waiting for it; rerun every process to resume from the last "
    "checkpoint.", lower_bound=1)


def _valid_keys(config, prefix: str = "config.") -> list[str]:
  keys = []
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      keys.extend(_valid_keys(value, f"{prefix}{key}."))
    else:
      keys.append(f"{prefix}{key}")
  return keys


def explain_bad_override(argv: list[str]) -> str | None:
  """Names the ``--config.<key>`` argument of ``argv`` whose key does not
  exist and lists the valid keys of its parent (``None`` if all exist)."""
  path = None
  for arg in argv[1:]:
    if arg.startswith("--config="):
      path = arg.split("=", 1)[1]
  if path is None:
    return None
  try:
    config = config_flags.config_flags.ConfigFileFlagParser("config").parse(path)
  except Exception:  # pylint: disable=broad-except
    return None
  for arg in argv[1:]:
    if not arg.startswith("--config."):
      continue
    parts = arg[2:].split("=", 1)[0].split(".")[1:]
    node, where = config, "config"
    for part in parts:
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        options = (sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict)
                   else [])
        return (f"{arg.split('=', 1)[0]}: {where} has no key {part!r}. "
                f"Keys of {where}: {options}. All settable keys: "
                f"{_valid_keys(config)}")
      node, where = node[part], f"{where}.{part}"
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a readable error for a mistyped config key."""
  try:
    return flags.FLAGS(argv)
  except SyntaxError as e:  # raised by the --config file itself
    print(f"FATAL Flags parsing error: --config: "
          f"{configs.syntax_error_message(e)}", file=sys.stderr)
    sys.exit(EXIT_USAGE)
  except (AttributeError, KeyError) as e:
    message = explain_bad_override(argv) or f"bad --config override: {e}"
    print(f"FATAL Flags parsing error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)
  except flags.Error as e:
    print(f"FATAL Flags parsing error: {without_traceback(str(e))}\nPass "
          "--helpfull to see help on flags.", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def without_traceback(message: str) -> str:
  """A flag error without the traceback ml_collections puts in it when the
  config file's ``get_config`` raises (e.g. a config argument it does not
  offer): the error's head and the exception's own line."""
  head, sep, tail = message.partition("\n\nTraceback (most recent call last):")
  if not sep:
    return message
  last = [l for l in tail.strip().splitlines() if l and not l.startswith(" ")]
  return f"{head.rstrip()} {last[-1]}" if last else head.rstrip()


def seed_workdirs(seeds: list[str] | None, workdir: str | None,
                  workdirs: list[str] | None) -> tuple[list[int], list[str]]:
  """The ``(seeds, workdirs)`` of ``--seeds`` with ``--workdir`` or
  ``--workdirs`` (see the module docstring).

  Raises:
    app.UsageError: a missing, clashing or malformed flag.
  """
  if not all(s.strip().isdigit() for s in seeds):
    raise app.UsageError(f"--seeds={','.join(seeds)}: give comma-separated "
                         "integers >= 0, e.g. --seeds=0,1,2.", EXIT_USAGE)
  seeds = [int(s) for s in seeds]
  if not seeds:
    raise app.UsageError("--seeds is empty; give e.g. --seeds=0,1,2.",
                         EXIT_USAGE)
  if workdirs and workdir:
    raise app.UsageError("Give --workdir (runs go to <workdir>/s<seed>) or "
                         "--workdirs (one per seed), not both.", EXIT_USAGE)
  if workdirs:
    if len(workdirs) != len(seeds):
      raise app.UsageError(f"--workdirs names {len(workdirs)} directories for "
                           f"{len(seeds)} --seeds; give one per seed.",
                           EXIT_USAGE)
    return seeds, list(workdirs)
  if not workdir:
    raise app.UsageError("--seeds needs --workdir or --workdirs.", EXIT_USAGE)
  return seeds, [os.path.join(workdir, f"s{s}") for s in seeds]


def quick_result_line(config_argument: str, config, workdir: str) -> str | None:
  """The line a quick run ends with: its error beside what a healthy
  install gets, from the experiment file's ``QUICK_RESULT`` (``None`` for
  other runs, or experiments without one). The expectation is for the plain
  ``<file>:quick`` command; the line names any setting the run changed."""
  path, _, arg = config_argument.partition(":")
  if "quick" not in [a.strip() for a in arg.split(",")]:
    return None
  experiment = configs.load_experiment(path)
  expected = getattr(experiment, "QUICK_RESULT", None)
  if expected is None:
    return None
  try:
    results = rundir.RunDir(workdir).read_results()
    got = results["metrics"][expected["split"]][expected["metric"]]
  except (OSError, ValueError, KeyError, TypeError):  # not finished: no line
    return None
  unit = " px" if results.get("error_unit") == "pixels" else ""
  line = (f"quick run: {expected['split']} {expected['metric']} "
          f"{got:.2f}{unit}; a healthy install gets about "
          f"{expected['value']:.2f}{unit} ({expected['where']}); above "
          f"{expected['wrong_above']:g}{unit} means it did not learn.")
  plain = experiment.get_config("quick").to_dict()
  changed = [d.split(":")[0] for d in configs.config_differences(
      plain, config.to_dict()) if not d.startswith("data.data_dir:")]
  if changed:
    line += (" (Expected for the plain command; this run changed "
             f"{', '.join(changed)}.)")
  return line


_SIGTERM_SEEN = []


def _note_sigterm(signum, frame) -> None:
  """SIGTERM before training (``train`` answers it from then on): noted,
  and answered before the run starts."""
  del frame
  _SIGTERM_SEEN.append(signum)


def main(argv):
  signal.signal(signal.SIGTERM, _note_sigterm)
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  metrics_log.quiet_library_logs()
  if _CONFIG.value is None:
    raise app.UsageError("--config and --workdir are required.")
  if _SEEDS.value is None:
    if _WORKDIRS.value:
      raise app.UsageError("--workdirs goes with --seeds (one directory per "
                           "seed); for one run use --workdir.", EXIT_USAGE)
    if _WORKDIR.value is None:
      raise app.UsageError("--config and --workdir are required.")
  else:
    seeds, workdirs = seed_workdirs(_SEEDS.value, _WORKDIR.value,
                                    _WORKDIRS.value)
  config = _CONFIG.value
  try:
    config.to_dict()
  except IOError as e:
    logging.error("Cannot read --config=%s: %s", config_flags.get_config_filename(
        flags.FLAGS["config"]), e)
    sys.exit(EXIT_USAGE)
  from landmark_ssl import distributed  # pylint: disable=g-import-not-at-top
  try:
    distributed.initialize(
        _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
        local_device_ids(_LOCAL_DEVICE_IDS.value), _MULTIHOST.value,
        _HEARTBEAT_TIMEOUT.value)
  except (distributed.DistributedSettingsError, ValueError) as e:
    raise app.UsageError(str(e), EXIT_USAGE) from None
  from landmark_ssl import train  # pylint: disable=g-import-not-at-top
  if _SIGTERM_SEEN:
    logging.warning("Stopped by SIGTERM before the run started: nothing to "
                    "save. Run the same command again to continue.")
    sys.exit(EXIT_PREEMPTED)
  try:
    if _SEEDS.value is None:
      outcomes = [train.train_and_evaluate(config, _WORKDIR.value,
                                           _OVERWRITE.value)]
    else:
      outcomes = train.train_and_evaluate_seeds(config, seeds, workdirs,
                                                _OVERWRITE.value)
  except train.NonFiniteCostError as e:
    logging.error("%s", e)
    sys.exit(EXIT_NON_FINITE)
  except rundir.WorkdirBusyError as e:
    logging.error("%s", e)
    sys.exit(EXIT_BUSY)
  except (rundir.ConfigMismatchError, FileNotFoundError, ImportError,
          ValueError) as e:
    logging.error("%s", e)
    logging.debug("Traceback:", exc_info=True)
    sys.exit(EXIT_USAGE)
  for workdir in ([_WORKDIR.value] if _SEEDS.value is None else workdirs):
    line = quick_result_line(flags.FLAGS["config"].config_filename, config,
                             workdir)
    if line:
      logging.info("%s", line)
  statuses = [o["status"] for o in outcomes]
  if "preempted" in statuses:
    sys.exit(EXIT_PREEMPTED)
  if "failed" in statuses:
    failed = [w for w, s in zip(workdirs, statuses) if s == "failed"]
    logging.error("Non-finite cost in %d of %d runs: %s", len(failed),
                  len(statuses), " ".join(failed))
    sys.exit(EXIT_NON_FINITE)


def local_device_ids(values) -> list[int]:
  """``--local_device_ids`` as integers (``ValueError`` naming the flag)."""
  try:
    return [int(i) for i in values or ()]
  except ValueError:
    raise ValueError(f"--local_device_ids={','.join(values)}: give device "
                     "numbers, e.g. --local_device_ids=0,1.") from None


# main, with a usage error printed alone (not after absl's help page), exit 2
main_without_help = usage.message_alone(main, EXIT_USAGE)


if __name__ == "__main__":
  app.run(main_without_help, flags_parser=parse_flags)
