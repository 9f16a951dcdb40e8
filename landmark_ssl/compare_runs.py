r"""Why two runs of one config end apart: what each read and ran on, and
where their metrics part.

  python -m landmark_ssl.compare_runs --workdirs=RUN_A,RUN_B [--evals=10]

Reads only the runs' ``config.json``, ``results.json`` and
``metrics.jsonl``, so a committed ``results/`` copy of a run compares as
well as its workdir. Prints, for A against B:

* **config**: the keys that differ (a key one run predates counts as its
  default, as when a run resumes);
* **data**: per split, the number of examples and the digest of the decoded
  examples, and the label subset's digest (``results.json``'s ``data`` and
  ``label_subset.sha256``);
* **stack**: every entry of ``results.json``'s ``stack`` that differs
  (package versions, Python, CPU model and vector extensions, CPU counts,
  thread and numerics variables, jax flags, accelerator, code commit);
* **metrics**: the first logged training step whose logged values (costs,
  gradient norm) differ and by
  how much, the validation error of both at up to ``--evals`` of their
  common evaluations, and the final metrics.

Data, label subset and config equal but the training values apart from
the first steps on: the same program rounded differently (another CPU's
vector extensions, another XLA or jax version), which training amplifies.
A field a run did not record (runs written before it existed) is "not
recorded", never a difference. Exit code 2 (with a message) when a
workdir holds no run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from typing import Any, Iterable, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging

from landmark_ssl import configs
from landmark_ssl import rundir

# Keys of a training event that are timings or positions, not values of the
# training.
NOT_COSTS = ("event", "step", "epoch", "images_per_s", "wall_time_s")

@dataclasses.dataclass(frozen=True)
class LeafDifferences:
  """How two nested mappings differ, leaf by leaf (dotted keys, sorted).

  Attributes:
    differ: ``(key, a's value, b's value)`` of the leaves both have.
    only_a: keys only ``a`` has.
    only_b: keys only ``b`` has.
  """
  differ: list[tuple[str, Any, Any]]
  only_a: list[str]
  only_b: list[str]


def leaf_differences(a: Mapping, b: Mapping) -> LeafDifferences:
  """The leaves of ``a`` and ``b`` that differ or that only one has."""
  fa, fb = dict(configs.flat_items(a)), dict(configs.flat_items(b))
  return LeafDifferences(
      differ=[(k, fa[k], fb[k]) for k in sorted(set(fa) & set(fb))
              if fa[k] != fb[k]],
      only_a=sorted(set(fa) - set(fb)), only_b=sorted(set(fb) - set(fa)))


@dataclasses.dataclass(frozen=True)
class Divergence:
  """The first common training step whose logged values differ.

  Attributes:
    step: that step.
    key: the first value (sorted by name) that differs there.
    a, b: its values in A and B.
    steps_equal: how many common logged steps before it were equal.
  """
  step: int
  key: str
  a: float
  b: float
  steps_equal: int

  @property
  def relative(self) -> float:
    scale = max(abs(self.a), abs(self.b))
    return abs(self.a - self.b) / scale if scale else math.inf


def _train_events(events: Iterable[Mapping]) -> dict[int, dict]:
  return {int(e["step"]): {k: v for k, v in e.items() if k not in NOT_COSTS}
          for e in events if e.get("event") == "train"}


def first_divergence(events_a: Sequence[Mapping], events_b: Sequence[Mapping]
                     ) -> tuple[Divergence | None, int]:
  """``(the first divergence or None, number of common logged steps)`` of
  two runs' ``metrics.jsonl`` events: values compared exactly, at the
  training steps both logged, over the values both logged (timings left
  out)."""
  ta, tb = _train_events(events_a), _train_events(events_b)
  common = sorted(set(ta) & set(tb))
  for n, step in enumerate(common):
    a, b = ta[step], tb[step]
    for key in sorted(set(a) & set(b)):
      if a[key] != b[key]:
        return Divergence(step, key, a[key], b[key], n), len(common)
  return None, len(common)


def validation_pairs(events_a: Sequence[Mapping], events_b: Sequence[Mapping],
                     metric: str) -> list[tuple[int, float, float]]:
  """``[(step, A's value, B's value)]`` of ``metric`` at the validation
  evaluations both runs logged, by step."""
  def evals(events):
    return {int(e["step"]): e[metric] for e in events
            if e.get("event") == "eval" and metric in e}
  ea, eb = evals(events_a), evals(events_b)
  return [(s, ea[s], eb[s]) for s in sorted(set(ea) & set(eb))]


def spread(pairs: Sequence, count: int) -> list:
  """At most ``count`` items of ``pairs``, evenly spaced, first and last
  kept."""
  if count <= 0 or len(pairs) <= count:
    return list(pairs)
  if count == 1:
    return [pairs[-1]]
  picks = sorted({round(i * (len(pairs) - 1) / (count - 1))
                  for i in range(count)})
  return [pairs[i] for i in picks]


# The parts of results.json a comparison reads: each an object (of objects).
_RESULTS_SHAPE = {"metrics": "objects", "data": "object", "stack": "object",
                  "label_subset": "object", "selection": "object"}


def _check_shape(path, value: dict | None, fields: Mapping[str, str]
                 ) -> None:
  """That the ``fields`` of ``value`` (the object ``rundir.read_json`` read
  from ``path``; ``None``: absent) have the shape they name."""
  def refuse(what: str, found) -> None:
    raise rundir.CorruptFileError(
        f"{path}: {what} should be a JSON object, not {json.dumps(found)[:60]}"
        "; the file was edited or written by another program. Restore the "
        "run's own file, or compare another run.")
  for key, shape in fields.items():
    field = (value or {}).get(key)
    if field is None:
      continue
    if not isinstance(field, dict):
      refuse(f"{key!r}", field)
    if shape == "objects":
      for name, item in field.items():
        if not isinstance(item, dict):
          refuse(f"{key}[{name!r}]", item)


@dataclasses.dataclass
class RunFiles:
  """What a comparison reads of one run."""
  path: str
  config: dict
  results: dict | None
  events: list[dict]

  @classmethod
  def read(cls, path) -> "RunFiles":
    """Raises ``rundir.CorruptFileError`` for a file of the wrong shape."""
    run = rundir.RunDir(path)
    results = run.read_results()
    _check_shape(run.results_file, results, _RESULTS_SHAPE)
    return cls(str(path), run.read_config(), results, run.read_events())

  def recorded(self, key: str):
    """``results.json``'s ``key`` (``None``: unfinished, or not recorded)."""
    return (self.results or {}).get(key)


