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
* ``loss.{alpha, gamma, weight_decay, elt_on, elt.{rotation, scale,
  translation}}``: see ``steps``.
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
metrics as an uninterrupted run (bit-identical on CPU). SIGTERM saves a
checkpoint and returns ``status='preempted'``; a finished run returns its
stored results without training.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
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
from landmark_ssl import evaluation
from landmark_ssl import input_pipeline
from landmark_ssl import metrics_log
from landmark_ssl import models
from landmark_ssl import steps

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
LABEL_SUBSET_FILE = "label_subset.json"
# Files and folders a run writes in its workdir (removed by overwrite).
_RUN_ARTIFACTS = (CONFIG_FILE, RESULTS_FILE, LABEL_SUBSET_FILE,
                  metrics_log.METRICS_FILE, checkpointing.CHECKPOINT_DIR,
                  metrics_log.TENSORBOARD_DIR, "evaluation.json")
_RUN_ARTIFACT_PATTERNS = ("ced_*.json", "predictions_*.npz")


class ConfigMismatchError(ValueError):
  """The workdir holds a run of a different config."""


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


def _flatten(tree: Mapping, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping) and value:
      flat.update(_flatten(value, name + "."))
    else:
      flat[name] = value
  return flat


def config_differences(stored: Mapping, given: Mapping) -> list[str]:
  """Human-readable differences between two config dicts, one per key."""
  a, b = _flatten(stored), _flatten(given)
  missing = object()
  diffs = []
  for key in sorted(set(a) | set(b)):
    old, new = a.get(key, missing), b.get(key, missing)
    if old != new:
      show = lambda v: "(absent)" if v is missing else json.dumps(v)
      diffs.append(f"{key}: workdir has {show(old)}, given {show(new)}")
  return diffs


def selection_rule(terms: frozenset) -> tuple[str, str]:
  """``(metric, mode)`` watched by early stopping and best-checkpoint keeping."""
  return ("landmark_error", "min") if "L" in terms else ("accuracy", "max")


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


def create_train_state(model, tx, settings, image_shape, rng, mesh):
  """A fresh, replicated :class:`steps.TrainState`."""
  def init(rng):
    dummy = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
    params = model.init({"params": rng}, dummy, train=False)["params"]
    return steps.TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                                   settings=settings)
  return jax.jit(init, out_shardings=steps.replicated(mesh))(rng)


_EVAL_KEYS = ("image", "landmarks", "visible", "normalizer", "mask", "labels")


def predict_split(state, eval_fn, data_config, split: str, mesh
                  ) -> dict[str, Any]:
  """Runs ``eval_fn`` over every example of ``split`` once.

  Returns host numpy arrays without the padding: ``pred_landmarks``,
  ``landmarks``, ``visible``, ``normalizer``, ``logits_<head>``,
  ``label_<feature>`` (every class feature of the dataset) and ``index``
  (each image's example index in its split, when the pipeline gives it).
  """
  chunks = []
  for local in input_pipeline.eval_batches(
      data_config, split, jax.process_index(), jax.process_count()):
    batch = steps.global_batch(
        {k: local[k] for k in _EVAL_KEYS + ("index",) if k in local}, mesh)
    preds = eval_fn(state, batch)
    del batch["image"]
    chunks.append(multihost_utils.process_allgather(
        {"preds": preds, "batch": batch}, tiled=True))
  if not chunks:
    raise ValueError(f"Split {split!r} of {data_config.name!r} yielded no batches.")
  cat = lambda *xs: np.concatenate(xs, axis=0)
  full = jax.tree.map(cat, *chunks)
  keep = full["batch"]["mask"] > 0
  out = {
      "pred_landmarks": full["preds"]["landmarks"][keep],
      "landmarks": full["batch"]["landmarks"][keep],
      "visible": full["batch"]["visible"][keep],
      "normalizer": full["batch"]["normalizer"][keep],
  }
  for head, logits in full["preds"]["logits"].items():
    out[f"logits_{head}"] = logits[keep]
  for feature, labels in full["batch"]["labels"].items():
    out[f"label_{feature}"] = labels[keep]
  if "index" in full["batch"]:
    out["index"] = full["batch"]["index"][keep]
  return out


