"""The training loop: data, model, mesh, checkpoints, evaluation, results.

``train_and_evaluate(config, workdir)`` trains one run and writes, in
``workdir`` (only process 0 writes files; every process checkpoints):

=========================  =================================================
``config.json``            the run's config (a rerun must match it)
``label_subset.json``      the training images that keep landmark labels
``checkpoints/<step>/``    orbax: the latest and the best (see checkpointing)
``metrics.jsonl``          one JSON line per log / evaluation event
``tensorboard/``           TensorBoard events (tensorboardX, no TensorFlow)
``results.json``           final metrics of the best checkpoint (written last)
``ced_<split>.json``       cumulative error distribution of each final split
``predictions_<split>.npz``  per-image predictions of each final split
``run.lock``               held (``flock``) by the process training the run
=========================  =================================================

Config keys read here and by the modules it calls (experiments define them
all; ``--config.x=y`` overrides any of them):

* ``seed``: every random draw derives from it and the step.
* ``costs``: ``'L'``, ``'L+C'``, ``'L+T'``, ``'L+T+C'`` or ``'C'``.
* ``data.{name, data_dir, manual_dir, labeled_fraction, labeled_share,
  batch_size, eval_batch_size, class_heads, train_split, eval_split,
  test_splits}``: see ``input_pipeline`` (also its optional
  ``read_threads``, ``prefetch_batches``); batch sizes are global and must be
  divisible by the number of devices. Declare unset paths as
  ``ml_collections.config_dict.placeholder(str)``, not ``None``: a ``None``
  field cannot be overridden from the command line.
* ``augment.{...}``: passed to ``augment.augment`` inside the train step.
* ``model.{name, ...}``: ``models.create_model``.
* ``loss.{alpha, gamma, weight_decay, elt_on, elt_stop_gradient,
  elt.{rotation, scale, translation}}``: see ``steps``.
* ``optim.learning_rate``; optional ``optim.schedule`` (``'constant'``,
  default, or ``'cosine'``: cosine decay to 0 over ``max_epochs``) and
  ``optim.grad_clip_norm`` (``0`` = off, the default). Adam.
* ``train.max_epochs`` and ``train.eval_every_epochs`` (validation cadence)
  in epochs, fractions allowed (declare them as floats, so that
  ``--config.train.max_epochs=0.5`` parses), ``train.patience`` (evaluations
  without improvement before stopping; ``0`` = never stop early),
  ``train.log_every_steps``, ``train.checkpoint_every_steps`` (``0`` = only
  at evaluations).
* ``eval.normalizer``: one of ``evaluation.NORMALIZERS``.

The selection metric (early stopping and the best checkpoint) is the
validation ``landmark_error`` (lower is better); with costs ``'C'`` (no
landmark labels) it is the validation ``accuracy``, the mean over the class
heads (higher is better).

Resuming: everything random derives from ``(seed, step)``, the loader is
step-indexed and the early-stopping state is checkpointed, so a run killed at
any moment and started again with the same command ends with the same
metrics as an uninterrupted run (bit-identical on CPU), and its
``metrics.jsonl`` reads as the uninterrupted run's (the costs of the steps
since the last log line are checkpointed too). SIGTERM in the training loop
saves a checkpoint and returns ``status='preempted'``; before the loop (or
between its last step and the final evaluation) it returns that without
training (nothing new to save); a finished run returns its stored results
without training.

Several seeds at once: ``train_and_evaluate_seeds(config, seeds, workdirs)``
trains the runs of ``config`` with each seed in one compiled program, one
loop (the loop below serves one run and ``S`` runs alike; with one run it
is exactly the single-run program). Each run keeps everything a lone run of
its seed has: its label subset, loader, init / dropout / ELT / augmentation
keys, workdir and files, checkpoints, early stopping, and final evaluation
of its own best checkpoint. Their states are stacked on a leading run axis
and trained by ``steps.train_steps`` (``jax.vmap`` of ``train_step``); a run
that is not training (stopped early, failed, or waiting for the others to
catch up after a resume from an older checkpoint) keeps its state: its
update is masked. Checkpoints hold single-run states, so a workdir can
move between the two modes. Results equal those of the runs trained alone
up to float rounding (vmap orders the convolution sums differently), and a
killed ``S``-run program resumed with the same runs ends bit-identical to
an uninterrupted one on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import math
import os
import shutil
import signal
import socket
import threading
import time
from typing import Any, Iterable, Mapping

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import optax

from landmark_ssl import checkpointing
from landmark_ssl import configs
from landmark_ssl import evaluation
from landmark_ssl import input_pipeline
from landmark_ssl import metrics_log
from landmark_ssl import models
from landmark_ssl import provenance
from landmark_ssl import steps

CONFIG_FILE = configs.CONFIG_FILE
RESULTS_FILE = "results.json"
LABEL_SUBSET_FILE = input_pipeline.LABEL_SUBSET_FILE
EVALUATION_FILE = "evaluation.json"  # written by landmark_ssl.evaluate
# Files and folders a run writes in its workdir (removed by overwrite).
_RUN_ARTIFACTS = (CONFIG_FILE, RESULTS_FILE, LABEL_SUBSET_FILE,
                  metrics_log.METRICS_FILE, checkpointing.CHECKPOINT_DIR,
                  metrics_log.TENSORBOARD_DIR, EVALUATION_FILE)
_RUN_ARTIFACT_PATTERNS = ("ced_*.json", "predictions_*.npz")
# Held (flock) by the process training the run, for as long as it runs;
# holds the holder's pid, host and start time.
LOCK_FILE = "run.lock"
# Top-level keys every config of this program has (base_config's): a
# config.json without them was not written by a run.
_CONFIG_KEYS = ("seed", "costs", "data", "model", "train")


class ConfigMismatchError(ValueError):
  """The workdir holds a run of a different config."""


class ForeignFilesError(ValueError):
  """The workdir holds files under a run's names that no run of this program
  can be shown to have written (another program's, or a user's)."""


class CorruptFileError(ValueError):
  """A run's JSON file that cannot be read (cut short by a crash or a full
  disk, or edited)."""


class WorkdirBusyError(RuntimeError):
  """Another process holds the workdir's lock (it is training that run)."""


class NonFiniteCostError(FloatingPointError):
  """A cost became NaN or infinite."""

  def __init__(self, step: int, term: str, value: float, last_checkpoint):
    self.step, self.term, self.value = step, term, value
    super().__init__(
        f"Non-finite cost at step {step}: {term} = {value}. Training stopped; "
        f"the last good checkpoint is step {last_checkpoint}. Lower "
        "config.optim.learning_rate or set config.optim.grad_clip_norm, then "
        "start again in a new --workdir (or with --overwrite).")


