r"""Where the train step's time goes: XLA's ops, grouped by kind.

  python -m landmark_ssl.bench.profile [--models=blocks] [--costs=L+T+C] \
      [--batch_size=64] [--steps=5] [--conv_method=auto] [--out=profile.json]

For each experiment of ``--models`` (its default model, as
``landmark_ssl.bench``), the train step that training runs
(``bench.train_step.compile_step``) is run ``--steps`` times under
``jax.profiler.trace``; the trace (its Perfetto JSON) lists every XLA op the
runtime executed with its duration, named by its HLO instruction. Each op is
put in a group by :func:`op_group` (FFTs by direction, fusions by the name
XLA gave them, which lists their main operations, e.g.
``multiply_add_fusion``; other ops by opcode) and, separately, by the part
of the model it came from (:func:`op_scope`: forward or backward pass, the
Flax model and up to two submodules named in its ``op_name``).

Printed per group: milliseconds per step (summed over devices), share of
all op time, and ops per step and device. Op time can exceed the wall time
of a step: the CPU runtime runs independent ops at once. Profiling slows the
step a little (compare the printed wall time with ``landmark_ssl.bench``).
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time
from typing import Sequence

from absl import app
from absl import flags
import jax

from landmark_ssl import steps
from landmark_ssl.bench import train_step

_MODELS = flags.DEFINE_list("models", ["blocks"],
                            "Experiments (names of experiments/*.py) to profile.")
_COSTS = flags.DEFINE_string(
    "costs", "", "Costs of the profiled step; default: the experiment's own "
    "(L+T+C for Blocks).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Global batch of the step.")
_STEPS = flags.DEFINE_integer("steps", 5, "Steps traced (after one warm-up).")
_CONV = flags.DEFINE_enum("conv_method", "auto", ["auto", "direct", "fft"],
                          "config.model.conv_method of the step.")
_CONFIG_ARG = flags.DEFINE_string("config_arg", "",
                                  "Extra config argument items, e.g. 'quick'.")
_TOP = flags.DEFINE_integer("top", 20, "Groups printed per table.")
_OUT = flags.DEFINE_string("out", "profile.json", "Where to write the JSON.")
_TRACE_DIR = flags.DEFINE_string(
    "trace_dir", "", "Keep the trace here (for TensorBoard / Perfetto); "
    "default: a temporary directory, deleted.")

_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*\S+(?:\s+\S+)*?\s+([\w\-]+)\(")


def hlo_ops(hlo_text: str) -> dict[str, dict]:
  """``{instruction name: {'opcode', 'fft_type', 'op_name'}}`` of a compiled
  module's text (``compiled.as_text()``), for every instruction."""
  out = {}
  for line in hlo_text.splitlines():
    m = _INSTRUCTION.match(line)
    if not m:
      continue
    fft = re.search(r"fft_type=(\w+)", line)
    op_name = re.search(r'op_name="([^"]*)"', line)
    out[m.group(1)] = {"opcode": m.group(2),
                       "fft_type": fft.group(1) if fft else "",
                       "op_name": op_name.group(1) if op_name else ""}
  return out


def op_group(name: str, info: dict | None) -> str:
  """The kind of one executed op: ``'fft RFFT'`` / ``'fft IRFFT'`` / ...,
  a fusion's name without its number (XLA names fusions after their main
  operations), or the opcode."""
  if info and info["opcode"] == "fft":
    return f"fft {info['fft_type']}"
  stem = re.sub(r"\.\d+$", "", name)
  if info is None or info["opcode"] == "fusion":
    return stem
  return info["opcode"]


def op_scope(info: dict | None, depth: int = 2) -> str:
  """``'<pass> <Model>/<module>/<submodule>'`` of one op: the pass is
  ``backward`` when the op comes from a transpose (autodiff's backward pass),
  ``forward`` from the JVP of the loss, else ``other`` (optimizer, metrics);
  then the Flax model the op's ``op_name`` runs in (``jvp(SeqMT)``) and up to
  ``depth`` submodule names after it (``landmark_net/conv2``), or ``-``
  outside the model (ELT's warp, the costs, the optimizer)."""
  op_name = info["op_name"] if info else ""
  if "transpose(" in op_name:
    phase = "backward"
  elif "jvp(" in op_name:
    phase = "forward"
  else:
    phase = "other"
  parts = op_name.split("/")
  for i, part in enumerate(parts):
    m = re.fullmatch(r"(?:transpose\()?jvp\(([A-Z]\w*)\)+", part)
    if m:
      subs = []
      for sub in parts[i + 1:i + 1 + depth]:
        if not re.fullmatch(r"[A-Za-z_]\w*", sub):
          break
        subs.append(sub)
      return f"{phase} {'/'.join([m.group(1)] + subs)}"
  return f"{phase} -"


