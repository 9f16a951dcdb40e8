"""Heatmap-MT: pooling-free landmark heatmaps trained as a classification
over pixels; the classifier sees the heatmaps (Fig. 8 of the paper)."""

from __future__ import annotations

from typing import ClassVar, Sequence, Tuple

import flax.linen as nn
import jax

from landmark_ssl import geometry
from landmark_ssl.models import layers


class HeatmapMT(nn.Module):
  """Heatmap multi-tasking model.

  The landmark net is Seq-MT's; its K maps are the logits of a spatial
  softmax (cost: NLL of the true pixel, ``losses.heatmap_landmark_loss``) and
  the predicted landmark is the argmax pixel. The classifier applies
  ``[2x2 max-pool, conv 3x3 + ReLU]`` per entry of ``classifier_convs`` to the
  maps, flattens, then FC layers with ReLU and dropout, then a linear output.

  Attributes:
    num_landmarks, heads, kernel_sizes, features: as ``SeqMT``.
    classifier_convs: maps of each pool+conv stage of the classifier.
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
  classifier_convs: Sequence[int] = (16, 16)
  classifier_hidden: Sequence[int] = (256, 256)
  dropout: float = 0.25
  conv_method: str = "auto"

  landmark_cost: ClassVar[str] = "heatmap"

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False):
    maps = layers.LandmarkConvNet(self.kernel_sizes, self.features,
                                  self.num_landmarks, self.conv_method,
                                  name="landmark_net")(images)
    landmarks = geometry.hard_argmax(maps)
    logits = {}
    for name, classes in self.heads:
      x = maps
      for i, width in enumerate(self.classifier_convs):
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(nn.Conv(width, (3, 3), padding="SAME",
                            kernel_init=layers.conv_init,
                            name=f"head_{name}_conv{i}")(x))
      x = x.reshape(x.shape[0], -1)
      logits[name] = layers.MLPHead(self.classifier_hidden, classes, self.dropout,
                                    name=f"head_{name}")(x, train)
    return {"landmarks": landmarks, "maps": maps, "logits": logits}
