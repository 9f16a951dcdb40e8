"""A run directory: the names of its files, how they are written and read,
the check that a workdir may take a run, its lock, and its status.

Every tool reaches a run's files through this module (train and evaluate
write them; sweep, report, figures, predict and suggest read them); no other
module spells their names. JAX-free: the analysis tools import it without
JAX (only :func:`inspect_workdir` loads ``checkpointing`` when a checkpoint
folder needs a look).

===========================  ==============================================
``config.json``              the run's config (written first; a rerun must
                             match it)
``label_subset.json``        the training images that keep landmark labels
``checkpoints/<step>/``      orbax: the latest, the previous and the best
``metrics.jsonl``            one JSON line per log / evaluation event
``tensorboard/``             TensorBoard events
``results.json``             final metrics of the best checkpoint (written
                             last: its ``status`` is ``finished``)
``ced_<split>.json``         cumulative error distribution of a test split
``predictions_<split>.npz``  per-image predictions of a test split
``evaluation.json``          written by ``landmark_ssl.evaluate``
``run.lock``                 held (``flock``) by the process training the run
``log.txt``                  the run's output, when a sweep started it
``figures/``                 ``landmark_ssl.figures`` (with ``captions.json``)
===========================  ==============================================

A sweep directory holds one run directory per run, plus ``sweep.lock`` in
each and its own ``figures/``.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import fcntl
import json
import os
import pathlib
import socket
from typing import Iterator

from absl import logging
from etils import epath
import numpy as np

from landmark_ssl import configs

CONFIG = "config.json"
LABEL_SUBSET = "label_subset.json"
CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
TENSORBOARD_HPARAMS = "hparams"  # tensorboard/hparams/: the HParams entry
RESULTS = "results.json"
EVALUATION = "evaluation.json"
LOCK = "run.lock"
LOG = "log.txt"
SWEEP_LOCK = "sweep.lock"
FIGURES = "figures"
FIGURE_CAPTIONS = "captions.json"
_CED_PREFIX, _CED_SUFFIX = "ced_", ".json"
_PREDICTIONS_PREFIX, _PREDICTIONS_SUFFIX = "predictions_", ".npz"

# What a run writes (and --overwrite removes; nothing else there is touched).
_ARTIFACTS = (CONFIG, RESULTS, LABEL_SUBSET, METRICS, CHECKPOINTS, TENSORBOARD,
              EVALUATION)
_ARTIFACT_PATTERNS = (f"{_CED_PREFIX}*{_CED_SUFFIX}",
                      f"{_PREDICTIONS_PREFIX}*{_PREDICTIONS_SUFFIX}")
# Top-level keys every config of this program has: a config.json without
# them was not written by a run.
CONFIG_KEYS = ("seed", "costs", "data", "model", "train")
# The events of metrics.jsonl (see metrics_log), and how each line starts.
EVENTS = ("start", "train", "eval", "test", "error")
EVENT_LINE_START = '{"event": '
_TENSORBOARD_PREFIX = "events.out.tfevents."  # tensorboardX's file names


def ced_file(split: str) -> str:
  """The name of a test split's cumulative error distribution file."""
  return f"{_CED_PREFIX}{split}{_CED_SUFFIX}"


def predictions_file(split: str) -> str:
  """The name of a test split's per-image predictions file."""
  return f"{_PREDICTIONS_PREFIX}{split}{_PREDICTIONS_SUFFIX}"


class CorruptFileError(ValueError):
  """A run's JSON file that cannot be read (cut short by a crash or a full
  disk, or edited)."""


class ConfigMismatchError(ValueError):
  """The workdir holds a run of a different config."""


class ForeignFilesError(ValueError):
  """The workdir holds files under a run's names that no run of this program
  can be shown to have written (another program's, or a user's)."""


class NotADirectoryWorkdirError(ValueError):
  """The workdir's path is a file, or lies under one."""


class WorkdirBusyError(RuntimeError):
  """Another process holds the workdir's lock (it is training that run)."""


class Status(str, enum.Enum):
  """Where a run directory stands (:meth:`RunDir.status`)."""
  NEW = "new"  # no config.json: nothing of a run yet
  STARTED = "started"  # a config, no finished results; nobody training it
  RUNNING = "running"  # a process holds its lock
  FINISHED = "finished"  # results.json says so


# --------------------------------------------------------------------------
# writing and reading files


