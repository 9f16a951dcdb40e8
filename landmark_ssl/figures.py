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
out (no pyplot state); :func:`save_png` writes one. The orchestration
(:func:`run_figures`, :func:`sweep_figures`) reads the files a run writes
(``train.py``) and the dataset's images through ``input_pipeline``.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import os
import re
import sys
import textwrap
from typing import Iterable, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
import numpy as np

from landmark_ssl import configs
from landmark_ssl import evaluation
from landmark_ssl import paper_results
from landmark_ssl import rundir
from landmark_ssl.analysis import figure_manifest
from landmark_ssl.analysis import runs as runs_lib

FIGURES_DIR = rundir.FIGURES
DPI = 100
# Okabe-Ito colours, told apart with any colour vision: sky blue (truth) and
# orange (prediction), each dot with a thin black edge, and a yellow error
# line with a black outline, so all three show on black and on white shapes.
GT_COLOR = "#56B4E9"
PRED_COLOR = "#E69F00"
LINE_COLOR = "#F0E442"
_OUTLINE = [patheffects.withStroke(linewidth=2.6, foreground="black")]
FORMATS = ("png", "pdf", "svg")
# Colours of landmarks 1, 2, ... in the maps figure (Fig. 4: red, then blue).
LANDMARK_COLORS = ("red", "blue", "orange", "magenta", "cyan", "white")
_TRAIN_COSTS = ("loss", "landmark", "class", "elt")
_PANEL_IN = 1.7  # inches per image panel
_CED_GRID_POINTS = 201


# --------------------------------------------------------------------------
# figure plumbing


def new_figure(width_in: float, height_in: float) -> Figure:
  """A fresh figure on an Agg canvas (no pyplot state), constrained layout."""
  fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
  FigureCanvasAgg(fig)
  return fig


def set_title(fig: Figure, text: str, fontsize: float = 10) -> None:
  """The figure's title, each line wrapped to the figure's width."""
  width_chars = max(20, int(fig.get_size_inches()[0] * 140 / fontsize))
  lines = [textwrap.fill(line, width_chars) for line in text.split("\n")]
  fig.suptitle("\n".join(lines), fontsize=fontsize)


def png_size(fig: Figure) -> tuple[int, int]:
  """``(width, height)`` in pixels of the PNG :func:`save_png` writes."""
  w, h = fig.get_size_inches() * fig.dpi
  return int(round(w)), int(round(h))


def save_figure(fig: Figure, path: str | os.PathLike,
                dpi: float | None = None) -> str:
  """Writes ``fig`` in the format of ``path``'s suffix (one of
  :data:`FORMATS`) at ``dpi`` (default the figure's: a PNG of exactly
  :func:`png_size` pixels); returns the path. Creates the parent
  directory."""
  path = os.fspath(path)
  fmt = os.path.splitext(path)[1].lstrip(".").lower()
  if fmt not in FORMATS:
    raise ValueError(f"{path}: figure format {fmt!r} is not one of "
                     f"{list(FORMATS)} (--format).")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path, dpi=dpi or fig.dpi, format=fmt)
  return path


def save_png(fig: Figure, path: str | os.PathLike) -> str:
  """:func:`save_figure` of a ``.png`` path at the figure's dpi."""
  return save_figure(fig, path)


def error_display(error_unit: str) -> tuple[float, str]:
  """``(scale, axis unit)``: stored errors times ``scale`` read in the axis
  unit (``'pixels'``, or ``'% of <normaliser>'`` for fractions)."""
  scale, unit = runs_lib.display("landmark_error", 1.0, error_unit)
  return scale, unit


def run_label(config: Mapping) -> str:
  """``'blocks · Seq-MT (L+T+C) · 5% landmark labels · seed 0'``."""
  experiment = runs_lib.experiment_of(config["data"]["name"])
  row = paper_results.row_label(configs.row_model(config["model"]),
                                config["costs"])
  if "L" in configs.cost_terms(config["costs"]):
    labels = f"{fraction_label(config['data']['labeled_fraction'])} landmark labels"
  else:
    labels = "no landmark labels"
  return f"{experiment} · {row} · {labels} · seed {config['seed']}"


def fraction_label(fraction: float) -> str:
  return f"{100 * float(fraction):g}%"


