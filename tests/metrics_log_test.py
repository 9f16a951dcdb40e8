"""Tests of metrics_log's log lines: the ETA, the validation and early-stopping
lines, and TFDS progress bars kept out of log files."""

import io
import math

import pytest
from absl import logging
from tensorflow_datasets.core.utils import tqdm_utils

from landmark_ssl import metrics_log
from landmark_ssl import train


def test_eta_counts_from_the_first_timed_step():
  # 100 steps; step 1 (with its compilation) ended at t=300, step 11 at
  # t=310: 1 s per step, whatever the compilation took.
  assert metrics_log.eta_seconds(11, 100, 1, 300.0, 310.0) == pytest.approx(89)
  assert math.isnan(metrics_log.eta_seconds(1, 100, 1, 300.0, 300.0))
  assert math.isnan(metrics_log.eta_seconds(5, 100, None, None, 310.0))
  assert metrics_log.eta_seconds(100, 100, 1, 300.0, 400.0) == 0
  line = metrics_log.format_train_line(1, 100, 0.1, {"loss": 1.0}, 10.0,
                                       math.nan)
  assert line.endswith("ETA ?")


def _progress(values, patience):
  """The early-stopping state after each of ``values`` (steps 10, 20, ...)."""
  p = {"best_value": None, "best_step": None, "evals_without_improvement": 0,
       "stopped_early": False, "num_evals": 0}
  out = []
  for i, v in enumerate(values):
    p = train.update_early_stopping(p, v, 10 * (i + 1), "min", patience)
    out.append(p)
  return out


def test_validation_lines_say_new_best_worse_and_tie():
  new, worse, tie = _progress([0.6, 0.7, 0.6], patience=5)
  assert metrics_log.format_validation_line(
      10, {"landmark_error": 0.6}, "landmark_error", new) == (
          "validation at step 10: landmark_error 0.6 (new best "
          "landmark_error)")
  assert metrics_log.format_validation_line(
      20, {"landmark_error": 0.7}, "landmark_error", worse).endswith(
          "(best landmark_error 0.6 at step 10; 1 evaluations without "
          "improvement)")
  line = metrics_log.format_validation_line(30, {"landmark_error": 0.6},
                                            "landmark_error", tie)
  assert tie["best_step"] == 30 and tie["evals_without_improvement"] == 2
  assert "landmark_error equals the best 0.6" in line
  assert "the best checkpoint moves to this step" in line
  assert "no improvement, 2 evaluations without one" in line
  # Never "best ... at step 30; 2 evaluations without improvement".
  assert "at step 30;" not in line


def test_early_stopping_on_a_tie_reads_as_one():
  *_, last = _progress([0.533, 0.6, 0.533], patience=2)
  assert last["stopped_early"] and last["best_step"] == 30
  assert metrics_log.format_early_stop_line(30, "landmark_error", 2, last) == (
      "Early stopping at step 30: the validation landmark_error did not "
      "improve on 0.533 in 2 evaluations (the best equalled at this step, "
      "whose checkpoint is kept).")
  *_, last = _progress([0.5, 0.6, 0.7], patience=2)
  assert metrics_log.format_early_stop_line(30, "landmark_error", 2, last) == (
      "Early stopping at step 30: the validation landmark_error did not "
      "improve on 0.5 in 2 evaluations (the best at step 10).")


class _Terminal(io.StringIO):

  def isatty(self):
    return True


@pytest.fixture
def restore_logging():
  handler = logging.get_absl_handler()
  filters = list(handler.filters)
  yield
  handler.filters[:] = filters
  tqdm_utils.enable_progress_bar()


def _bar_output(capfd) -> str:
  capfd.readouterr()
  for _ in tqdm_utils.tqdm(range(30), desc="Generating train examples"):
    pass
  return capfd.readouterr().err


def test_tfds_progress_bars_stay_out_of_files(restore_logging, capfd):
  tqdm_utils.enable_progress_bar()
  metrics_log.quiet_library_logs(_Terminal())  # a terminal: bars stay
  assert "\r" in _bar_output(capfd)
  metrics_log.quiet_library_logs(io.StringIO())  # a file, e.g. log.txt
  out = _bar_output(capfd)
  assert "\r" not in out and "\x1b" not in out and "Generating" not in out
