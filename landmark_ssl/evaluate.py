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

import json
import sys

from absl import app
from absl import flags
from absl import logging
from etils import epath
import jax
import ml_collections

from landmark_ssl import checkpointing
from landmark_ssl import input_pipeline
from landmark_ssl import metrics_log
from landmark_ssl import models
from landmark_ssl import steps
from landmark_ssl import train

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of a run.")
_SPLITS = flags.DEFINE_list(
    "splits", None, "Splits to evaluate (default: eval_split and test_splits "
    "of the run's config).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the best).")


class NoCheckpointError(FileNotFoundError):
  """The workdir has no config or no checkpoint."""


def evaluate_run(workdir, splits=None, step: int | None = None,
                 write: bool = True) -> dict:
  """Evaluates checkpoint ``step`` (default: the best) of the run in ``workdir``.

  Returns:
    ``{"step": s, "metrics": {split: metrics}}`` (also ``evaluation.json``).
  """
  workdir = epath.Path(workdir)
  config_path = workdir / train.CONFIG_FILE
  if not config_path.exists():
    raise NoCheckpointError(
        f"{workdir} has no {train.CONFIG_FILE}: not a landmark_ssl run "
        "directory (train one with python -m landmark_ssl.main).")
  config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
  terms = steps.parse_costs(config.costs)
  info = input_pipeline.get_dataset_info(config.data)
  heads = train.model_heads(config, info)
  model = models.create_model(config.model, info.num_landmarks, heads)
  settings = steps.StepSettings.from_config(config, model.landmark_cost)
  mesh = steps.make_mesh()
  steps.check_batch_size(config.data.eval_batch_size, mesh,
                         "config.data.eval_batch_size")
  # The optimizer only shapes the restore target; its schedule length is moot.
  tx = train.make_optimizer(config.optim, 1)
  state = train.create_train_state(model, tx, settings, info.image_shape,
                                    jax.random.key(0), mesh)
  _, mode = train.selection_rule(terms)
  ckpt_dir = workdir / checkpointing.CHECKPOINT_DIR
  if not ckpt_dir.exists():
    raise NoCheckpointError(
        f"{workdir} has no checkpoint ({ckpt_dir} is missing): train the run "
        "first with python -m landmark_ssl.main.")
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
    (workdir / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _WORKDIR.value is None:
    raise app.UsageError("--workdir is required.")
  metrics_log.quiet_library_logs()
  try:
    evaluate_run(_WORKDIR.value, _SPLITS.value, _STEP.value)
  except (FileNotFoundError, ValueError) as e:
    logging.error("%s", e)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