# --------------------------------------------------------------------------
# pure helpers


def config_to_dict(config) -> dict:
  """The config as plain JSON types (tuples become lists), keys sorted."""
  return json.loads(config.to_json(sort_keys=True))


# The differences between a workdir's stored config and the given one (the
# comparison ``sweep`` makes too, without importing this module).
config_differences = configs.config_differences


def config_errors(config) -> list[str]:
  """What is wrong with the settings of ``config`` that no data is needed to
  see, one message per key naming it and the fix (empty: nothing)."""
  errors = []

  def need(key: str, ok, rule: str) -> None:
    node = config
    for part in key.split("."):
      node = node.get(part) if hasattr(node, "get") else None
    try:
      good = ok(node)
    except (TypeError, ValueError):
      good = False
    if not good:
      errors.append(f"config.{key}={node!r} {rule}; set --config.{key}=...")

  need("seed", lambda v: int(v) == v and v >= 0,
       "must be an integer >= 0 (every random draw derives from it)")
  need("optim.learning_rate", lambda v: float(v) > 0 and math.isfinite(v),
       "must be a finite number > 0")
  need("optim.grad_clip_norm", lambda v: v is None or float(v) >= 0,
       "must be >= 0 (0 = no clipping)")
  need("optim.schedule", lambda v: v in (None, "constant", "cosine"),
       "must be 'constant' or 'cosine'")
  need("train.max_epochs", lambda v: float(v) > 0 and math.isfinite(v),
       "must be > 0 (fractions allowed)")
  need("train.eval_every_epochs", lambda v: float(v) > 0 and math.isfinite(v),
       "must be > 0 (fractions allowed)")
  need("train.patience", lambda v: int(v) == v and v >= 0,
       "must be an integer >= 0 (0 = never stop early)")
  need("train.log_every_steps", lambda v: int(v) == v and v >= 1,
       "must be an integer >= 1")
  need("train.checkpoint_every_steps", lambda v: int(v) == v and v >= 0,
       "must be an integer >= 0 (0 = only at evaluations)")
  need("data.batch_size", lambda v: int(v) == v and v >= 1,
       "must be an integer >= 1")
  need("data.eval_batch_size", lambda v: int(v) == v and v >= 1,
       "must be an integer >= 1")
  need("data.labeled_fraction", lambda v: 0 < float(v) <= 1,
       "must be in (0, 1]")
  need("data.test_splits", lambda v: isinstance(v, (tuple, list)) and all(
      isinstance(x, str) and x for x in v),
       "must be a tuple of split names, e.g. \"('test',)\"")
  need("eval.normalizer", lambda v: v in evaluation.NORMALIZERS,
       f"must be one of {list(evaluation.NORMALIZERS)}")
  for key in ("data.data_dir", "data.manual_dir"):
    need(key, lambda v: v is None or "://" in str(v) or not os.path.exists(
        os.path.expanduser(str(v))) or os.path.isdir(os.path.expanduser(
            str(v))), "is a file, not a directory: give a directory")
  try:
    steps.parse_costs(config.costs)
  except ValueError as e:
    errors.append(str(e))
  return errors


def data_errors(config, info) -> list[str]:
  """What is wrong with the splits ``config`` names for the dataset of
  ``info`` (``input_pipeline.DatasetInfo``), one message per split."""
  sizes = dict(info.split_sizes)
  named = [("data.train_split", config.data.train_split),
           ("data.eval_split", config.data.eval_split)]
  named += [("data.test_splits", split) for split in config.data.test_splits]
  errors = []
  for key, split in named:
    if split not in sizes:
      errors.append(
          f"config.{key} names the split {split!r}, which dataset "
          f"{info.name!r} does not have; its splits are {sorted(sizes)}: "
          f"set --config.{key}=... to those.")
    elif not sizes[split]:
      errors.append(f"config.{key}: split {split!r} of dataset {info.name!r} "
                    "is empty; rebuild the dataset or choose another split.")
  return errors


def _raise_errors(errors: list[str]) -> None:
  """One ``ValueError`` listing ``errors`` (nothing was trained or written)."""
  errors = list(dict.fromkeys(errors))
  if errors:
    raise ValueError("The run cannot start (nothing was trained or written):"
                     "\n  " + "\n  ".join(errors))


selection_rule = configs.selection_rule


def selection_value(metrics: Mapping[str, float], terms: frozenset) -> float:
  """The selection metric of validation ``metrics`` (see module docstring)."""
  name, _ = selection_rule(terms)
  if name == "landmark_error":
    return float(metrics["landmark_error"])
  accs = [v for k, v in metrics.items() if k.startswith("accuracy/")]
  if not accs:
    raise ValueError("Selection by accuracy needs class heads "
                     "(config.data.class_heads) for costs without L.")
  return float(np.mean(accs))


def update_early_stopping(progress: Mapping, value: float, step: int,
                          mode: str, patience: int) -> dict:
  """Early-stopping state after an evaluation with selection ``value``.

  A strictly better value resets the counter; an equal value does not, but
  moves ``best_step`` to the later step (as orbax's ``BestN`` keeps the later
  of equal checkpoints). ``patience <= 0`` never stops.
  """
  p = dict(progress)
  p["num_evals"] = p["num_evals"] + 1
  best = p["best_value"]
  if best is None or (value < best if mode == "min" else value > best):
    p.update(best_value=value, best_step=step, evals_without_improvement=0)
  else:
    if value == best:
      p["best_step"] = step
    p["evals_without_improvement"] += 1
  if patience > 0 and p["evals_without_improvement"] >= patience:
    p["stopped_early"] = True
  return p


def make_optimizer(optim_config, total_steps: int) -> optax.GradientTransformation:
  """Adam with the learning rate (and optional schedule, clipping) of the config."""
  lr = float(optim_config.learning_rate)
  schedule = optim_config.get("schedule", "constant")
  if schedule == "constant":
    learning_rate = lr
  elif schedule == "cosine":
    learning_rate = optax.cosine_decay_schedule(lr, max(int(total_steps), 1))
  else:
    raise ValueError(f"config.optim.schedule={schedule!r}; use 'constant' or "
                     "'cosine'.")
  tx = optax.adam(learning_rate)
  clip = float(optim_config.get("grad_clip_norm", 0.0))
  if clip > 0:
    tx = optax.chain(optax.clip_by_global_norm(clip), tx)
  return tx


