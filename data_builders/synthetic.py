"""What the synthetic builders (Shapes, Blocks) share.

* ``render_polygons``: anti-aliased white-on-black rendering of convex
  polygons given in the pixel convention of docs/DESIGN.md (0-based ``(x, y)``,
  pixel ``[i, j]`` is the point ``x = j, y = i`` and covers the unit square
  around it). PIL draws at ``SUPERSAMPLE`` times the resolution and the
  result is box-averaged down, so the intensity centroid of a rendered
  polygon is its area centroid to within a few hundredths of a pixel.
* ``SyntheticConfig``: the builder config knobs (split size, seed). The
  ``default`` config is the paper's size (3200 images per split); ``small``
  (150 per split) is for tests and smoke runs (``--dataset=blocks/small``).
* ``SyntheticBuilder``: the TFDS ``GeneratorBasedBuilder`` both datasets
  derive from. It writes ``array_record`` (readable with
  ``tfds.data_source``; TensorFlow is never needed), keeps examples in
  generation order, and draws example ``i`` of split ``s`` from its own
  random generator seeded with ``(config.seed, s, i)``: a build is
  deterministic, and the ``small`` config's examples are the first examples
  of the ``default`` config's.

Every example has the features of the project's table (docs/DESIGN.md):
``image`` ``(60, 60, 1) uint8``, ``landmarks`` ``(K, 2) float32``,
``visible`` ``(K,)`` ones, ``normalizer`` 1, ``label`` (``ClassLabel``),
``crop`` the identity ``(2, 3)`` (the stored image is the original), and
``id`` the text ``"<split>_<index>"`` (``tfds.features.Text`` encodes without
TensorFlow; reads come back as ``bytes``).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw
import tensorflow_datasets as tfds

SIZE = 60  # images are SIZE x SIZE, grey
SUPERSAMPLE = 8  # PIL draws at SUPERSAMPLE x the resolution, then box-averages
SPLITS = ("train", "validation", "test")
_SPLIT_CODE = {name: code for code, name in enumerate(SPLITS)}


def render_polygons(polygons: Sequence[np.ndarray], size: int = SIZE,
                    supersample: int = SUPERSAMPLE) -> np.ndarray:
  """Renders filled white polygons on black, anti-aliased.

  Args:
    polygons: each ``(V, 2)`` vertices ``(x, y)`` in pixels of the output,
      pixel centres at integer coordinates.
    size: output height and width.
    supersample: drawing resolution factor.

  Returns:
    ``(size, size, 1) uint8``: 255 times the covered fraction of each pixel.
  """
  s = int(supersample)
  canvas = Image.new("L", (size * s, size * s), 0)
  draw = ImageDraw.Draw(canvas)
  for poly in polygons:
    # PIL's coordinate x = J is the left edge of canvas pixel J, while our
    # pixel j covers [j - 0.5, j + 0.5]: x_canvas = (x + 0.5) * s.
    pts = (np.asarray(poly, np.float64) + 0.5) * s
    draw.polygon([tuple(p) for p in pts], fill=255)
  hi = np.asarray(canvas, np.float32).reshape(size, s, size, s)
  return np.round(hi.mean(axis=(1, 3)))[..., None].astype(np.uint8)


def rotation_matrix(angle_deg: float) -> np.ndarray:
  """``(2, 2)`` rotation; a positive angle turns ``+x`` towards ``+y``
  (clockwise on screen), as in ``landmark_ssl.geometry``."""
  a = np.deg2rad(angle_deg)
  return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def uniform_shift_inside(rng: np.random.Generator, points: np.ndarray,
                         margin: float, size: int = SIZE) -> np.ndarray:
  """A shift ``(dx, dy)`` drawn uniformly among those that keep every point
  of ``points`` ``(..., 2)`` inside ``[margin, size - 1 - margin]``."""
  flat = np.asarray(points).reshape(-1, 2)
  low = margin - flat.min(axis=0)
  high = size - 1 - margin - flat.max(axis=0)
  if np.any(high < low):
    raise ValueError(
        f"A figure of extent {np.ptp(flat, axis=0)} px does not fit a {size}px "
        f"image with margin {margin}; lower the scale range of the builder.")
  return rng.uniform(low, high)


@dataclasses.dataclass
class SyntheticConfig(tfds.core.BuilderConfig):
  """Knobs of a synthetic dataset build.

  Attributes:
    examples_per_split: number of images in each of train/validation/test.
    seed: root seed; example ``i`` of split ``s`` uses
      ``np.random.default_rng((seed, s, i))``.
  """
  examples_per_split: int = 3200
  seed: int = 0


def standard_configs() -> list[SyntheticConfig]:
  """``default`` (the paper's 3200 per split) and ``small`` (150 per split)."""
  return [
      SyntheticConfig(name="default", examples_per_split=3200, seed=0,
                      description="The paper's size: 3200 images per split."),
      SyntheticConfig(name="small", examples_per_split=150, seed=0,
                      description="150 images per split, for tests and smoke "
                      "runs; its examples are the first ones of `default`."),
  ]


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
  """The random generator of example ``index`` of ``split``."""
  return np.random.default_rng((int(seed), _SPLIT_CODE[split], int(index)))


def common_features(num_landmarks: int, class_names: Sequence[str]) -> dict:
  """The feature spec every synthetic dataset shares."""
  k = int(num_landmarks)
  return {
      "image": tfds.features.Tensor(shape=(SIZE, SIZE, 1), dtype=np.uint8),
      "landmarks": tfds.features.Tensor(shape=(k, 2), dtype=np.float32),
      "visible": tfds.features.Tensor(shape=(k,), dtype=np.float32),
      "normalizer": tfds.features.Tensor(shape=(), dtype=np.float32),
      "label": tfds.features.ClassLabel(names=list(class_names)),
      "crop": tfds.features.Tensor(shape=(2, 3), dtype=np.float32),
      "id": tfds.features.Text(),
  }


class SyntheticBuilder(tfds.core.GeneratorBasedBuilder,
                       skip_registration=True):
  """Base of the synthetic builders: array_record, fixed splits, seeded.

  Subclasses define ``VERSION``, ``BUILDER_CONFIGS``, ``_info`` and
  ``make_example(rng, index)``, which returns the dataset-specific features
  (at least ``image``, ``landmarks``, ``label``).
  """

  def __init__(self, *, file_format: Any = None, **kwargs: Any):
    super().__init__(file_format=file_format or "array_record", **kwargs)

  @abc.abstractmethod
  def make_example(self, rng: np.random.Generator, index: int) -> dict:
    """Draws example ``index`` from ``rng``."""

  def _split_generators(self, dl_manager: Any) -> dict:
    del dl_manager  # nothing to download
    return {split: self._generate_examples(split) for split in SPLITS}

  def _generate_examples(self, split: str) -> Iterator[tuple[int, dict]]:
    cfg = self.builder_config
    for index in range(cfg.examples_per_split):
      example = self.make_example(example_rng(cfg.seed, split, index), index)
      k = example["landmarks"].shape[0]
      example.setdefault("visible", np.ones((k,), np.float32))
      example.setdefault("normalizer", np.float32(1.0))
      example.setdefault("crop", np.eye(2, 3, dtype=np.float32))
      example["id"] = f"{split}_{index:05d}"
      yield index, example
