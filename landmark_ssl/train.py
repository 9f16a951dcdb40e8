"""The training loop: one run, or the runs of several seeds in one program.

``train_and_evaluate(config, workdir)`` trains (or resumes) one run and
evaluates its best checkpoint; the files it writes in ``workdir`` are
``rundir``'s (only process 0 writes files; every process checkpoints). The
config keys it reads are listed, with their meaning, in ``configs`` and the
experiment files; everything is validated before the first step.

Resuming: everything random derives from ``(seed, step)``, the loader is
step-indexed and the early-stopping state is checkpointed, so a run killed at
any moment and started again with the same command ends with the same
metrics as an uninterrupted run (bit-identical on CPU), and its
``metrics.jsonl`` reads as the uninterrupted run's (the costs of the steps
since the last log line are checkpointed too). SIGTERM in the training loop
saves a checkpoint and returns ``status='preempted'``; before the loop (or
between its last step and the final evaluation) it returns that without
training; a finished run returns its stored results without training.

Several seeds at once: ``train_and_evaluate_seeds(config, seeds, workdirs)``
trains the runs of ``config`` with each seed in one compiled program
(``program.Program``: ``jax.vmap`` of the train step), one loop. Each run
keeps everything a lone run of its seed has (label subset, loader, keys,
workdir, checkpoints, early stopping, final evaluation); a run that is not
training (stopped early, failed, or waiting for the others to catch up after
a resume) keeps its state: its update is masked. Results equal those of the
runs trained alone up to float rounding.

The selection metric (early stopping and the best checkpoint) is
``configs.selection_rule``: the validation landmark error, or without
landmark labels (costs ``'C'``) the mean validation accuracy.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
import numpy as np

from landmark_ssl import cadence
from landmark_ssl import checkpointing
from landmark_ssl import evaluation
from landmark_ssl import evaluator
from landmark_ssl import input_pipeline
from landmark_ssl import metrics_log
from landmark_ssl import models
from landmark_ssl import program as program_lib
from landmark_ssl import provenance
from landmark_ssl import rundir
from landmark_ssl import steps
from landmark_ssl.analysis import plots


# Validation images whose predictions TensorBoard shows at each evaluation.
_LOGGED_IMAGES = 4


class NonFiniteCostError(FloatingPointError):
  """A cost became NaN or infinite."""

  def __init__(self, step: int, term: str, value: float, last_checkpoint):
    self.step, self.term, self.value = step, term, value
    saved = ("no checkpoint was saved yet" if last_checkpoint is None else
             f"the last good checkpoint is step {last_checkpoint}")
    super().__init__(
        f"Non-finite cost at step {step}: {term} = {value}. Training stopped; "
        f"{saved}. Lower "
        "config.optim.learning_rate or set config.optim.grad_clip_norm, then "
        "start again in a new --workdir (or with --overwrite).")


# --------------------------------------------------------------------------
# checks before a run starts


def config_to_dict(config) -> dict:
  """The config as plain JSON types (tuples become lists), keys sorted."""
  return json.loads(config.to_json(sort_keys=True))


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
  need("data.cache_mib", lambda v: v is None or (float(v) >= 0 and
                                                  math.isfinite(v)),
       "must be a number of MiB >= 0 (0 = read batches from the files)")
  need("data.labeled_fraction", lambda v: 0 < float(v) <= 1,
       "must be in (0, 1]")
  need("data.test_splits", lambda v: isinstance(v, (tuple, list)) and all(
      isinstance(x, str) and x for x in v),
       "must be a tuple of split names, e.g. \"('test',)\"")
  need("eval.normalizer", lambda v: v in evaluation.NORMALIZERS,
       f"must be one of {list(evaluation.NORMALIZERS)}")
  for key in ("loss.landmark_weight", "loss.alpha", "loss.gamma",
              "loss.weight_decay"):
    need(key, lambda v: v is None or (float(v) >= 0 and math.isfinite(v)),
         "must be a finite weight >= 0 (a negative one trains its cost "
         "upwards)")
  need("model.beta", lambda v: v is None or (float(v) > 0 and
                                             math.isfinite(v)),
       "must be a finite number > 0 (the soft-argmax's inverse temperature; "
       "0 makes every map uniform)")
  for key in ("data.test_splits", "data.class_heads"):
    names = config.data.get(key.split(".")[1]) or ()
    for name in [n for n in names if isinstance(n, str) and "," in n]:
      parts = ",".join(repr(part.strip()) for part in name.split(","))
      errors.append(
          f"config.{key} names {name!r}, one name with commas; several "
          f"names are a tuple: --config.{key}=\"({parts})\"")
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


def seed_configs(config, seeds: Iterable[int]) -> list:
  """One copy of ``config`` per seed, with ``config.seed`` set to it."""
  out = []
  for seed in seeds:
    c = config.copy_and_resolve_references()
    c.seed = int(seed)
    out.append(c)
  return out


def prepare_workdir(config_dict: dict, workdir, overwrite: bool,
                    is_main: bool, remove: list | None = None) -> None:
  """Removes what ``rundir.inspect_workdir`` allows (or ``remove``, its
  answer already given) and saves the config; every process waits for it."""
  run = rundir.RunDir(workdir)
  if remove is None:
    remove = rundir.inspect_workdir(config_dict, run.path, overwrite)
  if is_main:
    for path in remove:
      if path.is_dir():
        shutil.rmtree(os.fspath(path))
      else:
        path.unlink()
    run.path.mkdir(parents=True, exist_ok=True)
    rundir.write_json(run.config_file, config_dict)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("landmark_ssl.prepare_workdir")


# --------------------------------------------------------------------------
# preemption and faults


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


# --------------------------------------------------------------------------
# the runs of a program, and their log lines


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


def _open_runs(configs: list, workdirs: list, overwrite: bool
               ) -> tuple[list, list[_Run], list]:
  """The runs still to train, after checking each workdir (read only).

  Returns:
    ``(outcomes, runs, remove)``: the stored results of finished runs (by
    position, ``None`` for the others), the others as :class:`_Run`, and
    what each position's workdir needs removed before it starts.
  """
  outcomes: list = [None] * len(configs)
  remove: list = [None] * len(configs)
  runs: list[_Run] = []
  for index, (run_config, workdir) in enumerate(zip(configs, workdirs)):
    run_dir = rundir.RunDir(workdir)
    config_dict = config_to_dict(run_config)
    remove[index] = rundir.inspect_workdir(config_dict, run_dir.path, overwrite)
    if not remove[index] and run_dir.results_file.exists():
      try:
        results = rundir.read_json(run_dir.results_file, (
            "The run goes on from its latest checkpoint and writes it again "
            "when it ends."))
      except rundir.CorruptFileError as e:
        logging.warning("%s", e)
        results = {}
      if results.get("status") == "finished":
        logging.info("The run in %s already finished (%s); nothing to do. "
                     "Delete the workdir to train it again.", run_dir.path,
                     rundir.RESULTS)
        outcomes[index] = results
        continue
    tag = f"[{run_dir.path.name}] " if len(configs) > 1 else ""
    runs.append(_Run(index, run_config, run_dir.path, config_dict, tag,
                     slot=len(runs)))
  return outcomes, runs, remove


def _log_train(run: _Run, step: int, sched: cadence.Schedule,
               batch_size: int, wall_s: float, learning_rate: float) -> None:
  """Logs the mean costs of ``run.window`` (the steps since its last log)."""
  means = {k: float(np.mean([m[k] for m in run.window])) for k in run.window[0]}
  now = time.time()
  rate = (step - run.last_step) / max(now - run.last_time, 1e-9)
  run.last_time, run.last_step, run.window = now, step, []
  images_per_s = rate * batch_size
  since_step, since_time = run.eta_from or (None, None)
  logging.info("%s%s", run.tag, metrics_log.format_train_line(
      step, sched.total_steps, sched.epoch(step), means, images_per_s,
      metrics_log.eta_seconds(step, sched.total_steps, since_step, since_time,
                              now)))
  run.log.write("train", step, means, epoch=sched.epoch(step),
                images_per_s=images_per_s, learning_rate=learning_rate,
                wall_time_s=wall_s)


def _record_validation(run: _Run, step: int, val: dict, value: float,
                       sched: cadence.Schedule) -> dict:
  """Early stopping and logs of ``run``'s validation metrics ``val`` (with
  selection ``value``); returns the metrics of its checkpoint."""
  progress = update_early_stopping(run.progress, value, step,
                                   sched.selection_mode, sched.patience)
  run.progress = progress
  logging.info("%s%s", run.tag, metrics_log.format_validation_line(
      step, val, sched.selection_name, progress))
  run.log.write(
      "eval", step, val, split="validation", epoch=sched.epoch(step),
      best_value=progress["best_value"], best_step=progress["best_step"],
      evals_without_improvement=progress["evals_without_improvement"])
  run.log.flush()
  if progress["stopped_early"]:
    logging.info("%s%s", run.tag, metrics_log.format_early_stop_line(
        step, sched.selection_name, sched.patience, progress))
  return dict(val, **{checkpointing.SELECTION_KEY: value})


def _results(run: _Run, sched: cadence.Schedule, metrics: dict,
             wall_s: float, data_digest: dict) -> dict:
  """The ``results.json`` of a finished run (``stack``: the versions, CPU,
  accelerator, threads and code commit that produced it, see
  ``provenance``, and under ``starts`` the step, code, device kind and
  wall time so far of each (re)start, so that a run resumed on another
  machine says which steps ran where; ``data`` and
  ``label_subset.sha256``: digests of what it read, see
  ``input_pipeline.content_digest``)."""
  config = run.config
  device_kind = jax.devices()[0].device_kind
  stack = provenance.stack(device_kind)
  metrics_file = rundir.RunDir(run.workdir).metrics_file
  if metrics_file.exists():  # process 0's; a resumed run's code per start
    stack["starts"] = [{k: e[k] for k in metrics_log.START_KEYS if k in e}
                       for e in rundir.read_events(metrics_file)
                       if e.get("event") == "start"]
  return {
      "config": run.config_dict,
      "status": "finished",
      "steps": run.step,
      "epochs": sched.epoch(run.step),
      "best_step": int(run.best_step),
      "stopped_early": bool(run.progress["stopped_early"]),
      "wall_time_s": wall_s,
      "device_kind": device_kind,
      "num_devices": jax.device_count(),
      "num_processes": jax.process_count(),
      "label_subset": {"fraction": float(config.data.labeled_fraction),
                       "count": int(len(run.labeled)),
                       "file": rundir.LABEL_SUBSET,
                       "sha256": input_pipeline.subset_digest(run.labeled)},
      "data": data_digest,
      "normalizer": config.eval.normalizer,
      "error_unit": evaluation.error_unit(config.eval.normalizer),
      "selection": {"metric": sched.selection_name,
                    "mode": sched.selection_mode},
      "metrics": metrics,
      "stack": stack,
  }


# --------------------------------------------------------------------------
# the loop


class _Training:
  """The runs of one program, from their data and states to their results.

  :meth:`start` builds everything the runs need (checked before their
  workdirs are written), :meth:`loop` trains them to the end, early stopping
  or preemption, and :meth:`finish` evaluates each run's best checkpoint.
  """

  def __init__(self, config, runs: list[_Run], raise_errors: bool,
               preemption: "_Preemption"):
    self.config = config  # every setting but the seed is shared
    self.runs = runs
    self.raise_errors = raise_errors
    self.preemption = preemption
    self.is_main = jax.process_index() == 0
    self.terms = steps.parse_costs(config.costs)
    self.example_images = None  # of log_predictions, read once

  def check(self) -> None:
    """Everything the runs need (data, splits, heads, model, batch layout),
    checked before their workdirs are written and the first step."""
    config = self.config
    self.info = input_pipeline.get_dataset_info(config.data)
    config = self.config = input_pipeline.with_class_heads(config, self.info)
    _raise_errors(data_errors(config, self.info))
    self.splits = [config.data.train_split, config.data.eval_split,
                   *config.data.test_splits]
    input_pipeline.check_readable(config.data, self.splits)
    self.heads = program_lib.model_heads(config, self.info)
    self.model = models.create_model(config.model, self.info.num_landmarks,
                                     self.heads)
    self.settings = steps.StepSettings.from_config(config,
                                                   self.model.landmark_cost)
    self.mesh = steps.make_mesh()
    for key in ("batch_size", "eval_batch_size"):
      steps.check_batch_size(config.data[key], self.mesh, f"config.data.{key}")

  def start(self) -> None:
    """Label subsets, loaders, schedule, states (fresh or restored from the
    latest checkpoints) and the program."""
    config, runs, mesh = self.config, self.runs, self.mesh
    self.segment_start = time.time()
    for run in runs:
      # Loaded from the workdir when a previous segment of the run saved it.
      run.labeled = input_pipeline.labeled_subset(
          run.config.data, run.config.seed, run.workdir, write=self.is_main)
    # Costs that read nothing of an unlabelled image (L alone) train on the
    # labelled rows of each batch only: the same mean over the same images,
    # without running the model on the B - n_lab rows it would discard.
    labeled_only = not {"C", "T"} & set(self.terms)
    for run in runs:
      run.loader = input_pipeline.TrainLoader(
          run.config.data, run.config.seed, run.labeled, jax.process_index(),
          jax.process_count(), labeled_only=labeled_only,
          row_multiple=mesh.devices.size)
    sched = self.sched = cadence.Schedule.of(
        config, int(runs[0].loader.steps_per_epoch))
    tx = program_lib.make_optimizer(config.optim, sched.total_steps)
    init_state = program_lib.state_initializer(
        self.model, tx, self.settings, self.info.image_shape, mesh)
    states = []
    for run in runs:
      self.preemption.check()
      key = jax.random.key(run.config.seed)
      init_key, run.train_key = (jax.random.fold_in(key, 0),
                                 jax.random.fold_in(key, 1))
      state = init_state(init_key)
      run.mngr = checkpointing.manager(rundir.RunDir(run.workdir).checkpoint_dir,
                                       sched.selection_mode)
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
      run.log = metrics_log.MetricsLog(run.workdir, run.step, self.is_main,
                                       config=run.config_dict)
      run.log.write("start", run.step, {}, code=provenance.code(),
                    device_kind=jax.devices()[0].device_kind,
                    wall_time_s=run.wall_before)
      states.append(state)
    self.program = program_lib.Program(mesh, [run.train_key for run in runs])
    self.state = self.program.stack(states)
    self.global_batch_size = int(runs[0].loader.global_batch_size)  # rows read
    for run in runs:
      logging.info(
          "%sRun %s: %s, %d steps per epoch, %d steps, evaluation every %d "
          "steps, %d labelled images, %d devices, %d processes.", run.tag,
          run.workdir, self.info.name, sched.steps_per_epoch,
          sched.total_steps, sched.eval_every, len(run.labeled),
          jax.device_count(), jax.process_count())
    if self.program.vectorized:
      logging.info("Training %d runs in one program (seeds %s).", len(runs),
                   ", ".join(str(r.config.seed) for r in runs))
      if jax.default_backend() == "cpu":
        logging.warning(
            "Several runs in one program pay off on accelerators, where one "
            "small run leaves the device idle; on CPU one run already keeps "
            "the cores busy and the vmapped convolutions can be slower than "
            "the runs one after the other (measure with python -m "
            "landmark_ssl.bench.vectorized_seeds); there, prefer separate "
            "processes (landmark_ssl.sweep without --vectorize_seeds).")

  def wall(self, run: _Run) -> float:
    """The run's training time so far, over all its segments."""
    return run.wall_before + time.time() - self.segment_start

  def trainable(self, run: _Run) -> bool:
    return (run.outcome is None and run.step < self.sched.total_steps and
            not run.progress["stopped_early"])

  def fail(self, run: _Run, error: NonFiniteCostError) -> None:
    """Ends ``run`` with ``error`` (raised instead with ``raise_errors``)."""
    run.log.write("error", error.step, {}, message=str(error))
    if self.raise_errors:
      raise error
    logging.error("%s%s", run.tag, error)
    _close(run.batches)
    run.batches = None
    run.outcome = {"status": "failed", "step": error.step, "term": error.term,
                   "message": str(error)}

  def loop(self) -> bool:
    """Trains until every run is done; ``False`` if preempted (a checkpoint
    of the last step was saved)."""
    runs, sched = self.runs, self.sched
    pending: list = []  # (step, device metrics, active) not yet checked
    with self.preemption.in_loop(runs[0].mngr):
      while any(self.trainable(run) for run in runs):
        # The runs furthest behind train; runs ahead (resumed from a later
        # checkpoint) wait, their slots masked, until the others catch up.
        step = min(run.step for run in runs if self.trainable(run))
        active = [self.trainable(run) and run.step == step for run in runs]
        stepped = [run for run, a in zip(runs, active) if a]
        step, metrics = self.train_step(step, active, stepped)
        pending.append((step, metrics, active))
        due = sched.due(step)
        preempt = self.preemption.requested(step)

        # Costs: nothing is logged or checkpointed before they are known to
        # be finite.
        if due.log or due.checkpoint or preempt:
          stepped = self.check_costs(pending, stepped)
          pending = []
        if due.log:
          lr = program_lib.learning_rate(self.config.optim, sched.total_steps,
                                         step - 1)
          for run in stepped:
            _log_train(run, step, sched, self.global_batch_size,
                       self.wall(run), lr)

        # Validation: early stopping and the metrics of the checkpoints.
        ckpt_metrics = {}
        if due.eval and stepped:
          ckpt_metrics = self.validate(step, stepped)
          stepped = [run for run in stepped if run.outcome is None]

        # Checkpoints.
        if due.checkpoint or preempt:
          for run in stepped:
            run.progress["wall_time_s"] = self.wall(run)
            # The costs of the steps since the last log line: a resumed run
            # logs the same averages as an uninterrupted one.
            run.progress["log_window"] = [{k: float(v) for k, v in m.items()}
                                          for m in run.window]
            checkpointing.save(run.mngr, step,
                               self.program.take(self.state, run.slot),
                               run.progress, ckpt_metrics.get(run.slot))
        if preempt:
          for run in runs:
            run.mngr.wait_until_finished()
          logging.warning("Preempted: saved the checkpoint of step %d; run the "
                          "same command again to continue.", step)
          return False
    for run in runs:
      _close(run.batches)
      run.batches = None
      run.mngr.wait_until_finished()
    return True

  def train_step(self, step: int, active: list, stepped: list
                 ) -> tuple[int, Any]:
    """One step of the ``active`` runs from ``step``: ``(step + 1, metrics)``."""
    for run in stepped:
      if run.batches is None:
        run.batches = run.loader.iterate(run.step)
        run.last_time, run.last_step = time.time(), run.step
    local = [next(run.batches) if a else None
             for run, a in zip(self.runs, active)]
    self.state, metrics = self.program.train(self.state, local, step, active)
    step += 1
    for run in stepped:
      run.step = step
      if run.eta_from is None:  # its compilation is behind us
        run.eta_from = (step, time.time())
    return step, metrics

  def check_costs(self, pending: list, stepped: list) -> list:
    """Moves the pending steps' costs to each run's log window, failing the
    runs with a non-finite one; returns the ``stepped`` runs still going."""
    host = jax.device_get([m for _, m, _ in pending])
    for run in self.runs:
      if run.outcome is not None:
        continue
      mine = [(s, self.program.metrics_of(h, run.slot))
              for (s, _, act), h in zip(pending, host) if act[run.slot]]
      try:
        _check_finite(mine, run.mngr)
      except NonFiniteCostError as e:
        self.fail(run, e)
        continue
      run.window.extend(m for _, m in mine)
    return [run for run in stepped if run.outcome is None]

  def validate(self, step: int, stepped: list) -> dict[int, dict]:
    """Validation of the ``stepped`` runs; ``{slot: checkpoint metrics}``."""
    config, sched = self.config, self.sched
    outputs = evaluator.predict_split(self.program, self.state, config.data,
                                      config.data.eval_split)
    ckpt_metrics = {}
    for run in stepped:
      val, _ = evaluator.split_metrics(outputs[run.slot],
                                       config.eval.normalizer, self.heads)
      value = evaluator.selection_value(val, self.terms)
      if math.isfinite(value):
        ckpt_metrics[run.slot] = _record_validation(run, step, val, value,
                                                    sched)
        if self.is_main:
          self.log_predictions(run, step, outputs[run.slot])
      else:
        self.fail(run, NonFiniteCostError(
            step, f"validation {sched.selection_name}", value,
            run.mngr.latest_step()))
    return ckpt_metrics

  def log_predictions(self, run: _Run, step: int, outputs: dict) -> None:
    """TensorBoard's image of ``run``'s predictions on the first validation
    images (the same images at every evaluation)."""
    if self.example_images is None:
      batches = input_pipeline.eval_batches(
          self.config.data, self.config.data.eval_split, 0, 1)
      try:
        batch = next(batches)
      finally:
        _close(batches)  # its read-ahead threads, if any
      n = min(_LOGGED_IMAGES, int(np.sum(batch["mask"] > 0)))
      self.example_images = {k: np.asarray(batch[k][:n])
                             for k in ("image", "landmarks", "visible")}
      self.example_images["index"] = np.asarray(batch.get("index",
                                                          np.arange(n)))[:n]
    images = self.example_images
    index = outputs.get("index", np.arange(len(outputs["pred_landmarks"])))
    rows = [int(np.flatnonzero(index == i)[0]) for i in images["index"]]
    fig = plots.overlay_grid(
        images["image"], images["landmarks"], images["visible"],
        [("", outputs["pred_landmarks"][rows], None)],
        f"{run.tag}validation at step {step}")
    run.log.write_image("eval/validation/predictions", plots.to_array(fig),
                        step)

  def finish(self) -> None:
    """Restores the best checkpoint of each unfailed run, evaluates it on
    the validation and test splits (writing their CED and predictions) and
    writes its results."""
    config, runs, program = self.config, self.runs, self.program
    done = [run for run in runs if run.outcome is None]
    if not done:
      return
    best_states = []
    for run in runs:
      run_state = program.take(self.state, run.slot)
      if run.outcome is None:
        run.best_step, run_state, _ = checkpointing.restore_best(run.mngr,
                                                                 run_state)
        if run.best_step != run.progress["best_step"]:
          logging.warning("%sorbax's best step %s differs from the tracked "
                          "best step %s; using orbax's.", run.tag,
                          run.best_step, run.progress["best_step"])
      best_states.append(run_state)  # a failed run's slot: anything of its shape
    state = program.stack(best_states)
    del best_states
    metrics = {run.slot: {} for run in done}
    for split in evaluator.final_splits(config):
      outputs = evaluator.predict_split(program, state, config.data, split)
      name = "validation" if split == config.data.eval_split else split
      for run in done:
        split_metrics, errors = evaluator.split_metrics(
            outputs[run.slot], config.eval.normalizer, self.heads)
        metrics[run.slot][name] = split_metrics
        logging.info("%s%s (best step %d): %s", run.tag, name, run.best_step,
                     " ".join(f"{k} {v:.5g}" for k, v in split_metrics.items()))
        run.log.write("test", run.best_step, split_metrics, split=name)
        if self.is_main and split in config.data.test_splits:
          evaluator.write_split_outputs(run.workdir, split, outputs[run.slot],
                                        errors, config.eval.normalizer,
                                        run.best_step)
    # Once per finished program, not per start: a pass over the data.
    data_digest = input_pipeline.content_digest(config.data, self.splits)
    for run in done:
      run.outcome = _results(run, self.sched, metrics[run.slot],
                             self.wall(run), data_digest)
      results_file = rundir.RunDir(run.workdir).results_file
      if self.is_main:
        rundir.write_json(results_file, run.outcome)
      run.log.write_hparams(run.config_dict, metrics[run.slot])
      logging.info("%sFinished: results in %s.", run.tag, results_file)

  def close(self) -> None:
    for run in self.runs:
      _close(run.batches)
      if run.log is not None:
        run.log.close()
      if run.mngr is not None:
        run.mngr.close()


