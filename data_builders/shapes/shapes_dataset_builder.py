"""Shapes: one white triangle and one white square on black, 60x60 grey.

Each shape has a random size (circumradius uniform in [4, 10] px), position
and rotation (uniform in [0, 360) degrees); the triangle is equilateral. The
two shapes never overlap (their circumscribed circles are at least 2 px
apart) and lie fully inside the image, at least 1 px from the border.

Landmarks: the centres of the triangle (first) and of the square.
``shape_size``: their circumradii (triangle, square), so one can check
that a predicted landmark lands on its shape.

Label: which shape is nearer the top-left corner, ``0`` (``triangle``) or
``1`` (``square``), "nearer" meaning the smaller Euclidean distance from the
shape's centre (its landmark) to the point ``(0, 0)``, the centre of the
top-left pixel. Images whose two distances differ by less than 2 px are
redrawn, so the label is never ambiguous. Example ``i`` has label ``i % 2``
(each split is balanced): its pose is redrawn until the rule gives that
label.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from data_builders import synthetic

CLASS_NAMES = ("triangle", "square")  # the shape nearer the top-left corner
NUM_LANDMARKS = 2
RADIUS_RANGE = (4.0, 10.0)  # circumradius, pixels
GAP = 2.0  # minimum distance between the circumscribed circles, pixels
LABEL_MARGIN = 2.0  # minimum difference of the two corner distances, pixels
MARGIN = 1.0  # pixels between a shape and the image border


def label_of(landmarks: np.ndarray) -> np.ndarray:
  """The label rule on ``(..., 2, 2)`` landmarks (triangle, square centres):
  0 if the triangle's centre is nearer ``(0, 0)`` than the square's, else 1."""
  dist = np.linalg.norm(np.asarray(landmarks, np.float64), axis=-1)
  return (dist[..., 1] < dist[..., 0]).astype(np.int64)


def regular_polygon(centre: np.ndarray, radius: float, sides: int,
                    angle_deg: float) -> np.ndarray:
  """``(sides, 2)`` vertices of a regular polygon (area centroid = ``centre``)."""
  a = np.deg2rad(angle_deg) + 2 * np.pi * np.arange(sides) / sides
  return np.asarray(centre) + radius * np.stack([np.cos(a), np.sin(a)], -1)


def make_example(rng: np.random.Generator, index: int) -> dict:
  """Example ``index``: label ``index % 2``, random sizes, places, rotations."""
  want = index % 2
  size = synthetic.SIZE
  while True:
    radii = rng.uniform(*RADIUS_RANGE, size=2)
    low = radii + MARGIN
    centres = rng.uniform(low[:, None], size - 1 - low[:, None], size=(2, 2))
    angles = rng.uniform(0.0, 360.0, size=2)
    dist = np.linalg.norm(centres, axis=-1)
    if (np.linalg.norm(centres[0] - centres[1]) >= radii.sum() + GAP
        and abs(dist[0] - dist[1]) >= LABEL_MARGIN
        and label_of(centres) == want):
      break
  triangle = regular_polygon(centres[0], radii[0], 3, angles[0])
  square = regular_polygon(centres[1], radii[1], 4, angles[1])
  return {
      "image": synthetic.render_polygons([triangle, square]),
      "landmarks": centres.astype(np.float32),
      "shape_size": radii.astype(np.float32),
      "label": want,
  }


class Shapes(synthetic.SyntheticBuilder):
  """Shapes (Honari et al. 2018, sec. 4.1): 2 classes, 2 landmarks."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = synthetic.standard_configs()

  def _info(self) -> tfds.core.DatasetInfo:
    features = synthetic.common_features(NUM_LANDMARKS, CLASS_NAMES)
    features["shape_size"] = tfds.features.Tensor(shape=(2,), dtype=np.float32)
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict(features),
        disable_shuffling=True,
    )

  def make_example(self, rng: np.random.Generator, index: int) -> dict:
    return make_example(rng, index)
