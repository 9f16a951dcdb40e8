"""Where a run's metrics go: the absl log, ``metrics.jsonl`` and TensorBoard.

``metrics.jsonl`` (in the workdir) has one JSON object per event::

  {"event": "start", "step": 0, "code": {"commit": ..., "dirty": false},
   "device_kind": "cpu", "wall_time_s": 0.0}
  {"event": "train", "step": 200, "epoch": 4.0, "loss": ..., "landmark": ...,
   "images_per_s": ..., "wall_time_s": ...}
  {"event": "eval", "split": "validation", "step": 200, "epoch": 4.0,
   "landmark_error": ..., ..., "best_value": ..., "evals_without_improvement": 0}
  {"event": "test", "split": "test", "step": <best step>, ...}

TensorBoard event files go to ``<workdir>/tensorboard`` (tensorboardX, no
TensorFlow): scalars tagged ``train/<cost>`` (with ``train/learning_rate``
and ``train/images_per_s``), ``eval/<split>/<metric>`` for the validation
at each evaluation, ``final/<split>/<metric>`` for the best checkpoint's
evaluation at the end (``@`` is not allowed in tags and reads ``_at_``:
``final/test/auc_at_0.08``); the run's config as text (``config``); and at
the end an HParams entry (``tensorboard/hparams/``: the flattened config and
the final metrics), so that the runs of a sweep compare in the HParams tab
of ``tensorboard --logdir=<sweep dir>``.

When a run resumes from the checkpoint of step ``s``, the events logged
after ``s`` by the interrupted run are dropped (from ``metrics.jsonl`` and,
through ``purge_step``, from TensorBoard), so the files read as one
uninterrupted run, but for one ``start`` event per (re)start, at the step
it started from, with the code that ran from there (``provenance.code``),
the kind of device it ran on and the training wall time before it
(``START_KEYS``; older runs' starts hold only the first two).
Only process 0 writes (``enabled``).
"""

from __future__ import annotations

import json
import logging as std_logging
import math
import os
import sys

from absl import logging

from landmark_ssl import configs
from landmark_ssl import rundir



def format_duration(seconds: float) -> str:
  """``3725`` -> ``'1:02:05'``."""
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def eta_seconds(step: int, total_steps: int, since_step: int | None,
                since_time: float | None, now: float) -> float:
  """Seconds left at ``step``, at the mean pace since ``(since_step,
  since_time)``: the end of this process's first training step, so the
  compilation it held is not counted (evaluations and checkpoints after it
  are, as they recur); NaN (printed ``?``) before a step has been timed."""
  if since_step is None or step <= since_step:
    return math.nan
  return (total_steps - step) * (now - since_time) / (step - since_step)


def format_validation_line(step: int, values: dict, selection_name: str,
                           progress: dict) -> str:
  """The validation log line, after ``train.update_early_stopping`` gave
  ``progress``: the metrics, then the early-stopping state. A value equal to
  the best is said to be one (it does not count as an improvement, yet the
  best checkpoint moves to it, the later of equals)."""
  metrics = " ".join(f"{k} {v:.5g}" for k, v in values.items())
  best, waiting = progress["best_value"], progress["evals_without_improvement"]
  if waiting == 0:
    state = f"new best {selection_name}"
  elif progress["best_step"] == step:
    state = (f"{selection_name} equals the best {best:.5g}: the best "
             f"checkpoint moves to this step, but it is no improvement, "
             f"{waiting} evaluations without one")
  else:
    state = (f"best {selection_name} {best:.5g} at step "
             f"{progress['best_step']}; {waiting} evaluations without "
             "improvement")
  return f"validation at step {step}: {metrics} ({state})"


def format_early_stop_line(step: int, selection_name: str, patience: int,
                           progress: dict) -> str:
  """The line of a run that stops early at ``step``."""
  best, best_step = progress["best_value"], progress["best_step"]
  where = (f"equalled at this step, whose checkpoint is kept"
           if best_step == step else f"at step {best_step}")
  return (f"Early stopping at step {step}: the validation {selection_name} "
          f"did not improve on {best:.5g} in {patience} evaluations (the best "
          f"{where}).")


def format_train_line(step: int, total_steps: int, epoch: float, values: dict,
                      images_per_s: float, eta_s: float) -> str:
  """The periodic log line: step, epoch, each cost, images/s and ETA."""
  first = ("loss", "landmark", "class")
  last = ("elt", "weight_decay", "grad_norm")
  rank = lambda k: (first.index(k) if k in first else
                    len(first) + 1 + last.index(k) if k in last else len(first))
  costs = " ".join(f"{k} {values[k]:.5g}" for k in sorted(values, key=rank))
  return (f"step {step}/{total_steps} (epoch {epoch:.2f}) {costs} | "
          f"{images_per_s:.1f} img/s, ETA {format_duration(eta_s)}")


# TensorBoard: the final evaluation's tags start "final/" (not "test/test/").
_TAG_PREFIX = {"test": "final"}
# Fields of an event beside its values that are plotted too.
_EXTRA_SCALARS = ("learning_rate", "images_per_s")

