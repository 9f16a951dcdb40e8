"""Training-time augmentation of a batch, pure ``jax.numpy`` (runs on device).

``augment(rng, batch, aug_config)`` draws, per image,

* a random similarity transform about the image centre from
  ``geometry.random_affine`` with the ranges ``rotation`` (degrees),
  ``scale`` and ``translation`` (fractions) of ``aug_config``; the image is
  warped with ``geometry.warp_affine`` (bilinear, black outside) and the
  landmarks are moved with ``geometry.transform_points``, so every landmark
  stays on the same image content. A landmark that leaves the image (outside
  ``[0, W - 1] x [0, H - 1]``) becomes invisible (``visible = 0``); its
  coordinates are kept.
* then, if ``black_rectangles > 0``, a number of black rectangles uniform in
  ``{0, ..., black_rectangles}``, each with width and height uniform in
  ``[0, rectangle_size] * (W, H)`` and centre uniform in the image (the
  occlusion of the paper's 300W experiments). Rectangles change pixels only:
  landmarks and their visibility are kept (the points are occluded, still
  annotated).

All settings zero (or absent) returns the batch object unchanged. The
settings are read at trace time (pass ``aug_config`` as a static argument
or through ``functools.partial``); shapes are static, so it jits.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from landmark_ssl import geometry

Array = jax.Array
AFFINE_KEYS = ("rotation", "scale", "translation")
KNOWN_KEYS = AFFINE_KEYS + ("black_rectangles", "rectangle_size")


def _settings(aug_config: Any) -> dict:
  """Reads and checks the settings of ``aug_config`` (dict or ConfigDict)."""
  items = dict(aug_config.items()) if aug_config is not None else {}
  unknown = sorted(set(items) - set(KNOWN_KEYS))
  if unknown:
    raise ValueError(f"config.augment has unknown keys {unknown}; valid keys "
                     f"are {list(KNOWN_KEYS)}.")
  out = {k: float(items.get(k) or 0.0) for k in KNOWN_KEYS}
  for k, v in out.items():
    if v < 0:
      raise ValueError(f"config.augment.{k}={v} must be >= 0.")
  if out["black_rectangles"] != int(out["black_rectangles"]):
    raise ValueError(f"config.augment.black_rectangles="
                     f"{out['black_rectangles']} must be a whole number (the "
                     f"maximum count of rectangles per image).")
  if out["black_rectangles"] > 0 and not 0 < out["rectangle_size"] <= 1:
    raise ValueError(
        f"config.augment.rectangle_size={out['rectangle_size']} must be in "
        f"(0, 1] (largest side as a fraction of the image side) when "
        f"black_rectangles > 0.")
  return out


def is_identity(aug_config: Any) -> bool:
  """Whether ``aug_config`` turns every augmentation off."""
  return not any(_settings(aug_config).values())


def draw_rectangles(rng: Array, batch: int, image_shape: tuple[int, int],
                    max_count: int, max_size: float) -> Array:
  """Random black rectangles, ``(batch, max_count, 4)`` as
  ``(x0, y0, x1, y1)`` pixel bounds; the unused ones are empty
  (``x1 < x0``). Each image has ``uniform{0..max_count}`` rectangles."""
  h, w = image_shape
  k_count, k_size, k_centre = jax.random.split(rng, 3)
  count = jax.random.randint(k_count, (batch, 1), 0, max_count + 1)
  used = jnp.arange(max_count)[None, :] < count
  size = jax.random.uniform(k_size, (batch, max_count, 2)) * max_size * jnp.array(
      [w, h], jnp.float32)
  centre = jax.random.uniform(k_centre, (batch, max_count, 2)) * jnp.array(
      [w - 1, h - 1], jnp.float32)
  lo = centre - size / 2
  hi = jnp.where(used[..., None], centre + size / 2, lo - 1.0)
  return jnp.concatenate([lo, hi], axis=-1)


def paint_rectangles(images: Array, rectangles: Array) -> Array:
  """Sets to 0 the pixels of ``(N, H, W, C)`` images whose centres lie in
  any of their ``(N, R, 4)`` rectangles ``(x0, y0, x1, y1)``."""
  _, h, w, _ = images.shape
  xs = jnp.arange(w, dtype=jnp.float32)[None, None, None, :]
  ys = jnp.arange(h, dtype=jnp.float32)[None, None, :, None]
  r = rectangles[..., None, None]  # (N, R, 1, 1) per bound
  inside = ((xs >= r[:, :, 0]) & (xs <= r[:, :, 2]) &
            (ys >= r[:, :, 1]) & (ys <= r[:, :, 3]))
  covered = jnp.any(inside, axis=1)[..., None]  # (N, H, W, 1)
  return jnp.where(covered, jnp.zeros_like(images), images)


def apply_affine(batch: Mapping[str, Any], affine: Array) -> dict:
  """Warps images and landmarks of ``batch`` by ``(B, 2, 3)`` transforms;
  landmarks that leave the image become invisible."""
  images = batch["image"]
  _, h, w, _ = images.shape
  landmarks = geometry.transform_points(batch["landmarks"], affine)
  inside = ((landmarks[..., 0] >= 0) & (landmarks[..., 0] <= w - 1) &
            (landmarks[..., 1] >= 0) & (landmarks[..., 1] <= h - 1))
  return dict(batch,
              image=geometry.warp_affine(images, affine),
              landmarks=landmarks,
              visible=batch["visible"] * inside.astype(batch["visible"].dtype))


def augment(rng: Array, batch: Mapping[str, Any], aug_config: Any) -> Any:
  """Randomly augments a batch (module docstring).

  Args:
    rng: a ``jax.random`` key.
    batch: a batch dict (``image`` ``(B, H, W, C)``, ``landmarks``
      ``(B, K, 2)``, ``visible`` ``(B, K)``; other entries pass through).
    aug_config: ``rotation``, ``scale``, ``translation``,
      ``black_rectangles``, ``rectangle_size`` (absent = 0).

  Returns:
    The augmented batch (a new dict), or ``batch`` itself if every setting
    is zero.
  """
  cfg = _settings(aug_config)
  if not any(cfg.values()):
    return batch
  b, h, w, _ = batch["image"].shape
  k_affine, k_rect = jax.random.split(rng)
  out = dict(batch)
  if any(cfg[k] for k in AFFINE_KEYS):
    ranges = {k: cfg[k] for k in AFFINE_KEYS}
    out = apply_affine(out, geometry.random_affine(k_affine, b, ranges, (h, w)))
  count = int(cfg["black_rectangles"])
  if count:
    rects = draw_rectangles(k_rect, b, (h, w), count, cfg["rectangle_size"])
    out["image"] = paint_rectangles(out["image"], rects)
  return out