def model_heads(config, info) -> dict:
  """``{head: num_classes}`` of the classifier branches (empty without C)."""
  if "C" not in steps.parse_costs(config.costs):
    return {}
  heads = {}
  for head in config.data.class_heads:
    if head not in info.classes:
      raise ValueError(
          f"config.data.class_heads names {head!r}, but dataset "
          f"{info.name!r} has the class features {sorted(info.classes)}.")
    heads[head] = int(info.classes[head])
  return heads


# --------------------------------------------------------------------------
# building blocks of a run


def state_initializer(model, tx, settings, image_shape, mesh):
  """``rng ->`` a fresh, replicated :class:`steps.TrainState` (compiled
  once; call it with each run's key)."""
  def init(rng):
    dummy = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
    params = model.init({"params": rng}, dummy, train=False)["params"]
    return steps.TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                                   settings=settings)
  return jax.jit(init, out_shardings=steps.replicated(mesh))


def create_train_state(model, tx, settings, image_shape, rng, mesh):
  """A fresh, replicated :class:`steps.TrainState`."""
  return state_initializer(model, tx, settings, image_shape, mesh)(rng)


_EVAL_KEYS = ("image", "landmarks", "visible", "normalizer", "mask", "labels")
_OPTIONAL_EVAL_KEYS = ("index", "landmark_radius")


def predict_split(state, eval_fn, data_config, split: str, mesh,
                  num_runs: int | None = None):
  """Runs ``eval_fn`` over every example of ``split`` once.

  Returns host numpy arrays without the padding: ``pred_landmarks``,
  ``landmarks``, ``visible``, ``normalizer``, ``logits_<head>``,
  ``label_<feature>`` (every class feature of the dataset) and ``index``
  (each image's example index in its split, when the pipeline gives it).

  With ``num_runs``, ``state`` holds that many runs stacked on a leading axis
  and ``eval_fn`` is ``steps.jit_eval_steps``: the split is read once and the
  result is a list with the dict of each run.
  """
  chunks = []
  for local in input_pipeline.eval_batches(
      data_config, split, jax.process_index(), jax.process_count()):
    batch = steps.global_batch(
        {k: local[k] for k in _EVAL_KEYS + _OPTIONAL_EVAL_KEYS if k in local},
        mesh)
    preds = eval_fn(state, batch)
    del batch["image"]
    chunks.append(multihost_utils.process_allgather(
        {"preds": preds, "batch": batch}, tiled=True))
  if not chunks:
    raise ValueError(f"Split {split!r} of {data_config.name!r} yielded no batches.")
  cat = lambda *xs: np.concatenate(xs, axis=0)
  batch = jax.tree.map(cat, *[c["batch"] for c in chunks])
  run_cat = lambda *xs: np.concatenate(xs, axis=0 if num_runs is None else 1)
  preds = jax.tree.map(run_cat, *[c["preds"] for c in chunks])
  if num_runs is None:
    return _split_outputs(preds, batch)
  take = lambda i: jax.tree.map(lambda x: x[i], preds)
  return [_split_outputs(take(i), batch) for i in range(num_runs)]


def _split_outputs(preds: Mapping[str, Any], batch: Mapping[str, Any]
                   ) -> dict[str, Any]:
  """The :func:`predict_split` dict of one run's concatenated predictions."""
  keep = batch["mask"] > 0
  out = {
      "pred_landmarks": preds["landmarks"][keep],
      "landmarks": batch["landmarks"][keep],
      "visible": batch["visible"][keep],
      "normalizer": batch["normalizer"][keep],
  }
  for head, logits in preds["logits"].items():
    out[f"logits_{head}"] = logits[keep]
  for feature, labels in batch["labels"].items():
    out[f"label_{feature}"] = labels[keep]
  for key in _OPTIONAL_EVAL_KEYS:
    if key in batch:
      out[key] = batch[key][keep]
  return out


def split_metrics(outputs: Mapping[str, np.ndarray], normalizer: str,
                  heads: Iterable[str]) -> tuple[dict, np.ndarray]:
  """``evaluation.summarize`` of :func:`predict_split` outputs."""
  n = outputs["pred_landmarks"].shape[0]
  return evaluation.summarize(
      outputs["pred_landmarks"], outputs["landmarks"], outputs["visible"],
      outputs["normalizer"], np.ones((n,)), normalizer,
      logits={h: outputs[f"logits_{h}"] for h in heads},
      labels={h: outputs[f"label_{h}"] for h in heads},
      radii=outputs.get("landmark_radius"))


def _write_json(path: epath.Path, obj) -> None:
  """Writes JSON atomically (a kill never leaves a half-written file)."""
  tmp = path.parent / (path.name + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2) + "\n")
  os.replace(os.fspath(tmp), os.fspath(path))


def write_split_outputs(workdir, split: str, outputs: Mapping[str, np.ndarray],
                        errors: np.ndarray, normalizer: str, step: int) -> None:
  """``predictions_<split>.npz`` and ``ced_<split>.json`` of one split."""
  workdir = epath.Path(workdir)
  with (workdir / f"predictions_{split}.npz").open("wb") as f:
    np.savez(f, errors=errors, step=np.int64(step), **outputs)
  finite = np.sort(errors[np.isfinite(errors)])
  top = float(finite[-1]) if finite.size else 1.0
  if normalizer != "pixels":
    top = max(top, max(evaluation.FAILURE_THRESHOLDS))
  thresholds, fraction = evaluation.ced(errors, top)
  _write_json(workdir / f"ced_{split}.json", {
      "split": split, "step": step, "normalizer": normalizer,
      "error_unit": evaluation.error_unit(normalizer),
      "errors_sorted": finite.tolist(),
      "thresholds": thresholds.tolist(), "fraction": fraction.tolist()})


def _has_run_state(workdir: epath.Path) -> bool:
  """Whether ``workdir`` holds a checkpoint or results (not just a config)."""
  ckpt = workdir / checkpointing.CHECKPOINT_DIR
  return (workdir / RESULTS_FILE).exists() or (
      ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir()))


def run_files(workdir: epath.Path) -> list[epath.Path]:
  """The files and folders of ``workdir`` under the names a run writes
  (what ``--overwrite`` removes; anything else there is never touched).
  Empty folders and files are left out: they hold nothing to lose."""
  paths = [workdir / name for name in _RUN_ARTIFACTS]
  for pattern in _RUN_ARTIFACT_PATTERNS:
    paths.extend(sorted(workdir.glob(pattern)))
  return [p for p in paths if p.is_dir() and any(p.iterdir()) or
          p.is_file() and p.stat().length > 0]


def read_json(path, fix: str) -> dict:
  """The JSON object in the run file ``path``.

  Raises:
    CorruptFileError: ``path`` holds no JSON object; the message names the
      file and where it breaks, then ``fix`` (what to do about it).
  """
  path = epath.Path(path)
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