def trace_events(trace_dir: str) -> list[dict]:
  """The op events (``args.hlo_op`` set) of the newest Perfetto trace in
  ``trace_dir`` (what ``jax.profiler.trace(create_perfetto_trace=True)``
  writes)."""
  files = sorted(glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"),
                           recursive=True), key=os.path.getmtime)
  if not files:
    raise FileNotFoundError(
        f"No perfetto_trace.json.gz under {trace_dir}: the profiler wrote no "
        "trace (is another profiler session running?).")
  with gzip.open(files[-1], "rt") as f:
    data = json.load(f)
  events = data["traceEvents"] if isinstance(data, dict) else data
  return [e for e in events if e.get("ph") == "X"
          and "hlo_op" in e.get("args", {})]


def summarize(events: Sequence[dict], ops: dict[str, dict], steps_run: int,
              devices: int, key) -> list[dict]:
  """Per group ``key(name, info)``: ms per step, share, ops per step/device."""
  total, count = collections.Counter(), collections.Counter()
  for e in events:
    name = e["args"]["hlo_op"]
    group = key(name, ops.get(name))
    total[group] += float(e["dur"])
    count[group] += 1
  all_us = sum(total.values()) or 1.0
  return [{"group": g, "ms_per_step": us / 1e3 / steps_run,
           "share": us / all_us,
           "ops_per_step_and_device": count[g] / steps_run / devices}
          for g, us in total.most_common()]


def profile_run(run: train_step.CompiledStep, steps_run: int,
                trace_dir: str) -> dict:
  """Traces ``steps_run`` steps of a compiled step (after one warm-up)."""
  run.run(0)
  start = time.perf_counter()
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    for i in range(steps_run):
      run.run(i + 1)
  wall = (time.perf_counter() - start) / steps_run
  ops = hlo_ops(run.compiled.as_text())
  events = [e for e in trace_events(trace_dir) if e["args"]["hlo_op"] in ops]
  devices = len({e["args"].get("device_ordinal", "0") for e in events}) or 1
  by_kind = summarize(events, ops, steps_run, devices, op_group)
  by_scope = summarize(events, ops, steps_run, devices,
                       lambda name, info: op_scope(info))
  return {"wall_ms_per_step": 1e3 * wall,
          "op_ms_per_step": sum(g["ms_per_step"] for g in by_kind),
          "devices": devices, "steps": steps_run,
          "by_kind": by_kind, "by_scope": by_scope}


def profile_experiment(name: str, costs: str, batch_size: int, steps_run: int,
                       conv_method: str = "auto", config_arg: str = "",
                       trace_dir: str | None = None) -> dict:
  """Compiles and profiles one experiment's train step; see the module doc."""
  exp = train_step.experiment_module(name)
  costs = costs or exp.DEFAULT.costs
  mesh = steps.make_mesh()
  run = train_step.compile_step(exp, costs, batch_size, conv_method, mesh,
                                config_arg)
  with tempfile.TemporaryDirectory() as tmp:
    out = profile_run(run, steps_run, trace_dir or tmp)
  out.update(experiment=name, model=exp.DEFAULT.model, costs=costs,
             batch_size=batch_size, conv_method=conv_method)
  return out


def format_profile(res: dict, top: int = 20) -> str:
  lines = [f"{res['experiment']} {res['costs']} (batch {res['batch_size']}, "
           f"conv_method={res['conv_method']}): wall {res['wall_ms_per_step']:.1f}"
           f" ms/step, op time {res['op_ms_per_step']:.1f} ms/step over "
           f"{res['devices']} device(s)"]
  for title, key in (("op kind", "by_kind"), ("part of the model", "by_scope")):
    lines.append(f"  {title:34s} {'ms/step':>8s} {'share':>6s} {'ops':>5s}")
    for g in res[key][:top]:
      lines.append(f"  {g['group'][:34]:34s} {g['ms_per_step']:8.1f} "
                   f"{100 * g['share']:5.1f}% {g['ops_per_step_and_device']:5.0f}")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  results = {}
  for name in _MODELS.value:
    res = profile_experiment(name, _COSTS.value, _BATCH.value, _STEPS.value,
                             _CONV.value, _CONFIG_ARG.value,
                             _TRACE_DIR.value or None)
    print(format_profile(res, _TOP.value))
    results[name] = res
  results["machine"] = train_step.machine()
  with open(_OUT.value, "w") as f:
    json.dump(results, f, indent=1)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
