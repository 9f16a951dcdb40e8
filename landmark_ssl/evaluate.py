r"""Re-evaluates the best checkpoint of a run.

  python -m landmark_ssl.evaluate --workdir=runs/blocks \
      [--splits=validation,test] [--step=<checkpoint step>]

Reads the run's ``config.json``, restores the best checkpoint (or
``--step``), evaluates each split (default: the config's ``eval_split`` and
``test_splits``), prints the metrics and writes ``evaluation.json``
(``{"step": s, "metrics": {split: {...}}}``) plus ``ced_<split>.json`` and
``predictions_<split>.npz`` in the workdir. Exit code 2 (with a message) for
a workdir without a config or checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from absl import app
from absl import flags
from absl import logging
from etils import epath
import jax
import ml_collections

from landmark_ssl import checkpointing
from landmark_ssl import configs
from landmark_ssl import input_pipeline
from landmark_ssl import metrics_log
from landmark_ssl import models
from landmark_ssl import steps
from landmark_ssl import train


class NoCheckpointError(FileNotFoundError):
  """The workdir has no config or no checkpoint."""


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
    train.CorruptFileError: it is not valid JSON (the message says so).
  """
  config_path = epath.Path(workdir) / train.CONFIG_FILE
  if not config_path.exists():
    raise NoCheckpointError(
        f"{workdir} has no {train.CONFIG_FILE}: not a landmark_ssl run "
        "directory (train one with python -m landmark_ssl.main).")
  stored = train.read_json(config_path, (
      f"Restore it (the run's {train.RESULTS_FILE}, once it finished, holds a "
      'copy under "config").'))
  return ml_collections.ConfigDict(configs.with_defaults(stored))


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
  workdir = epath.Path(workdir)
  config = read_config(workdir)
  ckpt_dir = workdir / checkpointing.CHECKPOINT_DIR
  if not ckpt_dir.exists():
    raise NoCheckpointError(
        f"{workdir} has no checkpoint ({ckpt_dir} is missing): train the run "
        "first with python -m landmark_ssl.main.")
  if data_dir is not None:
    config.data.data_dir = data_dir
  terms = steps.parse_costs(config.costs)
  info = input_pipeline.get_dataset_info(config.data)
  config = input_pipeline.with_class_heads(config, info)  # '*': all
  heads = train.model_heads(config, info)
  model = models.create_model(config.model, info.num_landmarks, heads)
  settings = steps.StepSettings.from_config(config, model.landmark_cost)
  mesh = steps.make_mesh()
  # The optimizer only shapes the restore target; its schedule length is moot.
  tx = train.make_optimizer(config.optim, 1)
  state = train.create_train_state(model, tx, settings, info.image_shape,
                                    jax.random.key(0), mesh)
  _, mode = train.selection_rule(terms)
  mngr = checkpointing.manager(workdir, mode, read_only=True)
  try:
    if not mngr.all_steps():
      raise NoCheckpointError(f"{ckpt_dir} holds no checkpoint: train the run "
                              "first with python -m landmark_ssl.main.")
    if step is None:
      step = mngr.best_step()
    elif step not in mngr.all_steps():
      raise NoCheckpointError(f"No checkpoint of step {step} in {ckpt_dir}; it "
                              f"has {list(mngr.all_steps())}.")
    state, _ = checkpointing.restore(mngr, step, state)
  finally:
    mngr.close()
  return RestoredRun(config=config, info=info, heads=heads, model=model,
                     state=state, mesh=mesh, step=int(step))


def evaluate_run(workdir, splits=None, step: int | None = None,
                 write: bool = True) -> dict:
  """Evaluates checkpoint ``step`` (default: the best) of the run in ``workdir``.

  Returns:
    ``{"step": s, "metrics": {split: metrics}}`` (also ``evaluation.json``).
  """
  workdir = epath.Path(workdir)
  run = restore_run(workdir, step)
  config, heads, mesh, state, step = (run.config, run.heads, run.mesh,
                                      run.state, run.step)
  steps.check_batch_size(config.data.eval_batch_size, mesh,
                         "config.data.eval_batch_size")
  eval_fn = steps.jit_eval_step(mesh)
  if splits is None:
    splits = [config.data.eval_split] + [
        s for s in config.data.test_splits if s != config.data.eval_split]
  all_metrics = {}
  for split in splits:
    outputs = train.predict_split(state, eval_fn, config.data, split, mesh)
    metrics, errors = train.split_metrics(outputs, config.eval.normalizer, heads)
    all_metrics[split] = metrics
    print(f"{split} (step {step}): " +
          " ".join(f"{k} {v:.5g}" for k, v in metrics.items()))
    if write and jax.process_index() == 0:
      train.write_split_outputs(workdir, split, outputs, errors,
                                config.eval.normalizer, step)
  result = {"step": int(step), "normalizer": config.eval.normalizer,
            "metrics": all_metrics}
  if write and jax.process_index() == 0:
    (workdir / train.EVALUATION_FILE).write_text(
        json.dumps(result, indent=2) + "\n")
  return result


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
    evaluate_run(FLAGS.workdir, FLAGS.splits, FLAGS.step)
  except (FileNotFoundError, ValueError) as e:
    logging.error("%s", e)
    sys.exit(2)


if __name__ == "__main__":
  define_flags()
  app.run(main)