def _json_or_none(path: epath.Path):
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def _is_run_config(value) -> bool:
  """Whether ``value`` (a stored ``config.json``) is a config of this program."""
  return isinstance(value, dict) and all(k in value for k in _CONFIG_KEYS)


def _written_before_first_checkpoint(path: epath.Path) -> bool:
  """Whether the content of run file ``path`` shows that a run of this
  program wrote it before its first checkpoint: its config, label subset,
  metrics log, TensorBoard events, or a checkpoint folder holding only
  orbax's unfinished saves. Anything else (results, evaluations, a folder
  with other files, a file in another format) proves nothing."""
  name = path.name
  if name == CONFIG_FILE:
    return _is_run_config(_json_or_none(path))
  if name == LABEL_SUBSET_FILE:
    subset = _json_or_none(path)
    return isinstance(subset, dict) and isinstance(subset.get("indices"), list)
  if name == metrics_log.METRICS_FILE:
    return metrics_log.is_metrics_file(path)
  if name == metrics_log.TENSORBOARD_DIR:
    return metrics_log.is_tensorboard_dir(path)
  if name == checkpointing.CHECKPOINT_DIR:
    return checkpointing.holds_only_unfinished_saves(path)
  return False


def inspect_workdir(config_dict: dict, workdir, overwrite: bool
                    ) -> list[epath.Path]:
  """Decides what a run of ``config_dict`` may do with ``workdir``; reads only.

  * No run files (:func:`run_files`): a new run.
  * A ``config.json`` equal to ``config_dict``: the same run, resumed.
  * A ``config.json`` of another config with a checkpoint or results:
    :class:`ConfigMismatchError` (the message names the differing keys),
    unless ``overwrite``.
  * A ``config.json`` of another config from a run that never reached its
    first checkpoint (e.g. stopped by a mistyped dataset name): taken over
    if every run file there is one such a run writes
    (:func:`_written_before_first_checkpoint`), else
    :class:`ForeignFilesError` naming the others, unless ``overwrite``.
  * Run files without a ``config.json`` (a run writes it first, so they are
    not a run's of this program, or their config was deleted):
    :class:`ForeignFilesError` naming them, unless ``overwrite``.

  Returns:
    The run files to remove before the run starts (``overwrite`` or a
    take-over); empty for a new or resumed run.
  """
  workdir = epath.Path(workdir)
  present = run_files(workdir) if workdir.is_dir() else []
  names = ", ".join(p.name for p in present)
  stored_path = workdir / CONFIG_FILE
  if overwrite:
    stored = _json_or_none(stored_path)
    if _is_run_config(stored) and not config_differences(stored, config_dict):
      return []  # the same run: resumed
    if present:
      logging.warning("--overwrite: deleting %s in %s (%s).", names, workdir,
                      "; ".join(config_differences(stored, config_dict))
                      if _is_run_config(stored) else
                      f"no {CONFIG_FILE} of a run")
    return present
  if stored_path not in present:
    if present:
      raise ForeignFilesError(
          f"{workdir} holds {names} but no {CONFIG_FILE}: files this run did "
          f"not write (a run writes its {CONFIG_FILE} first), or a run whose "
          f"{CONFIG_FILE} was deleted. Nothing was changed. Use another "
          f"--workdir, restore its {CONFIG_FILE}, or pass --overwrite to "
          "delete those files.")
    return []
  others = ", ".join(p.name for p in present if p != stored_path)
  stored = read_json(stored_path, (
      f"Restore it (a finished run's {RESULTS_FILE} holds a copy under "
      '"config"), use another --workdir, or pass --overwrite to start this '
      "run again from scratch" + (f" (deleting {others})." if others else ".")))
  if not _is_run_config(stored):
    unproven = [p for p in present if not _written_before_first_checkpoint(p)]
    raise ForeignFilesError(
        f"{stored_path} is not the config of a landmark_ssl run (it lacks "
        f"the keys {list(_CONFIG_KEYS)}): {workdir} is another program's "
        "directory, and " + ", ".join(str(p) for p in unproven) + " are not "
        "this program's. Nothing was changed. Use another --workdir, or pass "
        f"--overwrite to delete the run files ({names}).")
  diffs = config_differences(stored, config_dict)
  if not diffs:
    return []
  if _has_run_state(workdir):
    raise ConfigMismatchError(
        f"{workdir} holds a run of a different config:\n  " +
        "\n  ".join(diffs) +
        "\nUse another --workdir, or pass --overwrite to replace that run.")
  unproven = [p for p in present if not _written_before_first_checkpoint(p)]
  if unproven:
    raise ForeignFilesError(
        f"{workdir} holds the {CONFIG_FILE} of another config (" +
        "; ".join(diffs) + ") and no checkpoint, but also " +
        ", ".join(str(p) for p in unproven) + ", which no run of it can "
        "have written before its first checkpoint. Nothing was changed. Use "
        "another --workdir, or pass --overwrite to delete the run files "
        f"({names}).")
  logging.warning("No checkpoint yet: replacing the config in %s (%s).",
                  workdir, "; ".join(diffs))
  return present


def prepare_workdir(config_dict: dict, workdir: epath.Path, overwrite: bool,
                    is_main: bool, remove: list | None = None) -> None:
  """Removes what :func:`inspect_workdir` allows (or ``remove``, its answer
  already given) and saves the config."""
  workdir = epath.Path(workdir)
  if remove is None:
    remove = inspect_workdir(config_dict, workdir, overwrite)
  if is_main:
    for path in remove:
      if path.is_dir():
        shutil.rmtree(os.fspath(path))
      else:
        path.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    _write_json(workdir / CONFIG_FILE, config_dict)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("landmark_ssl.prepare_workdir")


def _lock_holder(path: epath.Path) -> str:
  """Who holds the lock file ``path``, as its holder wrote it."""
  try:
    holder = json.loads(path.read_text())
    return (f"pid {holder['pid']} on host {holder['host']} (since "
            f"{holder['since']})")
  except (OSError, ValueError, KeyError, TypeError):
    return "a process that has not yet written its pid and host"


@contextlib.contextmanager
def workdir_lock(workdir):
  """Holds ``<workdir>/run.lock`` (``flock``, exclusive) while in the block:
  one process at a time trains the run of a workdir. The lock goes with the
  process (a killed holder releases it); the file stays.

  Raises:
    WorkdirBusyError: another process holds it (the message names its pid
      and host).
  """
  workdir = epath.Path(workdir)
  if "://" in str(workdir):  # object stores have no file locks
    yield
    return
  workdir.mkdir(parents=True, exist_ok=True)
  path = workdir / LOCK_FILE
  fd = os.open(os.fspath(path), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      raise WorkdirBusyError(
          f"{workdir} is in use: {_lock_holder(path)} holds {path} and is "
          "training this run. Wait for it to end (or stop it), then run the "
          "same command again; or use another --workdir.") from None
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.datetime.now().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(holder) + "\n").encode())
    yield
  finally:
    os.close(fd)  # releases the lock


