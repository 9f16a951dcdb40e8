"""Landmark and classification metrics as pure numpy functions.

Everything here works on host arrays gathered over a whole evaluation split
(numpy, not jax: the metrics need sorting and whole-split statistics):

* landmarks ``(N, K, 2)`` as ``(x, y)`` pixels, ``visible`` ``(N, K)``;
* ``mask`` ``(N,)``: ``1`` = a real example, ``0`` = padding of the last
  batch (padding never counts);
* a per-image error is the mean Euclidean distance over the image's visible
  landmarks divided by the image's normaliser (``'pixels'``: no division);
* ``landmark_error`` is the mean of the per-image errors; failure rates and
  AUC follow the face-alignment usage: an image *fails* at threshold ``t`` if
  its error is above ``t``, and ``auc@t`` is the area under the cumulative
  error distribution (CED) from ``0`` to ``t``, divided by ``t`` (so in
  ``[0, 1]``, ``1`` = every error is zero).

Normalisers (``config.eval.normalizer``) use 0-based landmark indices of the
68-point iBUG scheme for faces and of the 25-point HGR1 scheme for hands:

=====================  ====================================================
``'dataset'``          the per-image ``normalizer`` stored by the dataset
``'pixels'``           1 (errors in pixels of the stored image)
``'eye_centers'``      distance between the eye centres, each the midpoint
                       of the eye corners (36, 39) and (42, 45)
``'outer_eye_corners'``  distance between landmarks 36 and 45
``'inter_pupil'``      distance between the means of 36-41 and of 42-47
``'wrist'``            distance between landmarks 0 and 24 (HGR1 wrist width)
=====================  ====================================================
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

NORMALIZERS = ("dataset", "pixels", "eye_centers", "outer_eye_corners",
               "inter_pupil", "wrist")

# Thresholds of the summary metrics (fractions of the normaliser).
FAILURE_THRESHOLDS = (0.08, 0.10)
AUC_THRESHOLD = 0.08

_MIN_LANDMARKS = {"eye_centers": 46, "outer_eye_corners": 46,
                  "inter_pupil": 48, "wrist": 25}


def error_unit(normalizer: str) -> str:
  """How errors with this normaliser read: ``'pixels'`` or ``'fraction of X'``."""
  return "pixels" if normalizer == "pixels" else f"fraction of {normalizer}"


def normalizers(name: str, landmarks: np.ndarray,
                stored: np.ndarray | None = None) -> np.ndarray:
  """Per-image error normalisers ``(N,)`` computed from ground truth.

  Args:
    name: one of :data:`NORMALIZERS`.
    landmarks: ``(N, K, 2)`` ground-truth landmarks.
    stored: ``(N,)`` the dataset's ``normalizer`` feature (for ``'dataset'``).
  """
  landmarks = np.asarray(landmarks, np.float64)
  n, k, _ = landmarks.shape
  if name not in NORMALIZERS:
    raise ValueError(f"Unknown normalizer {name!r} (config.eval.normalizer); "
                     f"choose one of {list(NORMALIZERS)}.")
  if name in _MIN_LANDMARKS and k < _MIN_LANDMARKS[name]:
    raise ValueError(
        f"config.eval.normalizer={name!r} needs at least {_MIN_LANDMARKS[name]} "
        f"landmarks, but the dataset has K={k}; use 'dataset' or 'pixels'.")
  dist = lambda a, b: np.linalg.norm(a - b, axis=-1)
  if name == "dataset":
    if stored is None:
      raise ValueError("normalizer 'dataset' needs the stored per-image "
                       "normalizer feature.")
    return np.asarray(stored, np.float64).reshape(n)
  if name == "pixels":
    return np.ones((n,), np.float64)
  if name == "eye_centers":
    left = (landmarks[:, 36] + landmarks[:, 39]) / 2
    right = (landmarks[:, 42] + landmarks[:, 45]) / 2
    return dist(left, right)
  if name == "outer_eye_corners":
    return dist(landmarks[:, 36], landmarks[:, 45])
  if name == "inter_pupil":
    return dist(landmarks[:, 36:42].mean(1), landmarks[:, 42:48].mean(1))
  return dist(landmarks[:, 0], landmarks[:, 24])  # wrist


def per_image_errors(pred: np.ndarray, target: np.ndarray, visible: np.ndarray,
                     norm: np.ndarray) -> np.ndarray:
  """Mean Euclidean distance over visible landmarks / normaliser, ``(N,)``.

  Images with no visible landmark get ``NaN`` (see :func:`valid_images`).
  """
  pred = np.asarray(pred, np.float64)
  target = np.asarray(target, np.float64)
  vis = np.asarray(visible, np.float64) > 0
  d = np.linalg.norm(np.where(vis[..., None], pred - target, 0.0), axis=-1)
  count = vis.sum(axis=1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return (d * vis).sum(axis=1) / count / np.asarray(norm, np.float64)


def valid_images(errors: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
  """Boolean ``(N,)``: real (``mask``) images whose error is finite."""
  ok = np.isfinite(errors)
  if mask is not None:
    ok &= np.asarray(mask) > 0
  return ok


def mean_error(errors: np.ndarray, mask: np.ndarray | None = None) -> float:
  """Mean per-image error over valid images (``NaN`` if there are none)."""
  ok = valid_images(errors, mask)
  return float(np.mean(errors[ok])) if ok.any() else float("nan")


def failure_rate(errors: np.ndarray, threshold: float,
                 mask: np.ndarray | None = None) -> float:
  """Fraction of valid images whose error is above ``threshold``."""
  ok = valid_images(errors, mask)
  return float(np.mean(errors[ok] > threshold)) if ok.any() else float("nan")


def auc(errors: np.ndarray, threshold: float = AUC_THRESHOLD,
        mask: np.ndarray | None = None) -> float:
  """Area under the CED on ``[0, threshold]`` divided by ``threshold``.

  Exact: the CED is ``F(e) = mean_i [e_i <= e]``, so
  ``int_0^t F(e) de / t = mean_i max(0, 1 - e_i / t)``.
  """
  ok = valid_images(errors, mask)
  if not ok.any():
    return float("nan")
  return float(np.mean(np.clip(1.0 - errors[ok] / threshold, 0.0, 1.0)))


def ced(errors: np.ndarray, max_threshold: float, num_points: int = 201,
        mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The cumulative error distribution on a grid.

  Returns:
    ``(thresholds, fraction)``, both ``(num_points,)``: ``thresholds`` evenly
    spaced on ``[0, max_threshold]``, ``fraction[j]`` the fraction of valid
    images with error ``<= thresholds[j]``.
  """
  e = np.sort(errors[valid_images(errors, mask)])
  thresholds = np.linspace(0.0, max_threshold, num_points)
  if e.size == 0:
    return thresholds, np.full_like(thresholds, np.nan)
  fraction = np.searchsorted(e, thresholds, side="right") / e.size
  return thresholds, fraction


