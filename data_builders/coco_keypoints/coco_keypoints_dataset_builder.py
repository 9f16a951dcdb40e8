r"""Your own landmark data, in COCO keypoints format: a TFDS builder whose
configs are named and made at build time.

  python -m landmark_ssl.build_data --dataset=coco_keypoints --name=mydata \
      --manual_dir=<images> --annotations=<file.json> [--classes=<file.csv>]

What is read, how bad records are reported, how examples, class features
and splits are made: ``coco_annotations``. Each example is a grey
``S x S`` square (``image_size``, default 64) around its box (the
annotation's ``bbox``, else its labelled keypoints), the box's longer side
enlarged ``enlarge`` times (default 1.2): the square ``predict --box`` uses
for the same box.

**Names: several datasets of your own side by side.** A build is a TFDS
builder config named ``--name`` (lower-case letters, digits, ``_``; not the
name of a built-in dataset), made from the files when the build starts: its
number of landmarks, landmark names and class features come from them. It
is written under ``<data_dir>/coco_keypoints/<name>/<version>/`` and stores
its settings in the dataset's metadata (``build_config``), from which
:func:`stored_config` makes the same config again when a run opens the
dataset: ``config.data.name=<name>`` (or ``coco_keypoints/<name>``) is all
a run needs (``landmark_ssl.build_data.make_builder``). Building a name
that exists is refused unless ``--overwrite`` (the new build is written
aside and replaces the old one only once it is complete).

**The labelled subset is the data's.** Besides the shared features
(``landmark_dataset``), every example stores ``has_landmarks`` (bool: at
least one keypoint labelled), ``image_id`` and ``annotation_id`` (the COCO
ids, ``-1`` for an image without annotation). ``input_pipeline`` honours
``has_landmarks``: only flagged train examples can be in a run's labelled
subset, and ``config.data.labeled_fraction`` is then the fraction *of
them* that keeps its labels (1.0, the default of ``experiments/custom.py``:
all of them); the others train as unlabelled images (ELT, class costs).

**The error normaliser** (``normalizer``): ``'bbox'`` (default), the
diagonal of the example's box; or two keypoint names ``'a,b'``, their
distance (an annotation lacking either is left out). In stored pixels.
Unlabelled examples, never evaluated, store their box's diagonal.

**Metadata** (``builder.info.metadata``): ``landmark_names``,
``build_config``, ``coco_categories`` (the keypoint category records, for
``predict --format=coco``), ``coco_images`` (``{file_name: {"id", "width",
"height"}}`` of the images built), ``labeled_examples`` (per split) and
``skipped`` (records left out, per reason).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import tempfile
from typing import Mapping

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from data_builders import crop as crop_lib
from data_builders import landmark_dataset
from data_builders import manual_data
from data_builders.coco_keypoints import coco_annotations

BUILDER_NAME = "coco_keypoints"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
DEFAULT_IMAGE_SIZE = 64
DEFAULT_ENLARGE = 1.2
METADATA_FILE = "metadata.json"  # where TFDS keeps builder.info.metadata
# The config fields kept in the metadata to make the config again.
STORED_FIELDS = ("image_size", "enlarge", "annotations", "classes",
                 "normalizer", "validation_fraction", "test_fraction",
                 "split_seed", "num_landmarks", "landmark_names",
                 "class_features")


class _CustomConfigFilter(logging.Filter):
  """Drops TFDS's warning that a config is not one of ``BUILDER_CONFIGS``:
  every config of this builder is made at build time (module docstring),
  and the warning would repeat at every opening of the dataset."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.getMessage()).startswith(
        "Using custom data configuration: CocoKeypointsConfig")


logging.getLogger("absl").addFilter(_CustomConfigFilter())


@dataclasses.dataclass(eq=False)
class CocoKeypointsConfig(landmark_dataset.LandmarkCropConfig):
  """One dataset of your own (``name`` = ``--name``).

  Attributes:
    annotations: the COCO keypoints JSON file.
    classes: the class table CSV, or ``''``.
    normalizer: ``'bbox'`` or ``'<keypoint>,<keypoint>'``.
    validation_fraction, test_fraction: the seeded split's shares of the
      images with labelled keypoints (unused when the data gives splits).
    split_seed: seed of that split.
    num_landmarks, landmark_names, class_features: read from the files by
      :func:`make_config`.
  """
  annotations: str = ""
  classes: str = ""
  normalizer: str = coco_annotations.BBOX_NORMALIZER
  validation_fraction: float = 0.1
  test_fraction: float = 0.1
  split_seed: int = 0
  num_landmarks: int = 0
  landmark_names: tuple = ()
  class_features: tuple = ()