def _show(value) -> str:
  if isinstance(value, float):
    return f"{value:.6g}"
  return json.dumps(value)


def _section(title: str, lines: list[str], same: str) -> list[str]:
  return [f"{title}:"] + ([f"  {line}" for line in lines] or [f"  {same}"])


def _recorded_differences(a, b, what: str) -> list[str]:
  if a is None or b is None:
    who = " and ".join(n for n, v in (("A", a), ("B", b)) if v is None)
    return [f"{what}: not recorded in {who} (a run written before "
            f"{rundir.RESULTS} held it, or unfinished): cannot compare"]
  d = leaf_differences(a, b)
  lines = [f"{key}: A {_show(va)}, B {_show(vb)}" for key, va, vb in d.differ]
  for name, keys in (("B", d.only_a), ("A", d.only_b)):
    if keys:
      lines.append(f"not recorded in {name} (written before they were): "
                   + ", ".join(keys))
  return lines


def compare(a: RunFiles, b: RunFiles, evals: int = 10) -> str:
  """The report printed by the CLI (module docstring)."""
  out = [f"A: {a.path}", f"B: {b.path}", ""]
  out += _section("config", _recorded_differences(
      configs.with_defaults(a.config), configs.with_defaults(b.config),
      "config"), "same")
  data_lines = _recorded_differences(a.recorded("data"), b.recorded("data"),
                                     "data")
  subset_a = (a.recorded("label_subset") or {}).get("sha256")
  subset_b = (b.recorded("label_subset") or {}).get("sha256")
  if subset_a is None or subset_b is None:
    who = " and ".join(n for n, v in (("A", subset_a), ("B", subset_b))
                       if v is None)
    data_lines.append(f"label subset: digest not recorded in {who}")
  elif subset_a != subset_b:
    data_lines.append(f"label subset: A {subset_a[:12]}, B {subset_b[:12]}")
  out += _section("data", data_lines, "same examples and label subset")
  out += _section("stack", _recorded_differences(
      a.recorded("stack"), b.recorded("stack"), "stack"), "same")
  divergence, common = first_divergence(a.events, b.events)
  metric_lines = []
  if not common:
    metric_lines.append("no training step logged by both")
  elif divergence is None:
    metric_lines.append(f"training values equal at all {common} common "
                        "logged steps")
  else:
    d = divergence
    metric_lines.append(
        f"training values equal at {d.steps_equal} of {common} common "
        "logged steps, "
        f"first apart at step {d.step}: {d.key} A {d.a:.7g}, B {d.b:.7g} "
        f"(relative {d.relative:.1e})")
  metric = (a.recorded("selection") or {}).get("metric", "landmark_error")
  pairs = validation_pairs(a.events, b.events, metric)
  if pairs:
    metric_lines.append(f"validation {metric} (step: A, B):")
    metric_lines += [f"  {s}: {va:.4f}, {vb:.4f}" for s, va, vb in
                     spread(pairs, evals)]
  for name, run in (("A", a), ("B", b)):
    if run.results is None:
      metric_lines.append(f"{name}: unfinished (no {rundir.RESULTS})")
      continue
    finals = ", ".join(
        f"{split} {m[metric]:.4f}" for split, m in
        run.results.get("metrics", {}).items() if metric in m)
    metric_lines.append(f"{name}: best step {run.results.get('best_step')}, "
                        f"{metric} {finals}")
  out += _section("metrics", metric_lines, "")
  return "\n".join(out)


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_list("workdirs", None, "Two run directories: A,B.",
                    flag_values=flag_values)
  flags.DEFINE_integer("evals", 10, "Validation evaluations to print (evenly "
                       "spaced; 0: all).", flag_values=flag_values)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  FLAGS = flags.FLAGS
  if not FLAGS.workdirs or len(FLAGS.workdirs) != 2:
    raise app.UsageError("--workdirs takes two run directories: "
                         "--workdirs=RUN_A,RUN_B.")
  try:
    runs = [RunFiles.read(path) for path in FLAGS.workdirs]
  except (FileNotFoundError, ValueError) as e:
    logging.error("%s", e)
    sys.exit(2)
  print(compare(*runs, evals=FLAGS.evals))


if __name__ == "__main__":
  define_flags()
  app.run(main)
