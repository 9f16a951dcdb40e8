"""How inconsistent a trained model is on an image: its ELT disagreement.

For transforms ``T_1 .. T_n`` drawn from ELT ranges (``geometry.random_affine``
about the image centre), landmark ``k`` of image ``I`` disagrees by

  ``d_k(I) = (1/n) sum_t || T_t(L_k(I)) - L_k(T_t(I)) ||``

pixels of the model input: eq. 4's residual, unsquared, averaged over the
transforms. With ``in_frame``, the average is over the transforms that keep
``T_t(L_k(I))`` inside the image (``0 <= x <= W-1``, ``0 <= y <= H-1``):
a point moved out of the frame cannot be found in ``T_t(I)``, so its
residual measures the border, not the model (``nan`` where no transform
keeps it in). A model that has learnt the landmark there moves it with the
image (``d ~ 0``); a guess moves with nothing. ``suggest`` ranks unlabelled
images by it (normalised like the error); ``predict --format=coco`` turns
it into per-keypoint scores (``coco_export``).

The model is any ``predict_fn``: ``(N, H, W, C) float32 -> (N, K, 2)``
landmarks in the same pixels.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

# ELT ranges for runs trained without ELT and without augmentation (ours:
# small transforms, as Sec. 3 asks of ELT).
DEFAULT_RANGES = {"rotation": 15.0, "scale": 0.05, "translation": 0.05}
_KEYS = ("rotation", "scale", "translation")


def ranges_of(config: Any) -> dict:
  """The transform ranges of a run: its ELT ranges (``loss.elt``), else its
  augmentation's, else :data:`DEFAULT_RANGES`."""
  for node in (config.loss.elt, config.augment):
    ranges = {k: float(node.get(k, 0.0) or 0.0) for k in _KEYS}
    if any(ranges.values()):
      return ranges
  return dict(DEFAULT_RANGES)


def draw_transforms(seed: int, num: int, ranges: Mapping[str, float],
                    image_shape: Sequence[int]) -> np.ndarray:
  """``(num, 2, 3)`` transforms drawn from ``ranges`` (``seed``)."""
  import jax  # pylint: disable=g-import-not-at-top
  from landmark_ssl import geometry  # pylint: disable=g-import-not-at-top
  if num < 1:
    raise ValueError(f"num={num}: draw at least one transform.")
  return np.asarray(geometry.random_affine(
      jax.random.key(int(seed)), int(num), dict(ranges), image_shape[:2]))


def _warp():
  import jax  # pylint: disable=g-import-not-at-top
  from landmark_ssl import geometry  # pylint: disable=g-import-not-at-top
  return jax.jit(geometry.warp_affine)


def inside(points: np.ndarray, image_shape: Sequence[int]) -> np.ndarray:
  """``(..., K)``: whether each ``(x, y)`` point lies in an image of
  ``image_shape`` (``(H, W, ...)``), pixel centres ``0 .. W-1, 0 .. H-1``."""
  points = np.asarray(points)
  h, w = image_shape[:2]
  x, y = points[..., 0], points[..., 1]
  return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def keypoint_disagreement(predict_fn: Callable[[np.ndarray], np.ndarray],
                          images: np.ndarray, transforms: np.ndarray,
                          landmarks: np.ndarray | None = None,
                          in_frame: bool = False) -> np.ndarray:
  """``(N, K)``: ``d_k`` of each image and landmark (module docstring).

  Args:
    predict_fn: the model, ``(N, H, W, C) -> (N, K, 2)``.
    images: ``(N, H, W, C)`` float32 model inputs.
    transforms: ``(n, 2, 3)``, each applied to every image.
    landmarks: ``predict_fn(images)`` if already computed.
    in_frame: average only over the transforms that keep the moved point in
      the image (``nan`` where none does).
  """
  from landmark_ssl import geometry  # pylint: disable=g-import-not-at-top
  images = np.asarray(images, np.float32)
  base = np.asarray(predict_fn(images) if landmarks is None else landmarks,
                    np.float64)
  warp = _warp()
  total = np.zeros(base.shape[:2])
  count = np.zeros(base.shape[:2])
  for a in np.asarray(transforms, np.float32):
    warped = np.asarray(warp(images, a))
    moved = np.asarray(geometry.transform_points(base, a.astype(np.float64)))
    used = inside(moved, images.shape[1:]) if in_frame else np.ones(
        base.shape[:2], bool)
    residual = np.linalg.norm(moved - np.asarray(predict_fn(warped)), axis=-1)
    total += np.where(used, residual, 0.0)
    count += used
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(count > 0, total / count, np.nan)