def accuracy(logits: np.ndarray, labels: np.ndarray,
             mask: np.ndarray | None = None) -> float:
  """Fraction of real images whose argmax class equals the label."""
  correct = np.argmax(np.asarray(logits), axis=-1) == np.asarray(labels)
  m = np.ones(correct.shape, bool) if mask is None else np.asarray(mask) > 0
  return float(np.mean(correct[m])) if m.any() else float("nan")


def hit_rates(pred: np.ndarray, targets: np.ndarray, radii: np.ndarray,
              mask: np.ndarray | None = None) -> np.ndarray:
  """How often each predicted landmark lands on each target object.

  For landmarks learnt without landmark labels (Shapes, trained on class
  labels only) the order of the K predictions is the model's own, so this
  reports every pairing.

  Args:
    pred: ``(N, K, 2)`` predicted landmarks.
    targets: ``(N, J, 2)`` centres of the objects.
    radii: ``(N, J)`` extent of each object (e.g. its circumradius).
    mask: ``(N,)`` real images.

  Returns:
    ``(K, J)``: entry ``[k, j]`` is the fraction of real images whose
    predicted landmark ``k`` lies within ``radii[:, j]`` of ``targets[:, j]``.
  """
  pred = np.asarray(pred, np.float64)
  targets = np.asarray(targets, np.float64)
  d = np.linalg.norm(pred[:, :, None, :] - targets[:, None, :, :], axis=-1)
  hit = d <= np.asarray(radii, np.float64)[:, None, :]
  m = np.ones(hit.shape[0], bool) if mask is None else np.asarray(mask) > 0
  if not m.any():
    return np.full(hit.shape[1:], np.nan)
  return hit[m].mean(axis=0)


def summarize(pred_landmarks: np.ndarray, landmarks: np.ndarray,
              visible: np.ndarray, stored_normalizer: np.ndarray,
              mask: np.ndarray, normalizer: str,
              logits: Mapping[str, np.ndarray] | None = None,
              labels: Mapping[str, np.ndarray] | None = None,
              radii: np.ndarray | None = None,
              failure_thresholds: Sequence[float] = FAILURE_THRESHOLDS,
              auc_threshold: float = AUC_THRESHOLD) -> tuple[dict, np.ndarray]:
  """All metrics of one split.

  Returns:
    ``(metrics, errors)``: ``metrics`` holds ``landmark_error``,
    ``failure_rate@<t>`` for each threshold (formatted ``0.08``, ``0.10``)
    and ``auc@<t>`` (not for ``normalizer='pixels'``: the thresholds are
    fractions of a normaliser), ``accuracy/<head>`` for each head of ``logits``,
    ``hit/<k>/<j>`` (:func:`hit_rates`) when ``radii`` ``(N, K)`` give the
    extent of each true landmark's object, and ``num_images`` (real
    images); ``errors`` the ``(N,)`` per-image errors (``NaN`` for padding
    and for images without visible landmarks).
  """
  mask = np.asarray(mask) > 0
  norm = normalizers(normalizer, landmarks, stored_normalizer)
  errors = per_image_errors(pred_landmarks, landmarks, visible, norm)
  errors = np.where(mask, errors, np.nan)
  metrics = {"landmark_error": mean_error(errors)}
  if normalizer != "pixels":  # thresholds are fractions of a normaliser
    for t in failure_thresholds:
      metrics[f"failure_rate@{t:.2f}"] = failure_rate(errors, t)
    metrics[f"auc@{auc_threshold:.2f}"] = auc(errors, auc_threshold)
  for head, head_logits in (logits or {}).items():
    metrics[f"accuracy/{head}"] = accuracy(head_logits, labels[head], mask)
  if radii is not None:
    rates = hit_rates(pred_landmarks, landmarks, radii, mask)
    for (k, j), rate in np.ndenumerate(rates):
      metrics[f"hit/{k}/{j}"] = float(rate)
  metrics["num_images"] = int(mask.sum())
  return metrics, errors