def split_metrics(outputs: Mapping[str, np.ndarray], normalizer: str,
                  heads: Iterable[str]) -> tuple[dict, np.ndarray]:
  """``evaluation.summarize`` of :func:`predict_split` outputs."""
  n = outputs["pred_landmarks"].shape[0]
  return evaluation.summarize(
      outputs["pred_landmarks"], outputs["landmarks"], outputs["visible"],
      outputs["normalizer"], np.ones((n,)), normalizer,
      logits={h: outputs[f"logits_{h}"] for h in heads},
      labels={h: outputs[f"label_{h}"] for h in heads})


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


def prepare_workdir(config_dict: dict, workdir: epath.Path, overwrite: bool,
                    is_main: bool) -> None:
  """Checks the workdir's stored config against ``config_dict``; saves it.

  A workdir holding a run (a checkpoint or results) of another config is
  refused (the message names the differing keys) unless ``overwrite``, which
  removes that run's files (only files a run writes; nothing else in the
  folder). A workdir with only the config of a run that never got to its
  first checkpoint (e.g. one stopped by a mistyped dataset name) is taken
  over without ``overwrite``.
  """
  stored_path = workdir / CONFIG_FILE
  if stored_path.exists():
    diffs = config_differences(json.loads(stored_path.read_text()), config_dict)
    has_run = _has_run_state(workdir)
    if diffs and has_run and not overwrite:
      raise ConfigMismatchError(
          f"{workdir} holds a run of a different config:\n  " +
          "\n  ".join(diffs) +
          "\nUse another --workdir, or pass --overwrite to replace that run.")
    if diffs and is_main:
      logging.warning("%s: replacing the %s in %s (%s).",
                      "--overwrite" if has_run else "No checkpoint yet",
                      "run" if has_run else "config", workdir, "; ".join(diffs))
      for name in _RUN_ARTIFACTS:
        path = workdir / name
        if path.is_dir():
          shutil.rmtree(os.fspath(path))
        elif path.exists():
          path.unlink()
      for pattern in _RUN_ARTIFACT_PATTERNS:
        for path in workdir.glob(pattern):
          path.unlink()
  if is_main:
    workdir.mkdir(parents=True, exist_ok=True)
    _write_json(stored_path, config_dict)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("landmark_ssl.prepare_workdir")


class _Preemption:
  """Turns SIGTERM into a request to checkpoint and stop at the next step.

  With several processes the signal may reach them at different steps, so the
  decision comes from JAX's preemption sync point (set up by
  ``jax.distributed.initialize``) instead, which all processes agree on.
  """

  def __init__(self, mngr):
    self._mngr = mngr
    self._event = threading.Event()
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM received: checkpointing and stopping.")
    self._event.set()

  def requested(self, step: int) -> bool:
    if jax.process_count() > 1:
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