def _image_axes(ax, image: np.ndarray) -> None:
  """Shows an ``(H, W[, C])`` image in [0, 1] (or uint8) with pixel centres
  at integer coordinates (matplotlib's default extent)."""
  img = np.asarray(image)
  if img.ndim == 3 and img.shape[-1] == 1:
    img = img[..., 0]
  vmax = 255 if img.dtype == np.uint8 else 1.0
  ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=vmax,
            interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])


def _marker_size(num_landmarks: int) -> float:
  return float(np.clip(60.0 / math.sqrt(max(num_landmarks, 1)), 4.0, 30.0))


def draw_landmarks(ax, gt: np.ndarray | None, pred: np.ndarray | None,
                   visible: np.ndarray | None = None) -> None:
  """Ground truth (``GT_COLOR``), prediction (``PRED_COLOR``) and an
  outlined ``LINE_COLOR`` line joining each visible pair, on ``ax`` in
  image pixels. ``gt``, ``pred``: ``(K, 2)``
  ``(x, y)``; ``visible``: ``(K,)`` (invisible ground truth is not drawn)."""
  k = (gt if gt is not None else pred).shape[0]
  vis = np.ones((k,), bool) if visible is None else np.asarray(visible) > 0
  size = _marker_size(k)
  if gt is not None and pred is not None:
    segments = np.stack([gt[vis], pred[vis]], axis=1)
    ax.add_collection(LineCollection(segments, colors=LINE_COLOR,
                                     linewidths=1.0, zorder=2,
                                     path_effects=_OUTLINE))
  if gt is not None:
    ax.scatter(gt[vis, 0], gt[vis, 1], s=size, c=GT_COLOR, marker="o",
               edgecolors="black", linewidths=0.5, zorder=3,
               label="ground truth")
  if pred is not None:
    ax.scatter(pred[:, 0], pred[:, 1], s=size, c=PRED_COLOR, marker="o",
               edgecolors="black", linewidths=0.5, zorder=4,
               label="prediction")


def _overlay_legend(fig: Figure) -> None:
  handles = [
      Line2D([], [], marker="o", ls="", color=GT_COLOR, label="ground truth"),
      Line2D([], [], marker="o", ls="", color=PRED_COLOR, label="prediction"),
      Line2D([], [], color=LINE_COLOR, label="error", path_effects=_OUTLINE),
  ]
  fig.legend(handles=handles, loc="outside lower center", ncols=3,
             fontsize=8, frameon=False)


# --------------------------------------------------------------------------
# pure plotting functions


