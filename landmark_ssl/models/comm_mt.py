"""Comm-MT: the common multi-task baseline (Fig. 6 of the paper).

Convolutions, two 2x2 max-pools, a shared FC trunk, then one linear branch
regressing the 2K landmark coordinates and one branch per class head.
"""

from __future__ import annotations

from typing import ClassVar, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from landmark_ssl.models import convolution
from landmark_ssl.models import layers


# Class output layer -> the scores the softmax NLL and the accuracy read.
_CLASS_ACTIVATIONS = {
    "sigmoid": jax.nn.sigmoid,
    "sigmoid_normalized": jax.nn.log_sigmoid,
    "none": lambda z: z,
}


class CommMT(nn.Module):
  """Common multi-tasking model.

  Attributes:
    num_landmarks: K.
    heads: ``((name, num_classes), ...)``.
    kernel_size: kernel of every conv ("half" convs: stride 1, SAME padding).
    features: maps per conv layer.
    convs_before_pool: convs at full resolution (Fig. 6: 1 + 4 = 5).
    convs_after_pool: convs between the two pools (Fig. 6: 1).
    hidden: widths of the shared FC trunk (ReLU + dropout).
    dropout: dropout rate in the trunk.
    class_activation: how the class output layer's pre-activations ``z`` become
      the class scores that the loss puts through a softmax (footnote 7 says
      only "the classification output layer uses sigmoid non-linearity",
      which has two readings): ``'sigmoid'`` scores ``sigmoid(z)``, so the
      softmax sees values in (0, 1) and no class can get more than
      ``e / (e + C - 1)`` of the probability (0.16 for Blocks' 15 classes);
      ``'sigmoid_normalized'`` makes the class probabilities
      ``sigmoid(z) / sum(sigmoid(z))`` (scores ``log sigmoid(z)``, whose
      softmax is exactly that), which can reach 1, the reading under which
      abs(tanh), the footnote's other candidate, is also a valid output;
      ``'none'`` scores ``z`` (a plain softmax classifier).
    conv_method: how the convolutions are computed (``'auto'``, ``'direct'``,
      ``'fft'``; see ``layers.LandmarkConvNet``); a speed setting only.
  """
  num_landmarks: int
  heads: Tuple[Tuple[str, int], ...] = ()
  kernel_size: int = 5
  features: int = 32
  convs_before_pool: int = 5
  convs_after_pool: int = 1
  hidden: Sequence[int] = (256, 256)
  dropout: float = 0.25
  class_activation: str = "sigmoid"
  conv_method: str = "auto"

  landmark_cost: ClassVar[str] = "coordinates"

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False):
    if self.class_activation not in _CLASS_ACTIVATIONS:
      raise ValueError(
          f"CommMT.class_activation must be one of "
          f"{sorted(_CLASS_ACTIVATIONS)}, got {self.class_activation!r} "
          "(set --config.model.class_activation).")
    n, h, w, _ = images.shape
    k = self.kernel_size
    method = convolution.resolve_method(self.conv_method, k)
    layout = "NCHW" if method == "fft" else "NHWC"

    def convs(x, first, count):
      # Same-resolution convs + ReLU; pooling stays in NHWC.
      if layout == "NCHW":
        x = jnp.transpose(x, (0, 3, 1, 2))
      for i in range(first, first + count):
        x = nn.relu(layers.SameConv(self.features, k, method, layout,
                                    name=f"conv{i}")(x))
      if layout == "NCHW":
        x = jnp.transpose(x, (0, 2, 3, 1))
      return x

    x = convs(images, 0, self.convs_before_pool)
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = convs(x, self.convs_before_pool, self.convs_after_pool)
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = x.reshape(n, -1)
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(width, kernel_init=layers.conv_init, name=f"fc{i}")(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    coords = nn.Dense(2 * self.num_landmarks, kernel_init=layers.conv_init,
                      name="landmark_out")(x)
    landmarks = layers.denormalize_points(
        coords.reshape(n, self.num_landmarks, 2), h, w)
    logits = {}
    for name, classes in self.heads:
      z = nn.Dense(classes, kernel_init=layers.conv_init, name=f"head_{name}")(x)
      logits[name] = _CLASS_ACTIVATIONS[self.class_activation](z)
    return {"landmarks": landmarks, "maps": None, "logits": logits}
