"""What every real landmark dataset stores, and the builder they share.

HGR1, Multi-PIE and 300W store the same features, written TF-free as ``array_record`` and read with
``tfds.data_source``:

| feature | type | meaning |
| --- | --- | --- |
| ``image`` | ``Tensor((S, S, 1), uint8)`` | grey square crop around the landmarks |
| ``landmarks`` | ``Tensor((K, 2), float32)`` | ``(x, y)``, 0-based pixels of ``image`` |
| ``visible`` | ``Tensor((K,), float32)`` | 1 = annotated, 0 = absent (coordinates then 0) |
| ``normalizer`` | ``Tensor((), float32)`` | the paper's error normaliser in pixels of ``image`` |
| class features | ``ClassLabel`` | per dataset |
| ``crop`` | ``Tensor((2, 3), float32)`` | affine: 0-based original pixels -> ``image`` pixels |
| ``id`` | ``Text`` | the source file, relative to the manual folder, no extension (read back as ``bytes``) |

A builder may also store ``landmark_names`` (one string per landmark) in the
dataset's metadata (``builder.info.metadata``; HGR1 does).

``LandmarkCropConfig`` holds the two crop settings (side ``S`` and the
enlargement of the landmarks' box), ``ManualLandmarkBuilder`` the manual-dir
plumbing, and ``make_example`` turns one annotated image into a record.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from data_builders import crop as crop_lib
from data_builders import manual_data


@dataclasses.dataclass(eq=False)
class LandmarkCropConfig(tfds.core.BuilderConfig):
  """Crop settings of a real landmark dataset.

  Attributes:
    image_size: side ``S`` of the stored square grey image, in pixels.
    enlarge: side of the crop square divided by the longer side of the
      visible landmarks' bounding box (``data_builders.crop.square_box``).
  """
  image_size: int = 64
  enlarge: float = 1.3


def landmark_features(image_size: int, num_landmarks: int,
                      class_labels: Mapping[str, tfds.features.ClassLabel]
                      ) -> tfds.features.FeaturesDict:
  """The shared feature spec (module docstring) plus ``class_labels``."""
  spec = {
      "image": tfds.features.Tensor(shape=(image_size, image_size, 1),
                                    dtype=np.uint8),
      "landmarks": tfds.features.Tensor(shape=(num_landmarks, 2),
                                        dtype=np.float32),
      "visible": tfds.features.Tensor(shape=(num_landmarks,),
                                      dtype=np.float32),
      "normalizer": tfds.features.Tensor(shape=(), dtype=np.float32),
      "crop": tfds.features.Tensor(shape=(2, 3), dtype=np.float32),
      "id": tfds.features.Text(),
  }
  spec.update(class_labels)
  return tfds.features.FeaturesDict(spec)


def point_distance(landmarks: np.ndarray, i: int, j: int) -> float:
  """Distance between 0-based landmarks ``i`` and ``j`` of ``(K, 2)`` points."""
  return float(np.linalg.norm(landmarks[i] - landmarks[j]))


def eye_centre_distance(landmarks: np.ndarray) -> float:
  """Distance between the eye centres of the 68-point (iBUG) markup.

  Each centre is the midpoint of the eye's two corners: 0-based points 36 and
  39 (one eye), 42 and 45 (the other); the paper's and RCN's normaliser.
  """
  pts = np.asarray(landmarks, np.float64)
  first = (pts[36] + pts[39]) / 2.0
  second = (pts[42] + pts[45]) / 2.0
  return float(np.linalg.norm(first - second))


def eyelid_mean_distance(landmarks: np.ndarray) -> float:
  """Distance between the eye centres of the 68-point markup, each centre the
  mean of the eye's six contour points (0-based 36-41 and 42-47: corners and
  eyelids); ``landmark_ssl.evaluation``'s ``'inter_pupil'`` reading."""
  pts = np.asarray(landmarks, np.float64)
  return float(np.linalg.norm(pts[36:42].mean(0) - pts[42:48].mean(0)))