def write_json(path, value) -> None:
  """Writes JSON atomically (a kill never leaves a half-written file)."""
  path = epath.Path(path)
  tmp = path.parent / (path.name + ".tmp")
  tmp.write_text(json.dumps(value, indent=2) + "\n")
  os.replace(os.fspath(tmp), os.fspath(path))


def rewrite_advice(path) -> str:
  """How to get a good copy of the run file ``path`` back."""
  path = epath.Path(path)
  name, run_dir = path.name, path.parent
  if name == RESULTS:
    return ("Run the run's python -m landmark_ssl.main command again (same "
            "--config and --workdir): it goes on from its latest checkpoint "
            f"and writes {RESULTS} again.")
  if name == CONFIG:
    return (f"Restore it: a finished run's {RESULTS} holds a copy under "
            '"config".')
  if name.startswith(_CED_PREFIX) or name == EVALUATION:
    return (f"python -m landmark_ssl.evaluate --workdir={run_dir} writes it "
            "again from the best checkpoint.")
  return "Restore it from a copy."


def read_json(path, fix: str | None = None) -> dict:
  """The JSON object in the run file ``path``.

  Raises:
    CorruptFileError: ``path`` holds no JSON object; the message names the
      file and where it breaks, then ``fix`` (what to do about it; default
      :func:`rewrite_advice`).
  """
  path = epath.Path(path)
  fix = rewrite_advice(path) if fix is None else fix
  text = path.read_bytes().decode("utf-8", errors="replace")
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    cut = e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated")
    ends = "it ends early: cut short by a crash or a full disk. " if cut else ""
    raise CorruptFileError(
        f"{path} is not valid JSON ({e.msg} at line {e.lineno} column "
        f"{e.colno}, byte {e.pos} of {len(text)}); {ends}{fix}") from None
  if not isinstance(value, dict):
    raise CorruptFileError(f"{path} holds a JSON {type(value).__name__}, not "
                           f"the object a run writes. {fix}")
  return value


def _json_or_none(path):
  try:
    return json.loads(epath.Path(path).read_text())
  except (OSError, ValueError):
    return None


def read_events(path, warn: bool = True) -> list[dict]:
  """The events of a ``metrics.jsonl``, in order.

  A line that is not a JSON object (the last one, cut short when a crash or
  a full disk stopped a write; any other only if the file was damaged) is
  skipped with a warning naming the file and line (unless not ``warn``);
  everything else is kept.
  """
  path = epath.Path(path)
  lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
  events = []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except ValueError:
      record = None
    if isinstance(record, dict):
      events.append(record)
      continue
    if not warn:
      continue
    logging.warning(
        "%s, line %d of %d: %s; skipped, every other line is kept: %.60r",
        path, number, len(lines),
        "an incomplete last line, cut short by a crash or a full disk"
        if number == len(lines) else "not a JSON event (the file was damaged)",
        line)
  return events


def is_metrics_file(path) -> bool:
  """Whether every line of ``path`` is an event of ``metrics_log.MetricsLog``
  (the last one may be cut short by a crash)."""
  try:
    lines = epath.Path(path).read_text().splitlines()
  except (OSError, UnicodeDecodeError):
    return False
  for i, line in enumerate(lines):
    try:
      record = json.loads(line)
    except ValueError:
      if i == len(lines) - 1 and line.startswith(EVENT_LINE_START):
        continue
      return False
    if not (isinstance(record, dict) and record.get("event") in EVENTS and
            isinstance(record.get("step"), int)):
      return False
  return True


def is_tensorboard_dir(path) -> bool:
  """Whether the folder ``path`` holds nothing but TensorBoard event files."""
  return all(p.is_file() and p.name.startswith(_TENSORBOARD_PREFIX)
             for p in epath.Path(path).iterdir())


def read_predictions(path) -> dict[str, np.ndarray]:
  """A ``predictions_<split>.npz`` as a dict; ``index`` defaults to the
  split order when the pipeline did not store it."""
  with epath.Path(path).open("rb") as f, np.load(f) as data:
    out = {k: data[k] for k in data.files}
  if "index" not in out:
    out["index"] = np.arange(len(out["pred_landmarks"]))
  return out


# --------------------------------------------------------------------------
# a run directory


