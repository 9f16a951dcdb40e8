"""Stride-1 "SAME" convolutions of the pooling-free landmark nets, computed
directly or through the FFT.

Both formulations compute the same cross-correlation (what ``lax.conv`` and
``nn.Conv`` compute), with ``kernel (k, k, C, O)`` (HWIO) and zero padding
``k // 2`` on each side (odd ``k``):

* ``'direct'``: ``lax.conv_general_dilated``.
* ``'fft'``: ``x (N, C, H, W)`` is transformed with ``rfft2`` at size
  ``(H + k//2, W + k//2)`` (the smallest period at which the circular
  correlation does not wrap into the kept ``H x W`` outputs); the kernel's
  transform at the same bins is one matrix product of its taps with a table
  of DFT phases (:func:`kernel_spectrum`); the channels are mixed bin by bin
  (``sum_c X[n, c] G[c, o]``), and ``irfft2`` gives the output. Results
  agree with ``'direct'`` to float32 rounding (about ``1e-6`` of the
  output's scale, forward and gradients; ``tests/convolution_test.py``).

Why: on CPU (jax 0.10, where XLA hands convolutions and dots to YNNPACK)
a 9x9 convolution runs at only 0.25-0.45 of the FLOP/s of a large matrix
product, while the FFT form does 1/10 (8 maps) to 1/30 (64 maps) of its
arithmetic. ``python -m landmark_ssl.bench.convolution`` (N=64, 60x60,
C -> C maps, forward + backward, interleaved with a 2048^2 float32 product;
"of mm" = the direct convolution's FLOPs per second over the product's
FLOP/s) gave, on a shared 2-core AMD EPYC VM under load (load average 6):

====  =====  ===================  ===================
C     k      direct               fft
====  =====  ===================  ===================
8     3      45 ms (0.25 of mm)   132 ms (0.09)
8     5      58 ms (0.54)         58 ms (0.54)
8     7      157 ms (0.39)        71 ms (0.87)
8     9      249 ms (0.41)        73 ms (1.39)
32    3      695 ms (0.26)        850 ms (0.21)
32    5      1318 ms (0.38)       582 ms (0.86)
32    7      2313 ms (0.43)       539 ms (1.83)
32    9      4420 ms (0.37)       824 ms (1.97)
====  =====  ===================  ===================

so :func:`resolve_method` (``'auto'``) picks ``'fft'`` on CPU for ``k >= 7``
and ``'direct'`` otherwise. On accelerators ``'auto'`` keeps ``'direct'``
(their convolution libraries were not measured here).

The channel mix and the 1x1 convolutions of few channels (``C * O <= 256``,
e.g. Blocks' 8 maps) use :func:`channel_mix` / :func:`conv_pointwise`:
unrolled multiply-adds with hand-written VJPs, because XLA's CPU lowering of
the autodiff form (a broadcast product reduced over the batch) is 7x (FFT
mix) to 10x (1x1 weight gradient) slower. More channels (HGR1's 64) use
``einsum`` (a batched matrix product per frequency bin).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array

METHODS = ("auto", "direct", "fft")
# 'fft' from this kernel size on (CPU); see the module docstring's table.
FFT_MIN_KERNEL = 7
# Channel pairs (C * O) up to which the unrolled mixes are used.
SMALL_MIX = 256


def resolve_method(method: str, kernel_size: int,
                   backend: str | None = None) -> str:
  """The formulation of one layer: ``'direct'`` or ``'fft'``.

  Args:
    method: ``'auto'``, ``'direct'`` or ``'fft'`` (a model's ``conv_method``).
    kernel_size: ``k`` of the layer's ``k x k`` kernel.
    backend: platform name; defaults to ``jax.default_backend()``.
  """
  if method not in METHODS:
    raise ValueError(f"conv_method={method!r} is not one of {list(METHODS)} "
                     "(config.model.conv_method).")
  if method != "auto":
    return method
  backend = jax.default_backend() if backend is None else backend
  if backend == "cpu" and kernel_size >= FFT_MIN_KERNEL:
    return "fft"
  return "direct"


def conv_direct(x: Array, kernel: Array, layout: str = "NHWC") -> Array:
  """``lax.conv_general_dilated``, stride 1, SAME; ``layout`` of ``x`` and output."""
  return lax.conv_general_dilated(
      x, kernel, (1, 1), "SAME", dimension_numbers=(layout, "HWIO", layout))


def fft_size(n: int, k: int) -> int:
  """Period of the FFT along a side of ``n`` pixels for a ``k``-tap kernel."""
  return n + k // 2


@functools.lru_cache(maxsize=None)
def _spectrum_basis(k: int, p: int, q: int) -> np.ndarray:
  """``(k * k, 2 * p * (q // 2 + 1))`` float32: for tap ``(a, b)`` (row
  ``a * k + b``), the real then the imaginary parts of
  ``exp(2 pi i (u (a - r) / p + v (b - r) / q))`` over the bins ``(u, v)``
  (``u < p``, ``v <= q // 2``, row-major), ``r = k // 2``; computed in
  float64."""
  taps = np.arange(k) - k // 2
  angle = (2.0 * np.pi * np.outer(taps, np.arange(p)) / p)[:, None, :, None] + (
      2.0 * np.pi * np.outer(taps, np.arange(q // 2 + 1)) / q)[None, :, None, :]
  angle = angle.reshape(k * k, -1)
  return np.concatenate([np.cos(angle), np.sin(angle)], 1).astype(np.float32)


def kernel_spectrum(kernel: Array, p: int, q: int) -> Array:
  """The kernel's transform at the ``rfft2`` bins of a ``(p, q)`` period.

  ``G[c, o, u, v] = sum_ab kernel[a, b, c, o] exp(2 pi i (u (a - r) / p +
  v (b - r) / q))`` with ``r = k // 2``, ``u < p``, ``v <= q // 2``; then the
  SAME correlation is ``irfft2(sum_c rfft2(x)[:, c] G[c])[:h, :w]``. One
  matrix product of the ``(k * k, C * O)`` taps with the table of phases
  (:func:`_spectrum_basis`), forward and backward: the separable form (two
  small DFTs over the ``k`` taps, six einsums and their transposes) has
  fewer FLOPs but many more small ops, whose overhead dominates on CPU
  (``python -m landmark_ssl.bench.profile`` of the Blocks L step: 97 dots
  and 45 copy fusions per step with it, 31 and 3 with one product).

  Returns:
    ``(C, O, p, q // 2 + 1)`` complex64.
  """
  k, c, o = kernel.shape[0], kernel.shape[2], kernel.shape[3]
  basis = _spectrum_basis(k, p, q)
  g = jnp.dot(kernel.reshape(k * k, c * o).T, basis,
              precision=lax.Precision.HIGHEST)
  g = g.reshape(c, o, 2, p, q // 2 + 1)
  return lax.complex(g[:, :, 0], g[:, :, 1])


def _channel_sum(x: Array, w: Array) -> Array:
  """``y[:, o] = sum_c x[:, c] * w[c, o]`` for ``x (N, C, ...)``, ``w (C, O, ...)``
  (``w``'s trailing axes broadcast), as unrolled multiply-adds."""
  y = x[:, 0, None] * w[None, 0]
  for i in range(1, x.shape[1]):
    y = y + x[:, i, None] * w[None, i]
  return y


_BATCH_CHUNK = 8


@jax.custom_vjp
def channel_mix(x: Array, w: Array) -> Array:
  """``y[n, o, ...] = sum_c x[n, c, ...] * w[c, o, ...]``, for few channels.

  ``x (N, C, *S)``, ``w (C, O, *S)``, real or complex. One XLA loop fusion
  forward; the VJP sums the weight cotangent over the batch in chunks of 8
  images, so each chunk's products fuse into its reduction (autodiff's single
  reduction over the batch is split by XLA into a materialised
  ``(N, C, O, *S)`` product and a tree of reductions, 7x slower). Cotangents
  follow JAX's convention for complex values (transpose, not adjoint).
  """
  return _channel_sum(x, w)


def _channel_mix_fwd(x, w):
  return _channel_sum(x, w), (x, w)


def _channel_mix_bwd(res, ct):
  x, w = res
  ct_x = _channel_sum(ct, jnp.swapaxes(w, 0, 1))
  ct_w = None
  for s in range(0, x.shape[0], _BATCH_CHUNK):
    part = jnp.sum(x[s:s + _BATCH_CHUNK, :, None] * ct[s:s + _BATCH_CHUNK, None],
                   axis=0)
    ct_w = part if ct_w is None else ct_w + part
  return ct_x, ct_w


channel_mix.defvjp(_channel_mix_fwd, _channel_mix_bwd)


@jax.custom_vjp
def _pointwise_small(x: Array, w: Array) -> Array:
  return _channel_sum(x, w[:, :, None, None])


def _pointwise_small_fwd(x, w):
  return _pointwise_small(x, w), (x, w)


def _pointwise_small_bwd(res, ct):
  x, w = res
  n, c = x.shape[:2]
  ct_x = _channel_sum(ct, jnp.swapaxes(w, 0, 1)[:, :, None, None])
  # A (C, HW) x (HW, O) product per image, then a sum over the images: 60x
  # faster on CPU than the single reduction autodiff writes.
  ct_w = jnp.sum(jnp.einsum("nck,nok->nco", x.reshape(n, c, -1),
                            ct.reshape(n, ct.shape[1], -1)), axis=0)
  return ct_x, ct_w


_pointwise_small.defvjp(_pointwise_small_fwd, _pointwise_small_bwd)


def conv_pointwise(x: Array, kernel: Array) -> Array:
  """1x1 convolution of ``x (N, C, H, W)`` with ``kernel (1, 1, C, O)``."""
  c, o = kernel.shape[2:]
  w = kernel.reshape(c, o)
  if c * o <= SMALL_MIX:
    return _pointwise_small(x, w)
  return jnp.einsum("nchw,co->nohw", x, w)


def conv_fft(x: Array, kernel: Array) -> Array:
  """SAME cross-correlation of ``x (N, C, H, W)`` with ``kernel (k, k, C, O)``
  through ``rfft2`` (see the module docstring); returns ``(N, O, H, W)``."""
  _, c, h, w = x.shape
  k, o = kernel.shape[0], kernel.shape[-1]
  if k % 2 == 0 or kernel.shape[1] != k:
    raise ValueError(f"conv_fft needs square odd kernels, got {kernel.shape[:2]}.")
  p, q = fft_size(h, k), fft_size(w, k)
  spec = jnp.fft.rfft2(x, s=(p, q))  # (N, C, p, q // 2 + 1)
  g = kernel_spectrum(kernel, p, q)  # (C, O, p, q // 2 + 1)
  if c * o <= SMALL_MIX:
    mixed = channel_mix(spec, g)
  else:
    mixed = jnp.einsum("ncuv,couv->nouv", spec, g)
  return jnp.fft.irfft2(mixed, s=(p, q))[:, :, :h, :w]


def conv_same(x: Array, kernel: Array, method: str, layout: str) -> Array:
  """One stride-1 SAME convolution by ``method`` (``'direct'`` / ``'fft'``).

  ``x`` is in ``layout`` (``'NHWC'`` or ``'NCHW'``; ``'fft'`` and the fast
  1x1 path need ``'NCHW'``); so is the output.
  """
  k = kernel.shape[0]
  if method == "fft":
    if layout != "NCHW":
      raise ValueError("conv_same(method='fft') needs layout='NCHW'.")
    if k == 1:
      return conv_pointwise(x, kernel)
    return conv_fft(x, kernel)
  if k == 1 and layout == "NCHW":
    return conv_pointwise(x, kernel)
  return conv_direct(x, kernel, layout)
