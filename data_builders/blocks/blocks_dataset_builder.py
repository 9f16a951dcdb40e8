"""Blocks: 15 figures of five squares in a chain with a triangle head.

Each 60x60 grey image shows one figure, white on black, at a random scale,
position and rotation (uniform in [0, 360) degrees); the class is the
figure. The 5 landmarks are the square centres, ordered from the head (the
square next to the triangle) to the tail.

Figure design. The squares sit on the cells of a grid (pitch ``p`` pixels,
side ``0.8 p``, so neighbours are separated by a ``0.2 p`` gap). A figure is
a chain walked from the head: the first step goes from cell 0 to cell 1;
each following step goes straight on (``S``) or turns left (``L``) or right
(``R``); the triangle (base ``0.8 p``, height ``0.8 p``) sits in the cell
before the head, in line with the first step, pointing away from the chain.
Only chains in which no two squares touch except consecutive ones are used
(otherwise a figure would read as a blob whose order is ambiguous), which
leaves 17 turn words; the 15 kept maximise the smallest full Procrustes
distance (rotation and scale removed) between the ordered landmark
configurations of two classes: dropping ``SSS`` (the straight bar) and
``LRL`` gives 0.32 (the test checks > 0.3). No two classes are the same
figure under a rotation; mirror images (``SSL``/``SSR``...) are different
figures under rotation and are kept as different classes. Scale: pitch
uniform in [6, 9] px; the figure lies fully inside the image, at least 1 px
from the border.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from data_builders import synthetic

# Turn words of the 15 classes (see the module docstring); class i is FIGURES[i].
FIGURES = ("SSL", "SSR", "SLS", "SLR", "SRS", "SRL", "LSS", "LSL", "LSR",
           "LRS", "RSS", "RSL", "RSR", "RLS", "RLR")
NUM_LANDMARKS = 5
SQUARE_SIDE = 0.8  # in grid pitches
TRIANGLE_HEIGHT = 0.8
PITCH_RANGE = (6.0, 9.0)  # pixels
MARGIN = 1.0  # pixels between the figure and the image border


def chain_cells(turns: str) -> np.ndarray:
  """``(5, 2)`` grid cells ``(x, y)`` of a chain, head first, from its turn word.

  The chain starts at ``(0, 0)`` heading ``+x``; ``L`` turns towards ``-y``
  (left on screen, where ``y`` points down), ``R`` towards ``+y``.
  """
  cells = [np.array([0, 0]), np.array([1, 0])]
  heading = np.array([1, 0])
  for t in turns:
    if t == "L":
      heading = np.array([heading[1], -heading[0]])
    elif t == "R":
      heading = np.array([-heading[1], heading[0]])
    elif t != "S":
      raise ValueError(f"turn word {turns!r}: letters must be S, L or R")
    cells.append(cells[-1] + heading)
  return np.stack(cells).astype(np.float64)


def figure(label: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The figure of class ``label`` in grid units, centred on its squares.

  Returns:
    ``squares`` ``(5, 4, 2)`` corner polygons, ``triangle`` ``(3, 2)``, and
    ``centres`` ``(5, 2)`` square centres (head to tail), all ``(x, y)``.
  """
  cells = chain_cells(FIGURES[label])
  cells = cells - cells.mean(axis=0)
  h = SQUARE_SIDE / 2
  corners = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
  squares = cells[:, None, :] + corners[None]
  back = cells[0] - cells[1]  # unit vector from the chain towards the head
  side = np.array([-back[1], back[0]])
  base = cells[0] + back * (0.5 + (1 - SQUARE_SIDE) / 2)
  triangle = np.stack([base + side * h, base - side * h,
                       base + back * TRIANGLE_HEIGHT])
  return squares, triangle, cells


def place(points: np.ndarray, pitch: float, angle_deg: float,
          shift: np.ndarray) -> np.ndarray:
  """Scales ``(..., 2)`` grid points by ``pitch``, rotates them by
  ``angle_deg`` about the origin and shifts them by ``shift`` (pixels)."""
  rot = synthetic.rotation_matrix(angle_deg)
  return pitch * points @ rot.T + shift


def make_example(rng: np.random.Generator, index: int) -> dict:
  """Example ``index``: class ``index % 15`` (balanced splits), random pose."""
  label = index % len(FIGURES)
  squares, triangle, centres = figure(label)
  pitch = rng.uniform(*PITCH_RANGE)
  angle = rng.uniform(0.0, 360.0)
  zero = np.zeros(2)
  outline = place(np.concatenate([squares.reshape(-1, 2), triangle]), pitch,
                  angle, zero)
  shift = synthetic.uniform_shift_inside(rng, outline, MARGIN)
  squares_px = place(squares, pitch, angle, shift)
  triangle_px = place(triangle, pitch, angle, shift)
  image = synthetic.render_polygons(list(squares_px) + [triangle_px])
  return {
      "image": image,
      "landmarks": place(centres, pitch, angle, shift).astype(np.float32),
      "label": label,
  }


class Blocks(synthetic.SyntheticBuilder):
  """Blocks (Honari et al. 2018, sec. 4.2): 15 classes, 5 landmarks."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = synthetic.standard_configs()

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict(
            synthetic.common_features(NUM_LANDMARKS, FIGURES)),
        disable_shuffling=True,
    )

  def make_example(self, rng: np.random.Generator, index: int) -> dict:
    return make_example(rng, index)
