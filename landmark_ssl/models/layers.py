"""Building blocks shared by the models: the pooling-free landmark net and
the classifier heads."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from landmark_ssl.models import convolution

Array = jax.Array

# He initialisation for ReLU layers; the last (linear) layers use the same.
conv_init = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


class SameConv(nn.Module):
  """A stride-1, "SAME" convolution with bias, computed by ``method``.

  Its parameters are ``nn.Conv``'s (``kernel (k, k, C, O)`` initialised with
  ``conv_init``, ``bias (O,)`` zeros): checkpoints and initial values do not
  depend on the method. ``method`` is ``'direct'`` or ``'fft'``
  (``convolution.conv_same``); ``layout`` (``'NHWC'`` / ``'NCHW'``) is that of
  the input and the output.
  """
  features: int
  kernel_size: int
  method: str = "direct"
  layout: str = "NHWC"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    channel_axis = self.layout.index("C")
    k = self.kernel_size
    kernel = self.param("kernel", conv_init,
                        (k, k, x.shape[channel_axis], self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,),
                      jnp.float32)
    y = convolution.conv_same(x, kernel, self.method, self.layout)
    shape = [1, 1, 1, 1]
    shape[channel_axis] = self.features
    return y + bias.reshape(shape)


class LandmarkConvNet(nn.Module):
  """Convolutions with stride 1, "SAME" padding and no pooling.

  ``kernel_sizes[i]`` is the kernel of layer ``i``; every layer has
  ``features`` maps and a ReLU except the last, which has ``num_maps`` maps
  and no non-linearity (the input of the soft-argmax / spatial softmax).
  The output keeps the input's spatial resolution.

  ``conv_method`` (``convolution.METHODS``) says how the convolutions are
  computed: ``'direct'`` (``lax.conv``), ``'fft'``, or ``'auto'`` (per layer,
  ``convolution.resolve_method``: FFT for kernels of 7 and more on CPU;
  direct elsewhere). On a shared 2-core CPU the FFT made the Seq-MT L+T+C
  train step 2.8x faster for Blocks (batch 64: 2119 -> 767 ms) and 5x for
  HGR1 (batch 8: 13.4 -> 2.7 s); compare ``python -m landmark_ssl.bench
  --conv_method=direct`` with the default. Every method gives the same maps
  to float32 rounding and has the same parameters. When any layer uses the FFT the whole net runs in
  NCHW (one transpose in, one out).
  """
  kernel_sizes: Sequence[int]
  features: int
  num_maps: int
  conv_method: str = "auto"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    n_layers = len(self.kernel_sizes)
    if n_layers < 1:
      raise ValueError("LandmarkConvNet needs at least one layer in kernel_sizes.")
    widths = [self.features] * (n_layers - 1) + [self.num_maps]
    methods = [convolution.resolve_method(self.conv_method, k)
               for k in self.kernel_sizes]
    layout = "NCHW" if "fft" in methods else "NHWC"
    if layout == "NCHW":
      x = jnp.transpose(x, (0, 3, 1, 2))
    for i, (k, width, method) in enumerate(zip(self.kernel_sizes, widths, methods)):
      x = SameConv(width, k, method, layout, name=f"conv{i}")(x)
      if i < n_layers - 1:
        x = nn.relu(x)
    if layout == "NCHW":
      x = jnp.transpose(x, (0, 2, 3, 1))
    return x


class MLPHead(nn.Module):
  """FC layers with ReLU and dropout, then a linear output layer."""
  hidden: Sequence[int]
  num_outputs: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(width, kernel_init=conv_init, name=f"fc{i}")(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_outputs, kernel_init=conv_init, name="out")(x)


def normalize_points(points: Array, height: int, width: int) -> Array:
  """Pixel ``(x, y)`` to ``[-1, 1]`` (image corners' pixel centres at +-1)."""
  size = jnp.array([max(width - 1, 1), max(height - 1, 1)], points.dtype)
  return points / size * 2.0 - 1.0


def denormalize_points(points: Array, height: int, width: int) -> Array:
  """Inverse of :func:`normalize_points`."""
  size = jnp.array([max(width - 1, 1), max(height - 1, 1)], points.dtype)
  return (points + 1.0) / 2.0 * size