def load_grey(path: epath.Path) -> np.ndarray:
  """Reads an image file as ``(H, W)`` uint8 grey (PIL's ITU-R 601 luma)."""
  try:
    with path.open("rb") as f:
      img = Image.open(f)
      img.load()
  except (OSError, ValueError) as e:
    raise manual_data.ManualDataError(
        f"{path}: cannot read the image ({e}). Re-extract it from the "
        "original archive.") from None
  return np.asarray(img.convert("L"), np.uint8)


def image_size(path: epath.Path) -> tuple[int, int]:
  """``(width, height)`` of an image file, from its header."""
  try:
    with path.open("rb") as f, Image.open(f) as img:
      return img.size
  except (OSError, ValueError) as e:
    raise manual_data.ManualDataError(
        f"{path}: cannot read the image ({e}). Re-extract it from the "
        "original archive.") from None


def make_example(image_path: epath.Path, landmarks: np.ndarray,
                 visible: np.ndarray, config: LandmarkCropConfig,
                 normalizer: Callable[[np.ndarray], float], example_id: str,
                 labels: Mapping[str, str | int] | None = None) -> dict:
  """One record: grey image cropped around its visible landmarks.

  Args:
    image_path: the original image.
    landmarks: ``(K, 2)`` 0-based pixels of the original image (the caller
      converts 1-based files).
    visible: ``(K,)`` 1 = annotated, 0 = absent.
    config: crop settings.
    normalizer: maps the stored ``(K, 2)`` landmarks to the error normaliser
      (so it is in stored pixels).
    example_id: the ``id`` feature.
    labels: class features, e.g. ``{"gesture": "A"}``.

  Returns:
    The feature dict of ``landmark_features``; absent landmarks are stored as
    ``(0, 0)``.
  """
  grey = load_grey(image_path)
  result = crop_lib.crop_around_landmarks(
      grey, landmarks, visible, config.image_size, config.enlarge)
  vis = np.asarray(visible, np.float32)
  stored = np.where(vis[:, None] > 0, result.landmarks, 0.0).astype(np.float32)
  norm = normalizer(stored)
  if not norm > 0:
    raise manual_data.ManualDataError(
        f"{image_path}: the error normaliser of its landmarks is {norm} "
        "(its reference landmarks coincide); fix or remove its annotation.")
  example = {
      "image": result.image[..., None],
      "landmarks": stored,
      "visible": vis,
      "normalizer": np.float32(norm),
      "crop": result.affine,
      "id": example_id,
  }
  example.update(labels or {})
  return example


class ManualLandmarkBuilder(tfds.core.GeneratorBasedBuilder,
                            skip_registration=True):
  """Shared plumbing of the manually downloaded landmark datasets.

  Subclasses set ``NUM_LANDMARKS``, ``LAYOUT`` (the expected folder tree,
  shown in errors), ``REQUIRED_PATHS`` (relative to the manual folder),
  ``MANUAL_DOWNLOAD_INSTRUCTIONS``, ``BUILDER_CONFIGS`` (of
  ``LandmarkCropConfig`` or a subclass) and ``_class_labels``. Records are
  written as ``array_record`` unless another ``file_format`` is given.
  """

  NUM_LANDMARKS: int = 0
  LAYOUT: str = ""
  REQUIRED_PATHS: tuple[str, ...] = ()
  HOMEPAGE: str = ""
  CITATION: str = ""

  def __init__(self, *, file_format: str | None = "array_record", **kwargs):
    super().__init__(file_format=file_format, **kwargs)

  def _class_labels(self) -> dict[str, tfds.features.ClassLabel]:
    return {}

  def _metadata(self) -> tfds.core.MetadataDict | None:
    """Dataset metadata filled at build time (e.g. ``landmark_names``)."""
    return None

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__,
        features=landmark_features(config.image_size, self.NUM_LANDMARKS,
                                   self._class_labels()),
        homepage=self.HOMEPAGE,
        citation=self.CITATION,
        metadata=self._metadata(),
    )

  def _manual_root(self, dl_manager) -> epath.Path:
    """The manual folder, checked for the required layout."""
    root = manual_data.manual_root(dl_manager, self.name, self.LAYOUT,
                                   self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    manual_data.require_paths(root, self.REQUIRED_PATHS, self.name,
                              self.LAYOUT, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    return root
