"""Seq-MT: landmarks first (pooling-free convs + soft-argmax), then classes
from the landmark coordinates alone (Fig. 1 of the paper)."""

from __future__ import annotations

from typing import ClassVar, Sequence, Tuple

import flax.linen as nn
import jax

from landmark_ssl import geometry
from landmark_ssl.models import layers


class SeqMT(nn.Module):
  """Sequential multi-tasking model.

  Attributes:
    num_landmarks: K.
    heads: ``((name, num_classes), ...)``; one classifier branch per head,
      each an MLP over the ``2K`` landmark coordinates (normalised to
      ``[-1, 1]``). Empty: no classifier (300W).
    kernel_sizes: kernel of each conv layer of the landmark net; the last
      layer outputs the K maps with no non-linearity. E.g. Blocks
      ``(9,) * 6 + (1, 1)``.
    features: maps per conv layer.
    beta: soft-argmax temperature (softmax of ``beta * M``).
    classifier_hidden: FC widths before each head's output layer.
    dropout: dropout rate after each hidden FC layer.
    conv_method: how the landmark net's convolutions are computed
      (``'auto'``, ``'direct'``, ``'fft'``; see ``layers.LandmarkConvNet``);
      a speed setting only: results agree to float32 rounding.
  """
  num_landmarks: int
  heads: Tuple[Tuple[str, int], ...] = ()
  kernel_sizes: Sequence[int] = (9, 9, 9, 9, 9, 9, 1, 1)
  features: int = 8
  beta: float = 1.0
  classifier_hidden: Sequence[int] = (256, 256)
  dropout: float = 0.25
  conv_method: str = "auto"

  landmark_cost: ClassVar[str] = "coordinates"

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False):
    _, h, w, _ = images.shape
    maps = layers.LandmarkConvNet(self.kernel_sizes, self.features,
                                  self.num_landmarks, self.conv_method,
                                  name="landmark_net")(images)
    landmarks = geometry.soft_argmax(maps, self.beta)
    coords = layers.normalize_points(landmarks, h, w).reshape(landmarks.shape[0], -1)
    logits = {
        name: layers.MLPHead(self.classifier_hidden, n, self.dropout,
                             name=f"head_{name}")(coords, train)
        for name, n in self.heads
    }
    return {"landmarks": landmarks, "maps": maps, "logits": logits}
