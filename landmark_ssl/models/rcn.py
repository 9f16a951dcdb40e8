"""Recombinator Networks (Honari et al., CVPR 2016) and RCN+ (Fig. 15).

The defaults are the authors' 300W network: their public Theano code
(GitHub SinaHonari/RCN), ``models/RCN_300W.py``, ``fforward_model`` with
none of its optional flags, as their README trains RCN on 300W; the widths
are the ``RCN_300W`` list of ``get_nkerns`` in ``models/create_procs.py``:
64 maps everywhere. With B branches, finest first (B = 5 on 80x80: 80, 40,
20, 10, 5 pixels):

* input: local contrast normalisation (a fixed 9x9 Gaussian window, no
  parameters; :func:`local_contrast_normalize`);
* down: branch b (b > 0) max-pools the previous branch's maps 2x2, then
  convolves: one 3x3 conv with ReLU per branch;
* up, from coarse to fine: the coarsest branch convolves its own down maps;
  every finer branch concatenates [its down maps (before pooling),
  2x upsampled (each value repeated 2x2) output of the coarser branch] and
  convolves. The first conv of each up branch is 5x5, the others 1x1, all
  with ReLU: 5x5 branch 2 convs, 10x10 branch 1, 20x20 and 40x40 branches
  2, 80x80 branch 3;
* output: a linear 1x1 conv to K maps at input resolution.

Every conv is stride 1 with zero padding that keeps the size ("SAME"), has
a bias, and no batch norm and no dropout (the published 300W runs turn both
off). RCN reads landmarks with a pixel softmax per map (argmax at test, NLL
cost: ``soft_argmax=False``); RCN+ (``soft_argmax=True``) with the
soft-argmax, which makes it usable with the landmark L2 cost and ELT.

Two published options, off in the default (the README's 300W recipe) but
on in the 300W checkpoint the authors released: ``skip='window_max'``
(their ``zero_non_pooled``) and ``upsampling='learned'`` (their
``learn_upsampling``); see the attributes.

Deviations from the published code (each a setting or a documented choice):

* no batch norm and no dropout layers: both are off in the published 300W
  runs, so ``train`` changes nothing;
* the contrast normalisation divides by the larger of the local deviation
  and the mean deviation *of that image* (the published code takes the mean
  over the whole mini-batch, which makes a prediction depend on the other
  images of the batch), and by at least 1e-6 (a constant image would give
  0/0);
* cross-correlation instead of Theano's flipped-kernel convolution (the
  same family of functions; matters only for importing their weights);
* the coarsest branch is the default run's (5x5 at 80x80): the optional
  2x2 / 1x1 branches (``use_res_2`` / ``use_res_1``) and the other flags
  off in the 300W recipe (``concat_pool_locations``, ``bilinear``,
  ``extra_fine``, ``large_F_filter``) are not built; the sides must be
  divisible by ``2 ** (B - 1)`` (2x2 pooling and 2x upsampling then give
  back the same sizes, as at 80x80).
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from landmark_ssl import geometry
from landmark_ssl.models import layers

Array = jax.Array

SKIPS = ("all", "window_max")
UPSAMPLINGS = ("repeat", "learned")
WEIGHT_INITS = ("published", "he")

# The published 300W network, finest branch first.
DOWN_FEATURES = ((64,), (64,), (64,), (64,), (64,))
DOWN_KERNEL_SIZES = ((3,), (3,), (3,), (3,), (3,))
UP_FEATURES = ((64, 64, 64), (64, 64), (64, 64), (64,), (64, 64))
UP_KERNEL_SIZES = ((5, 1, 1), (5, 1), (5, 1), (5,), (5, 1))


def published_kernel_init(key, shape, dtype=jnp.float32) -> Array:
  """The published conv initialisation: uniform in ``[-b, b]`` with
  ``b = sqrt(6 / (fan_in + fan_out / 4))``, ``fan_in = k*k*C_in``,
  ``fan_out = k*k*C_out`` (their conv layer divides the fan-out by the 2x2
  pool size even when it does not pool). ``shape`` is ``(k, k, C_in,
  C_out)``."""
  *window, c_in, c_out = shape
  area = math.prod(window)
  bound = math.sqrt(6.0 / (area * c_in + area * c_out / 4.0))
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def keep_window_max(x: Array, window: int = 2) -> Array:
  """``(N, H, W, C)`` maps where each non-overlapping ``window x window``
  patch keeps its maximum where it is and is zero elsewhere (every tied
  maximum is kept). What ``skip='window_max'`` concatenates: only the
  values the pooling passed on."""
  m = nn.max_pool(x, (window, window), (window, window))
  m = jnp.repeat(jnp.repeat(m, window, axis=1), window, axis=2)
  return jnp.where(x == m, x, jnp.zeros_like(x))


def upsample_repeat(x: Array, factor: int = 2) -> Array:
  """Nearest-neighbour upsampling of ``(N, H, W, C)``: each value becomes a
  ``factor x factor`` block."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def _gaussian_window(size: int, sigma: float) -> Array:
  """A ``size x size`` Gaussian of standard deviation ``sigma`` pixels,
  centred on the middle pixel (odd ``size``), summing to one."""
  d = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2.0
  g = jnp.exp(-0.5 * (d / sigma) ** 2)
  g2 = g[:, None] * g[None, :]
  return g2 / g2.sum()


