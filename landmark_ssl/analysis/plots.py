"""Pure plotting: arrays in, a ``matplotlib.figure.Figure`` out (no pyplot
state), and the writing of a figure to a file.

``figures`` reads run files and draws them with these; ``predict`` and
``suggest`` draw their overlays with them. JAX-free.
"""

from __future__ import annotations

import dataclasses
import math
import os
import textwrap
from typing import Mapping, Sequence

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
from landmark_ssl.analysis import runs as runs_lib

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


def to_array(fig: Figure) -> np.ndarray:
  """The figure rendered as an ``(H, W, 3)`` uint8 array (at its DPI)."""
  canvas = FigureCanvasAgg(fig)
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()


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

def pooled_ced(errors: Sequence[np.ndarray], label: str) -> CedCurve:
  """The CED of the per-image errors of several seeds pooled (module
  docstring), on a grid up to the largest error."""
  pooled = np.concatenate([np.asarray(e, np.float64) for e in errors])
  top = float(pooled.max()) if pooled.size else 1.0
  t, frac = evaluation.ced(pooled, top, _CED_GRID_POINTS)
  return CedCurve(label, t, frac)
