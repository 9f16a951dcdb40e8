r"""Figures of a run or a sweep, as PNG files (matplotlib, Agg backend).

  python -m landmark_ssl.figures --workdir=RUN_OR_SWEEP_DIR [--num_images=8] \
      [--fraction=0.05] [--grid_models=seq_mt] [--by=loss.alpha ...] \
      [--runs] [--maps] [--data_dir=DIR]

A **run** directory (it holds ``config.json``) gets, in ``<run>/figures/``:

=========================  ===================================================
``training.png``           training costs and validation metrics per epoch,
                           best checkpoint marked (``metrics.jsonl``)
``ced_<split>.png``        cumulative error distribution of each test split,
                           the curve stored in ``ced_<split>.json``
``overlays_<split>.png``   predictions on ``--num_images`` test images spread
                           evenly over the split (``predictions_<split>.npz``
                           and the dataset's images): blue = ground truth,
                           orange = prediction, yellow line = the error
``maps_<split>.png``       runs trained without landmark labels (costs
                           without ``L``, i.e. Shapes), or any run with
                           ``--maps``: the image with its landmarks and the
                           maps the soft-argmax reads (paper Fig. 4); a
                           forward pass of the best checkpoint
=========================  ===================================================

A **sweep** directory (finished runs anywhere below it) gets, in
``<sweep>/figures/``:

* ``ced_<experiment>_<split>.png``: one panel per label fraction, one curve
  per table row (model and costs);
* ``overlays_<experiment>_<split>_f<fraction>.png``: paper Fig. 7 / 12
  style, one row per model and costs of ``--grid_models``, the same test
  images in every row (no ``_f<fraction>`` for rows trained without
  landmark labels);
* ``maps_<experiment>_<split>.png``: experiments trained without landmark
  labels (Shapes), from the lowest seed's run;

and with ``--runs`` every run's own figures as well.

``--by=KEY`` (repeatable; the keys of ``sweep --grid``, as ``report --by``)
splits each row by the runs' values of those config keys: one CED curve
and one overlay-grid row per row and setting, the setting in its label.
Without it, a row whose runs differ in config keys other than the seed and
paths is still pooled, and a warning names the keys to pass as ``--by``.

Decisions:

* **Seeds in a sweep CED are pooled**: the per-image errors of every seed
  of a row (``errors_sorted`` of each run's ``ced_<split>.json``) form one
  CED. All seeds are evaluated on the same test split, so this is exactly
  the mean of the per-seed CED curves. The x axis stops at the largest 99th
  percentile of the rows' errors, so one outlier does not squash the curves.
* **Overlay grid rows**: for each model and costs of ``--grid_models``
  (default Seq-MT: its L, L+C, L+T, L+T+C rows, as Fig. 7) at one label
  fraction, the run of the lowest seed. The fraction is ``--fraction``, else
  the one with the most rows (ties: 5% as in Fig. 7 if present, else the
  smallest).
* Units: errors in pixels of the stored image where the run measured pixels,
  otherwise in percent of the normaliser (as the report).

The plotting functions are pure: arrays in, a ``matplotlib.figure.Figure``
out (no pyplot state); :func:`plots.save_png` writes one. The orchestration
(:func:`run_figures`, :func:`sweep_figures`) reads the files a run writes
(``train.py``) and the dataset's images through ``input_pipeline``.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import re
import sys
from typing import Iterable, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging
from matplotlib.figure import Figure
import numpy as np

from landmark_ssl import configs
from landmark_ssl import evaluation
from landmark_ssl import paper_results
from landmark_ssl import rundir
from landmark_ssl.analysis import figure_manifest
from landmark_ssl.analysis import plots
from landmark_ssl.analysis import runs as runs_lib

FIGURES_DIR = rundir.FIGURES


# --------------------------------------------------------------------------
# reading a run's files


def spread_indices(available: Iterable[np.ndarray], num: int) -> np.ndarray:
  """``num`` example indices present in every array of ``available``,
  evenly spread over their sorted intersection (deterministic)."""
  common = None
  for idx in available:
    idx = np.unique(np.asarray(idx, np.int64))
    common = idx if common is None else np.intersect1d(common, idx)
  if common is None or common.size == 0:
    raise ValueError("no test image is shared by the runs' predictions.")
  if common.size <= num:
    return common
  pos = np.round(np.linspace(0, common.size - 1, num)).astype(np.int64)
  return common[pos]


def rows_of(predictions: Mapping[str, np.ndarray],
            indices: np.ndarray) -> np.ndarray:
  """Positions in ``predictions`` of the examples ``indices``."""
  where = {int(v): i for i, v in enumerate(predictions["index"])}
  return np.asarray([where[int(i)] for i in indices], np.int64)


def dataset_examples(data_config, split: str, indices: np.ndarray) -> dict:
  """Examples ``indices`` of ``split`` as one ``input_pipeline`` batch
  (``image`` ``(N, H, W, C)`` in [0, 1], ``landmarks``, ``visible``,
  ``labels``, ...)."""
  from landmark_ssl import input_pipeline  # pylint: disable=g-import-not-at-top
  builder = input_pipeline.open_dataset(data_config)
  source = builder.as_data_source(split=split)
  n = len(indices)
  return input_pipeline.read_batch(source, np.asarray(indices), np.ones(n),
                                   np.ones(n),
                                   input_pipeline.class_features(builder))


def class_names(data_config, feature: str) -> list[str] | None:
  """The names of a class feature of the dataset (``None`` if it has none)."""
  from landmark_ssl import input_pipeline  # pylint: disable=g-import-not-at-top
  names = input_pipeline.open_dataset(data_config).info.features[feature].names
  return list(names) if names else None


@functools.cache
def _jit_apply():
  """The model's forward pass (no dropout), compiled once per state layout."""
  import jax  # pylint: disable=g-import-not-at-top
  return jax.jit(lambda state, x: state.apply_fn(
      {"params": state.params}, x, train=False))