class RunDir:
  """The files of the run in ``path`` (which need not exist yet)."""

  def __init__(self, path):
    self.path = epath.Path(path)

  def __repr__(self) -> str:
    return f"RunDir({os.fspath(self.path)!r})"

  def __fspath__(self) -> str:
    return os.fspath(self.path)

  @property
  def config_file(self) -> epath.Path:
    return self.path / CONFIG

  @property
  def label_subset_file(self) -> epath.Path:
    return self.path / LABEL_SUBSET

  @property
  def checkpoint_dir(self) -> epath.Path:
    return self.path / CHECKPOINTS

  @property
  def metrics_file(self) -> epath.Path:
    return self.path / METRICS

  @property
  def tensorboard_dir(self) -> epath.Path:
    return self.path / TENSORBOARD

  @property
  def results_file(self) -> epath.Path:
    return self.path / RESULTS

  @property
  def evaluation_file(self) -> epath.Path:
    return self.path / EVALUATION

  @property
  def lock_file(self) -> epath.Path:
    return self.path / LOCK

  @property
  def log_file(self) -> epath.Path:
    return self.path / LOG

  @property
  def figures_dir(self) -> epath.Path:
    return self.path / FIGURES

  def ced_file(self, split: str) -> epath.Path:
    return self.path / ced_file(split)

  def predictions_file(self, split: str) -> epath.Path:
    return self.path / predictions_file(split)

  def is_run(self) -> bool:
    """Whether the directory holds a run's config."""
    return self.config_file.exists()

  def read_config(self) -> dict:
    """The stored ``config.json`` (as written: see ``configs.stored_config``
    for the keys added since).

    Raises:
      FileNotFoundError: there is none (not a run directory).
      CorruptFileError: it cannot be read.
    """
    if not self.config_file.exists():
      raise FileNotFoundError(
          f"{self.path} has no {CONFIG}: not a landmark_ssl run directory "
          "(give the --workdir of a run).")
    return read_json(self.config_file)

  def read_results(self) -> dict | None:
    """``results.json`` (``None`` before the run finished)."""
    if not self.results_file.exists():
      return None
    return read_json(self.results_file)

  def read_events(self, warn: bool = True) -> list[dict]:
    """The events of ``metrics.jsonl`` (:func:`read_events`; empty if none)."""
    if not self.metrics_file.exists():
      return []
    return read_events(self.metrics_file, warn)

  def read_ced(self, split: str) -> dict:
    return read_json(self.ced_file(split))

  def read_predictions(self, split: str) -> dict[str, np.ndarray]:
    return read_predictions(self.predictions_file(split))

  def has_split_outputs(self, split: str) -> bool:
    """Whether the run wrote the CED or predictions of ``split``."""
    return (self.ced_file(split).exists() or
            self.predictions_file(split).exists())

  def write_json(self, name: str, value) -> None:
    """Writes the run file ``name`` (one of this module's names) atomically."""
    write_json(self.path / name, value)

  def is_finished(self) -> bool:
    """Whether ``results.json`` says the run finished (an unreadable one
    does not)."""
    results = _json_or_none(self.results_file)
    return isinstance(results, dict) and results.get("status") == "finished"

  def is_locked(self) -> bool:
    """Whether a process holds ``run.lock`` (it is training the run)."""
    if "://" in os.fspath(self.path) or not self.lock_file.exists():
      return False
    try:
      fd = os.open(os.fspath(self.lock_file), os.O_RDONLY)
    except OSError:
      return False
    try:
      fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
      return True
    finally:
      os.close(fd)
    return False

  def refuse_if_training(self, fix: str) -> None:
    """Raises ``WorkdirBusyError`` (naming the holder, then ``fix``) if a
    process is training the run."""
    if self.is_locked():
      raise WorkdirBusyError(
          f"{self.path} is being trained: {_lock_holder(self.lock_file)} "
          f"holds {self.lock_file}. {fix}")

  def status(self) -> Status:
    if self.is_finished():
      return Status.FINISHED
    if self.is_locked():
      return Status.RUNNING
    return Status.STARTED if self.is_run() else Status.NEW

  def has_run_state(self) -> bool:
    """Whether it holds a checkpoint or results (not just a config)."""
    ckpt = self.checkpoint_dir
    return self.results_file.exists() or (
        ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir()))

  def run_files(self) -> list[epath.Path]:
    """Its files and folders under the names a run writes (what
    ``--overwrite`` removes; anything else there is never touched). Empty
    folders and files are left out: they hold nothing to lose."""
    if not self.path.is_dir():
      return []
    paths = [self.path / name for name in _ARTIFACTS]
    for pattern in _ARTIFACT_PATTERNS:
      paths.extend(sorted(self.path.glob(pattern)))
    return [p for p in paths if p.is_dir() and any(p.iterdir()) or
            p.is_file() and p.stat().length > 0]


