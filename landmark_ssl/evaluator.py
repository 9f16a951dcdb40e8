"""Evaluation of a run: predictions over a split, their metrics, the files
of a test split, and the restore-and-evaluate of a run's best checkpoint.

``train`` evaluates its program's state with :func:`predict_split` and
:func:`split_metrics` (validation at each evaluation, the best checkpoints
at the end); ``evaluate`` (the CLI), ``predict``, ``figures`` and
``trained_run`` restore a finished run with :func:`restore_run`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from landmark_ssl import checkpointing
from landmark_ssl import configs
from landmark_ssl import evaluation
from landmark_ssl import input_pipeline
from landmark_ssl import models
from landmark_ssl import program as program_lib
from landmark_ssl import rundir
from landmark_ssl import steps

_EVAL_KEYS = ("image", "landmarks", "visible", "normalizer", "mask", "labels")
_OPTIONAL_EVAL_KEYS = ("index", "landmark_radius")


class NoCheckpointError(FileNotFoundError):
  """The workdir has no config or no checkpoint."""


def final_splits(config) -> list[str]:
  """The splits a finished run is evaluated on: its ``eval_split``, then
  its ``test_splits``."""
  return [config.data.eval_split] + [
      s for s in config.data.test_splits if s != config.data.eval_split]


def predict_split(program: program_lib.Program, state, data_config,
                  split: str) -> list[dict[str, np.ndarray]]:
  """Runs the program's forward pass over every example of ``split`` once.

  Returns:
    One dict per run of ``program`` (the split is read once for all), of
    host numpy arrays without the padding: ``pred_landmarks``,
    ``landmarks``, ``visible``, ``normalizer``, ``logits_<head>``,
    ``label_<feature>`` (every class feature of the dataset) and ``index``
    (each image's example index in its split, when the pipeline gives it).
  """
  chunks = []
  for local in input_pipeline.eval_batches(
      data_config, split, jax.process_index(), jax.process_count()):
    batch = steps.global_batch(
        {k: local[k] for k in _EVAL_KEYS + _OPTIONAL_EVAL_KEYS if k in local},
        program.mesh)
    preds = program.eval_fn(state, batch)
    del batch["image"]
    chunks.append(multihost_utils.process_allgather(
        {"preds": preds, "batch": batch}, tiled=True))
  if not chunks:
    raise ValueError(f"Split {split!r} of {data_config.name!r} yielded no batches.")
  cat = lambda *xs: np.concatenate(xs, axis=0)
  batch = jax.tree.map(cat, *[c["batch"] for c in chunks])
  run_axis = 1 if program.vectorized else 0
  run_cat = lambda *xs: np.concatenate(xs, axis=run_axis)
  preds = jax.tree.map(run_cat, *[c["preds"] for c in chunks])
  if not program.vectorized:
    return [_split_outputs(preds, batch)]
  take = lambda i: jax.tree.map(lambda x: x[i], preds)
  return [_split_outputs(take(i), batch) for i in range(program.num_runs)]


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
  """``evaluation.summarize`` of :func:`predict_split` outputs:
  ``(metrics, per-image errors)``."""
  n = outputs["pred_landmarks"].shape[0]
  return evaluation.summarize(
      outputs["pred_landmarks"], outputs["landmarks"], outputs["visible"],
      outputs["normalizer"], np.ones((n,)), normalizer,
      logits={h: outputs[f"logits_{h}"] for h in heads},
      labels={h: outputs[f"label_{h}"] for h in heads},
      radii=outputs.get("landmark_radius"))


def selection_value(metrics: Mapping[str, float], terms: frozenset) -> float:
  """The selection metric of validation ``metrics`` (``configs.selection_rule``:
  the landmark error, or without L the mean accuracy of the class heads)."""
  name, _ = configs.selection_rule(terms)
  if name == "landmark_error":
    return float(metrics["landmark_error"])
  accs = [v for k, v in metrics.items() if k.startswith("accuracy/")]
  if not accs:
    raise ValueError("Selection by accuracy needs class heads "
                     "(config.data.class_heads) for costs without L.")
  return float(np.mean(accs))


def write_split_outputs(workdir, split: str, outputs: Mapping[str, np.ndarray],
                        errors: np.ndarray, normalizer: str, step: int) -> None:
  """``predictions_<split>.npz`` and ``ced_<split>.json`` of one split."""
  run = rundir.RunDir(workdir)
  with run.predictions_file(split).open("wb") as f:
    np.savez(f, errors=errors, step=np.int64(step), **outputs)
  finite = np.sort(errors[np.isfinite(errors)])
  top = float(finite[-1]) if finite.size else 1.0
  if normalizer != "pixels":
    top = max(top, max(evaluation.FAILURE_THRESHOLDS))
  thresholds, fraction = evaluation.ced(errors, top)
  rundir.write_json(run.ced_file(split), {
      "split": split, "step": step, "normalizer": normalizer,
      "error_unit": evaluation.error_unit(normalizer),
      "errors_sorted": finite.tolist(),
      "thresholds": thresholds.tolist(), "fraction": fraction.tolist()})


# --------------------------------------------------------------------------
# a finished run, restored


@dataclasses.dataclass(frozen=True)
class RestoredRun:
  """A run's model and restored checkpoint, ready for forward passes.

  Attributes:
    config: the run's config (from ``config.json``).
    info: the dataset's ``input_pipeline.DatasetInfo``.
    heads: ``{head: num_classes}`` of the classifier branches.
    model: the Flax module.
    state: the restored :class:`steps.TrainState`, replicated on ``mesh``.
    mesh: the ``('data',)`` mesh over all devices.
    step: the restored checkpoint's step.
  """
  config: ml_collections.ConfigDict
  info: Any
  heads: dict
  model: Any
  state: Any
  mesh: Any
  step: int


def read_config(workdir) -> ml_collections.ConfigDict:
  """The ``config.json`` of the run in ``workdir``, keys added since at
  their defaults (``configs.with_defaults``).

  Raises:
    NoCheckpointError: ``workdir`` has no ``config.json``.
    rundir.CorruptFileError: it is not valid JSON (the message says so).
  """
  run = rundir.RunDir(workdir)
  if not run.is_run():
    raise NoCheckpointError(
        f"{workdir} has no {rundir.CONFIG}: not a landmark_ssl run "
        "directory (train one with python -m landmark_ssl.main).")
  return ml_collections.ConfigDict(configs.with_defaults(run.read_config()))


def restore_run(workdir, step: int | None = None,
                data_dir: str | None = None) -> RestoredRun:
  """Builds the run's model and restores checkpoint ``step`` (default: the
  best) of the run in ``workdir``.

  Args:
    workdir: the run directory.
    step: a checkpoint step; ``None`` for the best one.
    data_dir: replaces ``config.data.data_dir`` (a run moved to another
      machine); ``None`` keeps the stored one.

  Raises:
    NoCheckpointError: no config, no checkpoint, or no checkpoint ``step``.
  """
  run = rundir.RunDir(workdir)
  config = read_config(workdir)
  ckpt_dir = run.checkpoint_dir
  if not ckpt_dir.exists():
    raise NoCheckpointError(
        f"{workdir} has no checkpoint ({ckpt_dir} is missing): train the run "
        "first with python -m landmark_ssl.main.")
  if data_dir is not None:
    config.data.data_dir = data_dir
  terms = steps.parse_costs(config.costs)
  info = input_pipeline.get_dataset_info(config.data)
  config = input_pipeline.with_class_heads(config, info)  # '*': all
  heads = program_lib.model_heads(config, info)
  model = models.create_model(config.model, info.num_landmarks, heads)
  settings = steps.StepSettings.from_config(config, model.landmark_cost)
  mesh = steps.make_mesh()
  # The optimizer only shapes the restore target; its schedule length is moot.
  tx = program_lib.make_optimizer(config.optim, 1)
  state = program_lib.create_train_state(model, tx, settings, info.image_shape,
                                         jax.random.key(0), mesh)
  _, mode = configs.selection_rule(terms)
  mngr = checkpointing.manager(ckpt_dir, mode, read_only=True)
  try:
    if not mngr.all_steps():
      raise NoCheckpointError(f"{ckpt_dir} holds no checkpoint: train the run "
                              "first with python -m landmark_ssl.main.")
    if step is None:
      step = mngr.best_step()
    elif step not in mngr.all_steps():
      raise NoCheckpointError(f"No checkpoint of step {step} in {ckpt_dir}; it "
                              f"has {list(mngr.all_steps())}.")
    state, _ = checkpointing.restore_whole(mngr, step, state)
  finally:
    mngr.close()
  return RestoredRun(config=config, info=info, heads=heads, model=model,
                     state=state, mesh=mesh, step=int(step))


def evaluate_run(workdir, splits=None, step: int | None = None,
                 write: bool = True) -> dict:
  """Evaluates checkpoint ``step`` (default: the best) of the run in
  ``workdir`` on ``splits`` (default: :func:`final_splits`), printing each
  split's metrics; with ``write``, also its test split files and
  ``evaluation.json``.

  Returns:
    ``{"step": s, "normalizer": ..., "metrics": {split: metrics}}``.

  Raises:
    rundir.WorkdirBusyError: with ``write``, a process is training the run.
  """
  if write:
    rundir.RunDir(workdir).refuse_if_training(
        "Evaluate it when that run has ended: its checkpoints and which of "
        "them is best are still changing, so the files written now would "
        "not be the finished run's.")
  run = restore_run(workdir, step)
  config, heads, step = run.config, run.heads, run.step
  unknown = [s for s in splits or () if s not in run.info.split_sizes]
  if unknown:
    raise ValueError(
        f"Dataset {run.info.name!r} has no split {', '.join(map(repr, unknown))}"
        f"; its splits are {sorted(run.info.split_sizes)}. Name those in "
        "--splits, or leave it out for the run's own validation and test "
        f"splits ({', '.join(final_splits(config))}).")
  steps.check_batch_size(config.data.eval_batch_size, run.mesh,
                         "config.data.eval_batch_size")
  program = program_lib.Program.for_evaluation(run.mesh)
  all_metrics = {}
  for split in splits or final_splits(config):
    (outputs,) = predict_split(program, run.state, config.data, split)
    metrics, errors = split_metrics(outputs, config.eval.normalizer, heads)
    all_metrics[split] = metrics
    print(f"{split} (step {step}): " +
          " ".join(f"{k} {v:.5g}" for k, v in metrics.items()))
    if write and jax.process_index() == 0:
      write_split_outputs(workdir, split, outputs, errors,
                          config.eval.normalizer, step)
  result = {"step": int(step), "normalizer": config.eval.normalizer,
            "metrics": all_metrics}
  if write and jax.process_index() == 0:
    rundir.RunDir(workdir).write_json(rundir.EVALUATION, result)
  return result
