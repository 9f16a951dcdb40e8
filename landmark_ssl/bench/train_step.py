"""Speed of the train step of each experiment's model, against the machine.

What is measured, for one experiment (``experiments/<name>.py``, its default
model or another of its ``MODELS``) and one cost setting:

* the train step that training runs: ``steps.jit_train_step`` on a
  ``('data',)`` mesh over all devices, with the experiment's config (costs,
  loss weights, augmentation, ELT ranges, optimiser from
  ``program_lib.make_optimizer``), on a synthetic batch of the dataset's shapes
  (``IMAGE_SHAPE``, ``NUM_LANDMARKS``, ``CLASSES`` of the experiment file)
  and of its labelled/unlabelled row mix;
* its time per step (minimum and median over repetitions) and images/s
  (global batch over the minimum time);
* **counted FLOPs**: ``compiled.cost_analysis()['flops']`` of that step;
* **model FLOPs**: the same count for the same step lowered with
  ``conv_method='direct'`` (compiled, never run): the FLOPs of the
  equivalent direct convolutions, which the FFT formulation avoids. The
  achieved FLOP/s and its fraction of the matrix-product reference are
  model FLOPs per second;
* the reference: FLOP/s of an ``n x n`` float32 matrix product
  (``2 n^3`` FLOPs, default ``n = 2048``), timed in the same process,
  interleaved with the steps (three products, then each step, per
  repetition). ``fraction_of_matmul`` divides by the best product of the
  whole run (the machine's reference; conservative when the load changed
  during the run), ``fraction_of_interleaved_matmul`` by the best product
  interleaved with this experiment's steps. The product runs on one device
  while the step runs on all of them: with several accelerators use
  ``--peak_flops`` (``fraction_of_peak``) instead. The best step counts;
* memory: XLA's estimate for the compiled step (arguments + outputs +
  temporaries - aliased, ``compiled.memory_analysis()``), and the process's
  peak resident set size (``ru_maxrss``) after the experiment's runs.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import statistics
import time
import types
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from landmark_ssl import configs
from landmark_ssl import input_pipeline
from landmark_ssl import models
from landmark_ssl import steps
from landmark_ssl import program as program_lib

EXPERIMENTS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "experiments")


def experiment_module(name: str, experiments_dir: str = EXPERIMENTS_DIR):
  """``experiments/<name>.py`` as a module (``configs.load_experiment``)."""
  path = os.path.join(experiments_dir, f"{name}.py")
  if not os.path.isfile(path):
    have = sorted(f[:-3] for f in os.listdir(experiments_dir)
                  if f.endswith(".py")) if os.path.isdir(experiments_dir) else []
    raise FileNotFoundError(
        f"No experiment {name!r}: {path} does not exist (experiments here: "
        f"{have}); pass --experiments_dir=<repo>/experiments or a valid "
        "--models name.")
  return configs.load_experiment(path)


def bench_model(exp, model: str | None = None) -> str:
  """``model``, or the experiment's default; a name the experiment does not
  offer raises ``ValueError`` naming those it does."""
  if not model:
    return exp.DEFAULT.model
  if model not in exp.MODELS:
    raise ValueError(
        f"--model={model!r} is not a model of this experiment; its models: "
        f"{list(exp.MODELS)}.")
  return model


def bench_costs(exp, model: str | None = None) -> list[str]:
  """Costs to time: ``'L'`` and the experiment's default costs, both if the
  model may be trained with them; for a model that may not be trained with
  the default costs (Heatmap-MT has no ELT), its last (fullest) costs."""
  allowed = exp.MODELS[bench_model(exp, model)]
  full = exp.DEFAULT.costs if exp.DEFAULT.costs in allowed else allowed[-1]
  out = [c for c in ("L", full) if c in allowed]
  return list(dict.fromkeys(out))


def synthetic_batch(exp, config, batch_size: int, seed: int = 0) -> dict:
  """A random global batch with the dataset's shapes and the config's mix of
  labelled rows (``input_pipeline.labeled_row_mask``)."""
  rng = np.random.default_rng(seed)
  h, w, c = exp.IMAGE_SHAPE
  k = exp.NUM_LANDMARKS
  n_lab = input_pipeline.labeled_rows_per_batch(
      batch_size, float(config.data.labeled_fraction),
      float(config.data.labeled_share))
  return {
      "image": rng.uniform(size=(batch_size, h, w, c)).astype(np.float32),
      "landmarks": rng.uniform([2, 2], [w - 3, h - 3],
                               size=(batch_size, k, 2)).astype(np.float32),
      "visible": np.ones((batch_size, k), np.float32),
      "has_landmarks": input_pipeline.labeled_row_mask(
          batch_size, n_lab).astype(np.float32),
      "labels": {name: rng.integers(0, n, size=batch_size).astype(np.int32)
                 for name, n in exp.CLASSES.items()},
      "normalizer": np.ones((batch_size,), np.float32),
      "mask": np.ones((batch_size,), np.float32),
  }


@dataclasses.dataclass
class CompiledStep:
  """A compiled train step with its state and batch, ready to be timed."""
  costs: str
  compiled: Any
  state: Any
  batch: Any
  counted_flops: float
  model_flops: float
  memory_bytes: int
  times: list = dataclasses.field(default_factory=list)

  def run(self, step: int) -> float:
    """Runs one step (the state is donated and replaced); returns seconds."""
    start = time.perf_counter()
    self.state, metrics = self.compiled(self.state, self.batch,
                                        jax.random.key(step))
    jax.block_until_ready(metrics)
    return time.perf_counter() - start


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan")))


def _memory_bytes(compiled) -> int:
  m = compiled.memory_analysis()
  if m is None:
    return -1
  return int(m.argument_size_in_bytes + m.output_size_in_bytes
             + m.temp_size_in_bytes - m.alias_size_in_bytes)


def compile_step(exp, costs: str, batch_size: int, conv_method: str,
                 mesh, config_arg: str = "",
                 model: str | None = None) -> CompiledStep:
  """Builds and compiles the train step of ``model`` (default: ``exp``'s)."""
  for item in config_arg.split(","):
    if item.partition("=")[0].strip() in ("model", "costs"):
      raise ValueError(
          f"--config_arg={config_arg!r} sets {item.strip()!r}: the bench picks "
          "the costs itself (L and the fullest the model allows); choose the "
          "model with --model.")
  arg = f"model={bench_model(exp, model)},costs={costs}"
  config = exp.get_config(arg + ("," + config_arg if config_arg else ""))
  steps.check_batch_size(batch_size, mesh, "batch_size")
  info = types.SimpleNamespace(name=config.data.name, classes=exp.CLASSES)
  heads = program_lib.model_heads(config, info)

  def build(method):
    model_cfg = dict(config.model)
    model_cfg["conv_method"] = method
    model = models.create_model(model_cfg, exp.NUM_LANDMARKS, heads)
    settings = steps.StepSettings.from_config(config, model.landmark_cost)
    tx = program_lib.make_optimizer(config.optim, 1000)
    state = program_lib.create_train_state(model, tx, settings, exp.IMAGE_SHAPE,
                                     jax.random.key(config.seed), mesh)
    return state

  batch = steps.global_batch(synthetic_batch(exp, config, batch_size), mesh)
  step_fn = steps.jit_train_step(mesh)
  rng = jax.random.key(0)
  direct = step_fn.lower(build("direct"), batch, rng).compile()
  model_flops = _flops(direct)
  del direct
  state = build(conv_method)
  compiled = step_fn.lower(state, batch, rng).compile()
  return CompiledStep(costs, compiled, state, batch, _flops(compiled),
                      model_flops, _memory_bytes(compiled))


class MatmulReference:
  """FLOP/s of an ``n x n`` float32 matrix product on the default device.

  Calling it times ``samples`` products and returns the best FLOP/s;
  ``best`` is the best of every call so far (the machine's reference for
  the whole run).
  """

  def __init__(self, size: int, samples: int = 3):
    rng = np.random.default_rng(0)
    self.size, self.samples, self.best = size, samples, 0.0
    self._a = jnp.asarray(rng.standard_normal((size, size), np.float32))
    self._b = jnp.asarray(rng.standard_normal((size, size), np.float32))
    self._product = jax.jit(jnp.matmul)
    jax.block_until_ready(self._product(self._a, self._b))

  def __call__(self) -> float:
    out = 0.0
    for _ in range(self.samples):
      start = time.perf_counter()
      jax.block_until_ready(self._product(self._a, self._b))
      out = max(out, 2.0 * self.size ** 3 / (time.perf_counter() - start))
    self.best = max(self.best, out)
    return out


def set_reference(result: dict, reference: float) -> dict:
  """Adds ``fraction_of_matmul`` (model FLOP/s over ``reference``, the best
  matrix product of the whole run) to each step of a
  :func:`measure_experiment` result."""
  result["reference_flop_per_s"] = reference
  for s in result.get("steps", {}).values():
    s["fraction_of_matmul"] = s["model_flop_per_s"] / reference
  return result


def max_rss_bytes() -> int:
  """Peak resident set size of this process so far (Linux: KiB -> bytes)."""
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return int(rss if platform.system() == "Darwin" else rss * 1024)


def machine() -> dict:
  """What the numbers were measured on."""
  dev = jax.devices()[0]
  out = {
      "platform": dev.platform,
      "device_kind": dev.device_kind,
      "device_count": jax.device_count(),
      "cpu_count": os.cpu_count(),
      "processor": platform.processor() or platform.machine(),
      "jax": jax.__version__,
      "matmul_precision": str(jax.config.jax_default_matmul_precision),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }
  if hasattr(os, "getloadavg"):
    out["load_average_at_start"] = list(os.getloadavg())
  return out


def measure_experiment(name: str, batch_size: int, repeats: int,
                       matmul: Callable[[], float], conv_method: str = "auto",
                       experiments_dir: str = EXPERIMENTS_DIR,
                       config_arg: str = "",
                       log: Callable[[str], None] = print,
                       model: str | None = None) -> dict:
  """Times the train steps (costs of :func:`bench_costs`) of one experiment's
  ``model`` (default: the experiment's).

  Each repetition runs the matrix product once and then each step once
  (after one untimed warm-up step each), so load changes on a shared
  machine hit all of them alike.

  Returns:
    A JSON-able dict: ``model``, ``batch_size``, ``conv_method``, per costs
    ``steps[costs]`` (``step_time_s`` min / median, ``images_per_s``,
    ``counted_flops``, ``model_flops``, ``model_flop_per_s``,
    ``fraction_of_interleaved_matmul``, ``fraction_of_matmul`` (against
    this experiment's best product until :func:`set_reference` sets the
    run's), ``xla_memory_bytes``), ``full_to_L_time`` (the step time of the
    last costs over that of ``'L'``), ``matmul_flop_per_s`` (best
    interleaved product) and ``max_rss_bytes``.
  """
  exp = experiment_module(name, experiments_dir)
  mesh = steps.make_mesh()
  runs = []
  model = bench_model(exp, model)
  for costs in bench_costs(exp, model):
    log(f"  {name} {model} {costs}: compiling")
    run = compile_step(exp, costs, batch_size, conv_method, mesh, config_arg,
                       model)
    run.run(0)  # warm-up
    runs.append(run)
  ref = []
  for r in range(repeats):
    ref.append(matmul())
    for run in runs:
      run.times.append(run.run(r + 1))
  ref.append(matmul())
  reference = max(ref)
  result = {
      "model": model,
      "image_shape": list(exp.IMAGE_SHAPE),
      "batch_size": batch_size,
      "conv_method": conv_method,
      "repeats": repeats,
      "matmul_flop_per_s": reference,
      "steps": {},
  }
  for run in runs:
    best = min(run.times)
    result["steps"][run.costs] = {
        "step_time_s": best,
        "step_time_median_s": statistics.median(run.times),
        "images_per_s": batch_size / best,
        "counted_flops": run.counted_flops,
        "model_flops": run.model_flops,
        "model_flop_per_s": run.model_flops / best,
        "fraction_of_interleaved_matmul": run.model_flops / best / reference,
        "xla_memory_bytes": run.memory_bytes,
    }
  names = list(result["steps"])
  if "L" in names and len(names) > 1:
    result["full_to_L_time"] = (result["steps"][names[-1]]["step_time_s"]
                                / result["steps"]["L"]["step_time_s"])
  result["max_rss_bytes"] = max_rss_bytes()
  return set_reference(result, reference)


def format_table(results: dict, matmul_size: int) -> str:
  """The human-readable table of :func:`measure_experiment` results."""
  lines = [
      f"{'experiment':10s} {'costs':6s} {'batch':>5s} {'step ms':>8s} "
      f"{'img/s':>7s} {'counted GF':>10s} {'model GF':>9s} {'model GF/s':>10s} "
      f"{'of matmul':>9s} {'XLA MB':>7s}"]
  for name, res in results.items():
    if "error" in res:
      lines.append(f"{name:10s} skipped: {res['error']}")
      continue
    for costs, s in res["steps"].items():
      lines.append(
          f"{name:10s} {costs:6s} {res['batch_size']:5d} "
          f"{s['step_time_s'] * 1e3:8.0f} {s['images_per_s']:7.1f} "
          f"{s['counted_flops'] / 1e9:10.1f} {s['model_flops'] / 1e9:9.1f} "
          f"{s['model_flop_per_s'] / 1e9:10.1f} {s['fraction_of_matmul']:9.2f} "
          f"{s['xla_memory_bytes'] / 2**20:7.0f}")
    extra = [f"matmul {matmul_size}^2 f32 interleaved "
             f"{res['matmul_flop_per_s'] / 1e9:.1f} GFLOP/s (run's best "
             f"{res['reference_flop_per_s'] / 1e9:.1f})",
             f"peak RSS {res['max_rss_bytes'] / 2**20:.0f} MiB"]
    if res.get("model"):
      extra.insert(0, f"model {res['model']}")
    if "full_to_L_time" in res:
      extra.insert(0, f"{list(res['steps'])[-1]}/L step time "
                   f"{res['full_to_L_time']:.2f}")
    if "input_pipeline" in res:
      ip = res["input_pipeline"]
      extra.append("input " + ("skipped: " + ip["skipped"] if "skipped" in ip
                               else ", ".join(f"{k} {v:.0f} img/s"
                                              for k, v in ip.items())))
    lines.append(f"{'':10s} " + "; ".join(extra))
  return "\n".join(lines)