class _Stopped(Exception):
  """SIGTERM came outside the training loop: stop (nothing new to save)."""


class _Preemption:
  """Turns SIGTERM into a request to stop: in the training loop, after
  checkpointing the next step (:meth:`requested`); outside it, at the next
  :meth:`check`, which raises :class:`_Stopped` (a run that has not started
  its loop, or has left it, has nothing new to save). The signal handler only
  sets a flag: the stop happens in this module's own code, never inside a
  library call.

  With several processes the signal may reach them at different steps, so
  in the loop the decision comes from JAX's preemption sync point (set up by
  ``jax.distributed.initialize``) instead, which all processes agree on.
  """

  def __init__(self):
    self._mngr = None  # in the loop: the manager whose sync point decides
    self._event = threading.Event()
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM received: stopping (in the training loop: after "
                    "saving a checkpoint).")
    self._event.set()

  def check(self) -> None:
    """Raises :class:`_Stopped` if SIGTERM came (outside the loop)."""
    if self._event.is_set():
      raise _Stopped()

  @contextlib.contextmanager
  def in_loop(self, mngr):
    """The training loop: SIGTERM is answered by :meth:`requested`."""
    self._mngr = mngr
    try:
      yield self
    finally:
      self._mngr = None

  def requested(self, step: int) -> bool:
    if jax.process_count() > 1 and self._mngr is not None:
      return bool(self._mngr.reached_preemption(step))
    return self._event.is_set()

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _close(iterator) -> None:
  """Stops the prefetch threads of a loader iterator (if it has any)."""
  close = getattr(iterator, "close", None)
  if close is not None:
    close()


def _check_finite(host_metrics: list[tuple[int, dict]], mngr) -> None:
  """Raises :class:`NonFiniteCostError` for the first non-finite cost of the
  ``(step, metrics)`` pairs (host values, in step order)."""
  for step, metrics in host_metrics:
    # Name the specific term first, the total and the gradient norm last.
    for term in sorted(metrics, key=lambda t: (t in ("loss", "grad_norm"), t)):
      value = float(metrics[term])
      if not math.isfinite(value):
        raise NonFiniteCostError(step, term, value, mngr.latest_step())


class _Program:
  """The compiled steps of the runs trained together, and their state layout.

  One run: ``steps.jit_train_step`` / ``jit_eval_step`` on its plain state,
  exactly the single-run program. ``S > 1`` runs: the same pure steps under
  ``jax.vmap`` (``steps.jit_train_steps`` / ``jit_eval_steps``) on the runs'
  states stacked along a leading run axis; run ``i`` is slot ``i``.

  Args:
    mesh: the ``('data',)`` mesh.
    train_keys: each run's training key (step ``t`` uses ``fold_in(key, t)``).
  """

  def __init__(self, mesh, train_keys: list):
    self.mesh = mesh
    self.num_runs = len(train_keys)
    self.vectorized = self.num_runs > 1
    if self.vectorized:
      self._train = steps.jit_train_steps(mesh)
      self._eval = steps.jit_eval_steps(mesh)
      self._stack = steps.jit_stack_runs(mesh)
      self._take = steps.jit_take_run(mesh)
      self._keys = self._stack(list(train_keys))
      self._fold = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)),
                           out_shardings=steps.replicated(mesh))
    else:
      self._train = steps.jit_train_step(mesh)
      self._eval = steps.jit_eval_step(mesh)
      self._key = train_keys[0]

  def stack(self, states: list):
    """The program's state of the runs' single-run ``states``."""
    return self._stack(list(states)) if self.vectorized else states[0]

  def take(self, state, slot: int):
    """Run ``slot``'s single-run state (a copy when vectorised)."""
    return self._take(state, slot) if self.vectorized else state

  def train(self, state, local_batches: list, step: int, active: list):
    """One step of the active runs: ``(state, metrics)``.

    ``local_batches[i]`` is run ``i``'s process-local batch of ``step``, or
    ``None`` if run ``i`` is not active (its slot then computes on another
    run's batch and its update is discarded).
    """
    if not self.vectorized:
      batch = steps.global_batch(local_batches[0], self.mesh)
      return self._train(state, batch, jax.random.fold_in(self._key, step))
    filler = next(b for b in local_batches if b is not None)
    local = [filler if b is None else b for b in local_batches]
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *local)
    batch = steps.global_batch(stacked, self.mesh, run_axis=True)
    return self._train(state, batch, self._fold(self._keys, step),
                       np.asarray(active, bool))

  def metrics_of(self, host_metrics: dict, slot: int) -> dict:
    """Run ``slot``'s values of host (``device_get``) step metrics."""
    if not self.vectorized:
      return host_metrics
    return {k: v[slot] for k, v in host_metrics.items()}

  def predict(self, state, data_config, split: str) -> list[dict]:
    """:func:`predict_split` of every run (one pass over the split)."""
    if self.vectorized:
      return predict_split(state, self._eval, data_config, split, self.mesh,
                           self.num_runs)
    return [predict_split(state, self._eval, data_config, split, self.mesh)]


@dataclasses.dataclass(eq=False)
class _Run:
  """What one run of a program owns: its config (seed), files, data stream,
  keys, checkpoints, log and early-stopping state."""
  index: int  # position in the caller's list
  config: Any
  workdir: epath.Path
  config_dict: dict
  tag: str  # prefix of its log lines ('' for a lone run)
  slot: int = 0  # position in the program's run axis
  labeled: Any = None
  loader: Any = None
  train_key: Any = None
  mngr: Any = None
  log: Any = None
  progress: dict | None = None
  step: int = 0
  wall_before: float = 0.0
  best_step: int | None = None
  batches: Any = None  # the loader's iterator, from the run's first step here
  window: list = dataclasses.field(default_factory=list)  # metrics to log
  last_time: float = 0.0
  last_step: int = 0
  eta_from: tuple | None = None  # (step, time) after this process's first step
  outcome: dict | None = None  # results, or a failure