def _check_finite(host_metrics: list[dict], first_step: int, mngr) -> None:
  for i, metrics in enumerate(host_metrics):
    # Name the specific term first, the total and the gradient norm last.
    for term in sorted(metrics, key=lambda t: (t in ("loss", "grad_norm"), t)):
      value = float(metrics[term])
      if not math.isfinite(value):
        raise NonFiniteCostError(first_step + i, term, value, mngr.latest_step())


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
  workdir = epath.Path(workdir)
  is_main = jax.process_index() == 0
  terms = steps.parse_costs(config.costs)
  if config.eval.normalizer not in evaluation.NORMALIZERS:
    raise ValueError(f"config.eval.normalizer={config.eval.normalizer!r}; "
                     f"choose one of {list(evaluation.NORMALIZERS)}.")
  config_dict = config_to_dict(config)
  prepare_workdir(config_dict, workdir, overwrite, is_main)
  results_path = workdir / RESULTS_FILE
  if results_path.exists():
    results = json.loads(results_path.read_text())
    if results.get("status") == "finished":
      logging.info("The run in %s already finished (results.json); nothing to "
                   "do. Delete the workdir to train it again.", workdir)
      return results

  segment_start = time.time()
  info = input_pipeline.get_dataset_info(config.data)
  # Loaded from the workdir when a previous segment of the run saved it.
  labeled = input_pipeline.labeled_subset(config.data, config.seed, workdir,
                                          write=is_main)

  heads = model_heads(config, info)
  model = models.create_model(config.model, info.num_landmarks, heads)
  settings = steps.StepSettings.from_config(config, model.landmark_cost)
  mesh = steps.make_mesh()
  steps.check_batch_size(config.data.batch_size, mesh, "config.data.batch_size")
  steps.check_batch_size(config.data.eval_batch_size, mesh,
                         "config.data.eval_batch_size")
  loader = input_pipeline.TrainLoader(config.data, config.seed, labeled,
                                      jax.process_index(), jax.process_count())
  steps_per_epoch = int(loader.steps_per_epoch)
  total_steps = max(1, int(round(config.train.max_epochs * steps_per_epoch)))
  eval_every = max(1, int(round(config.train.eval_every_epochs * steps_per_epoch)))
  ckpt_every = int(config.train.checkpoint_every_steps)
  log_every = max(1, int(config.train.log_every_steps))
  patience = int(config.train.patience)
  selection_name, selection_mode = selection_rule(terms)

  key = jax.random.key(config.seed)
  init_key, train_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
  tx = make_optimizer(config.optim, total_steps)
  state = create_train_state(model, tx, settings, info.image_shape, init_key, mesh)
  mngr = checkpointing.manager(workdir, selection_mode)
  progress = checkpointing.initial_progress()
  if mngr.latest_step() is not None:
    state, progress = checkpointing.restore(mngr, mngr.latest_step(), state)
    logging.info("Resuming from the checkpoint of step %d in %s.",
                 int(state.step), workdir)
  step = int(jax.device_get(state.step))
  wall_before = float(progress["wall_time_s"])
  wall = lambda: wall_before + time.time() - segment_start
  log = metrics_log.MetricsLog(workdir, step, is_main)
  train_fn = steps.jit_train_step(mesh)
  eval_fn = steps.jit_eval_step(mesh)
  global_batch_size = int(config.data.batch_size)
  logging.info(
      "Run %s: %s, %d steps per epoch, %d steps, evaluation every %d steps, "
      "%d labelled images, %d devices, %d processes.", workdir, info.name,
      steps_per_epoch, total_steps, eval_every, len(labeled),
      jax.device_count(), jax.process_count())

  def evaluate_validation() -> dict:
    outputs = predict_split(state, eval_fn, config.data, config.data.eval_split,
                            mesh)
    metrics, _ = split_metrics(outputs, config.eval.normalizer, heads)
    return metrics

  batches = None
  try:
    with _Preemption(mngr) as preemption:
      pending: list = []  # device metrics of steps not yet checked
      window: list = []  # host metrics of checked steps not yet logged
      last_time, last_step = time.time(), step
      if step < total_steps and not progress["stopped_early"]:
        batches = loader.iterate(step)
      while step < total_steps and not progress["stopped_early"]:
        batch = steps.global_batch(next(batches), mesh)
        state, metrics = train_fn(state, batch,
                                  jax.random.fold_in(train_key, step))
        step += 1
        pending.append(metrics)
        is_eval = step % eval_every == 0 or step == total_steps
        is_ckpt = is_eval or (ckpt_every > 0 and step % ckpt_every == 0)
        is_log = is_eval or step % log_every == 0
        preempt = preemption.requested(step)

        if is_ckpt or is_log or preempt:
          # Nothing is checkpointed before its costs are known to be finite.
          host = jax.device_get(pending)
          _check_finite(host, step - len(host) + 1, mngr)
          window.extend(host)
          pending = []
        if is_log:
          means = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
          now = time.time()
          rate = (step - last_step) / max(now - last_time, 1e-9)
          last_time, last_step, window = now, step, []
          images_per_s = rate * global_batch_size
          logging.info(metrics_log.format_train_line(
              step, total_steps, step / steps_per_epoch, means, images_per_s,
              (total_steps - step) / rate))
          log.write("train", step, means, epoch=step / steps_per_epoch,
                    images_per_s=images_per_s, wall_time_s=wall())

        ckpt_metrics = None
        if is_eval:
          val = evaluate_validation()
          value = selection_value(val, terms)
          if not math.isfinite(value):
            raise NonFiniteCostError(step, f"validation {selection_name}", value,
                                     mngr.latest_step())
          progress = update_early_stopping(progress, value, step,
                                           selection_mode, patience)
          ckpt_metrics = dict(val, **{checkpointing.SELECTION_KEY: value})
          logging.info(
              "validation at step %d: %s (best %s %.5g at step %d; %d "
              "evaluations without improvement)", step,
              " ".join(f"{k} {v:.5g}" for k, v in val.items()), selection_name,
              progress["best_value"], progress["best_step"],
              progress["evals_without_improvement"])
          log.write("eval", step, val, split="validation",
                    epoch=step / steps_per_epoch,
                    best_value=progress["best_value"],
                    best_step=progress["best_step"],
                    evals_without_improvement=progress["evals_without_improvement"])
          log.flush()
          if progress["stopped_early"]:
            logging.info("Early stopping at step %d: no improvement of the "
                         "validation %s in %d evaluations.", step,
                         selection_name, patience)

        if is_ckpt or preempt:
          progress["wall_time_s"] = wall()
          checkpointing.save(mngr, step, state, progress, ckpt_metrics)
        if preempt:
          mngr.wait_until_finished()
          logging.warning("Preempted: saved the checkpoint of step %d; run the "
                          "same command again to continue.", step)
          return {"status": "preempted", "step": step}
    _close(batches)
    batches = None
    mngr.wait_until_finished()

    # Final evaluation of the best checkpoint.
    best_step = mngr.best_step()
    if best_step != progress["best_step"]:
      logging.warning("orbax's best step %s differs from the tracked best step "
                      "%s; using orbax's.", best_step, progress["best_step"])
    state, _ = checkpointing.restore(mngr, best_step, state)
    splits = [config.data.eval_split] + [
        s for s in config.data.test_splits if s != config.data.eval_split]
    all_metrics = {}
    for split in splits:
      outputs = predict_split(state, eval_fn, config.data, split, mesh)
      metrics, errors = split_metrics(outputs, config.eval.normalizer, heads)
      name = "validation" if split == config.data.eval_split else split
      all_metrics[name] = metrics
      logging.info("%s (best step %d): %s", name, best_step,
                   " ".join(f"{k} {v:.5g}" for k, v in metrics.items()))
      log.write("test", best_step, metrics, split=name)
      if is_main and split in config.data.test_splits:
        write_split_outputs(workdir, split, outputs, errors,
                            config.eval.normalizer, best_step)
    results = {
        "config": config_dict,
        "status": "finished",
        "steps": step,
        "epochs": step / steps_per_epoch,
        "best_step": int(best_step),
        "stopped_early": bool(progress["stopped_early"]),
        "wall_time_s": wall(),
        "device_kind": jax.devices()[0].device_kind,
        "num_devices": jax.device_count(),
        "num_processes": jax.process_count(),
        "label_subset": {"fraction": float(config.data.labeled_fraction),
                         "count": int(len(labeled)), "file": LABEL_SUBSET_FILE},
        "normalizer": config.eval.normalizer,
        "error_unit": evaluation.error_unit(config.eval.normalizer),
        "selection": {"metric": selection_name, "mode": selection_mode},
        "metrics": all_metrics,
    }
    if is_main:
      _write_json(results_path, results)
    logging.info("Finished: results in %s.", results_path)
    return results
  except NonFiniteCostError as e:
    log.write("error", e.step, {}, message=str(e))
    raise
  finally:
    _close(batches)
    log.close()
    mngr.close()