def check_name(name: str, reserved: tuple = ()) -> None:
  """Raises ``ValueError`` unless ``name`` can name a dataset of your own."""
  if not NAME_PATTERN.match(str(name or "")):
    raise ValueError(
        f"--name={name!r}: a dataset name is 1 to 64 lower-case letters, "
        "digits and _, starting with a letter (e.g. --name=my_hands).")
  if name in tuple(reserved) + (BUILDER_NAME,):
    raise ValueError(f"--name={name!r} is the name of a built-in dataset; "
                     "choose another name.")


def make_config(name: str, annotations: str, classes: str | None = None, *,
                image_size: int = DEFAULT_IMAGE_SIZE,
                enlarge: float = DEFAULT_ENLARGE,
                normalizer: str = coco_annotations.BBOX_NORMALIZER,
                validation_fraction: float = 0.1, test_fraction: float = 0.1,
                split_seed: int = 0, reserved: tuple = ()
                ) -> CocoKeypointsConfig:
  """The config of a new build, its shapes read from the files.

  Raises:
    ValueError: a bad name or setting (the message names the flag).
    ManualDataError: the COCO file or class table cannot be used as a
      whole (``coco_annotations``).
  """
  check_name(name, reserved)
  if int(image_size) < 8:
    raise ValueError(f"--image_size={image_size}: give at least 8 pixels.")
  if not float(enlarge) > 0:
    raise ValueError(f"--enlarge={enlarge}: give a positive factor (1 = the "
                     "box itself, 1.2 = 10% margin on each side).")
  for flag, value in (("validation_fraction", validation_fraction),
                      ("test_fraction", test_fraction)):
    if not 0.0 < float(value) < 1.0:
      raise ValueError(f"--{flag}={value}: give a fraction in (0, 1) of the "
                       "labelled images.")
  if float(validation_fraction) + float(test_fraction) >= 1.0:
    raise ValueError("--validation_fraction plus --test_fraction must be "
                     "below 1: training needs labelled images too.")
  annotations = os.path.abspath(os.path.expanduser(annotations))
  classes = (os.path.abspath(os.path.expanduser(classes)) if classes else "")
  coco = coco_annotations.read_json(annotations)
  schema = coco_annotations.keypoint_schema(coco, annotations)
  table = coco_annotations.read_class_table(classes) if classes else None
  coco_annotations.normalizer_pair(normalizer, schema)  # checks the names
  return CocoKeypointsConfig(
      name=name, image_size=int(image_size), enlarge=float(enlarge),
      description=f"Keypoints of {os.path.basename(annotations)}"
                  + (f", classes of {os.path.basename(classes)}" if classes
                     else "") + ".",
      annotations=annotations, classes=classes, normalizer=str(normalizer),
      validation_fraction=float(validation_fraction),
      test_fraction=float(test_fraction), split_seed=int(split_seed),
      num_landmarks=schema.num_landmarks,
      landmark_names=tuple(schema.landmark_names),
      class_features=coco_annotations.class_feature_names(schema, table))


def _data_dir(data_dir: str | None) -> epath.Path:
  return epath.Path(os.path.expanduser(data_dir or tfds.core.constants.DATA_DIR))


def dataset_dir(data_dir: str | None, name: str) -> epath.Path:
  """``<data_dir>/coco_keypoints/<name>/<version>``."""
  return _data_dir(data_dir) / BUILDER_NAME / name / str(CocoKeypoints.VERSION)


def built_names(data_dir: str | None) -> list[str]:
  """The names of the datasets of your own built in ``data_dir``, sorted."""
  root = _data_dir(data_dir) / BUILDER_NAME
  if not root.exists():
    return []
  return sorted(p.name for p in root.iterdir()
                if (p / str(CocoKeypoints.VERSION) / METADATA_FILE).exists())


