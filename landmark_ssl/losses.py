"""The paper's costs as pure ``jax.numpy`` functions.

Importing this module imports only JAX (and ``landmark_ssl.geometry``): no
TFDS, grain, orbax or TensorFlow, so other JAX code can reuse the costs.

Shapes: landmarks ``(N, K, 2)`` in pixels; ``visible`` ``(N, K)``;
``has_landmarks`` / ``mask`` ``(N,)``; ``1.0`` = use, ``0.0`` = ignore.
Every mean is over the *used* entries only; with nothing to average the cost
is exactly ``0`` (and so is its gradient), never NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from landmark_ssl import geometry

Array = jax.Array


def _safe_mean(total: Array, count: Array) -> Array:
  return total / jnp.maximum(count, 1.0)


# How the landmark term averages over images (``mean_over``).
LANDMARK_MEAN = ("labeled", "all")


def _image_mean(per_image: Array, used: Array, mask: Array | None,
                mean_over: str) -> Array:
  """Mean of ``per_image`` over used images, or over all ``mask`` images."""
  if mean_over not in LANDMARK_MEAN:
    raise ValueError(f"mean_over={mean_over!r} is not one of "
                     f"{list(LANDMARK_MEAN)}.")
  total = jnp.sum(per_image * used)
  if mean_over == "labeled":
    return _safe_mean(total, jnp.sum(used))
  m = jnp.ones_like(per_image) if mask is None else mask.astype(per_image.dtype)
  return _safe_mean(total, jnp.sum(m))


def landmark_loss(pred: Array, target: Array, visible: Array | None = None,
                  has_landmarks: Array | None = None, mask: Array | None = None,
                  mean_over: str = "labeled") -> Array:
  """Landmark term of eq. 3: ``mean_n (1/K_n) sum_k ||L*_nk - L_nk||^2``.

  Args:
    pred: ``(N, K, 2)`` predicted landmarks.
    target: ``(N, K, 2)`` true landmarks (any values where masked).
    visible: ``(N, K)`` per-landmark mask (occluded points are ``0``); ``K_n``
      is the number of visible landmarks of image ``n``.
    has_landmarks: ``(N,)`` whether image ``n`` has landmark labels.
    mask: ``(N,)`` the images of the set (padding is ``0``); used by
      ``mean_over='all'`` only.
    mean_over: ``'labeled'``: the mean over labelled images (with at least
      one visible point); ``'all'``: eq. 3 as written, the sum over those
      divided by the number of images in ``mask`` (an image without labels
      adds zero), so the term shrinks with the labelled share.

  Returns:
    Scalar: the per-image mean squared distance over visible landmarks,
    averaged as ``mean_over`` says.
  """
  n, k, _ = pred.shape
  visible = jnp.ones((n, k), pred.dtype) if visible is None else visible
  has = jnp.ones((n,), pred.dtype) if has_landmarks is None else has_landmarks
  w = visible.astype(pred.dtype) * has.astype(pred.dtype)[:, None]
  # Masked entries may hold garbage (NaN placeholders): select, don't multiply.
  sq = jnp.sum(jnp.square(jnp.where(w[..., None] > 0, target - pred, 0.0)), -1)
  per_image = _safe_mean(jnp.sum(sq * w, axis=1), jnp.sum(w, axis=1))
  used = (jnp.sum(w, axis=1) > 0).astype(pred.dtype)
  return _image_mean(per_image, used, mask, mean_over)


def heatmap_landmark_loss(maps: Array, target: Array,
                          visible: Array | None = None,
                          has_landmarks: Array | None = None,
                          mask: Array | None = None,
                          mean_over: str = "labeled") -> Array:
  """Landmark cost of heatmap models (Heatmap-MT, RCN): NLL over pixels.

  Each map is a ``H * W``-way classification whose true class is the pixel
  nearest to the true landmark (clipped into the image).

  Args:
    maps: ``(N, H, W, K)`` logits of the spatial softmax.
    target, visible, has_landmarks, mask, mean_over: as in
      :func:`landmark_loss`.

  Returns:
    Scalar: the per-image mean NLL over visible landmarks, averaged over
    images as ``mean_over`` says.
  """
  n, h, w, k = maps.shape
  visible = jnp.ones((n, k), maps.dtype) if visible is None else visible
  has = jnp.ones((n,), maps.dtype) if has_landmarks is None else has_landmarks
  wgt = visible.astype(maps.dtype) * has.astype(maps.dtype)[:, None]
  safe_target = jnp.where(wgt[..., None] > 0, target, 0.0)
  col = jnp.clip(jnp.round(safe_target[..., 0]), 0, w - 1).astype(jnp.int32)
  row = jnp.clip(jnp.round(safe_target[..., 1]), 0, h - 1).astype(jnp.int32)
  logp = jax.nn.log_softmax(maps.reshape(n, h * w, k), axis=1)  # (N, HW, K)
  idx = (row * w + col)[:, None, :]  # (N, 1, K)
  nll = -jnp.take_along_axis(logp, idx, axis=1)[:, 0, :]  # (N, K)
  per_image = _safe_mean(jnp.sum(nll * wgt, axis=1), jnp.sum(wgt, axis=1))
  used = (jnp.sum(wgt, axis=1) > 0).astype(maps.dtype)
  return _image_mean(per_image, used, mask, mean_over)


def classification_loss(logits: Array, labels: Array,
                        mask: Array | None = None) -> Array:
  """Mean negative log-likelihood of integer ``labels`` under ``logits``.

  Args:
    logits: ``(N, C)`` unnormalised class scores.
    labels: ``(N,)`` integer classes.
    mask: ``(N,)`` which images count (e.g. padding is ``0``).
  """
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1),
                             labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
  m = jnp.ones_like(nll) if mask is None else mask.astype(nll.dtype)
  return _safe_mean(jnp.sum(nll * m), jnp.sum(m))


ELT_STOP_GRADIENT = ("none", "original", "warped")


def equivariance_loss(landmarks: Array, landmarks_of_warped: Array, a: Array,
                      mask: Array | None = None,
                      stop_gradient: str = "none") -> Array:
  """ELT cost, eq. 4 without ``gamma``.

  ``mean_{n,k} ||T_n(L_k(I_n)) - L_k(T_n(I_n))||^2`` over the images selected
  by ``mask``. Occluded points are *not* masked, as in the paper.

  Args:
    landmarks: ``(N, K, 2)`` predictions on the original images.
    landmarks_of_warped: ``(N, K, 2)`` predictions on
      ``geometry.warp_affine(images, a)``.
    a: ``(N, 2, 3)`` the transforms.
    mask: ``(N,)`` images to use (default all).
    stop_gradient: which branch is a constant target (its gradient is
      stopped; the value is the same): ``'none'`` (the paper: both branches
      share parameters and both carry gradients), ``'original'`` (``T(L(I))``
      is the target: the original image teaches the warped one) or
      ``'warped'`` (``L(T(I))`` is the target).
  """
  if stop_gradient not in ELT_STOP_GRADIENT:
    raise ValueError(f"stop_gradient={stop_gradient!r} is not one of "
                     f"{list(ELT_STOP_GRADIENT)}.")
  if stop_gradient == "original":
    landmarks = jax.lax.stop_gradient(landmarks)
  elif stop_gradient == "warped":
    landmarks_of_warped = jax.lax.stop_gradient(landmarks_of_warped)
  moved = geometry.transform_points(landmarks, a)
  per_image = jnp.mean(jnp.sum(jnp.square(moved - landmarks_of_warped), -1), -1)
  m = jnp.ones_like(per_image) if mask is None else mask.astype(per_image.dtype)
  return _safe_mean(jnp.sum(per_image * m), jnp.sum(m))


def weight_decay(params) -> Array:
  """``sum ||W||^2`` over the *kernels* of ``params`` (the ``lambda`` term).

  Included: every leaf whose name is ``kernel`` (convolution and dense
  weights). Excluded: biases, normalisation scales and offsets, and any other
  parameter, as is customary for weight decay.
  """
  total = jnp.zeros((), jnp.float32)
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    last = path[-1]
    name = getattr(last, "key", getattr(last, "name", None))
    if name == "kernel":
      total = total + jnp.sum(jnp.square(leaf.astype(jnp.float32)))
  return total
