"""Square crops around landmarks, shared by the real-dataset builders.

Pure numpy/PIL functions, run once at build time:

* ``square_box``: the square around the (visible) landmarks, enlarged;
* ``crop_affine``: the ``(2, 3)`` affine mapping original-image pixels to
  the pixels of the ``out_size x out_size`` crop;
* ``apply_affine``: moves points with such an affine;
* ``warp_image``: resamples an image with it (bilinear, zero outside);
* ``crop_around_landmarks``: all of the above in one call.

Conventions (docs/DESIGN.md): points are ``(x, y)`` pixels, 0-based, pixel centres
at integer coordinates (pixel ``[i, j]`` is ``x = j, y = i``); an affine
``A`` of shape ``(2, 3)`` maps a point of the source image to its place in
the destination image, and ``warp_image(img, A)`` returns ``out`` with
``out(p) = img(A^-1 p)``. So a landmark ``q`` of the original image sits at
``apply_affine(q, A)`` in the crop, which is what the tests check by drawing
dots.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from PIL import Image


class Crop(NamedTuple):
  """A cropped example: ``image`` ``(S, S[, C]) uint8``, ``landmarks``
  ``(K, 2) float32`` in crop pixels, ``affine`` ``(2, 3) float32`` mapping
  original pixels to crop pixels."""
  image: np.ndarray
  landmarks: np.ndarray
  affine: np.ndarray


def square_box(landmarks: np.ndarray, visible: np.ndarray | None,
               enlarge: float) -> tuple[np.ndarray, float]:
  """The square around the visible landmarks, enlarged about its centre.

  Args:
    landmarks: ``(K, 2)`` points ``(x, y)``.
    visible: ``(K,)`` mask (non-zero = use) or ``None`` for all points.
    enlarge: side of the square divided by the longer side of the landmarks'
      bounding box (1.3 = 15% margin on each side of the longer side).

  Returns:
    ``(center (2,), side)``: centre of the bounding box and the square's side
    in pixels (at least 1, so a single point still gives a valid box).
  """
  pts = np.asarray(landmarks, np.float64)
  if visible is not None:
    pts = pts[np.asarray(visible) > 0]
  if pts.shape[0] == 0:
    raise ValueError("square_box: no visible landmark to put a box around.")
  if not enlarge > 0:
    raise ValueError(f"square_box: enlarge must be > 0, got {enlarge}.")
  lo, hi = pts.min(axis=0), pts.max(axis=0)
  center = (lo + hi) / 2.0
  side = max(float((hi - lo).max()) * enlarge, 1.0)
  return center, side


def crop_affine(center: np.ndarray, side: float, out_size: int) -> np.ndarray:
  """The ``(2, 3)`` affine taking the square ``(center, side)`` onto the crop.

  The square's edges map to the outer edges of the ``out_size`` pixels
  (``-0.5`` and ``out_size - 0.5``), its centre to ``(out_size - 1) / 2``.
  """
  s = out_size / float(side)
  c = (out_size - 1) / 2.0
  cx, cy = float(center[0]), float(center[1])
  return np.array([[s, 0.0, c - s * cx],
                   [0.0, s, c - s * cy]], np.float64)


def apply_affine(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
  """Maps ``(..., 2)`` points with a ``(2, 3)`` affine (float64 result)."""
  pts = np.asarray(points, np.float64)
  a = np.asarray(affine, np.float64)
  return pts @ a[:, :2].T + a[:, 2]


def _to3x3(a: np.ndarray) -> np.ndarray:
  return np.vstack([np.asarray(a, np.float64), [0.0, 0.0, 1.0]])


def warp_image(image: np.ndarray, affine: np.ndarray,
               out_size: int | tuple[int, int]) -> np.ndarray:
  """Resamples ``image`` so that ``out(p) = image(A^-1 p)``, zero outside.

  Bilinear (PIL ``Image.transform`` with ``AFFINE``). When the affine shrinks
  the image by more than 2x, the image is first box-filtered by an integer
  factor (PIL ``Image.reduce``) so the result does not alias; the affine is
  composed with that reduction, so geometry is unchanged.

  Args:
    image: ``(H, W)`` or ``(H, W, 3)`` uint8.
    affine: ``(2, 3)``, original pixels -> output pixels.
    out_size: ``S`` (square) or ``(H_out, W_out)``.

  Returns:
    ``(H_out, W_out[, 3])`` uint8.
  """
  img = np.asarray(image)
  if img.dtype != np.uint8 or img.ndim not in (2, 3):
    raise ValueError(
        f"warp_image: expected a uint8 (H, W) or (H, W, 3) image, got "
        f"{img.dtype} {img.shape}.")
  ho, wo = (out_size, out_size) if np.isscalar(out_size) else out_size
  a = _to3x3(affine)
  pil = Image.fromarray(img)
  scale = math.sqrt(abs(np.linalg.det(a[:2, :2])))
  factor = max(1, int(math.floor(1.0 / scale))) if scale > 0 else 1
  if factor > 1:
    pil = pil.reduce(factor)
    # Reduced pixel j averages source pixels [j*f, (j+1)*f): its centre is
    # source point j*f + (f-1)/2, i.e. p_src = f * p_red + (f-1)/2.
    from_reduced = np.array([[factor, 0.0, (factor - 1) / 2.0],
                             [0.0, factor, (factor - 1) / 2.0],
                             [0.0, 0.0, 1.0]])
    a = a @ from_reduced
  inv = np.linalg.inv(a)  # output point -> source point, centre convention
  # PIL samples output pixel (x, y) at (x + 0.5, y + 0.5) and reads the input
  # in coordinates where pixel i spans [i, i + 1): u = p + 0.5 on both sides.
  lin, t = inv[:2, :2], inv[:2, 2]
  t_pil = t + 0.5 - lin @ np.array([0.5, 0.5])
  coeffs = (lin[0, 0], lin[0, 1], t_pil[0], lin[1, 0], lin[1, 1], t_pil[1])
  out = pil.transform((int(wo), int(ho)), Image.Transform.AFFINE, coeffs,
                      resample=Image.Resampling.BILINEAR, fillcolor=0)
  return np.asarray(out, np.uint8)


def crop_around_landmarks(image: np.ndarray, landmarks: np.ndarray,
                          visible: np.ndarray | None, out_size: int,
                          enlarge: float) -> Crop:
  """Square crop around the visible landmarks, enlarged, resized to ``out_size``.

  Args:
    image: ``(H, W)`` or ``(H, W, 3)`` uint8 original image.
    landmarks: ``(K, 2)`` 0-based original pixels.
    visible: ``(K,)`` mask; invisible points do not shape the box but are
      still transformed (their values are meaningless either way).
    out_size: side ``S`` of the crop in pixels.
    enlarge: see ``square_box``.

  Returns:
    ``Crop(image (S, S[, 3]) uint8, landmarks (K, 2) float32, affine (2, 3)
    float32)`` with ``landmarks == apply_affine(original landmarks, affine)``.
    Parts of the square outside the image are zero.
  """
  center, side = square_box(landmarks, visible, enlarge)
  affine = crop_affine(center, side, out_size)
  out = warp_image(image, affine, out_size)
  pts = apply_affine(landmarks, affine)
  return Crop(out, pts.astype(np.float32), affine.astype(np.float32))