@dataclasses.dataclass(frozen=True)
class _Schedule:
  """The step counts of a run, derived from its config and data."""
  steps_per_epoch: int
  total_steps: int
  eval_every: int
  ckpt_every: int  # 0: only at evaluations
  log_every: int
  patience: int
  selection_name: str
  selection_mode: str

  @classmethod
  def of(cls, config, steps_per_epoch: int) -> "_Schedule":
    t = config.train
    name, mode = selection_rule(steps.parse_costs(config.costs))
    return cls(
        steps_per_epoch=steps_per_epoch,
        total_steps=max(1, int(round(t.max_epochs * steps_per_epoch))),
        eval_every=max(1, int(round(t.eval_every_epochs * steps_per_epoch))),
        ckpt_every=int(t.checkpoint_every_steps),
        log_every=max(1, int(t.log_every_steps)), patience=int(t.patience),
        selection_name=name, selection_mode=mode)


def _log_train(run: _Run, step: int, schedule: _Schedule, batch_size: int,
               wall_s: float) -> None:
  """Logs the mean costs of ``run.window`` (the steps since its last log)."""
  s = schedule
  means = {k: float(np.mean([m[k] for m in run.window])) for k in run.window[0]}
  now = time.time()
  rate = (step - run.last_step) / max(now - run.last_time, 1e-9)
  run.last_time, run.last_step, run.window = now, step, []
  images_per_s = rate * batch_size
  since_step, since_time = run.eta_from or (None, None)
  logging.info("%s%s", run.tag, metrics_log.format_train_line(
      step, s.total_steps, step / s.steps_per_epoch, means, images_per_s,
      metrics_log.eta_seconds(step, s.total_steps, since_step, since_time,
                              now)))
  run.log.write("train", step, means, epoch=step / s.steps_per_epoch,
                images_per_s=images_per_s, wall_time_s=wall_s)


def _record_validation(run: _Run, step: int, val: dict, value: float,
                       schedule: _Schedule) -> dict:
  """Early stopping and logs of ``run``'s validation metrics ``val`` (with
  selection ``value``); returns the metrics of its checkpoint."""
  s = schedule
  progress = update_early_stopping(run.progress, value, step, s.selection_mode,
                                   s.patience)
  run.progress = progress
  logging.info("%s%s", run.tag, metrics_log.format_validation_line(
      step, val, s.selection_name, progress))
  run.log.write(
      "eval", step, val, split="validation", epoch=step / s.steps_per_epoch,
      best_value=progress["best_value"], best_step=progress["best_step"],
      evals_without_improvement=progress["evals_without_improvement"])
  run.log.flush()
  if progress["stopped_early"]:
    logging.info("%s%s", run.tag, metrics_log.format_early_stop_line(
        step, s.selection_name, s.patience, progress))
  return dict(val, **{checkpointing.SELECTION_KEY: value})


def _evaluate_best(program: _Program, state, runs: list[_Run], config,
                   heads: dict, is_main: bool) -> dict[int, dict]:
  """Restores the best checkpoint of each unfailed run and evaluates it on
  the validation and test splits (writing their CED and predictions).

  Returns:
    ``{slot: {split name: metrics}}`` of those runs.
  """
  done = [run for run in runs if run.outcome is None]
  best_states = []
  for run in runs:
    run_state = program.take(state, run.slot)
    if run.outcome is None:
      run.best_step, run_state, _ = checkpointing.restore_best(run.mngr,
                                                               run_state)
      if run.best_step != run.progress["best_step"]:
        logging.warning("%sorbax's best step %s differs from the tracked best "
                        "step %s; using orbax's.", run.tag, run.best_step,
                        run.progress["best_step"])
    best_states.append(run_state)  # a failed run's slot: anything of its shape
  state = program.stack(best_states)
  del best_states
  splits = [config.data.eval_split] + [
      s for s in config.data.test_splits if s != config.data.eval_split]
  all_metrics = {run.slot: {} for run in done}
  for split in splits:
    outputs = program.predict(state, config.data, split)
    name = "validation" if split == config.data.eval_split else split
    for run in done:
      metrics, errors = split_metrics(outputs[run.slot],
                                      config.eval.normalizer, heads)
      all_metrics[run.slot][name] = metrics
      logging.info("%s%s (best step %d): %s", run.tag, name, run.best_step,
                   " ".join(f"{k} {v:.5g}" for k, v in metrics.items()))
      run.log.write("test", run.best_step, metrics, split=name)
      if is_main and split in config.data.test_splits:
        write_split_outputs(run.workdir, split, outputs[run.slot], errors,
                            config.eval.normalizer, run.best_step)
  return all_metrics


def _results(run: _Run, schedule: _Schedule, metrics: dict, wall_s: float
             ) -> dict:
  """The ``results.json`` of a finished run (``stack``: the versions, CPU,
  accelerator and code commit that produced it, see ``provenance``)."""
  config = run.config
  device_kind = jax.devices()[0].device_kind
  return {
      "config": run.config_dict,
      "status": "finished",
      "steps": run.step,
      "epochs": run.step / schedule.steps_per_epoch,
      "best_step": int(run.best_step),
      "stopped_early": bool(run.progress["stopped_early"]),
      "wall_time_s": wall_s,
      "device_kind": device_kind,
      "num_devices": jax.device_count(),
      "num_processes": jax.process_count(),
      "label_subset": {"fraction": float(config.data.labeled_fraction),
                       "count": int(len(run.labeled)),
                       "file": LABEL_SUBSET_FILE},
      "normalizer": config.eval.normalizer,
      "error_unit": evaluation.error_unit(config.eval.normalizer),
      "selection": {"metric": schedule.selection_name,
                    "mode": schedule.selection_mode},
      "metrics": metrics,
      "stack": provenance.stack(device_kind),
  }


# --------------------------------------------------------------------------
# the run


def train_and_evaluate(config, workdir, overwrite: bool = False) -> dict:
  """Trains (or resumes) the run of ``config`` in ``workdir`` and evaluates it.

  Returns:
    The results dict (also written to ``results.json``) with
    ``status='finished'``; or ``{'status': 'preempted', 'step': s}`` after a
    SIGTERM (a checkpoint of step ``s`` was saved; run again to continue).

  Raises:
    ConfigMismatchError: the workdir holds a run of a different config.
    NonFiniteCostError: a cost became NaN/inf (no checkpoint of it is kept).
    ValueError, FileNotFoundError: bad config values, missing data.
  """
  return _train_and_evaluate([config], [workdir], overwrite,
                             raise_errors=True)[0]


def seed_configs(config, seeds: Iterable[int]) -> list:
  """One copy of ``config`` per seed, with ``config.seed`` set to it."""
  out = []
  for seed in seeds:
    c = config.copy_and_resolve_references()
    c.seed = int(seed)
    out.append(c)
  return out