def training_curves(events: Sequence[Mapping], title: str,
                    error_unit: str) -> Figure:
  """Training costs and validation metrics of a run, per epoch.

  Args:
    events: the records of ``metrics.jsonl`` (``train`` events give the
      costs ``loss``, ``landmark``, ``class``, ``elt``; ``eval`` events of
      split ``validation`` give ``landmark_error`` and ``accuracy/<head>``).
    title: the figure title (e.g. :func:`run_label`).
    error_unit: ``results.json``'s ``error_unit`` (``'pixels'`` or
      ``'fraction of <normaliser>'``).

  Returns:
    A figure with panels: costs (log scale where positive), validation
    landmark error (in :func:`error_display` units) and, if there are class
    heads, validation accuracy (%). The best checkpoint (``best_step`` of
    the last evaluation) is a dashed vertical line.
  """
  train_ev = [e for e in events if e.get("event") == "train"]
  eval_ev = [e for e in events if e.get("event") == "eval"
             and e.get("split", "validation") == "validation"]
  if not train_ev and not eval_ev:
    raise ValueError("no train or eval events to plot.")
  heads = sorted({k for e in eval_ev for k in e if k.startswith("accuracy/")})
  panels = 1 + bool(eval_ev) + bool(heads)
  fig = new_figure(4.2 * panels, 3.4)
  axes = fig.subplots(1, panels, squeeze=False)[0]
  set_title(fig, title)
  per_step = [e["epoch"] / e["step"] for e in events
              if e.get("step") and "epoch" in e]
  epoch_of_step = per_step[0] if per_step else None
  best_step = next((e.get("best_step") for e in reversed(eval_ev)
                    if e.get("best_step") is not None), None)

  def mark_best(ax):
    if best_step is not None and epoch_of_step is not None:
      ax.axvline(best_step * epoch_of_step, color="grey", ls="--", lw=1,
                 label=f"best (step {best_step})")

  ax = axes[0]
  ax.set_title("training costs (unweighted)", fontsize=9)
  positive = True
  for name in _TRAIN_COSTS:
    pts = [(e["epoch"], e[name]) for e in train_ev if name in e]
    if pts:
      x, y = np.asarray(pts, np.float64).T
      positive &= bool(np.all(y > 0))
      ax.plot(x, y, label=name, lw=1.2)
  if positive and ax.lines:
    ax.set_yscale("log")
  ax.set_xlabel("epoch")
  ax.set_ylabel("cost")
  mark_best(ax)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)

  if eval_ev:
    scale, unit = error_display(error_unit)
    ax = axes[1]
    pts = [(e["epoch"], e["landmark_error"] * scale) for e in eval_ev
           if "landmark_error" in e]
    if pts:
      x, y = np.asarray(pts, np.float64).T
      ax.plot(x, y, marker="o", ms=3, lw=1.2, label="landmark error")
    ax.set_title("validation landmark error", fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"mean error ({unit})")
    mark_best(ax)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
  if heads:
    ax = axes[2]
    for head in heads:
      pts = [(e["epoch"], 100.0 * e[head]) for e in eval_ev if head in e]
      x, y = np.asarray(pts, np.float64).T
      ax.plot(x, y, marker="o", ms=3, lw=1.2, label=head)
    ax.set_title("validation accuracy", fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    mark_best(ax)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
  return fig


@dataclasses.dataclass(frozen=True)
class CedCurve:
  """One CED curve: ``fraction[j]`` of the images have an error at most
  ``thresholds[j]`` (stored units: pixels or fractions of the normaliser)."""
  label: str
  thresholds: np.ndarray
  fraction: np.ndarray


def ced_figure(panels: Sequence[tuple[str, Sequence[CedCurve]]], title: str,
               error_unit: str, x_max: float | None = None,
               columns: int = 3) -> Figure:
  """Cumulative error distributions, one panel per ``(subtitle, curves)``.

  x: error in :func:`error_display` units (stored value times the scale);
  y: images with at most that error, in percent. For errors relative to a
  normaliser, the AUC threshold (``evaluation.AUC_THRESHOLD``) is a dotted
  line. ``x_max`` (stored units) cuts the x axis; default: the curves' range.
  """
  if not panels:
    raise ValueError("no CED curves to plot.")
  scale, unit = error_display(error_unit)
  cols = min(columns, len(panels))
  rows = math.ceil(len(panels) / cols)
  fig = new_figure(max(4.0 * cols, 5.0), 3.3 * rows + 0.5)
  axes = fig.subplots(rows, cols, squeeze=False).ravel()
  set_title(fig, title)
  for ax, (subtitle, curves) in zip(axes, panels):
    for curve in curves:
      ax.plot(np.asarray(curve.thresholds) * scale,
              100.0 * np.asarray(curve.fraction), lw=1.4, label=curve.label)
    if error_unit != "pixels":
      ax.axvline(evaluation.AUC_THRESHOLD * scale, color="grey", ls=":", lw=1)
    if x_max is not None and x_max > 0:
      ax.set_xlim(0, x_max * scale)
    else:
      ax.set_xlim(left=0)
    ax.set_ylim(0, 100)
    ax.set_title(subtitle, fontsize=9)
    ax.set_xlabel(f"error ({unit})")
    ax.set_ylabel("images with at most this error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  return fig


def overlay_grid(images: np.ndarray, landmarks: np.ndarray,
                 visible: np.ndarray,
                 rows: Sequence[tuple[str, np.ndarray, np.ndarray | None]],
                 title: str, error_unit: str | None = None) -> Figure:
  """Predictions on the same images, one row per model (paper Figs. 7, 12).

  Args:
    images: ``(N, H, W, C)`` in [0, 1] (or uint8), the columns.
    landmarks: ``(N, K, 2)`` ground truth; ``visible`` ``(N, K)``.
    rows: ``(label, pred (N, K, 2), errors (N,) or None)`` per row; a row's
      errors (stored units) are printed above its images.
    title: the figure title.
    error_unit: how to print the errors (``'pixels'`` or ``'fraction of
      X'``); needed when a row has errors.

  Returns:
    A ``len(rows) x N`` grid: blue ground truth, orange predictions, yellow
    lines joining them; row labels on the left; a legend below.
  """
  n = len(images)
  if n == 0 or not rows:
    raise ValueError("overlay_grid needs at least one image and one row.")
  fig = new_figure(_PANEL_IN * n + 0.6, _PANEL_IN * len(rows) + 0.9)
  axes = fig.subplots(len(rows), n, squeeze=False)
  set_title(fig, title)
  if error_unit is not None:
    scale, unit = error_display(error_unit)
    unit = "px" if unit == "pixels" else unit
  for r, (label, pred, errors) in enumerate(rows):
    for c in range(n):
      ax = axes[r, c]
      _image_axes(ax, images[c])
      draw_landmarks(ax, landmarks[c], pred[c], visible[c])
      h, w = np.asarray(images[c]).shape[:2]
      ax.set_xlim(-0.5, w - 0.5)
      ax.set_ylim(h - 0.5, -0.5)
      if errors is not None and error_unit is not None:
        sep = "" if unit.startswith("%") else " "
        ax.set_title(f"{errors[c] * scale:.2f}{sep}{unit}", fontsize=7, pad=2)
      if c == 0:
        ax.set_ylabel(label, fontsize=8)
  _overlay_legend(fig)
  return fig


def maps_figure(images: np.ndarray, maps: np.ndarray, landmarks: np.ndarray,
                title: str, captions: Sequence[str] | None = None,
                max_maps: int = 4) -> Figure:
  """Images with their landmarks and the maps the soft-argmax reads (Fig. 4).

  Args:
    images: ``(N, H, W, C)``, the columns.
    maps: ``(N, H, W, K)`` soft-argmax inputs.
    landmarks: ``(N, K, 2)`` predictions (drawn as crosses, landmark ``k``
      in ``LANDMARK_COLORS[k]``, on the image and on map ``k``).
    title: the figure title.
    captions: one line per image (e.g. predicted and true class).
    max_maps: maps shown per image (the first ones).

  Returns:
    A ``(1 + min(K, max_maps)) x N`` grid: images on top, map ``k`` in row
    ``k + 1``, each with its own colour scale and colourbar (map values).
  """
  n = len(images)
  k = min(maps.shape[-1], max_maps)
  fig = new_figure(_PANEL_IN * n + 0.6, _PANEL_IN * (1 + k) + 0.5)
  axes = fig.subplots(1 + k, n, squeeze=False)
  set_title(fig, title)
  colors = [LANDMARK_COLORS[i % len(LANDMARK_COLORS)]
            for i in range(landmarks.shape[1])]
  for c in range(n):
    ax = axes[0, c]
    _image_axes(ax, images[c])
    ax.scatter(landmarks[c, :, 0], landmarks[c, :, 1], c=colors, marker="x",
               s=40, linewidths=1.5, zorder=3)
    if captions is not None:
      ax.set_title(captions[c], fontsize=7, pad=2)
    for j in range(k):
      ax = axes[1 + j, c]
      shown = ax.imshow(maps[c, :, :, j], cmap="viridis",
                        interpolation="nearest")
      cbar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
      cbar.ax.tick_params(labelsize=5)
      ax.scatter([landmarks[c, j, 0]], [landmarks[c, j, 1]], c=colors[j],
                 marker="x", s=40, linewidths=1.5, zorder=3)
      ax.set_xticks([])
      ax.set_yticks([])
  axes[0, 0].set_ylabel("image, landmarks", fontsize=8)
  for j in range(k):
    axes[1 + j, 0].set_ylabel(f"map of landmark {j + 1}", fontsize=8,
                              color=colors[j])
  return fig


def prediction_overlay(image: np.ndarray, landmarks: np.ndarray, title: str,
                       box: Sequence[float] | None = None,
                       square: tuple[np.ndarray, float] | None = None,
                       max_side_in: float = 6.0) -> Figure:
  """Predicted landmarks (red) on an original image (``predict``).

  Args:
    image: ``(H, W)`` or ``(H, W, 3)`` uint8, as read from the file.
    landmarks: ``(K, 2)`` in the image's pixels.
    title: the figure title (file name, classes).
    box: the user's box ``(x0, y0, x1, y1)`` (dashed cyan), if any.
    square: ``(centre (2,), side)`` of the square the model saw (dotted
      yellow).
    max_side_in: the longer side of the figure in inches.
  """
  h, w = np.asarray(image).shape[:2]
  s = max_side_in / max(h, w)
  fig = new_figure(max(w * s, 2.5), h * s + 0.4)
  ax = fig.subplots()
  _image_axes(ax, image)
  ax.set_title(title, fontsize=8)
  draw_landmarks(ax, None, np.asarray(landmarks))
  if box is not None:
    x0, y0, x1, y1 = box
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                           edgecolor="cyan", ls="--", lw=1))
  if square is not None:
    (cx, cy), side = square
    ax.add_patch(Rectangle((cx - side / 2, cy - side / 2), side, side,
                           fill=False, edgecolor=LINE_COLOR, ls=":", lw=1))
  ax.set_xlim(-0.5, w - 0.5)
  ax.set_ylim(h - 0.5, -0.5)
  return fig


