r"""Re-evaluates the best checkpoint of a run.

  python -m landmark_ssl.evaluate --workdir=runs/blocks \
      [--splits=validation,test] [--step=<checkpoint step>]

Reads the run's ``config.json``, restores the best checkpoint (or
``--step``), evaluates each split (default: the config's ``eval_split`` and
``test_splits``), prints the metrics and writes ``evaluation.json``
(``{"step": s, "metrics": {split: {...}}}``) plus ``ced_<split>.json`` and
``predictions_<split>.npz`` in the workdir. Exit code 2 (with a message) for
a workdir without a config or checkpoint, 4 for a run still training. The work is ``evaluator.evaluate_run``.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags
from absl import logging

from landmark_ssl import evaluator
from landmark_ssl import metrics_log
from landmark_ssl import rundir


def define_flags(flag_values=flags.FLAGS):
  """The CLI flags (defined only when run as a program, so that other CLIs
  can import this module)."""
  flags.DEFINE_string("workdir", None, "Directory of a run.",
                      flag_values=flag_values)
  flags.DEFINE_list("splits", None, "Splits to evaluate (default: eval_split "
                    "and test_splits of the run's config).",
                    flag_values=flag_values)
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the best).",
                       flag_values=flag_values)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  FLAGS = flags.FLAGS
  if FLAGS.workdir is None:
    raise app.UsageError("--workdir is required.")
  metrics_log.quiet_library_logs()
  try:
    evaluator.evaluate_run(FLAGS.workdir, FLAGS.splits, FLAGS.step)
  except (FileNotFoundError, ValueError) as e:
    logging.error("%s", e)
    sys.exit(2)
  except rundir.WorkdirBusyError as e:
    logging.error("%s", e)
    sys.exit(4)


if __name__ == "__main__":
  define_flags()
  app.run(main)
