r"""All benchmarks: the train step of each experiment's model against the
machine's matrix-product speed, and the input pipeline.

  python -m landmark_ssl.bench [--models=blocks,hgr1] [--model=heatmap_mt] \
      [--batch_size=64] [--repeats=3] [--out=bench.json] [--data_dir=DIR] \
      [--steps=60]

For each experiment of ``--models`` (``experiments/<name>.py``, its default
model or ``--model``, one of the experiment's ``MODELS`` such as a baseline;
``--models=all`` for every experiment file), see
``landmark_ssl.bench.train_step``: the train step's images/s with costs
``L`` and the experiment's default costs (``L+T+C`` for Blocks and HGR1),
counted and model FLOPs per step, model FLOP/s and their fraction of the
best float32 matrix product timed in the same run (interleaved with the
steps), the ratio of the two step times, XLA's
memory estimate and the peak RSS. Then the input pipeline's images/s for the
experiment's dataset (``landmark_ssl.bench.input_pipeline.measure``: the
loader, the on-device augmentation, and both), when the dataset is there:
synthetic ones are built into ``--data_dir`` (default: a temporary
directory), real ones must already be built in ``--data_dir``.

Prints a table and writes everything (with the machine's description and
load) as JSON to ``--out``. On a shared machine run it when it is quiet and
compare only ratios measured in one run.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Sequence

from absl import app
from absl import logging
from absl import flags
import jax
import tensorflow_datasets as tfds

from landmark_ssl import build_data
from landmark_ssl import input_pipeline
# Also defines --batch_size (global batch, of the steps too), --data_dir,
# --steps (input batches timed) and --read_threads.
from landmark_ssl.bench import input_pipeline as input_bench
from landmark_ssl.bench import train_step

_MODELS = flags.DEFINE_list(
    "models", ["blocks", "hgr1"],
    "Experiments (names of experiments/*.py) whose default model is timed; "
    "'all' for every experiment file.")
_MODEL = flags.DEFINE_string(
    "model", None,
    "Model to time instead of each experiment's default: a key of the "
    "experiment's MODELS (e.g. comm_mt, heatmap_mt). Timed with costs L and "
    "the experiment's default costs, or the model's fullest costs where it "
    "may not be trained with those (Heatmap-MT: L+C).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed steps per cost setting.")
_OUT = flags.DEFINE_string("out", "bench.json", "Where to write the JSON.")
_MATMUL = flags.DEFINE_integer("matmul_size", 2048,
                               "Side of the reference float32 matrix product.")
_CONV = flags.DEFINE_enum("conv_method", "auto", ["auto", "direct", "fft"],
                          "config.model.conv_method of the timed steps.")
_EXPERIMENTS_DIR = flags.DEFINE_string(
    "experiments_dir", train_step.EXPERIMENTS_DIR,
    "Directory of the experiment files.")
_CONFIG_ARG = flags.DEFINE_string(
    "config_arg", "", "Extra config argument items, e.g. 'quick'.")
_PEAK = flags.DEFINE_float(
    "peak_flops", 0.0, "Nominal peak FLOP/s of one device (e.g. from the "
    "accelerator's data sheet, for the dtype the matmuls run in); when set, "
    "each step also gets fraction_of_peak = model FLOP/s / (peak x devices).")
_PIPELINE = flags.DEFINE_bool("input_pipeline", True,
                              "Also time the input pipeline.")
FLAGS = flags.FLAGS


def pipeline_speed(exp, data_dir: str, real_data_dir: str | None) -> dict:
  """images/s of the experiment's input pipeline, or why it was skipped."""
  config = exp.get_config(f"model={exp.DEFAULT.model},costs={exp.DEFAULT.costs}")
  data = config.data.to_dict()
  synthetic = build_data.split_name(data["name"])[0] in build_data.SYNTHETIC
  data["data_dir"] = data_dir if synthetic else real_data_dir
  data["batch_size"] = FLAGS.batch_size
  data["read_threads"] = FLAGS.read_threads
  try:
    labeled = input_pipeline.select_labeled(data, config.seed)
    loader = input_pipeline.TrainLoader(data, config.seed, labeled, 0, 1)
  except FileNotFoundError:
    return {"skipped": f"dataset {data['name']!r} is not built in "
                       f"--data_dir={real_data_dir} (python -m "
                       "landmark_ssl.build_data builds it)"}
  return input_bench.measure(loader, dict(config.augment), FLAGS.steps)


def main(argv: Sequence[str]) -> None:
  del argv
  names = list(_MODELS.value)
  if names == ["all"]:
    names = sorted(f[:-3] for f in os.listdir(_EXPERIMENTS_DIR.value)
                   if f.endswith(".py") and not f.startswith("_"))
  info = train_step.machine()
  print(f"{info['device_kind']} x{info['device_count']} ({info['platform']}, "
        f"{info['cpu_count']} CPUs), jax {info['jax']}; load average "
        f"{info.get('load_average_at_start')}")
  tfds.disable_progress_bar()
  matmul = train_step.MatmulReference(_MATMUL.value)
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    for name in names:
      print(f"{name}:", flush=True)
      try:
        res = train_step.measure_experiment(
            name, FLAGS.batch_size, _REPEATS.value, matmul, _CONV.value,
            _EXPERIMENTS_DIR.value, _CONFIG_ARG.value,
            log=lambda s: print(s, flush=True), model=_MODEL.value)
      except Exception as e:  # pylint: disable=broad-except
        # One experiment that cannot run (bad config, missing file) must not
        # hide the others; the table and the JSON say why.
        logging.exception("Benchmark of %s failed", name)
        res = {"error": f"{type(e).__name__}: {e}"}
      if "error" not in res and _PIPELINE.value:
        exp = train_step.experiment_module(name, _EXPERIMENTS_DIR.value)
        res["input_pipeline"] = pipeline_speed(
            exp, FLAGS.data_dir or tmp, FLAGS.data_dir)
      results[name] = res
  for res in results.values():
    if "steps" in res:
      train_step.set_reference(res, matmul.best)
      for step in res["steps"].values():
        if _PEAK.value > 0:
          step["fraction_of_peak"] = step["model_flop_per_s"] / (
              _PEAK.value * jax.device_count())
  if hasattr(os, "getloadavg"):
    info["load_average_at_end"] = list(os.getloadavg())
  print()
  print(train_step.format_table(results, _MATMUL.value))
  report = {"machine": info, "matmul_size": _MATMUL.value,
            "peak_flops_per_device": _PEAK.value or None,
            "matmul_best_flop_per_s": matmul.best,
            "devices": [str(d) for d in jax.devices()],
            "experiments": results}
  with open(_OUT.value, "w") as f:
    json.dump(report, f, indent=1)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
