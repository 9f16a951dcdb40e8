"""Images of bright dots at known points, and finding those dots again.

Test support for the crop and the builders: the fixture scripts draw a
Gaussian dot at every landmark, so after the build's coordinate conversion,
crop and resize, each stored landmark must still sit on its dot.
``dot_centroids`` measures where the dots ended up.

Points are ``(x, y)`` pixels, 0-based, pixel centres at integer coordinates.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def grid_points(n: int, center: tuple[float, float], extent: float,
                rng: np.random.Generator, jitter: float = 0.2) -> np.ndarray:
  """``n`` points on a jittered square grid: well separated, sub-pixel.

  Args:
    n: number of points.
    center: ``(x, y)`` centre of the grid.
    extent: side of the square the grid spans, in pixels.
    rng: numpy generator (sub-pixel offsets and jitter).
    jitter: maximal random shift as a fraction of the grid spacing.

  Returns:
    ``(n, 2)`` float64 points, in random order (so a builder that mixes up
    landmark order fails the tests).
  """
  cols = int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / cols))
  step = extent / max(cols - 1, 1)
  xs = (np.arange(cols) - (cols - 1) / 2.0) * step
  ys = (np.arange(rows) - (rows - 1) / 2.0) * step
  gx, gy = np.meshgrid(xs, ys)
  pts = np.stack([gx.ravel(), gy.ravel()], -1)[:n]
  pts = pts + rng.uniform(-jitter, jitter, pts.shape) * step
  pts = pts + np.asarray(center, np.float64)
  return pts[rng.permutation(n)]


def render_dots(shape: tuple[int, int], points: np.ndarray, sigma: float,
                peak: float = 255.0) -> np.ndarray:
  """A black ``(H, W)`` uint8 image with a Gaussian dot at each point.

  Overlapping dots take the maximum, not the sum, so the peak stays ``peak``.
  """
  h, w = shape
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
  img = np.zeros((h, w), np.float64)
  for x, y in np.asarray(points, np.float64):
    dot = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2.0 * sigma ** 2))
    np.maximum(img, peak * dot, out=img)
  return np.clip(np.round(img), 0, 255).astype(np.uint8)


def dot_centroids(image: np.ndarray, guesses: np.ndarray, radius: int = 2,
                  iterations: int = 4) -> np.ndarray:
  """Intensity centroid of the dot near each guess (a few mean-shift steps).

  Args:
    image: ``(H, W)`` or ``(H, W, 1)`` image, dots bright on black.
    guesses: ``(K, 2)`` starting points ``(x, y)`` (e.g. stored landmarks).
    radius: half side of the square window in pixels.
    iterations: re-centre the window on the last estimate this many times.

  Returns:
    ``(K, 2)`` float64 centroids; ``nan`` where the window holds no light.
  """
  img = np.asarray(image, np.float64)
  if img.ndim == 3:
    img = img[..., 0]
  h, w = img.shape
  out = np.full((len(guesses), 2), np.nan)
  for k, guess in enumerate(np.asarray(guesses, np.float64)):
    est = guess.copy()
    for _ in range(iterations):
      cx, cy = int(round(est[0])), int(round(est[1]))
      x0, x1 = max(cx - radius, 0), min(cx + radius + 1, w)
      y0, y1 = max(cy - radius, 0), min(cy + radius + 1, h)
      win = img[y0:y1, x0:x1]
      total = win.sum()
      if x0 >= x1 or y0 >= y1 or total <= 0:
        est[:] = np.nan
        break
      ys, xs = np.mgrid[y0:y1, x0:x1]
      est = np.array([(xs * win).sum() / total, (ys * win).sum() / total])
    out[k] = est
  return out


def save_dot_image(path, shape: tuple[int, int], points: np.ndarray,
                   sigma: float, colour: tuple[int, int, int] | None = None
                   ) -> None:
  """Writes ``render_dots`` to ``path`` (format from the suffix).

  Args:
    path: ``.jpg`` (quality 95) or ``.png`` file.
    shape: ``(H, W)``.
    points: ``(K, 2)`` 0-based dot centres.
    sigma: dot size in pixels.
    colour: ``(r, g, b)`` of the dots' peak for a colour image (the builders
      must then convert to grey), or ``None`` for a grey image.
  """
  grey = render_dots(shape, points, sigma).astype(np.float64) / 255.0
  if colour is None:
    arr = np.round(grey * 255.0).astype(np.uint8)
  else:
    arr = np.round(grey[..., None] * np.asarray(colour, np.float64))
    arr = arr.astype(np.uint8)
  img = Image.fromarray(arr)
  suffix = str(path).lower().rsplit(".", 1)[-1]
  if suffix in ("jpg", "jpeg"):
    img.save(path, quality=95)
  else:
    img.save(path, optimize=True)