def stored_config(data_dir: str | None, name: str
                  ) -> CocoKeypointsConfig | None:
  """The config of the built dataset ``name`` (from its metadata), or None
  when ``data_dir`` holds no such build."""
  import json  # pylint: disable=g-import-not-at-top
  path = dataset_dir(data_dir, name) / METADATA_FILE
  if not path.exists():
    return None
  stored = json.loads(path.read_text()).get("build_config")
  if not isinstance(stored, Mapping):
    return None
  fields = {k: stored[k] for k in STORED_FIELDS if k in stored}
  for k in ("landmark_names", "class_features"):
    fields[k] = tuple(fields.get(k, ()))
  return CocoKeypointsConfig(name=name, **fields)


def image_size(path: str) -> tuple[int, int]:
  """``(width, height)`` of an image file, decoding it completely (so an
  unreadable file is found before anything is written)."""
  with Image.open(path) as img:
    img.load()
    return img.size


def example_affine(example: coco_annotations.Example, out_size: int,
                   enlarge: float) -> np.ndarray:
  """``(2, 3)`` affine: original pixels -> stored pixels. Around the box as
  ``predict --box`` crops; without a box, the whole image centred on a
  square of side ``max(width, height)`` (``predict`` without a box)."""
  if example.box is None:
    w, h = example.size
    center, side = np.array([(w - 1) / 2.0, (h - 1) / 2.0]), float(max(w, h))
  else:
    x0, y0, x1, y1 = example.box
    center, side = crop_lib.square_box(np.array([[x0, y0], [x1, y1]]), None,
                                       enlarge)
  return crop_lib.crop_affine(center, side, out_size)


def make_example(example: coco_annotations.Example,
                 config: CocoKeypointsConfig,
                 pair: tuple[int, int] | None) -> dict:
  """The record of one example (features: module docstring)."""
  grey = landmark_dataset.load_grey(epath.Path(example.path))
  affine = example_affine(example, config.image_size, config.enlarge)
  image = crop_lib.warp_image(grey, affine, config.image_size)
  vis = np.asarray(example.visible, np.float32)
  points = crop_lib.apply_affine(example.landmarks, affine)
  stored = np.where(vis[:, None] > 0, points, 0.0).astype(np.float32)
  scale = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))
  record = {
      "image": image[..., None],
      "landmarks": stored,
      "visible": vis,
      "normalizer": np.float32(example.normalizer * scale),
      "crop": affine.astype(np.float32),
      "id": example.file_name,
      "has_landmarks": example.has_landmarks,
      "image_id": np.int64(example.image_id),
      "annotation_id": np.int64(example.annotation_id),
  }
  record.update(example.labels)
  return record


