"""Finished runs as records, and their aggregation into table cells.

JAX-free: reads each run's ``results.json`` and averages seeds per cell.
``report`` renders what this computes and ``figures`` draws it; neither
imports the other for it.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from landmark_ssl import configs
from landmark_ssl import paper_results
from landmark_ssl import rundir

_SKIP_METRICS = ("num_images",)
# Metrics whose thresholds are fractions of a normaliser: meaningless, and
# not reported, for errors in pixels (Blocks).
_NORMALISED_ONLY = ("failure_rate@", "auc@")
# Config keys that may differ between the seeds of one cell without changing
# what is measured (paths, logging, batch size of evaluation, the split
# memory budget, and the convolution formulation, exact to float
# tolerance).
_INCIDENTAL_KEYS = ("seed", "data.data_dir", "data.manual_dir",
                    "data.eval_batch_size", "data.cache_mib",
                    "train.checkpoint_every_steps",
                    "train.log_every_steps", "model.conv_method")


@dataclasses.dataclass(frozen=True)
class Run:
  """One finished run, read from its ``results.json``."""
  run_dir: str
  experiment: str  # config.data.name without a builder config
  model: str  # table row: configs.row_model
  costs: str
  fraction: float
  seed: int
  error_unit: str  # 'pixels' or 'fraction of <normalizer>'
  metrics: Mapping[str, Mapping[str, float]]  # split -> metric -> value
  # The --by settings, e.g. 'model.beta=1.0' ('' without --by).
  settings: str = ""
  # The flattened config but the incidental keys, to find mixed cells.
  config: Tuple[Tuple[str, str], ...] = ()
  selection: Tuple[str, str] = ("landmark_error", "min")  # metric, mode
  # protocol_differences: () at the table's protocol, else 'key=value's.
  protocol: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Stats:
  mean: float
  std: float  # sample standard deviation (ddof=1); nan for n = 1
  n: int
  seeds: Tuple[int, ...]


def load_runs(workdir: str, by: Sequence[str] = (),
              experiment_files: Sequence[str] | None = None
              ) -> Tuple[List[Run], List[Tuple[str, str]]]:
  """Every ``results.json`` under ``workdir``; ``by``: config keys whose
  values become each run's ``settings``; each run's ``protocol`` says where
  it differs from its table's protocol (:func:`protocol_differences`, with
  ``experiment_files`` or the repository's experiments).

  Returns:
    ``(finished runs, [(run_dir, status), ...] of the others)``.

  Raises:
    ValueError: naming a ``results.json`` that is not the expected JSON, or
      a ``by`` key that no finished run's config has (a run lacking a key
      that others have simply has no setting for it).
  """
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"--workdir={workdir!r} is not a directory; pass "
                            "the --workdir of the sweep.")
  finished, other = [], []
  modules = None  # the experiment files, loaded at the first finished run
  found = set()  # the config keys of the finished runs
  for root, data, error in rundir.find_results(workdir):
    if data is None:
      raise ValueError(error)
    status = data.get("status") if isinstance(data, dict) else None
    if status != "finished":
      other.append((root, str(status)))
      continue
    run = _run_of(root, data, os.path.join(root, rundir.RESULTS), by)
    if modules is None:
      modules = experiment_modules(experiment_files)
    differ = protocol_differences(data["config"], modules, by)
    finished.append(dataclasses.replace(run, protocol=differ or ()))
    found.update(k for k, _ in configs.flat_items(
        configs.with_defaults(data["config"])))
  for key in by:
    if finished and key not in found:
      raise ValueError(
          f"--by={key}: no finished run under {workdir} has the config key "
          f"{key!r} (keys are dotted paths of a run's config, e.g. "
          "model.beta); check its spelling.")
  return finished, other


def _run_of(run_dir: str, data: Mapping, path: str, by: Sequence[str] = ()
            ) -> Run:
  try:
    # Keys added to the framework after the run are at their defaults.
    config = configs.with_defaults(data["config"])
    flat = {k: json.dumps(v) for k, v in configs.flat_items(config)}
    selection = data.get("selection") or {}
    metrics = {split: {k: float(v) for k, v in m.items()
                       if k not in _SKIP_METRICS and _is_number(v)}
               for split, m in data["metrics"].items()}
    return Run(run_dir=run_dir,
               experiment=experiment_of(config["data"]["name"]),
               model=configs.row_model(config["model"]),
               costs=config["costs"],
               fraction=float(config["data"]["labeled_fraction"]),
               seed=int(config["seed"]),
               error_unit=str(data.get("error_unit", "")),
               metrics=metrics,
               # A key the run's config lacks (a baseline without
               # model.beta beside a Seq-MT grid) is left out of its row.
               settings=", ".join(f"{k}={flat[k]}" for k in by if k in flat),
               config=tuple(sorted((k, v) for k, v in flat.items()
                                   if k not in _INCIDENTAL_KEYS)),
               selection=(str(selection.get("metric", "landmark_error")),
                          str(selection.get("mode", "min"))))
  except (KeyError, TypeError, AttributeError) as e:
    raise ValueError(
        f"{path} lacks {e} or has the wrong type: a finished {rundir.RESULTS} "
        "holds config.{data.name, data.labeled_fraction, model.name, costs, "
        "seed}, error_unit and metrics.{split}.{metric}.") from None


# The paper's experiment files: the repository's experiments/ folder.
EXPERIMENTS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))), "experiments")


def experiment_modules(paths: Sequence[str] | None = None) -> list:
  """The experiment files that define the tables' protocol, loaded:
  ``paths`` first, then every ``experiments/*.py`` of the repository (none
  outside one), so that a run of a dataset no given file covers (a Blocks
  run beside ``--config=experiments/hgr1.py``) is still held to its own
  table's protocol, not taken as at it."""
  given = [configs.load_experiment(p) for p in paths or ()]
  if not os.path.isdir(EXPERIMENTS_DIR):
    return given
  modules = given
  loaded = {os.path.realpath(p) for p in paths or ()}
  for name in sorted(os.listdir(EXPERIMENTS_DIR)):
    if (name.endswith(".py") and os.path.realpath(
        os.path.join(EXPERIMENTS_DIR, name)) not in loaded):
      try:
        modules.append(configs.load_experiment(
            os.path.join(EXPERIMENTS_DIR, name)))
      except (ValueError, ImportError):
        continue  # not a table's experiment file (no sweep())
  return modules


def protocol_differences(config: Mapping, modules: Sequence,
                         by: Sequence[str] = ()) -> Tuple[str, ...] | None:
  """Where a run's config differs from its table's protocol.

  The protocol of a run is the config its experiment file gives for its
  model and costs (not ``quick``), at the run's label fraction and seed,
  with the settings the file's ``sweep()`` adds to that column
  (``configs.table_runs``' ``column_settings``): what ``sweep`` trains.
  Keys that do not change what is measured (``_INCIDENTAL_KEYS``) and the
  ``by`` keys (a ``--grid``) are not compared.

  Returns:
    ``()`` at the protocol; ``('key=value', ...)`` (the run's values) where
    it differs, e.g. a ``quick`` run on ``blocks/small``; None when no
    experiment file offers the run's model and costs.
  """
  config = with_json_types(configs.with_defaults(config))
  experiment = experiment_of(config["data"]["name"])
  model, costs = configs.row_model(config["model"]), config["costs"]
  for module in modules:
    try:
      reference = module.get_config(f"model={model},costs={costs}")
    except Exception:  # pylint: disable=broad-except
      continue  # not this experiment's model or costs (or not a table's file)
    if experiment_of(reference.data.name) != experiment:
      continue
    fraction = float(config["data"]["labeled_fraction"])
    reference.update_from_flattened_dict(
        _column_settings(module, model, costs, fraction))
    reference.data.labeled_fraction = fraction
    reference.seed = int(config["seed"])
    ref = dict(configs.flat_items(with_json_types(configs.with_defaults(
        reference.to_dict()))))
    own = dict(configs.flat_items(config))
    skip = set(_INCIDENTAL_KEYS) | set(by)
    return tuple(f"{k}={json.dumps(own.get(k))}"
                 for k in sorted(set(ref) | set(own))
                 if k not in skip and own.get(k) != ref.get(k))
  return None


def _column_settings(module, model: str, costs: str, fraction: float) -> dict:
  """The overrides ``module.sweep()`` gives the runs of the table cell
  (``model``, ``costs``, ``fraction``), seed left out; ``{}`` where the
  sweep has no such cell (a run outside the paper's table)."""
  sweep = getattr(module, "sweep", None)
  if sweep is None:
    return {}
  try:
    runs = sweep(seeds=(0,))
  except TypeError:  # an experiment file whose sweep() takes no seeds
    runs = sweep()
  for run in runs:
    overrides = run["overrides"]
    if (run["config_arg"] == f"model={model},costs={costs}" and
        float(overrides.get("data.labeled_fraction", -1)) == fraction):
      return {k: v for k, v in overrides.items() if k != "seed"}
  return {}


def with_json_types(config: Mapping) -> dict:
  """A config as plain JSON types (tuples become lists), as stored."""
  return json.loads(json.dumps(config))


def experiment_of(data_name: str) -> str:
  """The paper experiment of a dataset name: ``'blocks/small'`` -> ``'blocks'``
  (a TFDS builder config does not change the table)."""
  return str(data_name).partition("/")[0]


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def display(metric: str, value: float, error_unit: str) -> Tuple[float, str]:
  """A stored metric in the paper's units: ``(value, unit)``."""
  if metric == "landmark_error":
    if error_unit == "pixels":
      return value, "pixels"
    normalizer = error_unit.replace("fraction of ", "", 1) or "normaliser"
    return 100.0 * value, f"% of {normalizer}"
  return 100.0 * value, "%"


@dataclasses.dataclass(frozen=True, order=True)
class Cell:
  """A table cell: the runs of one experiment's row (model, costs and the
  ``--by`` settings, '' without) at one label fraction; its seeds pool."""
  experiment: str
  model: str
  costs: str
  settings: str
  fraction: float

  @classmethod
  def of(cls, run: Run) -> "Cell":
    return cls(run.experiment, run.model, run.costs, run.settings,
               run.fraction)

  @property
  def row(self) -> Tuple[str, str, str]:
    """``(model, costs, settings)``: the table row."""
    return (self.model, self.costs, self.settings)


@dataclasses.dataclass(frozen=True, order=True)
class CellKey:
  """One number of a report: a cell's ``metric`` on a test ``split``, in
  display ``unit``."""
  cell: Cell
  split: str
  metric: str
  unit: str


def aggregate(runs: Iterable[Run]) -> Dict[CellKey, Stats]:
  """Mean, sample std (ddof=1) and count over the runs of each cell, per
  test split (every split but ``validation``) and metric, in display
  units (failure rates and AUCs only for normalised errors)."""
  values = collections.defaultdict(list)
  for r in runs:
    for split, metrics in r.metrics.items():
      if split == "validation":
        continue
      for metric, v in metrics.items():
        if r.error_unit == "pixels" and metric.startswith(_NORMALISED_ONLY):
          continue  # results.json written before evaluation dropped them
        shown, unit = display(metric, v, r.error_unit)
        values[CellKey(Cell.of(r), split, metric, unit)].append(
            (r.seed, shown))
  return {key: cell_stats(pairs) for key, pairs in values.items()}


def cell_stats(pairs: Sequence[Tuple[int, float]]) -> Stats:
  """Mean, sample std (ddof=1) and seeds of ``[(seed, value), ...]``."""
  xs = [v for _, v in pairs]
  n = len(xs)
  mean = sum(xs) / n
  std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else math.nan
  return Stats(mean, std, n, tuple(sorted(s for s, _ in pairs)))


def mixed_settings(runs: Iterable[Run]) -> Dict[Cell, Dict[str, List[str]]]:
  """``{cell: {key: [values]}}``
  for the cells whose runs differ in config keys other than the seed and
  paths (``_INCIDENTAL_KEYS``): what ``aggregate`` would average together
  (pass those keys as ``--by`` to separate them). Values are JSON text."""
  cells = collections.defaultdict(list)
  for r in runs:
    cells[Cell.of(r)].append(r)
  out = {}
  for cell, members in cells.items():
    configs_ = [dict(r.config) for r in members]
    keys = sorted(set().union(*configs_))
    differ = {k: sorted({c.get(k, "(absent)") for c in configs_}) for k in keys}
    differ = {k: v for k, v in differ.items() if len(v) > 1}
    if differ:
      out[cell] = differ
  return out


def setting_order(settings: str):
  """Sorts ``'model.beta=0.1'`` before ``'model.beta=1.0'`` (numerically
  where the values are numbers)."""
  parts = []
  for item in settings.split(", ") if settings else ():
    _, _, value = item.partition("=")
    try:
      parts.append((0, float(value), ""))
    except ValueError:
      parts.append((1, 0.0, value))
  return tuple(parts)


def row_text(model: str, costs: str, settings: str, sep: str = ", ") -> str:
  """``'Seq-MT (L+C), loss.alpha=0.1'``: a row's name and its ``--by``
  settings (if any) after ``sep``."""
  label = paper_results.row_label(model, costs)
  return f"{label}{sep}{settings}" if settings else label