def forward(run, images: np.ndarray) -> dict:
  """The restored model of ``run`` (``evaluator.RestoredRun``) on ``images``
  ``(N, H, W, C)``: ``{'landmarks', 'maps', 'logits'}`` as host arrays."""
  import jax  # pylint: disable=g-import-not-at-top
  out = _jit_apply()(run.state, np.asarray(images, np.float32))
  return jax.device_get(out)


# --------------------------------------------------------------------------
# orchestration


@dataclasses.dataclass
class Written:
  """What a figures call wrote and what it could not draw."""
  figures: list = dataclasses.field(default_factory=list)  # paths
  skipped: list = dataclasses.field(default_factory=list)  # (figure, reason)

  def extend(self, other: "Written") -> None:
    self.figures.extend(other.figures)
    self.skipped.extend(other.skipped)


def data_config_of(config: Mapping, data_dir: str | None):
  """``config['data']`` of a stored config as a ``ConfigDict`` for
  ``input_pipeline``, with ``data_dir`` replaced unless ``None``."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  data = ml_collections.ConfigDict(dict(config["data"]))
  if data_dir is not None:
    data.data_dir = data_dir
  return data


def _test_splits(run_dir: str, config: Mapping) -> list[str]:
  return [s for s in config["data"]["test_splits"]
          if rundir.RunDir(run_dir).has_split_outputs(s)]


def _error_unit(run_dir: str, config: Mapping) -> str:
  results = rundir.RunDir(run_dir).read_results()
  if results is not None:
    unit = results.get("error_unit")
    if unit:
      return unit
  return evaluation.error_unit(config["eval"]["normalizer"])


@dataclasses.dataclass(frozen=True)
class Output:
  """How figures are written: ``format`` (one of :data:`plots.FORMATS`) and
  ``dpi`` (``None``: :data:`plots.DPI`; raster resolution, and the text size
  relative to the pixels of a PNG)."""
  format: str = "png"
  dpi: float | None = None

  def __post_init__(self):
    if self.format not in plots.FORMATS:
      raise ValueError(f"--format={self.format!r} is not one of "
                       f"{list(plots.FORMATS)}.")
    if self.dpi is not None and not self.dpi > 0:
      raise ValueError(f"--dpi={self.dpi!r} must be positive.")


class _Collector:
  """Draws figures into one folder, recording what was written or skipped."""

  def __init__(self, fig_dir: str, sweep: bool = False,
               output: "Output | None" = None):
    self.fig_dir = fig_dir
    self.sweep = sweep  # a sweep's figures (captions name the experiment)
    self.output = output or Output()
    self.written = Written()

  def skip(self, name: str, reason: str) -> None:
    path = os.path.join(self.fig_dir, name)
    self.written.skipped.append((path, reason))
    logging.warning("%s: skipped (%s)", path, reason)

  def draw(self, name: str, make) -> None:
    """Saves ``make()`` (a Figure, or ``(name, Figure)`` to rename it) as
    ``name``; an ``OSError``, ``ValueError`` or ``KeyError`` skips it."""
    try:
      fig = make()
    except (OSError, ValueError, KeyError) as e:
      self.skip(name, str(e))
      return
    if isinstance(fig, tuple):
      name, fig = fig
    name = f"{os.path.splitext(name)[0]}.{self.output.format}"
    path = plots.save_figure(fig, os.path.join(self.fig_dir, name), self.output.dpi)
    figure_manifest.record(self.fig_dir, os.path.basename(path),
                           caption(path, self.sweep))
    self.written.figures.append(path)


def maps_of_run(run, data_config, split: str, indices: np.ndarray,
                label: str) -> Figure:
  """The maps figure of examples ``indices`` of ``split`` for a restored run
  (``evaluator.RestoredRun``): a forward pass of its checkpoint."""
  batch = dataset_examples(data_config, split, indices)
  out = forward(run, batch["image"])
  if out.get("maps") is None:
    raise ValueError(f"model {run.config.model.name!r} has no landmark maps.")
  captions = None
  if out["logits"]:
    head = sorted(out["logits"])[0]
    names = class_names(data_config, head) or []
    name = lambda i: names[i] if i < len(names) else str(i)
    pred = np.argmax(out["logits"][head], axis=-1)
    true = batch["labels"][head]
    captions = [f"{name(p)} ({'right' if p == t else 'true: ' + name(t)})"
                for p, t in zip(pred, true)]
  return plots.maps_figure(
      batch["image"], np.asarray(out["maps"]), np.asarray(out["landmarks"]),
      f"{label}\n{split} images, predicted class and the soft-argmax input "
      f"maps (checkpoint step {run.step})", captions)


def _maps_figures(col: _Collector, run_dir: str, config: Mapping,
                  splits: Sequence[str], names: Sequence[str], num_images: int,
                  data_dir: str | None) -> None:
  """``maps`` figures (one per split, named ``names``) of one run."""
  from landmark_ssl import evaluator  # pylint: disable=g-import-not-at-top
  try:
    run = evaluator.restore_run(run_dir, data_dir=data_dir)
  except (OSError, ValueError) as e:
    for name in names:
      col.skip(name, str(e))
    return
  data_config = data_config_of(config, data_dir)
  for split, name in zip(splits, names):
    def make(split=split):
      pred = rundir.RunDir(run_dir).read_predictions(split)
      idx = spread_indices([pred["index"]], min(num_images, 6))
      return maps_of_run(run, data_config, split, idx, plots.run_label(config))
    col.draw(name, make)


def run_ced_figure(ced: Mapping, title: str, row: str,
                   error_unit: str) -> Figure:
  """The CED of one run's split: the curve of its ``ced_<split>.json``
  (content ``ced``) as stored."""
  curve = plots.CedCurve(f"{row}, {len(ced['errors_sorted'])} images",
                   np.asarray(ced["thresholds"]), np.asarray(ced["fraction"]))
  return plots.ced_figure([(f"{ced['split']} split, checkpoint step {ced['step']}",
                      [curve])], title, ced.get("error_unit", error_unit))


def run_figures(run_dir: str, num_images: int = 8, maps: bool | None = None,
                data_dir: str | None = None,
                output: Output | None = None) -> Written:
  """Writes the figures of one run in ``<run_dir>/figures/`` (module
  docstring) as ``output`` says (default PNG). ``maps``: ``None`` = only
  for runs trained without landmark labels. Figures whose inputs are
  missing are skipped, with the reason."""
  run = rundir.RunDir(run_dir)
  config = run.read_config()
  col = _Collector(os.path.join(run_dir, FIGURES_DIR), output=output)
  label = plots.run_label(config)
  unit = _error_unit(run_dir, config)
  data_config = data_config_of(config, data_dir)
  row = paper_results.row_label(configs.row_model(config["model"]),
                                config["costs"])

  if run.metrics_file.exists():
    col.draw("training.png", lambda: plots.training_curves(
        run.read_events(), label, unit))
  else:
    col.skip("training.png", f"{run_dir} has no {rundir.METRICS}: the run "
             "has not started.")
  splits = _test_splits(run_dir, config)
  if not splits:
    col.skip("ced_<split>.png", f"{run_dir} has no {rundir.ced_file('<split>')}: the run "
             "has not finished (or rerun python -m landmark_ssl.evaluate).")
  for split in splits:
    def ced(split=split):
      return run_ced_figure(run.read_ced(split), label, row, unit)

    def overlays(split=split):
      pred = run.read_predictions(split)
      idx = spread_indices([pred["index"]], num_images)
      batch = dataset_examples(data_config, split, idx)
      pos = rows_of(pred, idx)
      return plots.overlay_grid(
          batch["image"], batch["landmarks"], batch["visible"],
          [(row, pred["pred_landmarks"][pos], pred["errors"][pos])],
          f"{label}\n{split} images (blue: ground truth, orange: prediction)",
          unit)
    col.draw(f"ced_{split}.png", ced)
    col.draw(f"overlays_{split}.png", overlays)

  if maps is None:
    maps = "L" not in configs.cost_terms(config["costs"])
  if maps and splits:
    _maps_figures(col, run_dir, config, splits,
                  [f"maps_{s}.png" for s in splits], num_images, data_dir)
  return col.written


def _runs_by_cell(runs) -> dict:
  """``{runs_lib.Cell: [runs sorted by seed]}``."""
  cells = collections.defaultdict(list)
  for r in runs:
    cells[runs_lib.Cell.of(r)].append(r)
  for v in cells.values():
    v.sort(key=lambda r: r.seed)
  return dict(cells)


def _row_order(experiment: str, rows: Iterable[tuple[str, str, str]]) -> list:
  """Rows ``(model, costs, settings)``: the table rows in the paper's
  order, then the others; each row's settings in report's order."""
  order = list(paper_results.ROWS.get(experiment, []))
  rows = set(rows)
  tables = {r[:2] for r in rows}
  tables = [t for t in order if t in tables] + sorted(tables - set(order))
  return [(*t, s) for t in tables for s in sorted(
      {r[2] for r in rows if r[:2] == t}, key=runs_lib.setting_order)]


def grid_fraction(rows_per_fraction: Mapping[float, int],
                  requested: float | None = None) -> float:
  """The label fraction of the overlay grid: ``requested``, else the one
  with the most rows (ties: 0.05, as the paper's Fig. 7, else the
  smallest)."""
  if requested is not None:
    if requested not in rows_per_fraction:
      raise ValueError(
          f"--fraction={requested:g}: no run of the grid models at that label "
          f"fraction; there are {sorted(rows_per_fraction)}.")
    return requested
  most = max(rows_per_fraction.values())
  best = sorted(f for f, n in rows_per_fraction.items() if n == most)
  return 0.05 if 0.05 in best else best[0]




def _sweep_ced(cells, experiment: str, split: str, unit: str) -> Figure:
  panels, x_max = [], 0.0
  mine = [c for c in cells if c.experiment == experiment]
  for f in sorted({c.fraction for c in mine}):
    curves = []
    for model, costs, settings in _row_order(experiment, {
        c.row for c in mine if c.fraction == f}):
      cell = runs_lib.Cell(experiment, model, costs, settings, f)
      members = [(r.seed, os.fspath(rundir.RunDir(r.run_dir).ced_file(split)))
                 for r in cells[cell]]
      members = [(s, p) for s, p in members if os.path.exists(p)]
      errs = [np.asarray(rundir.read_json(p)["errors_sorted"]) for _, p in members]
      if not errs or not any(e.size for e in errs):
        continue
      n = len({s for s, _ in members})
      seeds = f"{n} seed{'s' if n > 1 else ''}"
      if len(errs) > n:  # runs of one seed with other settings (no --by)
        seeds = f"{len(errs)} runs of {seeds}"
      curves.append(plots.pooled_ced(
          errs, f"{runs_lib.row_text(model, costs, settings)}, {seeds}"))
      x_max = max(x_max, float(np.quantile(np.concatenate(errs), 0.99)))
    if curves:
      uses_labels = any("L" in configs.cost_terms(c.costs) for c in mine
                        if c.fraction == f)
      panels.append((f"{plots.fraction_label(f)} landmark labels" if uses_labels
                     else "no landmark labels", curves))
  return plots.ced_figure(panels, f"{experiment}, {split} split: cumulative error "
                    "distribution (seeds pooled)", unit,
                    x_max=1.05 * x_max if x_max > 0 else None)


def _sweep_grid(cells, configs_of, experiment: str, split: str, unit: str,
                num_images: int, fraction: float | None,
                grid_models: Sequence[str], data_dir: str | None):
  grid_cells = {c: v for c, v in cells.items()
                if c.experiment == experiment and c.model in grid_models}
  if not grid_cells:
    raise ValueError(f"no run of the models {list(grid_models)} "
                     f"(--grid_models) in {experiment}.")
  f = grid_fraction(collections.Counter(c.fraction for c in grid_cells),
                    fraction)
  chosen = []
  for model, costs, settings in _row_order(experiment, {
      c.row for c in grid_cells if c.fraction == f}):
    cell = runs_lib.Cell(experiment, model, costs, settings, f)
    r = grid_cells[cell][0]  # lowest seed
    path = rundir.RunDir(r.run_dir).predictions_file(split)
    if os.path.exists(path):
      chosen.append((r, rundir.read_predictions(path)))
  if not chosen:
    raise ValueError(f"no {rundir.predictions_file(split)} in the runs of the grid.")
  idx = spread_indices([p["index"] for _, p in chosen], num_images)
  batch = dataset_examples(data_config_of(configs_of[chosen[0][0].run_dir],
                                        data_dir), split, idx)
  rows = []
  for r, p in chosen:
    pos = rows_of(p, idx)
    label = runs_lib.row_text(r.model, r.costs, r.settings, sep="\n")
    rows.append((f"{label}\nseed {r.seed}",
                 p["pred_landmarks"][pos], p["errors"][pos]))
  # Rows trained without landmark labels (Shapes): the fraction means nothing.
  uses_labels = any("L" in configs.cost_terms(r.costs) for r, _ in chosen)
  labels = (f"{plots.fraction_label(f)} landmark labels" if uses_labels
            else "no landmark labels")
  fig = plots.overlay_grid(batch["image"], batch["landmarks"], batch["visible"], rows,
                     f"{experiment}, {split} split, {labels} (blue: ground "
                     "truth, orange: prediction)", unit)
  suffix = f"_f{f:g}" if uses_labels else ""
  return f"overlays_{experiment}_{split}{suffix}.png", fig


def sweep_figures(sweep_dir: str, num_images: int = 8,
                  fraction: float | None = None,
                  grid_models: Sequence[str] = ("seq_mt",),
                  data_dir: str | None = None,
                  by: Sequence[str] = (),
                  output: Output | None = None) -> Written:
  """Writes the figures of the finished runs under ``sweep_dir`` in
  ``<sweep_dir>/figures/`` (module docstring) as ``output`` says; ``by``:
  config keys whose values split the rows."""
  runs, _ = runs_lib.load_runs(sweep_dir, by)
  col = _Collector(os.path.join(sweep_dir, FIGURES_DIR), sweep=True,
                   output=output)
  if not runs:
    col.skip("*.png", f"no finished run ({rundir.RESULTS}) under {sweep_dir}.")
    return col.written
  for cell, keys in sorted(runs_lib.mixed_settings(runs).items()):
    logging.warning(
        "%s %s at %s landmark labels: the figures pool runs whose configs "
        "differ in %s; pass %s to draw them apart.", cell.experiment,
        paper_results.row_label(cell.model, cell.costs),
        plots.fraction_label(cell.fraction),
        ", ".join(keys), " ".join(f"--by={k}" for k in keys))
  cells = _runs_by_cell(runs)
  configs_of = {r.run_dir: rundir.RunDir(r.run_dir).read_results()
                ["config"] for r in runs}
  for experiment in sorted({r.experiment for r in runs}):
    exp_runs = [r for r in runs if r.experiment == experiment]
    units = sorted({r.error_unit for r in exp_runs})
    if len(units) > 1:
      col.skip(f"*_{experiment}_*.png", f"the runs of {experiment} measured "
               f"errors in different units {units}; report them apart.")
      continue
    splits = sorted({s for r in exp_runs
                     for s in _test_splits(r.run_dir, configs_of[r.run_dir])})
    for split in splits:
      col.draw(f"ced_{experiment}_{split}.png",
               lambda split=split: _sweep_ced(cells, experiment, split,
                                              units[0]))
      col.draw(f"overlays_{experiment}_{split}.png",
               lambda split=split: _sweep_grid(
                   cells, configs_of, experiment, split, units[0], num_images,
                   fraction, grid_models, data_dir))
    # Shapes-like rows (no landmark labels): Fig. 4 of the lowest seed.
    no_l = sorted(c for c in cells if c.experiment == experiment
                  and "L" not in configs.cost_terms(c.costs))
    if no_l and splits:
      r = cells[no_l[0]][0]
      _maps_figures(col, r.run_dir, configs_of[r.run_dir], splits,
                    [f"maps_{experiment}_{s}.png" for s in splits], num_images,
                    data_dir)
  return col.written


def caption(path: str, sweep: bool = True) -> str:
  """A one-line description of a figure from its file name (the names of
  the module docstring; ``sweep``: a sweep's figure, whose name holds the
  experiment)."""
  stem = os.path.splitext(os.path.basename(path))[0]
  kind, _, rest = stem.partition("_")
  what = {"training": "Training costs and validation metrics per epoch",
          "ced": "Cumulative error distribution" + (" (seeds pooled)" if sweep
                                                    else ""),
          "overlays": "Predictions (blue: ground truth, orange: prediction, "
                      "yellow: error)",
          "maps": "Soft-argmax input maps"}.get(kind)
  if what is None:
    return stem
  details = []
  m = re.fullmatch(r"(.*)_f([0-9.]+)", rest)
  if m:
    rest = m.group(1)
  if sweep and rest:
    experiment, _, rest = rest.partition("_")
    details.append(experiment)
  if rest:
    details.append(f"{rest} split")
  if m:
    details.append(f"{plots.fraction_label(float(m.group(2)))} landmark labels")
  return what + (": " + ", ".join(details) if details else "")


def write_figures(workdir: str, num_images: int = 8,
                  fraction: float | None = None,
                  grid_models: Sequence[str] = ("seq_mt",),
                  runs: bool = False, maps: bool | None = None,
                  data_dir: str | None = None,
                  by: Sequence[str] = (),
                  output: Output | None = None) -> Written:
  """The figures of ``workdir``: a run's own, or a sweep's (and with
  ``runs`` also those of each of its finished runs; ``by``: config keys
  that split a sweep's rows), written as ``output`` says."""
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"--workdir={workdir!r} is not a directory; pass "
                            "a run's or a sweep's --workdir.")
  if rundir.RunDir(workdir).is_run():
    if by:
      raise ValueError(
          f"--by={','.join(by)} splits a sweep's rows, but --workdir="
          f"{workdir} is one run: pass the sweep's directory, or drop --by.")
    return run_figures(workdir, num_images, maps, data_dir, output)
  out = sweep_figures(workdir, num_images, fraction, grid_models, data_dir, by,
                      output)
  if runs:
    finished, _ = runs_lib.load_runs(workdir)
    for r in finished:
      out.extend(run_figures(r.run_dir, num_images, maps, data_dir, output))
  return out


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_string("workdir", None, "A run directory or a sweep directory.",
                      flag_values=flag_values)
  flags.DEFINE_integer("num_images", 8, "Test images per overlay figure.",
                       lower_bound=1, flag_values=flag_values)
  flags.DEFINE_float("fraction", None, "Label fraction of the sweep's overlay "
                     "grid (default: see the module docstring).",
                     flag_values=flag_values)
  flags.DEFINE_list("grid_models", ["seq_mt"], "Table rows (model names) of "
                    "the sweep's overlay grid, e.g. seq_mt,rcn_plus.",
                    flag_values=flag_values)
  flags.DEFINE_multi_string("by", [], "For a sweep: config key (dotted, "
                            "e.g. loss.alpha; repeatable) whose values split "
                            "the rows, as report --by.",
                            flag_values=flag_values)
  flags.DEFINE_bool("runs", False, "For a sweep: also each run's figures.",
                    flag_values=flag_values)
  flags.DEFINE_bool("maps", None, "Soft-argmax maps figure of each run "
                    "(default: only runs trained without landmark labels).",
                    flag_values=flag_values)
  flags.DEFINE_string("data_dir", None, "TFDS data dir of the datasets, if "
                      "not the runs' config.data.data_dir.",
                      flag_values=flag_values)
  flags.DEFINE_enum("format", "png", list(plots.FORMATS), "File format of the "
                    "figures (pdf and svg are vector, for papers).",
                    flag_values=flag_values)
  flags.DEFINE_float("dpi", None, f"Resolution (default {plots.DPI}): pixels per "
                     "inch of a PNG, and of raster parts of a PDF/SVG.",
                     flag_values=flag_values)
  flags.mark_flag_as_required("workdir", flag_values=flag_values)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  FLAGS = flags.FLAGS
  from landmark_ssl import metrics_log  # pylint: disable=g-import-not-at-top
  metrics_log.quiet_library_logs()
  try:
    out = write_figures(FLAGS.workdir, FLAGS.num_images, FLAGS.fraction,
                        FLAGS.grid_models, FLAGS.runs, FLAGS.maps,
                        FLAGS.data_dir, FLAGS.by,
                        Output(FLAGS.format, FLAGS.dpi))
  except (OSError, ValueError) as e:
    logging.error("%s", e)
    sys.exit(2)
  for path in out.figures:
    print(path)
  for path, why in out.skipped:
    print(f"skipped {path}: {why}", file=sys.stderr)
  print(f"Wrote {len(out.figures)} figures; {len(out.skipped)} skipped.")
  if out.skipped:
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