# What a "start" event holds beside its event name.
START_KEYS = ("step", "code", "device_kind", "wall_time_s")

# The sub-folder of tensorboard/ holding the HParams entry.
HPARAMS_RUN = rundir.TENSORBOARD_HPARAMS


def tag(prefix: str, name: str) -> str:
  """The TensorBoard tag of metric ``name`` under ``prefix``."""
  return f"{prefix}/{name}".replace("@", "_at_")


class MetricsLog:
  """Appends events to ``metrics.jsonl`` and TensorBoard.

  Args:
    workdir: the run directory.
    resume_step: the step the run (re)starts from; events after it are
      dropped. ``None`` or ``0`` for a fresh run.
    enabled: whether this process writes (process 0 only).
  """

  def __init__(self, workdir, resume_step: int | None, enabled: bool,
               config: dict | None = None):
    self._enabled = enabled
    run = rundir.RunDir(workdir)
    self._path = run.metrics_file
    self._writer = None
    if not enabled:
      return
    if resume_step and self._path.exists():
      kept = [e for e in rundir.read_events(self._path)
              if e.get("step", 0) <= resume_step and e.get("event") != "test"]
      self._path.write_text("".join(json.dumps(e) + "\n" for e in kept))
    elif self._path.exists():
      self._path.unlink()
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._writer = SummaryWriter(
        os.fspath(run.tensorboard_dir),
        purge_step=(resume_step + 1) if resume_step else None)
    if config is not None and not resume_step:
      self._writer.add_text(
          "config", "```\n" + json.dumps(config, indent=2, sort_keys=True) +
          "\n```", global_step=0)

  def write(self, event: str, step: int, values: dict, split: str | None = None,
            **extra) -> None:
    """Logs one event: numeric ``values`` go to TensorBoard, all to the file."""
    if not self._enabled:
      return
    record = {"event": event}  # each line starts rundir.EVENT_LINE_START
    if split is not None:
      record["split"] = split
    record["step"] = int(step)
    record.update(values)
    record.update(extra)
    with self._path.open("a") as f:
      f.write(json.dumps(record) + "\n")
    prefix = _TAG_PREFIX.get(event, event)
    prefix = prefix if split is None else f"{prefix}/{split}"
    scalars = dict(values, **{k: extra[k] for k in _EXTRA_SCALARS if k in extra})
    for name, value in scalars.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        self._writer.add_scalar(tag(prefix, name), value, global_step=step)

  def write_image(self, tag_name: str, image, step: int) -> None:
    """An ``(H, W, 3)`` uint8 image, shown in TensorBoard's Images tab."""
    if not self._enabled:
      return
    self._writer.add_image(tag_name, image, global_step=step,
                           dataformats="HWC")

  def write_hparams(self, config: dict, metrics: dict) -> None:
    """The HParams entry of a finished run: its flattened ``config`` (lists
    as text) and its final ``metrics`` (``{split: {metric: value}}``)."""
    if not self._enabled:
      return
    hparams = {}
    for key, value in configs.flat_items(config):
      if isinstance(value, (bool, int, float, str)):
        hparams[key] = value
      elif value is not None:
        hparams[key] = json.dumps(value)
    final = {tag(f"final/{split}", name): float(value)
             for split, values in metrics.items()
             for name, value in values.items()
             if isinstance(value, (int, float)) and not isinstance(value, bool)}
    self._writer.add_hparams(hparams, final, name=HPARAMS_RUN)

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None


# orbax warnings that are expected here: checkpoints between evaluations
# carry no metrics (only evaluation checkpoints compete for "best"), and
# re-evaluation opens the checkpoints read-only.
_EXPECTED_ORBAX_WARNINGS = ("did not provide metrics", "read_only=True",
                            "is read only")


class _QuietLibraries(std_logging.Filter):
  """Drops orbax's per-save INFO chatter and expected warnings, and TFDS's
  INFO lines on every opening of a dataset, unless ``-v 1``."""

  def filter(self, record):
    if logging.get_verbosity() >= 1:
      return True
    if "/tensorflow_datasets/" in record.pathname:
      return record.levelno >= std_logging.WARNING
    if "/orbax/" not in record.pathname:
      return True
    if record.levelno >= std_logging.WARNING:
      message = record.getMessage()
      return not any(m in message for m in _EXPECTED_ORBAX_WARNINGS)
    return False


def quiet_library_logs(stream=None) -> None:
  """Installs the filter above on absl's log handler (CLI entry points), and
  turns TFDS's progress bars (a dataset built on first use) off when
  ``stream`` (default: stderr, where they go) is not a terminal: in a file,
  such as a sweep's ``log.txt``, they are carriage returns and escape codes."""
  logging.get_absl_handler().addFilter(_QuietLibraries())
  stream = sys.stderr if stream is None else stream
  isatty = getattr(stream, "isatty", None)
  if not (isatty and isatty()):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    tfds.disable_progress_bar()