# --------------------------------------------------------------------------
# reading a run's files


read_events = rundir.read_events
read_json = rundir.read_json
read_predictions = rundir.read_predictions


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
  """How figures are written: ``format`` (one of :data:`FORMATS`) and
  ``dpi`` (``None``: :data:`DPI`; raster resolution, and the text size
  relative to the pixels of a PNG)."""
  format: str = "png"
  dpi: float | None = None

  def __post_init__(self):
    if self.format not in FORMATS:
      raise ValueError(f"--format={self.format!r} is not one of "
                       f"{list(FORMATS)}.")
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
    path = save_figure(fig, os.path.join(self.fig_dir, name), self.output.dpi)
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
  return maps_figure(
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
      return maps_of_run(run, data_config, split, idx, run_label(config))
    col.draw(name, make)


def run_ced_figure(ced: Mapping, title: str, row: str,
                   error_unit: str) -> Figure:
  """The CED of one run's split: the curve of its ``ced_<split>.json``
  (content ``ced``) as stored."""
  curve = CedCurve(f"{row}, {len(ced['errors_sorted'])} images",
                   np.asarray(ced["thresholds"]), np.asarray(ced["fraction"]))
  return ced_figure([(f"{ced['split']} split, checkpoint step {ced['step']}",
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
  label = run_label(config)
  unit = _error_unit(run_dir, config)
  data_config = data_config_of(config, data_dir)
  row = paper_results.row_label(configs.row_model(config["model"]),
                                config["costs"])

  if run.metrics_file.exists():
    col.draw("training.png", lambda: training_curves(
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
      return overlay_grid(
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


def pooled_ced(errors: Sequence[np.ndarray], label: str) -> CedCurve:
  """The CED of the per-image errors of several seeds pooled (module
  docstring), on a grid up to the largest error."""
  pooled = np.concatenate([np.asarray(e, np.float64) for e in errors])
  top = float(pooled.max()) if pooled.size else 1.0
  t, frac = evaluation.ced(pooled, top, _CED_GRID_POINTS)
  return CedCurve(label, t, frac)


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
      errs = [np.asarray(read_json(p)["errors_sorted"]) for _, p in members]
      if not errs or not any(e.size for e in errs):
        continue
      n = len({s for s, _ in members})
      seeds = f"{n} seed{'s' if n > 1 else ''}"
      if len(errs) > n:  # runs of one seed with other settings (no --by)
        seeds = f"{len(errs)} runs of {seeds}"
      curves.append(pooled_ced(
          errs, f"{runs_lib.row_text(model, costs, settings)}, {seeds}"))
      x_max = max(x_max, float(np.quantile(np.concatenate(errs), 0.99)))
    if curves:
      uses_labels = any("L" in configs.cost_terms(c.costs) for c in mine
                        if c.fraction == f)
      panels.append((f"{fraction_label(f)} landmark labels" if uses_labels
                     else "no landmark labels", curves))
  return ced_figure(panels, f"{experiment}, {split} split: cumulative error "
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
      chosen.append((r, read_predictions(path)))
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
  labels = (f"{fraction_label(f)} landmark labels" if uses_labels
            else "no landmark labels")
  fig = overlay_grid(batch["image"], batch["landmarks"], batch["visible"], rows,
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
        fraction_label(cell.fraction),
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
    details.append(f"{fraction_label(float(m.group(2)))} landmark labels")
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
                       flag_values=flag_values)
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
  flags.DEFINE_enum("format", "png", list(FORMATS), "File format of the "
                    "figures (pdf and svg are vector, for papers).",
                    flag_values=flag_values)
  flags.DEFINE_float("dpi", None, f"Resolution (default {DPI}): pixels per "
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
