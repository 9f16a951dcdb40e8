"""Pure geometry: soft-argmax, affine matrices, image warping.

Conventions (docs/DESIGN.md):

* Images are ``float32`` NHWC. Maps are ``(N, H, W, K)``.
* Points are ``(..., K, 2)`` as ``(x, y)`` in pixels of the array they refer
  to, 0-based, pixel centres at integer coordinates: pixel ``[i, j]`` is the
  point ``x = j, y = i``.
* Affine transforms are ``(..., 2, 3)`` matrices acting on ``(x, y, 1)`` and
  map a point of the source image to its place in the destination image.
  ``warp_affine(images, A)`` returns ``out`` with ``out(p) = in(A^-1 p)``, so a
  landmark ``q`` of ``images`` lands at ``transform_points(q, A)`` in ``out``.
* Angles are in radians in this module; configs speak degrees and convert.
  A positive rotation turns ``+x`` towards ``+y``; since ``y`` points down in
  images, that is clockwise on screen.

Everything here is pure ``jax.numpy``: jit-, vmap- and grad-friendly.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

Array = jax.Array


# --------------------------------------------------------------------------
# soft-argmax


def spatial_softmax(maps: Array, beta: float | Array = 1.0) -> Array:
  """Softmax of ``beta * maps`` over the two spatial axes of ``(..., H, W, K)``.

  Numerically stable for any ``beta`` (the maximum is subtracted first).
  Returns probabilities of the same shape, summing to one over ``H, W``.
  """
  *lead, h, w, k = maps.shape
  flat = (beta * maps).reshape(*lead, h * w, k)
  probs = jax.nn.softmax(flat, axis=-2)
  return probs.reshape(*lead, h, w, k)


def soft_argmax(maps: Array, beta: float | Array = 1.0) -> Array:
  """Soft-argmax of each map (eq. 1-2 of the paper).

  Args:
    maps: ``(..., H, W, K)`` unnormalised landmark maps.
    beta: softmax temperature; large ``beta`` approaches the hard argmax.

  Returns:
    ``(..., K, 2)`` expected ``(x, y)`` pixel coordinates under the spatial
    softmax of ``beta * maps``. A map that is one-hot at ``[i, j]`` (large
    ``beta``) gives ``(j, i)``.
  """
  *_, h, w, _ = maps.shape
  probs = spatial_softmax(maps, beta)
  dtype = probs.dtype
  # Marginals first: two small contractions instead of one over H*W*2.
  px = probs.sum(axis=-3)  # (..., W, K): probability of column j
  py = probs.sum(axis=-2)  # (..., H, K): probability of row i
  x = jnp.einsum("...wk,w->...k", px, jnp.arange(w, dtype=dtype))
  y = jnp.einsum("...hk,h->...k", py, jnp.arange(h, dtype=dtype))
  return jnp.stack([x, y], axis=-1)


def hard_argmax(maps: Array) -> Array:
  """Integer argmax of each ``(..., H, W, K)`` map as ``(..., K, 2)`` float (x, y)."""
  *lead, h, w, k = maps.shape
  flat = maps.reshape(*lead, h * w, k)
  idx = jnp.argmax(flat, axis=-2)
  return jnp.stack([idx % w, idx // w], axis=-1).astype(maps.dtype)


# --------------------------------------------------------------------------
# affine matrices


def _to3x3(a: Array) -> Array:
  bottom = jnp.broadcast_to(
      jnp.array([0.0, 0.0, 1.0], a.dtype), a.shape[:-2] + (1, 3))
  return jnp.concatenate([a, bottom], axis=-2)


def identity_affine(batch_shape: Sequence[int] = (), dtype=jnp.float32) -> Array:
  """Identity transform(s) of shape ``(*batch_shape, 2, 3)``."""
  eye = jnp.eye(2, 3, dtype=dtype)
  return jnp.broadcast_to(eye, tuple(batch_shape) + (2, 3))


def compose_affine(a: Array, b: Array) -> Array:
  """The transform that applies ``b`` first, then ``a`` (``a o b``).

  ``transform_points(p, compose_affine(a, b)) ==
  transform_points(transform_points(p, b), a)``. Broadcasts batch axes.
  """
  return a[..., :2] @ b + jnp.concatenate(
      [jnp.zeros_like(a[..., :2]), a[..., 2:]], axis=-1)


def invert_affine(a: Array) -> Array:
  """Inverse of ``(..., 2, 3)`` invertible affine transforms."""
  lin = a[..., :2]
  t = a[..., 2:]
  det = lin[..., 0, 0] * lin[..., 1, 1] - lin[..., 0, 1] * lin[..., 1, 0]
  inv_lin = jnp.stack([
      jnp.stack([lin[..., 1, 1], -lin[..., 0, 1]], axis=-1),
      jnp.stack([-lin[..., 1, 0], lin[..., 0, 0]], axis=-1),
  ], axis=-2) / det[..., None, None]
  return jnp.concatenate([inv_lin, -inv_lin @ t], axis=-1)


def affine_about_center(
    rotation: Array | float,
    scale: Array | float,
    translation: Array | Sequence[float],
    center: Array | Sequence[float],
) -> Array:
  """Rotation and isotropic scale about ``center``, then a translation.

  Args:
    rotation: angle in radians, shape ``batch`` (or scalar).
    scale: isotropic scale factor, shape ``batch``.
    translation: ``(*batch, 2)`` shift ``(dx, dy)`` in pixels, applied last.
    center: ``(2,)`` or ``(*batch, 2)`` fixed point of rotation and scale,
      e.g. ``((W - 1) / 2, (H - 1) / 2)`` for the image centre.

  Returns:
    ``(*batch, 2, 3)``: ``p -> R(rotation) * scale * (p - c) + c + translation``.
  """
  rotation = jnp.asarray(rotation, jnp.float32)
  scale = jnp.asarray(scale, jnp.float32)
  translation = jnp.asarray(translation, jnp.float32)
  center = jnp.asarray(center, jnp.float32)
  batch = jnp.broadcast_shapes(rotation.shape, scale.shape,
                               translation.shape[:-1], center.shape[:-1])
  cos = jnp.cos(rotation) * scale
  sin = jnp.sin(rotation) * scale
  lin = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)
  lin = jnp.broadcast_to(lin, batch + (2, 2))
  center = jnp.broadcast_to(center, batch + (2,))
  t = center + translation - jnp.einsum("...ij,...j->...i", lin, center)
  return jnp.concatenate([lin, t[..., None]], axis=-1)


def image_center(height: int, width: int) -> Array:
  """The centre ``(x, y)`` of an ``height x width`` image in pixel coordinates."""
  return jnp.array([(width - 1) / 2.0, (height - 1) / 2.0], jnp.float32)


def random_affine(
    key: Array,
    batch: int,
    ranges: Mapping[str, float],
    image_shape: Sequence[int],
) -> Array:
  """Draws ``batch`` random similarity transforms about the image centre.

  Args:
    key: a ``jax.random`` key.
    batch: number of transforms.
    ranges: mapping with (all optional, default 0)
      ``rotation``: maximum absolute angle in **degrees**, drawn uniformly in
      ``[-rotation, rotation]``;
      ``scale``: maximum relative scale change, scale uniform in
      ``[1 - scale, 1 + scale]``;
      ``translation``: maximum shift as a fraction of the image side, each of
      ``dx, dy`` uniform in ``[-translation * W, translation * W]`` (``H`` for
      ``dy``).
      This is the ``ranges`` layout the experiment configs use for both the
      augmentation and the ELT transforms.
    image_shape: ``(H, W)`` of the images the transforms act on.

  Returns:
    ``(batch, 2, 3)`` transforms.
  """
  known = {"rotation", "scale", "translation"}
  unknown = set(ranges) - known
  if unknown:
    raise ValueError(
        f"random_affine: unknown range keys {sorted(unknown)}; "
        f"valid keys are {sorted(known)}.")
  h, w = int(image_shape[0]), int(image_shape[1])
  k_rot, k_scale, k_shift = jax.random.split(key, 3)
  rot = float(ranges.get("rotation", 0.0)) * jnp.pi / 180.0
  scl = float(ranges.get("scale", 0.0))
  tr = float(ranges.get("translation", 0.0))
  angle = jax.random.uniform(k_rot, (batch,), minval=-rot, maxval=rot)
  scale = 1.0 + jax.random.uniform(k_scale, (batch,), minval=-scl, maxval=scl)
  shift = jax.random.uniform(k_shift, (batch, 2), minval=-tr, maxval=tr)
  shift = shift * jnp.array([w, h], jnp.float32)
  return affine_about_center(angle, scale, shift, image_center(h, w))


# --------------------------------------------------------------------------
# applying transforms


def transform_points(points: Array, a: Array) -> Array:
  """Applies ``(..., 2, 3)`` transforms to ``(..., K, 2)`` points.

  Batch axes broadcast: a single ``(2, 3)`` transform applies to all points.
  """
  lin = a[..., :2]
  t = a[..., 2]
  return jnp.einsum("...ij,...kj->...ki", lin, points) + t[..., None, :]


def warp_affine(images: Array, a: Array,
                out_shape: Sequence[int] | None = None) -> Array:
  """Warps images so that ``out(p) = in(A^-1 p)`` (bilinear, zero outside).

  Args:
    images: ``(N, H, W, C)``.
    a: ``(N, 2, 3)`` or ``(2, 3)``: where each source point goes in ``out``.
    out_shape: ``(H_out, W_out)``; defaults to ``(H, W)``.

  Returns:
    ``(N, H_out, W_out, C)``, differentiable with respect to ``images`` and
    ``a``. Consistent with ``transform_points``: content at ``q`` in
    ``images`` appears at ``transform_points(q, a)`` in the output.
  """
  n, h, w, c = images.shape
  ho, wo = (h, w) if out_shape is None else (int(out_shape[0]), int(out_shape[1]))
  a = jnp.broadcast_to(a, (n, 2, 3)).astype(images.dtype)
  inv = invert_affine(a)
  ys, xs = jnp.meshgrid(jnp.arange(ho, dtype=images.dtype),
                        jnp.arange(wo, dtype=images.dtype), indexing="ij")
  grid = jnp.stack([xs.ravel(), ys.ravel()], axis=-1)  # (P, 2) as (x, y)
  src = transform_points(grid[None], inv)  # (N, P, 2)

  def sample_one(img, pts):
    coords = [pts[:, 1], pts[:, 0]]  # (row, col) for map_coordinates
    per_channel = jax.vmap(
        lambda ch: jax.scipy.ndimage.map_coordinates(
            ch, coords, order=1, mode="constant", cval=0.0),
        in_axes=-1, out_axes=-1)
    return per_channel(img)

  out = jax.vmap(sample_one)(images, src)  # (N, P, C)
  return out.reshape(n, ho, wo, c)