def find_results(root) -> Iterator[tuple[str, dict | None, str | None]]:
  """``(run directory, results, error)`` of every ``results.json`` under
  ``root``, in sorted order: ``results`` the file's object, or ``None`` with
  ``error`` saying why it could not be read."""
  for dirpath, dirs, files in os.walk(os.fspath(root)):
    dirs.sort()
    if RESULTS not in files:
      continue
    try:
      yield dirpath, read_json(os.path.join(dirpath, RESULTS)), None
    except (OSError, CorruptFileError) as e:
      yield dirpath, None, str(e)


def holds_runs(root) -> bool:
  """Whether any directory under ``root`` (or ``root``) holds a run's
  ``config.json``: started, finished or not."""
  return any(CONFIG in files for _, _, files in os.walk(os.fspath(root)))


# --------------------------------------------------------------------------
# may a run use this workdir?


def is_run_config(value) -> bool:
  """Whether ``value`` (a stored ``config.json``) is a config of this program."""
  return isinstance(value, dict) and all(k in value for k in CONFIG_KEYS)


def _written_before_first_checkpoint(path: epath.Path) -> bool:
  """Whether the content of run file ``path`` shows that a run of this
  program wrote it before its first checkpoint: its config, label subset,
  metrics log, TensorBoard events, or a checkpoint folder holding only
  orbax's unfinished saves. Anything else (results, evaluations, a folder
  with other files, a file in another format) proves nothing."""
  name = path.name
  if name == CONFIG:
    return is_run_config(_json_or_none(path))
  if name == LABEL_SUBSET:
    subset = _json_or_none(path)
    return isinstance(subset, dict) and isinstance(subset.get("indices"), list)
  if name == METRICS:
    return is_metrics_file(path)
  if name == TENSORBOARD:
    return is_tensorboard_dir(path)
  if name == CHECKPOINTS:
    # orbax (and JAX) only here: the analysis tools never come this far.
    from landmark_ssl import checkpointing  # pylint: disable=g-import-not-at-top
    return checkpointing.holds_only_unfinished_saves(path)
  return False


def inspect_workdir(config_dict: dict, workdir, overwrite: bool
                    ) -> list[epath.Path]:
  """Decides what a run of ``config_dict`` may do with ``workdir``; reads only.

  * No run files (:meth:`RunDir.run_files`): a new run.
  * A ``config.json`` equal to ``config_dict``: the same run, resumed.
  * A ``config.json`` of another config with a checkpoint or results:
    :class:`ConfigMismatchError` (the message names the differing keys),
    unless ``overwrite``.
  * A ``config.json`` of another config from a run that never reached its
    first checkpoint (e.g. stopped by a mistyped dataset name): taken over
    if every run file there is one such a run writes (keeping the
    ``label_subset.json`` of a round that ``suggest`` prepared), else
    :class:`ForeignFilesError` naming the others, unless ``overwrite``.
  * Run files without a ``config.json`` (a run writes it first, so they are
    not a run's of this program, or their config was deleted):
    :class:`ForeignFilesError` naming them, unless ``overwrite``.

  Returns:
    The run files to remove before the run starts (``overwrite`` or a
    take-over); empty for a new or resumed run.
  """
  run = RunDir(workdir)
  workdir = run.path
  present = run.run_files()
  names = ", ".join(p.name for p in present)
  stored_path = run.config_file
  differences = configs.config_differences
  if overwrite:
    stored = _json_or_none(stored_path)
    if is_run_config(stored) and not differences(stored, config_dict):
      return []  # the same run: resumed
    if present:
      logging.warning("--overwrite: deleting %s in %s (%s).", names, workdir,
                      "; ".join(differences(stored, config_dict))
                      if is_run_config(stored) else f"no {CONFIG} of a run")
    return present
  if stored_path not in present:
    if present:
      raise ForeignFilesError(
          f"{workdir} holds {names} but no {CONFIG}: files this run did not "
          f"write (a run writes its {CONFIG} first), or a run whose {CONFIG} "
          f"was deleted. Nothing was changed. Use another --workdir, restore "
          f"its {CONFIG}, or pass --overwrite to delete those files.")
    return []
  others = ", ".join(p.name for p in present if p != stored_path)
  stored = read_json(stored_path, (
      f"Restore it (a finished run's {RESULTS} holds a copy under "
      '"config"), use another --workdir, or pass --overwrite to start this '
      "run again from scratch" + (f" (deleting {others})." if others else ".")))
  if not is_run_config(stored):
    unproven = [p for p in present if not _written_before_first_checkpoint(p)]
    raise ForeignFilesError(
        f"{stored_path} is not the config of a landmark_ssl run (it lacks "
        f"the keys {list(CONFIG_KEYS)}): {workdir} is another program's "
        "directory, and " + ", ".join(str(p) for p in unproven) + " are not "
        "this program's. Nothing was changed. Use another --workdir, or pass "
        f"--overwrite to delete the run files ({names}).")
  diffs = differences(stored, config_dict)
  if not diffs:
    return []
  if run.has_run_state():
    raise ConfigMismatchError(
        f"{workdir} holds a run of a different config:\n  " +
        "\n  ".join(diffs) +
        "\nUse another --workdir, or pass --overwrite to replace that run.")
  unproven = [p for p in present if not _written_before_first_checkpoint(p)]
  if unproven:
    raise ForeignFilesError(
        f"{workdir} holds the {CONFIG} of another config (" +
        "; ".join(diffs) + ") and no checkpoint, but also " +
        ", ".join(str(p) for p in unproven) + ", which no run of it can "
        "have written before its first checkpoint. Nothing was changed. Use "
        "another --workdir, or pass --overwrite to delete the run files "
        f"({names}).")
  logging.warning("No checkpoint yet: replacing the config in %s (%s).",
                  workdir, "; ".join(diffs))
  subset = run.label_subset_file
  if subset in present and is_prepared_subset(subset):
    logging.warning(
        "Keeping %s: a round prepared by suggest --next_workdir (its "
        "labelled images are not the config's draw), so the run trains on "
        "them with this command's settings; for the settings of the round "
        "it came from, give that run's command instead.", subset)
    present = [p for p in present if p != subset]
  return present


