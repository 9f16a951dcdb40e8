"""Tests of metrics_log's log lines: the ETA, the validation and early-stopping
lines, TFDS progress bars kept out of log files, and what TensorBoard gets."""

import io
import json
import math
import pathlib
import struct

import numpy as np
import pytest
from absl import logging
from tensorflow_datasets.core.utils import tqdm_utils

from landmark_ssl import metrics_log
from landmark_ssl import rundir
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


def _tensorboard_records(folder):
  """``[(tag, step, value or text)]`` of the event files in ``folder``, read
  with tensorboardX's own protos (TFRecord framing: length, CRC, data, CRC)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  out = []
  for path in sorted(pathlib.Path(folder).glob("events.out.tfevents.*")):
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4
      for v in event.summary.value:
        if v.HasField("tensor") and v.tensor.string_val:
          out.append((v.tag, event.step, v.tensor.string_val[0].decode()))
        elif v.HasField("simple_value") or v.WhichOneof("value") is None:
          out.append((v.tag, event.step, v.simple_value))
        else:
          out.append((v.tag, event.step, None))
  return out


def test_tensorboard_tags_config_and_hparams(tmp_path):
  rng = np.random.default_rng()
  config = {"seed": int(rng.integers(100)), "costs": "L+T",
            "optim": {"learning_rate": float(rng.uniform(1e-4, 1e-2))},
            "data": {"test_splits": ["test"]}}
  log = metrics_log.MetricsLog(tmp_path, None, True, config=config)
  lr, ips, loss = rng.uniform(size=3)
  log.write("train", 10, {"loss": float(loss)}, epoch=1.0,
            images_per_s=float(ips), learning_rate=float(lr), wall_time_s=3.0)
  err = float(rng.uniform())
  log.write("eval", 10, {"landmark_error": err}, split="validation")
  log.write("test", 10, {"landmark_error": err, "auc@0.08": 0.5}, split="test")
  log.write_hparams(config, {"test": {"landmark_error": err,
                                      "num_images": 7}})
  log.close()
  run = rundir.RunDir(tmp_path)
  records = _tensorboard_records(run.tensorboard_dir)
  scalars = {(t, s): v for t, s, v in records if isinstance(v, float)}
  assert scalars[("train/loss", 10)] == pytest.approx(loss)
  assert scalars[("train/learning_rate", 10)] == pytest.approx(lr)
  assert scalars[("train/images_per_s", 10)] == pytest.approx(ips)
  assert scalars[("eval/validation/landmark_error", 10)] == pytest.approx(err)
  assert scalars[("final/test/landmark_error", 10)] == pytest.approx(err)
  assert ("final/test/auc_at_0.08", 10) in scalars
  assert not any(t.startswith("test/") for t, _, _ in records)
  (text,) = [v for t, _, v in records if t.startswith("config")]
  assert json.loads(text.strip("`\n")) == config
  hparams = _tensorboard_records(run.tensorboard_dir /
                                 metrics_log.HPARAMS_RUN)
  tags = {t for t, _, _ in hparams}
  assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= tags
  session = [e for e in hparams if e[0] == "_hparams_/session_start_info"]
  assert session
  blob = (run.tensorboard_dir / metrics_log.HPARAMS_RUN)
  raw = b"".join(p.read_bytes() for p in blob.glob("events.out.tfevents.*"))
  for key in ("seed", "optim.learning_rate", "data.test_splits",
              "final/test/landmark_error"):
    assert key.encode() in raw


def test_a_run_shows_its_predictions_and_hparams_in_tensorboard(
    tiny_blocks_run):
  run = rundir.RunDir(tiny_blocks_run.workdir)
  evals = [e["step"] for e in run.read_events() if e["event"] == "eval"]
  records = _tensorboard_records(run.tensorboard_dir)
  images = [s for t, s, _ in records if t == "eval/validation/predictions"]
  assert evals and images == evals  # one image per evaluation
  tags = {t for t, _, _ in records}
  assert "final/test/landmark_error" in tags and "train/learning_rate" in tags
  assert not any(t.startswith("test/") for t in tags)
  raw = b"".join(p.read_bytes() for p in (
      run.tensorboard_dir / metrics_log.HPARAMS_RUN).glob("events.*"))
  results = run.read_results()
  assert b"final/test/landmark_error" in raw and b"optim.learning_rate" in raw
  assert results["status"] == "finished"
