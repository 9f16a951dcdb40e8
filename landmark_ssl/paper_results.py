"""The paper's published numbers, in one place (Honari et al., CVPR 2018).

Transcribed from the paper text (``/work/shared/paper``; Tables 1-5 of the
main paper, 8-10 of the supplementary material) in the units the paper
prints them:

* ``landmark_error``: pixels for Blocks (Table 1); percent of the
  normaliser for HGR1 (wrist width, Table 2), Multi-PIE and 300W (eye-centre
  distance, Tables 3-5).
* ``accuracy/<head>``: percent (Tables 8-10 say "error" in their captions
  but "higher is better": they are accuracies). Shapes: the "99% accuracy"
  of Sec. 4.1.

Keys: ``(experiment, metric, split, model, costs, fraction)``. ``model`` is
a row key: ``seq_mt``, ``comm_mt``, ``heatmap_mt``, ``rcn`` (the softmax
RCN of [12], quoted in Table 4), ``rcn_plus`` (RCN with soft-argmax).
``costs`` uses the config spelling (``L+T+C``; the supplementary tables'
``L+C+T`` is the same thing). ``fraction`` is the share of training images
with landmark labels (1.0 for Shapes, whose only cost is ``C``).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

FRACTIONS = {
    "blocks": (0.01, 0.05, 0.1, 0.2, 0.5, 1.0),
    "hgr1": (0.05, 0.1, 0.2, 0.5, 1.0),
    "multipie": (0.05, 0.1, 0.2, 0.5, 1.0),
    "the300w": (0.05, 0.1, 0.2, 0.5, 1.0),
    "shapes": (1.0,),
}

# One transcribed table: (experiment, metric, split, fractions, rows), each
# row (model, costs, values) with one value per fraction; None = blank cell
# (the paper leaves L+T at 100% blank: with ELT only on unlabelled images it
# equals L).
_TABLES = [
    ("shapes", "accuracy/label", "test", (1.0,), [  # Sec. 4.1
        ("seq_mt", "C", (99.0,)),
    ]),
    ("blocks", "landmark_error", "test", FRACTIONS["blocks"], [  # Table 1
        ("seq_mt", "L", (8.33, 3.95, 3.35, 1.98, 1.19, 0.44)),
        ("seq_mt", "L+C", (8.02, 3.45, 3.20, 1.67, 1.05, 0.38)),
        ("seq_mt", "L+T", (6.42, 1.94, 1.37, 1.16, 0.85, None)),
        ("seq_mt", "L+T+C", (6.25, 1.70, 1.26, 1.07, 0.74, None)),
        ("comm_mt", "L", (12.89, 11.56, 10.72, 9.39, 5.04, 3.41)),
        ("comm_mt", "L+C", (12.28, 11.19, 10.36, 9.01, 4.21, 2.97)),
        ("heatmap_mt", "L", (10.09, 6.59, 5.27, 3.82, 2.78, 2.01)),
        ("heatmap_mt", "L+C", (9.27, 6.35, 5.62, 3.75, 3.14, 2.23)),
    ]),
    ("hgr1", "landmark_error", "test", FRACTIONS["hgr1"], [  # Table 2
        ("seq_mt", "L", (52.6, 44.7, 32.1, 22.1, 18.8)),
        ("seq_mt", "L+C", (50.0, 40.2, 31.4, 22.3, 18.4)),
        ("seq_mt", "L+T", (45.4, 32.1, 25.8, 19.6, None)),
        ("seq_mt", "L+T+C", (40.6, 32.0, 24.0, 19.8, None)),
        ("comm_mt", "L", (77.1, 62.8, 52.7, 41.8, 35.7)),
        ("comm_mt", "L+C", (53.4, 39.3, 35.5, 26.9, 24.1)),
        ("heatmap_mt", "L", (66.5, 51.9, 42.4, 30.9, 25.5)),
        ("heatmap_mt", "L+C", (64.8, 54.9, 43.2, 30.5, 26.7)),
    ]),
    ("hgr1", "accuracy/gesture", "test", FRACTIONS["hgr1"], [  # Table 10
        ("comm_mt", "L+C", (60.86, 69.64, 69.20, 76.03, 73.42)),
        ("heatmap_mt", "L+C", (83.74, 87.86, 87.55, 90.29, 89.27)),
        ("seq_mt", "L+C", (69.08, 70.14, 72.26, 77.07, 75.92)),
        ("seq_mt", "L+T+C", (74.64, 75.01, 73.90, 79.10, None)),
    ]),
    ("multipie", "landmark_error", "test", FRACTIONS["multipie"], [  # Table 3
        ("seq_mt", "L", (8.05, 6.99, 6.27, 5.48, 5.07)),
        ("seq_mt", "L+C", (7.81, 6.95, 6.20, 5.50, 5.13)),
        ("seq_mt", "L+T", (6.69, 6.24, 5.78, 5.27, None)),
        ("seq_mt", "L+T+C", (6.57, 6.16, 5.73, 5.23, None)),
        ("comm_mt", "L", (9.22, 7.93, 7.02, 6.27, 5.71)),
        ("comm_mt", "L+C", (9.11, 8.00, 6.92, 6.20, 5.68)),
        ("heatmap_mt", "L", (10.83, 9.18, 8.13, 7.00, 6.63)),
        ("heatmap_mt", "L+C", (11.03, 9.03, 8.15, 7.11, 6.65)),
    ]),
    ("multipie", "accuracy/emotion", "test", FRACTIONS["multipie"], [  # Table 8
        ("comm_mt", "L+C", (74.67, 79.90, 83.76, 86.37, 86.83)),
        ("heatmap_mt", "L+C", (85.14, 87.50, 86.93, 88.16, 87.29)),
        ("seq_mt", "L+C", (78.78, 82.62, 84.69, 84.03, 84.86)),
        ("seq_mt", "L+T+C", (82.90, 84.57, 84.85, 86.48, None)),
    ]),
    ("multipie", "accuracy/camera", "test", FRACTIONS["multipie"], [  # Table 9
        ("comm_mt", "L+C", (96.98, 97.53, 98.30, 98.63, 98.80)),
        ("heatmap_mt", "L+C", (98.46, 98.99, 98.99, 98.98, 98.98)),
        ("seq_mt", "L+C", (97.97, 98.31, 98.50, 98.96, 98.92)),
        ("seq_mt", "L+T+C", (98.41, 98.53, 98.47, 98.43, None)),
    ]),
    # 300W, Table 4 (100% labels; the common subset appears only here). Rows
    # in the paper's order: RCN [12] (a number quoted from the RCN paper)
    # among the literature, then the paper's own models.
    ("the300w", "landmark_error", "test_common", (1.0,), [
        ("rcn", "L", (4.70,)),
        ("heatmap_mt", "L", (6.18,)),
        ("comm_mt", "L", (5.68,)),
        ("seq_mt", "L", (4.93,)),
        ("seq_mt", "L+T", (4.84,)),
        ("rcn_plus", "L", (4.47,)),
        ("rcn_plus", "L+T", (4.34,)),
    ]),
    ("the300w", "landmark_error", "test_ibug", (1.0,), [
        ("rcn", "L", (9.00,)),
        ("heatmap_mt", "L", (13.56,)),
        ("comm_mt", "L", (11.04,)),
        ("seq_mt", "L", (10.24,)),
        ("seq_mt", "L+T", (9.53,)),
        ("rcn_plus", "L", (8.47,)),
        ("rcn_plus", "L+T", (8.20,)),
    ]),
    ("the300w", "landmark_error", "test_full", (1.0,), [
        ("rcn", "L", (5.54,)),
        ("heatmap_mt", "L", (7.62,)),
        ("comm_mt", "L", (6.73,)),
        ("seq_mt", "L", (5.95,)),
        ("seq_mt", "L+T", (5.74,)),
        ("rcn_plus", "L", (5.26,)),
        ("rcn_plus", "L+T", (5.10,)),
    ]),
    # 300W, Table 5 (full set and IBUG by fraction; its 100% column repeats
    # Table 4, and _build checks that the two transcriptions agree).
    ("the300w", "landmark_error", "test_full", FRACTIONS["the300w"], [
        ("heatmap_mt", "L", (13.47, 11.68, 9.85, 8.18, 7.62)),
        ("comm_mt", "L", (16.73, 9.66, 8.61, 7.39, 6.73)),
        ("seq_mt", "L", (9.82, 8.30, 7.26, 6.28, 5.95)),
        ("seq_mt", "L+T", (8.23, 7.28, 6.62, 6.10, 5.74)),
        ("rcn_plus", "L", (7.26, 6.48, 5.91, 5.52, 5.26)),
        ("rcn_plus", "L+T", (7.22, 6.32, 5.88, 5.45, 5.10)),
    ]),
    ("the300w", "landmark_error", "test_ibug", FRACTIONS["the300w"], [
        ("heatmap_mt", "L", (26.36, 22.77, 18.46, 14.94, 13.56)),
        ("comm_mt", "L", (28.64, 16.17, 14.56, 12.16, 11.04)),
        ("seq_mt", "L", (18.74, 16.21, 13.41, 11.20, 10.24)),
        ("seq_mt", "L+T", (14.68, 12.73, 11.39, 10.37, 9.53)),
        ("rcn_plus", "L", (15.36, 12.74, 11.82, 10.12, 8.47)),
        ("rcn_plus", "L+T", (12.54, 10.35, 9.56, 8.67, 8.20)),
    ]),
]

Key = Tuple[str, str, str, str, str, float]


def _build() -> Dict[Key, float]:
  out: Dict[Key, float] = {}
  for experiment, metric, split, fractions, rows in _TABLES:
    for model, costs, values in rows:
      if len(values) != len(fractions):
        raise AssertionError(f"paper table {experiment}/{metric}/{split}: row "
                             f"{model} {costs} has {len(values)} values for "
                             f"{len(fractions)} fractions.")
      for fraction, value in zip(fractions, values):
        if value is None:
          continue
        key = (experiment, metric, split, model, costs, fraction)
        if key in out and out[key] != value:
          raise AssertionError(f"paper tables disagree on {key}: {out[key]} "
                               f"vs {value}.")
        out[key] = value
  return out


RESULTS: Dict[Key, float] = _build()



def _row_order() -> Dict[str, List[Tuple[str, str]]]:
  """Rows ``(model, costs)`` per experiment in the order the paper first
  prints them."""
  rows: Dict[str, List[Tuple[str, str]]] = {}
  for experiment, _, _, _, table_rows in _TABLES:
    order = rows.setdefault(experiment, [])
    for model, costs, _ in table_rows:
      if (model, costs) not in order:
        order.append((model, costs))
  return rows


ROWS: Dict[str, List[Tuple[str, str]]] = _row_order()

MODEL_NAMES = {"seq_mt": "Seq-MT", "comm_mt": "Comm-MT",
               "heatmap_mt": "Heatmap-MT", "rcn": "RCN", "rcn_plus": "RCN+"}


def value(experiment: str, metric: str, split: str, model: str, costs: str,
          fraction: float) -> float | None:
  """The paper's number for one cell, or ``None`` where it has none."""
  return RESULTS.get((experiment, metric, split, model, costs, float(fraction)))


def landmark_cells(experiment: str) -> List[Tuple[str, str, float]]:
  """``(model, costs, fraction)`` of every cell the paper reports for
  ``experiment`` (landmark error in any split; for Shapes, accuracy), in the
  paper's row order, fractions ascending."""
  if experiment not in FRACTIONS:
    raise ValueError(f"No paper tables for experiment {experiment!r}; known: "
                     f"{sorted(FRACTIONS)}.")
  metric = "accuracy/label" if experiment == "shapes" else "landmark_error"
  present = {(m, c, f) for (e, met, _, m, c, f) in RESULTS
             if e == experiment and met == metric}
  return [(m, c, f) for m, c in ROWS[experiment]
          for f in FRACTIONS[experiment] if (m, c, f) in present]


def row_label(model: str, costs: str) -> str:
  """``'Seq-MT (L+T+C)'``: how the paper names a row."""
  return f"{MODEL_NAMES.get(model, model)} ({costs})"