def is_prepared_subset(path) -> bool:
  """Whether the ``label_subset.json`` at ``path`` was written for a next
  round by ``suggest`` (it lists the ``suggested`` images): a choice of
  images, not a draw that the config repeats."""
  subset = _json_or_none(path)
  return isinstance(subset, dict) and "suggested" in subset


def _lock_holder(path: epath.Path) -> str:
  """Who holds the lock file ``path``, as its holder wrote it."""
  try:
    holder = json.loads(path.read_text())
    return (f"pid {holder['pid']} on host {holder['host']} (since "
            f"{holder['since']})")
  except (OSError, ValueError, KeyError, TypeError):
    return "a process that has not yet written its pid and host"


def _remove_if_only(directory: epath.Path, lock: epath.Path) -> None:
  """Removes ``directory`` if ``lock`` (held by the caller) is all it holds."""
  try:
    if [p.name for p in directory.iterdir()] == [lock.name]:
      lock.unlink()
      directory.rmdir()
  except OSError as e:  # something appeared meanwhile: keep it all
    logging.debug("Kept %s: %s", directory, e)


@contextlib.contextmanager
def workdir_lock(workdir):
  """Holds ``<workdir>/run.lock`` (``flock``, exclusive) while in the block:
  one process at a time trains the run of a workdir. The lock goes with the
  process (a killed holder releases it); the file stays, unless this call
  made the workdir and the block left nothing else in it (a run that
  failed its checks before writing anything leaves no directory behind).

  Raises:
    WorkdirBusyError: another process holds it (the message names its pid
      and host).
    NotADirectoryWorkdirError: the path is a file, or lies under one.
  """
  run = RunDir(workdir)
  if "://" in os.fspath(run.path):  # object stores have no file locks
    yield
    return
  made = not run.path.exists()
  try:
    run.path.mkdir(parents=True, exist_ok=True)
  except (FileExistsError, NotADirectoryError):
    path = pathlib.Path(os.fspath(run.path))
    file = next(p for p in [path, *path.parents] if p.exists())
    raise NotADirectoryWorkdirError(
        f"The workdir {path} cannot be a directory: {file} is a file. Give "
        "--workdir the path of a directory (it is made if missing).") from None
  path = run.lock_file
  fd = os.open(os.fspath(path), os.O_RDWR | os.O_CREAT, 0o644)
  locked = False
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      locked = True
    except OSError:
      raise WorkdirBusyError(
          f"{run.path} is in use: {_lock_holder(path)} holds {path} and is "
          "training this run. Wait for it to end (or stop it), then run the "
          "same command again; or use another --workdir.") from None
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.datetime.now().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(holder) + "\n").encode())
    yield
  finally:
    if locked and made:
      _remove_if_only(run.path, path)
    os.close(fd)  # releases the lock