# --------------------------------------------------------------------------
# the entry points


def train_and_evaluate(config, workdir, overwrite: bool = False) -> dict:
  """Trains (or resumes) the run of ``config`` in ``workdir`` and evaluates it.

  Returns:
    The results dict (also written to ``results.json``) with
    ``status='finished'``; or ``{'status': 'preempted', 'step': s}`` after a
    SIGTERM (a checkpoint of step ``s`` was saved; run again to continue).

  Raises:
    rundir.ConfigMismatchError: the workdir holds a run of a different config.
    rundir.WorkdirBusyError: another process is training it.
    NonFiniteCostError: a cost became NaN/inf (no checkpoint of it is kept).
    ValueError, FileNotFoundError: bad config values, missing data.
  """
  return _train_and_evaluate([config], [workdir], overwrite,
                             raise_errors=True)[0]


def train_and_evaluate_seeds(config, seeds: Iterable[int],
                             workdirs: Iterable, overwrite: bool = False
                             ) -> list[dict]:
  """Trains the runs of ``config`` with each of ``seeds`` in one program.

  Run ``i`` (seed ``seeds[i]``) lives in ``workdirs[i]`` with every file a
  lone run writes there (:func:`train_and_evaluate`), and ends with the same
  results up to float rounding. A workdir holding a run of the same config
  and seed (trained alone or with other seeds) is resumed from its latest
  checkpoint, or skipped if finished; runs at different steps are brought
  level by training the ones behind first.

  Returns:
    One dict per seed: the results of a finished run, ``{'status':
    'preempted', 'step': s}`` after a SIGTERM, or ``{'status': 'failed',
    'step', 'term', 'message'}`` for a run whose cost became NaN/inf (the
    others carry on; run again to retry it from its last good checkpoint).

  Raises:
    rundir.ConfigMismatchError: a workdir holds a run of a different config.
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
  """Trains the runs of ``configs`` (which differ only in ``seed``) in one
  program, each workdir locked (``rundir.workdir_lock``, process 0) from
  before it is read until the run ends.

  With ``raise_errors`` a non-finite cost raises; otherwise that run's
  outcome is a failure and the others continue.
  """
  _raise_errors([e for c in configs for e in config_errors(c)])
  with _Preemption() as preemption:
    try:
      with contextlib.ExitStack() as locks:
        if jax.process_index() == 0:
          for workdir in workdirs:
            locks.enter_context(rundir.workdir_lock(workdir))
        outcomes, runs, remove = _open_runs(configs, workdirs, overwrite)
        if not runs:
          return outcomes
        training = _Training(configs[0], runs, raise_errors, preemption)
        preemption.check()
        training.check()
        preemption.check()
        for run in runs:
          prepare_workdir(run.config_dict, run.workdir, overwrite,
                          training.is_main, remove=remove[run.index])
        try:
          training.start()
          preemption.check()
          if training.loop():
            preemption.check()
            training.finish()
          for run in runs:
            outcomes[run.index] = run.outcome or {"status": "preempted",
                                                  "step": run.step}
          return outcomes
        finally:
          training.close()
    except _Stopped:
      logging.warning("Stopped by SIGTERM outside the training loop: nothing "
                      "new to save. Run the same command again to continue.")
      return [{"status": "preempted", "step": None} for _ in configs]