def train_and_evaluate_seeds(config, seeds: Iterable[int],
                             workdirs: Iterable, overwrite: bool = False
                             ) -> list[dict]:
  """Trains the runs of ``config`` with each of ``seeds`` in one program.

  Run ``i`` (seed ``seeds[i]``, its own label subset, loader and keys) lives
  in ``workdirs[i]`` with every file a lone run writes there
  (:func:`train_and_evaluate`), and ends with the same results up to float
  rounding: the runs' states are stacked and trained by ``jax.vmap`` of the
  same train step, so the seeds share each pass over the hardware. A run
  that stops early keeps its state (its update is masked) while the others
  continue. A workdir holding a run of the same config and seed (trained
  alone or with other seeds) is resumed from its latest checkpoint, or
  skipped if finished; runs at different steps are brought level by
  training the ones behind first.

  Returns:
    One dict per seed: the results of a finished run, ``{'status':
    'preempted', 'step': s}`` after a SIGTERM, or ``{'status': 'failed',
    'step', 'term', 'message'}`` for a run whose cost became NaN/inf (the
    others carry on; run again to retry it from its last good checkpoint).

  Raises:
    ConfigMismatchError: a workdir holds a run of a different config.
    ValueError, FileNotFoundError: bad config values or seeds, missing data.
  """
  seeds = [int(s) for s in seeds]
  workdirs = [epath.Path(w) for w in workdirs]
  if len(seeds) != len(workdirs):
    raise ValueError(f"{len(seeds)} seeds but {len(workdirs)} workdirs; give "
                     "one workdir per seed.")
  for what, items in (("seed", seeds), ("workdir", [str(w) for w in workdirs])):
    twice = sorted({str(x) for x in items if items.count(x) > 1})
    if twice:
      raise ValueError(f"Each run needs its own {what}; given twice: {twice}.")
  if not seeds:
    raise ValueError("No seeds given.")
  return _train_and_evaluate(seed_configs(config, seeds), workdirs, overwrite,
                             raise_errors=False)


def _train_and_evaluate(configs: list, workdirs: list, overwrite: bool,
                        raise_errors: bool) -> list[dict]:
  """The loop of :func:`train_and_evaluate` for runs whose configs differ
  only in ``seed`` (one :class:`_Program` for all unfinished runs), each
  workdir locked (:func:`workdir_lock`, process 0) from before it is read
  until the run ends.

  With ``raise_errors`` a non-finite cost raises; otherwise that run's
  outcome is a failure and the others continue.
  """
  _raise_errors([e for c in configs for e in config_errors(c)])
  with _Preemption() as preemption:
    try:
      with contextlib.ExitStack() as locks:
        if jax.process_index() == 0:
          for workdir in workdirs:
            locks.enter_context(workdir_lock(workdir))
        return _train_and_evaluate_locked(configs, workdirs, overwrite,
                                          raise_errors, preemption)
    except _Stopped:
      logging.warning("Stopped by SIGTERM outside the training loop: nothing "
                      "new to save. Run the same command again to continue.")
      return [{"status": "preempted", "step": None} for _ in configs]


