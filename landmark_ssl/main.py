r"""Trains and evaluates one run.

  python -m landmark_ssl.main --config=experiments/blocks.py \
      --workdir=runs/blocks [--config.seed=1 ...] [--overwrite] [--multihost]

``--config`` is an ml_collections config file (``path[:arg]``); any setting
can be overridden with ``--config.<key>=<value>``. The config is locked: a
key that does not exist is an error that lists the valid keys.

Running the same command again resumes from the latest checkpoint; a
finished run does nothing. A workdir holding a run of another config is
refused unless ``--overwrite`` (which replaces that run; with the same
config, ``--overwrite`` changes nothing and the run resumes).

Exit codes:
  0   finished (or had already finished);
  2   a usage or data error (bad config value or key, config mismatch with
      the workdir, missing dataset): the message says what to fix;
  3   a cost became NaN or infinite (the message names the step and term);
  75  stopped by SIGTERM after saving a checkpoint (EX_TEMPFAIL): run the
      same command again to continue.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from landmark_ssl import metrics_log

EXIT_USAGE = 2
EXIT_NON_FINITE = 3
EXIT_PREEMPTED = 75

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. experiments/blocks.py[:arg].",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of the run.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace a run of a different config in --workdir.")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Call jax.distributed.initialize() first (one process "
    "per host; the cluster environment gives the coordinator).")


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
  except (AttributeError, KeyError) as e:
    message = explain_bad_override(argv) or f"bad --config override: {e}"
    print(f"FATAL Flags parsing error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)
  except flags.Error as e:
    print(f"FATAL Flags parsing error: {e}\nPass --helpfull to see help on "
          "flags.", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  metrics_log.quiet_library_logs()
  if _CONFIG.value is None or _WORKDIR.value is None:
    raise app.UsageError("--config and --workdir are required.")
  config = _CONFIG.value
  try:
    config.to_dict()
  except IOError as e:
    logging.error("Cannot read --config=%s: %s", config_flags.get_config_filename(
        flags.FLAGS["config"]), e)
    sys.exit(EXIT_USAGE)
  if _MULTIHOST.value:
    import jax  # pylint: disable=g-import-not-at-top
    jax.distributed.initialize()
  from landmark_ssl import train  # pylint: disable=g-import-not-at-top
  try:
    results = train.train_and_evaluate(config, _WORKDIR.value, _OVERWRITE.value)
  except train.NonFiniteCostError as e:
    logging.error("%s", e)
    sys.exit(EXIT_NON_FINITE)
  except (train.ConfigMismatchError, FileNotFoundError, ImportError,
          ValueError) as e:
    logging.error("%s", e)
    logging.debug("Traceback:", exc_info=True)
    sys.exit(EXIT_USAGE)
  if results["status"] == "preempted":
    sys.exit(EXIT_PREEMPTED)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
