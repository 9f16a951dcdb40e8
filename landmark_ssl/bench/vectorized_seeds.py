r"""Throughput of several runs trained in one program (``--seeds``).

  python -m landmark_ssl.bench.vectorized_seeds [--runs=1,2,3,5] [--steps=5] \
      [--rounds=2] [--batch_size=64] [--config=experiments/blocks.py] \
      [--config_arg=model=seq_mt,costs=L+T+C]

Times the train step of the experiment's model (default: Blocks Seq-MT,
6 conv 9x9 + 2 conv 1x1 with 8 maps on 60x60 images, costs L+T+C, as in
Table 1) on one random batch per run already on the devices, so the
numbers are the step alone (no input pipeline): ``S = 1`` is the plain
single-run program (``steps.jit_train_step``), ``S > 1`` the vectorised one
(``steps.jit_train_steps``: ``jax.vmap`` over ``S`` stacked runs, all
active). For each ``S`` it prints images/s summed over the runs, per run,
and the ratio of the sum to ``S = 1``. Every ``S`` is measured ``--rounds``
times, interleaved, and the best round is kept (the machine may be shared).
The mesh spans all devices (``('data',)``, batch sharded).
"""

from __future__ import annotations

import os
import time

from absl import app
from absl import flags
import jax
import numpy as np

import landmark_ssl
from landmark_ssl import configs
from landmark_ssl import models
from landmark_ssl import steps
from landmark_ssl import program as program_lib

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(landmark_ssl.__file__))), "experiments", "blocks.py")
_CONFIG = flags.DEFINE_string(
    "config", _DEFAULT_CONFIG, "Experiment file; it must define IMAGE_SHAPE, "
    "NUM_LANDMARKS and CLASSES (as experiments/blocks.py does).")
_CONFIG_ARG = flags.DEFINE_string("config_arg", "model=seq_mt,costs=L+T+C",
                                  "The experiment's config argument.")
_RUNS = flags.DEFINE_list("runs", ["1", "2", "3", "5"],
                          "Numbers of runs S to time (1 = the plain step).")
_STEPS = flags.DEFINE_integer("steps", 5, "Steps timed per measurement.")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Measurements per S (best kept).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Global batch size per run.")


def random_batch(rng: np.random.Generator, batch_size: int, image_shape,
                 num_landmarks: int, classes: dict, labeled_share: float
                 ) -> dict:
  """A training batch of noise images (the step's cost does not depend on
  the content): ``labeled_share`` of the rows have landmark labels."""
  h, w, _ = image_shape
  n_lab = max(1, int(round(batch_size * labeled_share)))
  return {
      "image": rng.uniform(size=(batch_size,) + tuple(image_shape)).astype(
          np.float32),
      "landmarks": rng.uniform(0, min(h, w) - 1, size=(
          batch_size, num_landmarks, 2)).astype(np.float32),
      "visible": np.ones((batch_size, num_landmarks), np.float32),
      "has_landmarks": (np.arange(batch_size) < n_lab).astype(np.float32),
      "labels": {k: rng.integers(0, n, size=batch_size).astype(np.int32)
                 for k, n in classes.items()},
      "normalizer": np.ones((batch_size,), np.float32),
      "mask": np.ones((batch_size,), np.float32),
  }


class Setup:
  """The model, optimizer and data of the benchmark, and S-run programs."""

  def __init__(self, experiment, config, batch_size: int, mesh):
    self.mesh = mesh
    heads = {h: experiment.CLASSES[h] for h in config.data.class_heads}
    model = models.create_model(config.model, experiment.NUM_LANDMARKS, heads)
    settings = steps.StepSettings.from_config(config, model.landmark_cost)
    tx = program_lib.make_optimizer(config.optim, 1000)
    self._init = program_lib.state_initializer(model, tx, settings,
                                         experiment.IMAGE_SHAPE, mesh)
    rng = np.random.default_rng(0)
    self._batches = [random_batch(rng, batch_size, experiment.IMAGE_SHAPE,
                                  experiment.NUM_LANDMARKS, heads,
                                  config.data.labeled_share) for _ in range(5)]
    self.batch_size = batch_size

  def program(self, num_runs: int):
    """``(step_fn, state, args_of_step)`` of ``num_runs`` runs: ``step_fn(
    state, *args_of_step(i)) -> (state, metrics)``."""
    keys = [jax.random.key(seed) for seed in range(num_runs)]
    states = [self._init(k) for k in keys]
    local = [self._batches[i % len(self._batches)] for i in range(num_runs)]
    if num_runs == 1:
      batch = steps.global_batch(local[0], self.mesh)
      return (steps.jit_train_step(self.mesh), states[0],
              lambda i: (batch, jax.random.fold_in(keys[0], i)))
    stack = steps.jit_stack_runs(self.mesh)
    batch = steps.global_batch(jax.tree.map(lambda *x: np.stack(x), *local),
                               self.mesh, run_axis=True)
    fold = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))
    stacked_keys = stack(keys)
    active = np.ones((num_runs,), bool)
    return (steps.jit_train_steps(self.mesh), stack(states),
            lambda i: (batch, fold(stacked_keys, i), active))


def time_steps(step_fn, state, args_of_step, first: int, count: int):
  """Runs steps ``first .. first + count - 1``; ``(seconds, state)``."""
  start = time.perf_counter()
  for i in range(first, first + count):
    state, metrics = step_fn(state, *args_of_step(i))
  jax.block_until_ready((state, metrics))
  return time.perf_counter() - start, state


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  runs = [int(s) for s in _RUNS.value]
  if 1 not in runs:
    runs = [1] + runs  # the reference of the ratios
  experiment = configs.load_experiment(_CONFIG.value)
  config = experiment.get_config(_CONFIG_ARG.value)
  mesh = steps.make_mesh()
  steps.check_batch_size(_BATCH.value, mesh, "--batch_size")
  setup = Setup(experiment, config, _BATCH.value, mesh)
  programs, compile_s, best = {}, {}, {}
  for s in runs:
    step_fn, state, args = setup.program(s)
    seconds, state = time_steps(step_fn, state, args, 0, 1)  # compiles
    compile_s[s] = seconds
    programs[s] = [step_fn, state, args, 1]
  for _ in range(_ROUNDS.value):
    for s in runs:
      step_fn, state, args, done = programs[s]
      seconds, state = time_steps(step_fn, state, args, done, _STEPS.value)
      programs[s][1:] = [state, args, done + _STEPS.value]
      best[s] = min(best.get(s, np.inf), seconds / _STEPS.value)
  devices = jax.devices()
  print(f"{config.data.name} {config.model.name} train step, costs "
        f"{config.costs}, batch {_BATCH.value} per run, model "
        f"{dict(config.model)}; {len(devices)} x {devices[0].device_kind}; "
        f"best of {_ROUNDS.value} x {_STEPS.value} steps")
  print(f"{'runs':>4}  {'program':<18} {'step ms':>9} {'images/s':>10} "
        f"{'per run':>9} {'vs 1 run':>8} {'compile s':>9}")
  reference = _BATCH.value / best[1]
  for s in runs:
    total = s * _BATCH.value / best[s]
    name = "train_step" if s == 1 else "vmap train_steps"
    print(f"{s:>4}  {name:<18} {1e3 * best[s]:>9.1f} {total:>10.1f} "
          f"{total / s:>9.1f} {total / reference:>7.2f}x {compile_s[s]:>9.1f}")


if __name__ == "__main__":
  app.run(main)