def _train_and_evaluate_locked(configs: list, workdirs: list, overwrite: bool,
                               raise_errors: bool,
                               preemption: _Preemption) -> list[dict]:
  """:func:`_train_and_evaluate` once its workdirs are locked."""
  is_main = jax.process_index() == 0
  config = configs[0]  # every setting but the seed is shared
  terms = steps.parse_costs(config.costs)
  outcomes: list = [None] * len(configs)
  remove: list = [None] * len(configs)  # what each run replaces
  runs: list[_Run] = []
  for index, (run_config, workdir) in enumerate(zip(configs, workdirs)):
    workdir = epath.Path(workdir)
    config_dict = config_to_dict(run_config)
    results_path = workdir / RESULTS_FILE
    remove[index] = inspect_workdir(config_dict, workdir, overwrite)
    if not remove[index] and results_path.exists():
      try:
        results = read_json(results_path, "The run goes on from its latest "
                            "checkpoint and writes it again when it ends.")
      except CorruptFileError as e:
        logging.warning("%s", e)
        results = {}
      if results.get("status") == "finished":
        logging.info("The run in %s already finished (results.json); nothing "
                     "to do. Delete the workdir to train it again.", workdir)
        outcomes[index] = results
        continue
    tag = f"[{workdir.name}] " if len(configs) > 1 else ""
    runs.append(_Run(index, run_config, workdir, config_dict, tag,
                     slot=len(runs)))
  if not runs:
    return outcomes

  # Everything the runs need (data, splits, heads, model, batch layout) is
  # checked before their workdirs are written and the first step.
  preemption.check()
  info = input_pipeline.get_dataset_info(config.data)
  config = input_pipeline.with_class_heads(config, info)  # '*': all
  _raise_errors(data_errors(config, info))
  input_pipeline.check_readable(config.data, [
      config.data.train_split, config.data.eval_split,
      *config.data.test_splits])
  heads = model_heads(config, info)
  model = models.create_model(config.model, info.num_landmarks, heads)
  settings = steps.StepSettings.from_config(config, model.landmark_cost)
  mesh = steps.make_mesh()
  steps.check_batch_size(config.data.batch_size, mesh,
                         "config.data.batch_size")
  steps.check_batch_size(config.data.eval_batch_size, mesh,
                         "config.data.eval_batch_size")
  preemption.check()
  for run in runs:
    prepare_workdir(run.config_dict, run.workdir, overwrite, is_main,
                    remove=remove[run.index])

  segment_start = time.time()
  wall = lambda run: run.wall_before + time.time() - segment_start
  try:
    for run in runs:
      # Loaded from the workdir when a previous segment of the run saved it.
      run.labeled = input_pipeline.labeled_subset(
          run.config.data, run.config.seed, run.workdir, write=is_main)

    # Costs that read nothing of an unlabelled image (L alone) train on the
    # labelled rows of each batch only: the same mean over the same images,
    # without running the model on the B - n_lab rows it would discard.
    labeled_only = not {"C", "T"} & set(terms)
    for run in runs:
      run.loader = input_pipeline.TrainLoader(
          run.config.data, run.config.seed, run.labeled, jax.process_index(),
          jax.process_count(), labeled_only=labeled_only,
          row_multiple=mesh.devices.size)
    sched = _Schedule.of(config, int(runs[0].loader.steps_per_epoch))
    tx = make_optimizer(config.optim, sched.total_steps)

    init_state = state_initializer(model, tx, settings, info.image_shape, mesh)
    states = []
    for run in runs:
      preemption.check()
      key = jax.random.key(run.config.seed)
      init_key, run.train_key = (jax.random.fold_in(key, 0),
                                 jax.random.fold_in(key, 1))
      state = init_state(init_key)
      run.mngr = checkpointing.manager(run.workdir, sched.selection_mode)
      run.progress = checkpointing.initial_progress()
      latest = checkpointing.restore_latest(run.mngr, state)
      if latest is not None:
        _, state, run.progress = latest
        logging.info("%sResuming from the checkpoint of step %d in %s.",
                     run.tag, int(state.step), run.workdir)
      run.step = int(jax.device_get(state.step))
      run.wall_before = float(run.progress["wall_time_s"])
      # float32, as the step's metrics are, so that the means are the same.
      run.window = [{k: np.float32(v) for k, v in m.items()}
                    for m in run.progress.get("log_window", [])]
      run.log = metrics_log.MetricsLog(run.workdir, run.step, is_main)
      states.append(state)
    program = _Program(mesh, [run.train_key for run in runs])
    state = program.stack(states)
    del states
    global_batch_size = int(runs[0].loader.global_batch_size)  # rows read
    for run in runs:
      logging.info(
          "%sRun %s: %s, %d steps per epoch, %d steps, evaluation every %d "
          "steps, %d labelled images, %d devices, %d processes.", run.tag,
          run.workdir, info.name, sched.steps_per_epoch, sched.total_steps,
          sched.eval_every, len(run.labeled), jax.device_count(),
          jax.process_count())
    if program.vectorized:
      logging.info("Training %d runs in one program (seeds %s).",
                   len(runs), ", ".join(str(r.config.seed) for r in runs))
      if jax.default_backend() == "cpu":
        logging.warning(
            "Several runs in one program pay off on accelerators, where one "
            "small run leaves the device idle; on CPU one run already keeps "
            "the cores busy and the vmapped convolutions can be slower than "
            "the runs one after the other (measure with python -m "
            "landmark_ssl.bench.vectorized_seeds); there, prefer separate "
            "processes (landmark_ssl.sweep without --vectorize_seeds).")

    def trainable(run: _Run) -> bool:
      return (run.outcome is None and run.step < sched.total_steps and
              not run.progress["stopped_early"])

    def fail(run: _Run, error: NonFiniteCostError) -> None:
      run.log.write("error", error.step, {}, message=str(error))
      if raise_errors:
        raise error
      logging.error("%s%s", run.tag, error)
      _close(run.batches)
      run.batches = None
      run.outcome = {"status": "failed", "step": error.step, "term": error.term,
                     "message": str(error)}

    preemption.check()
    with preemption.in_loop(runs[0].mngr):
      pending: list = []  # (step, device metrics, active) not yet checked
      while any(trainable(run) for run in runs):
        # The runs furthest behind train; runs ahead (resumed from a later
        # checkpoint) wait, their slots masked, until the others catch up.
        step = min(run.step for run in runs if trainable(run))
        active = [trainable(run) and run.step == step for run in runs]
        stepped = [run for run, a in zip(runs, active) if a]
        for run in stepped:
          if run.batches is None:
            run.batches = run.loader.iterate(run.step)
            run.last_time, run.last_step = time.time(), run.step
        local = [next(run.batches) if a else None
                 for run, a in zip(runs, active)]
        state, metrics = program.train(state, local, step, active)
        step += 1
        for run in stepped:
          run.step = step
          if run.eta_from is None:  # its compilation is behind us
            run.eta_from = (step, time.time())
        pending.append((step, metrics, active))
        is_eval = step % sched.eval_every == 0 or step == sched.total_steps
        is_ckpt = is_eval or (sched.ckpt_every > 0 and
                              step % sched.ckpt_every == 0)
        is_log = is_eval or step % sched.log_every == 0
        preempt = preemption.requested(step)

        if is_ckpt or is_log or preempt:
          # Nothing is checkpointed before its costs are known to be finite.
          host = jax.device_get([m for _, m, _ in pending])
          for run in runs:
            if run.outcome is not None:
              continue
            mine = [(s, program.metrics_of(h, run.slot))
                    for (s, _, act), h in zip(pending, host) if act[run.slot]]
            try:
              _check_finite(mine, run.mngr)
            except NonFiniteCostError as e:
              fail(run, e)
              continue
            run.window.extend(m for _, m in mine)
          pending = []
          stepped = [run for run in stepped if run.outcome is None]
        if is_log:
          for run in stepped:
            _log_train(run, step, sched, global_batch_size, wall(run))

        ckpt_metrics = {}
        if is_eval and stepped:
          outputs = program.predict(state, config.data, config.data.eval_split)
          for run in stepped:
            val, _ = split_metrics(outputs[run.slot], config.eval.normalizer,
                                   heads)
            value = selection_value(val, terms)
            if math.isfinite(value):
              ckpt_metrics[run.slot] = _record_validation(run, step, val, value,
                                                          sched)
            else:
              fail(run, NonFiniteCostError(
                  step, f"validation {sched.selection_name}", value,
                  run.mngr.latest_step()))
          stepped = [run for run in stepped if run.outcome is None]

        if is_ckpt or preempt:
          for run in stepped:
            run.progress["wall_time_s"] = wall(run)
            # The costs of the steps since the last log line: a resumed run
            # logs the same averages as an uninterrupted one.
            run.progress["log_window"] = [{k: float(v) for k, v in m.items()}
                                          for m in run.window]
            checkpointing.save(run.mngr, step, program.take(state, run.slot),
                               run.progress, ckpt_metrics.get(run.slot))
        if preempt:
          for run in runs:
            run.mngr.wait_until_finished()
          logging.warning("Preempted: saved the checkpoint of step %d; run the "
                          "same command again to continue.", step)
          for run in runs:
            outcomes[run.index] = run.outcome or {"status": "preempted",
                                                  "step": run.step}
          return outcomes
    for run in runs:
      _close(run.batches)
      run.batches = None
      run.mngr.wait_until_finished()

    # Final evaluation of each run's best checkpoint.
    preemption.check()
    if any(run.outcome is None for run in runs):
      all_metrics = _evaluate_best(program, state, runs, config, heads, is_main)
      for run in runs:
        if run.outcome is None:
          run.outcome = _results(run, sched, all_metrics[run.slot], wall(run))
          results_path = run.workdir / RESULTS_FILE
          if is_main:
            _write_json(results_path, run.outcome)
          logging.info("%sFinished: results in %s.", run.tag, results_path)
    for run in runs:
      outcomes[run.index] = run.outcome
    return outcomes
  finally:
    for run in runs:
      _close(run.batches)
      if run.log is not None:
        run.log.close()
      if run.mngr is not None:
        run.mngr.close()
