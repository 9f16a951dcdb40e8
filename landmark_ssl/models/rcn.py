"""Recombinator Networks (Honari et al., CVPR 2016) and RCN+ (Fig. 15).

A coarse-to-fine encoder-decoder: the down path alternates convolutions and
2x2 max-pooling; the up path upsamples the coarser features (nearest
neighbour), concatenates them with the features of the same resolution from
the down path, and convolves; a final 1x1 convolution gives K maps at input
resolution. RCN reads landmarks with a pixel softmax (argmax at test, NLL
cost); RCN+ (``soft_argmax=True``) with the soft-argmax, which makes it
usable with the landmark L2 cost and ELT.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from landmark_ssl import geometry
from landmark_ssl.models import layers


class RCN(nn.Module):
  """Recombinator network.

  Attributes:
    num_landmarks: K.
    heads: must be empty: RCN has no classifier (300W has no class labels).
    features: maps at each resolution, finest first; ``len(features)`` levels,
      so the input side must be divisible by ``2 ** (len(features) - 1)``.
    kernel_sizes: conv kernel at each resolution, finest first.
    convs_per_level: convolutions per level on each path.
    soft_argmax: RCN+ when true.
    beta: soft-argmax temperature (RCN+ only).
  """
  num_landmarks: int
  heads: Tuple[Tuple[str, int], ...] = ()
  features: Sequence[int] = (64, 64, 64, 64)
  kernel_sizes: Sequence[int] = (3, 3, 3, 3)
  convs_per_level: int = 2
  soft_argmax: bool = True
  beta: float = 1.0

  @property
  def landmark_cost(self) -> str:
    return "coordinates" if self.soft_argmax else "heatmap"

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False):
    del train  # no dropout
    if self.heads:
      raise ValueError("RCN has no classifier: use heads=() (costs without C).")
    if len(self.features) != len(self.kernel_sizes):
      raise ValueError("RCN.features and RCN.kernel_sizes need one entry per "
                       f"level, got {len(self.features)} and {len(self.kernel_sizes)}.")
    n, h, w, _ = images.shape
    factor = 2 ** (len(self.features) - 1)
    if h % factor or w % factor:
      raise ValueError(f"RCN with {len(self.features)} levels needs image sides "
                       f"divisible by {factor}; got {h}x{w}. Change the image "
                       "size or the number of levels (model.features).")

    def convs(x, width, k, prefix):
      for i in range(self.convs_per_level):
        x = nn.relu(nn.Conv(width, (k, k), padding="SAME",
                            kernel_init=layers.conv_init, name=f"{prefix}_{i}")(x))
      return x

    skips = []
    x = images
    levels = len(self.features)
    for lvl in range(levels):
      x = convs(x, self.features[lvl], self.kernel_sizes[lvl], f"down{lvl}")
      if lvl < levels - 1:
        skips.append(x)
        x = nn.max_pool(x, (2, 2), (2, 2))
    for lvl in reversed(range(levels - 1)):
      skip = skips[lvl]
      x = jax.image.resize(x, skip.shape[:3] + (x.shape[-1],), "nearest")
      x = jnp.concatenate([x, skip], axis=-1)
      x = convs(x, self.features[lvl], self.kernel_sizes[lvl], f"up{lvl}")
    maps = nn.Conv(self.num_landmarks, (1, 1), kernel_init=layers.conv_init,
                   name="maps")(x)
    if self.soft_argmax:
      landmarks = geometry.soft_argmax(maps, self.beta)
    else:
      landmarks = geometry.hard_argmax(maps)
    return {"landmarks": landmarks, "maps": maps, "logits": {}}
