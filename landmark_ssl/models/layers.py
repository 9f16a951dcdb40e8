"""Building blocks shared by the models: the pooling-free landmark net and
the classifier heads."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

# He initialisation for ReLU layers; the last (linear) layers use the same.
conv_init = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


class LandmarkConvNet(nn.Module):
  """Convolutions with stride 1, "SAME" padding and no pooling.

  ``kernel_sizes[i]`` is the kernel of layer ``i``; every layer has
  ``features`` maps and a ReLU except the last, which has ``num_maps`` maps
  and no non-linearity (the input of the soft-argmax / spatial softmax).
  The output keeps the input's spatial resolution.
  """
  kernel_sizes: Sequence[int]
  features: int
  num_maps: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    n_layers = len(self.kernel_sizes)
    if n_layers < 1:
      raise ValueError("LandmarkConvNet needs at least one layer in kernel_sizes.")
    for i, k in enumerate(self.kernel_sizes):
      last = i == n_layers - 1
      x = nn.Conv(self.num_maps if last else self.features, (k, k),
                  padding="SAME", kernel_init=conv_init,
                  name=f"conv{i}")(x)
      if not last:
        x = nn.relu(x)
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