class CocoKeypoints(landmark_dataset.ManualLandmarkBuilder):
  """Landmarks of your own in COCO keypoints format (module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = []  # one per --name, made at build time
  LAYOUT = """\
  <manual_dir>/<file_name of each image record>   (the images)
  the COCO keypoints JSON file: --annotations (anywhere)
  the class table CSV, if any: --classes (anywhere)"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Export your annotations as COCO keypoints JSON (CVAT, Label Studio and
  mmpose write it) and pass the folder the images' file_name fields are
  relative to as --manual_dir."""

  def _class_labels(self):
    # Names come from the data at build time (_split_generators).
    return {f: tfds.features.ClassLabel()
            for f in self.builder_config.class_features}

  def _metadata(self):
    return tfds.core.MetadataDict()  # filled at build time

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    if config is None or not config.num_landmarks:
      raise ValueError(
          "coco_keypoints needs the name of a dataset of your own: build one "
          "with python -m landmark_ssl.build_data --dataset=coco_keypoints "
          "--name=<name> ..., then open it by that name.")
    extra = {
        "has_landmarks": tfds.features.Tensor(shape=(), dtype=np.bool_),
        "image_id": tfds.features.Scalar(dtype=np.int64),
        "annotation_id": tfds.features.Scalar(dtype=np.int64),
    }
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__ + "\n" + (config.description or ""),
        features=landmark_dataset.landmark_features(
            config.image_size, config.num_landmarks,
            {**self._class_labels(), **extra}),
        metadata=self._metadata(),
    )

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    config = self.builder_config
    coco = coco_annotations.read_json(config.annotations)
    schema = coco_annotations.keypoint_schema(coco, config.annotations)
    if tuple(schema.landmark_names) != tuple(config.landmark_names):
      raise manual_data.ManualDataError(
          f"{config.annotations} changed while building (its keypoints are "
          f"now {list(schema.landmark_names)}); run the build again.")
    table = (coco_annotations.read_class_table(config.classes)
             if config.classes else None)
    pair = coco_annotations.normalizer_pair(config.normalizer, schema)
    skips = manual_data.SkipLog(config.name)
    examples = coco_annotations.collect_examples(
        coco, config.annotations, schema, table, root, image_size, pair,
        skips)
    splits = coco_annotations.assign_splits(
        examples, config.validation_fraction, config.test_fraction,
        config.split_seed, skips, config.annotations)
    skips.summarize()
    given = any(ex.split is not None for ex in examples)
    manual_data.check_splits(config.name, splits, {
        s: ("the images whose split is " + repr(s)) if given else
        f"{getattr(config, s + '_fraction'):g} of the labelled images"
        for s in ("validation", "test")})
    if not any(ex.has_landmarks for ex in splits["train"]):
      raise manual_data.ManualDataError(
          f"{config.name}: no training image has labelled keypoints "
          f"({len(splits['train'])} unlabelled). Label a few, or move some "
          "labelled images to 'train'.")
    kept = [ex for split in splits.values() for ex in split]
    for feature in config.class_features:
      self.info.features[feature].names = sorted(
          {ex.labels[feature] for ex in kept})
    metadata = self.info.metadata
    metadata["landmark_names"] = list(config.landmark_names)
    metadata["build_config"] = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in ((k, getattr(config, k)) for k in STORED_FIELDS)}
    metadata["coco_categories"] = [dict(r) for r in schema.records]
    metadata["coco_images"] = {
        ex.file_name: {"id": ex.image_id, "width": ex.size[0],
                       "height": ex.size[1]} for ex in kept}
    metadata["labeled_examples"] = {
        s: sum(ex.has_landmarks for ex in items) for s, items in splits.items()}
    metadata["skipped"] = skips.counts
    return {split: self._generate_examples(items, pair)
            for split, items in splits.items()}

  def _generate_examples(self, items, pair):
    for example in items:
      yield example.key, make_example(example, self.builder_config, pair)


def build(config: CocoKeypointsConfig, manual_dir: str,
          data_dir: str | None = None, overwrite: bool = False
          ) -> CocoKeypoints:
  """Builds ``config`` from the images in ``manual_dir``; returns the
  builder.

  Raises:
    ManualDataError: bad input as a whole (nothing is written), or the name
      is built already and ``overwrite`` is false.
  """
  target = dataset_dir(data_dir, config.name)
  download = tfds.download.DownloadConfig(manual_dir=manual_dir)
  if not target.exists():
    made = target.parent if not target.parent.exists() else target
    try:
      builder = CocoKeypoints(config=config, data_dir=data_dir)
      builder.download_and_prepare(download_config=download,
                                   file_format="array_record")
    except BaseException:
      # What this call made of the dataset's folders (the name's, empty
      # version folders) would look like a dataset of this name.
      shutil.rmtree(made, ignore_errors=True)
      raise
    return builder
  if not overwrite:
    raise manual_data.ManualDataError(
        f"{config.name}: a dataset of this name is built already in "
        f"{target}. Pass --overwrite to replace it with a build of these "
        "files, or choose another --name. (Runs trained on the old build "
        "keep label subsets that refer to its examples: train them again.)")
  # Built aside, swapped in once complete: a failed build leaves the old.
  parent = _data_dir(data_dir)
  parent.mkdir(parents=True, exist_ok=True)
  aside = tempfile.mkdtemp(prefix=f".{config.name}-building-", dir=parent)
  try:
    builder = CocoKeypoints(config=config, data_dir=aside)
    builder.download_and_prepare(download_config=download,
                                 file_format="array_record")
    old = f"{target}.old"
    os.replace(target, old)
    os.replace(dataset_dir(aside, config.name), target)
    shutil.rmtree(old)
  finally:
    shutil.rmtree(aside, ignore_errors=True)
  return CocoKeypoints(config=stored_config(data_dir, config.name),
                       data_dir=data_dir)