def local_contrast_normalize(images: Array, size: int = 9,
                             sigma: float = 1.591) -> Array:
  """The published input normalisation of ``(N, H, W, C)`` images.

  ``m``: Gaussian-weighted local mean (``size x size`` window, ``sigma``
  pixels, zero padding), summed over the channels; ``v = x - m``; ``s``:
  the square root of the same local mean of ``v**2``, summed over the
  channels; the output is ``(v / max(s, mean(s), 1e-6) + 2.5) / 5``, with
  ``mean(s)`` over each image's pixels (the published code: over the
  mini-batch). Grey images (C = 1) are the published case.
  """
  c = images.shape[-1]
  g = _gaussian_window(size, sigma).astype(images.dtype)
  kernel = jnp.tile(g[:, :, None, None], (1, 1, c, 1))  # sums the channels

  def local_mean(x):
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

  v = images - local_mean(images)
  s = jnp.sqrt(local_mean(v * v))
  floor = jnp.maximum(s.mean(axis=(1, 2, 3), keepdims=True), 1e-6)
  return (v / jnp.maximum(s, floor) + 2.5) / 5.0


class LearnedUpsampling(nn.Module):
  """2x upsampling by a learned 3x3 kernel shared by all channels (the
  published ``learn_upsampling``): a transposed convolution with stride 2,
  i.e. the input is spread onto every other pixel of a zero map and
  convolved. One ``kernel (3, 3)``, uniform in ``[-b, b]``, ``b =
  sqrt(6 / 18)``, no bias. The kernel ``[[1,1,0],[1,1,0],[0,0,0]]`` gives
  :func:`upsample_repeat`."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    factor = 2
    k = 2 * factor - 1
    bound = math.sqrt(6.0 / (2 * k * k))
    kernel = self.param(
        "kernel", lambda key, shape: jax.random.uniform(
            key, shape, jnp.float32, -bound, bound), (k, k))
    c = x.shape[-1]
    rhs = jnp.tile(kernel.astype(x.dtype)[:, :, None, None], (1, 1, 1, c))
    pad = (factor - 1, 2 * factor - 2)
    return jax.lax.conv_general_dilated(
        x, rhs, (1, 1), (pad, pad), lhs_dilation=(factor, factor),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)


def _nested(value, name):
  try:
    out = tuple(tuple(int(v) for v in branch) for branch in value)
  except TypeError:
    raise ValueError(f"RCN.{name} needs one tuple of ints per branch, e.g. "
                     f"((64,), (64,)); got {value!r}.") from None
  return out


class RCN(nn.Module):
  """Recombinator network; the defaults are the published 300W network.

  Branches are listed finest (input resolution) first; there are
  ``len(down_features)`` of them, and the input sides must be divisible by
  ``2 ** (branches - 1)``.

  Attributes:
    num_landmarks: K.
    heads: must be empty: RCN has no classifier (300W has no class labels).
    down_features: per branch, the widths of its convs on the way down
      (published: one conv of 64 maps per branch, five branches).
    down_kernel_sizes: per branch, the kernel of each of those convs
      (published: 3).
    up_features: per branch, the widths of its convs on the way up, which
      take [down maps, upsampled coarser output] (the coarsest: its down
      maps); published: 64 maps, 3 / 2 / 2 / 1 / 2 convs from 80x80 to 5x5.
    up_kernel_sizes: per branch, the kernel of each of those convs
      (published: 5 for the first, 1 for the others).
    output_kernel_size: kernel of the last, linear conv to K maps (1).
    skip: what of a branch's down maps the up path concatenates: ``'all'``
      (published default) or ``'window_max'`` (only each 2x2 pooling
      window's maximum, the rest zero: the published ``zero_non_pooled``).
    upsampling: ``'repeat'`` (each value 2x2 times: published default) or
      ``'learned'`` (:class:`LearnedUpsampling`, one 3x3 kernel per
      upsampling: the published ``learn_upsampling``).
    contrast_norm: apply :func:`local_contrast_normalize` to the input
      (published: on).
    weight_init: ``'published'`` (:func:`published_kernel_init`) or ``'he'``
      (``layers.conv_init``, as the other models); biases start at zero.
    soft_argmax: RCN+ when true.
    beta: soft-argmax temperature (RCN+ only).
  """
  num_landmarks: int
  heads: Tuple[Tuple[str, int], ...] = ()
  down_features: Sequence[Sequence[int]] = DOWN_FEATURES
  down_kernel_sizes: Sequence[Sequence[int]] = DOWN_KERNEL_SIZES
  up_features: Sequence[Sequence[int]] = UP_FEATURES
  up_kernel_sizes: Sequence[Sequence[int]] = UP_KERNEL_SIZES
  output_kernel_size: int = 1
  skip: str = "all"
  upsampling: str = "repeat"
  contrast_norm: bool = True
  weight_init: str = "published"
  soft_argmax: bool = True
  beta: float = 1.0

  @property
  def landmark_cost(self) -> str:
    return "coordinates" if self.soft_argmax else "heatmap"

  def _check(self, h: int, w: int):
    if self.heads:
      raise ValueError("RCN has no classifier: use heads=() (costs without C).")
    for name, allowed in (("skip", SKIPS), ("upsampling", UPSAMPLINGS),
                          ("weight_init", WEIGHT_INITS)):
      if getattr(self, name) not in allowed:
        raise ValueError(f"RCN.{name} is {getattr(self, name)!r}; choose one "
                         f"of {list(allowed)} (config.model.{name}).")
    branches = len(self.down_features)
    if branches < 1:
      raise ValueError("RCN needs at least one branch in down_features.")
    for f_name, k_name in (("down_features", "down_kernel_sizes"),
                           ("up_features", "up_kernel_sizes")):
      feats = _nested(getattr(self, f_name), f_name)
      kernels = _nested(getattr(self, k_name), k_name)
      if len(feats) != branches or len(kernels) != branches:
        raise ValueError(
            f"RCN.{f_name} and RCN.{k_name} need one entry per branch "
            f"({branches}, the length of down_features), got {len(feats)} "
            f"and {len(kernels)}.")
      for b, (f, k) in enumerate(zip(feats, kernels)):
        if len(f) != len(k) or not f:
          raise ValueError(
              f"RCN branch {b}: {f_name} {f} and {k_name} {k} need the same "
              "number (at least one) of convs.")
    factor = 2 ** (branches - 1)
    if h % factor or w % factor:
      raise ValueError(f"RCN with {branches} branches needs image sides "
                       f"divisible by {factor}; got {h}x{w}. Change the image "
                       "size or the number of branches (model.down_features "
                       "and the other per-branch settings).")

  @nn.compact
  def __call__(self, images: Array, train: bool = False):
    del train  # no batch norm, no dropout (as the published 300W runs)
    _, h, w, _ = images.shape
    self._check(h, w)
    init = (published_kernel_init if self.weight_init == "published"
            else layers.conv_init)

    def conv(x, width, k, name, relu=True):
      y = nn.Conv(width, (k, k), padding="SAME", kernel_init=init,
                  bias_init=nn.initializers.zeros, name=name)(x)
      return nn.relu(y) if relu else y

    down_f = _nested(self.down_features, "down_features")
    down_k = _nested(self.down_kernel_sizes, "down_kernel_sizes")
    up_f = _nested(self.up_features, "up_features")
    up_k = _nested(self.up_kernel_sizes, "up_kernel_sizes")
    branches = len(down_f)

    x = local_contrast_normalize(images) if self.contrast_norm else images
    skips = []
    for b in range(branches):
      if b:
        x = nn.max_pool(x, (2, 2), (2, 2))
      for i, (width, k) in enumerate(zip(down_f[b], down_k[b])):
        x = conv(x, width, k, f"down{b}_{i}")
      skips.append(x)

    for b in reversed(range(branches)):
      if b < branches - 1:  # all but the coarsest: recombine
        if self.upsampling == "learned":
          x = LearnedUpsampling(name=f"upsample{b}")(x)
        else:
          x = upsample_repeat(x)
        skip = skips[b] if self.skip == "all" else keep_window_max(skips[b])
        x = jnp.concatenate([skip, x], axis=-1)
      for i, (width, k) in enumerate(zip(up_f[b], up_k[b])):
        x = conv(x, width, k, f"up{b}_{i}")
    maps = conv(x, self.num_landmarks, self.output_kernel_size, "maps",
                relu=False)
    if self.soft_argmax:
      landmarks = geometry.soft_argmax(maps, self.beta)
    else:
      landmarks = geometry.hard_argmax(maps)
    return {"landmarks": landmarks, "maps": maps, "logits": {}}
