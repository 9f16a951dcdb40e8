"""300W (iBUG 300 Faces In-the-Wild), 68 landmarks: a manual-download TFDS builder.

Reads the iBUG release from ``manual_dir`` (layout in ``The300w.LAYOUT``):
each image (``.jpg`` or ``.png``) has a ``.pts`` file of the same stem.

Coordinates: ``.pts`` files count pixels from 1 (menpo and HRNet read them
so); this builder **subtracts 1 at build time**, so stored landmarks follow
the 0-based convention of docs/DESIGN.md (pixel centres at integer coordinates).
The ``crop`` feature maps these 0-based original coordinates to stored ones.

Splits (the paper, after RCN):

| split | images | source folders |
| --- | --- | --- |
| ``train`` | 2834 | 90% of afw (337) + helen/trainset (2000) + lfpw/trainset (811) = 3148 |
| ``validation`` | 314 | the other 10% (``floor(0.1 * 3148)``), fixed seed |
| ``test_common`` | 554 | helen/testset (330) + lfpw/testset (224) |
| ``test_ibug`` | 135 | ibug |
| ``test_full`` | 689 | test_common + test_ibug |

Stored image: grey, 80x80 (RCN's input size), a square around the 68
landmarks enlarged 1.3x (the authors' RCN crop), zero padding outside the
original image. ``normalizer``: distance between the eye centres, each the
midpoint of its two corners (0-based points 36/39 and 42/45), in stored
pixels. Other normalisers (outer corners 36/45, ...) can be computed from
the stored landmarks at evaluation time. ``id``: the source file relative to
the manual folder without extension, e.g. ``lfpw/testset/image_0001`` (stems
repeat across folders). No class labels.

Settings (``The300wConfig``): ``image_size``, ``enlarge``,
``validation_fraction``, ``split_seed``; build a variant with e.g.
``The300w(config=The300wConfig(name="crop96", image_size=96, enlarge=1.5))``.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import landmark_dataset
from data_builders import manual_data

NUM_LANDMARKS = 68
TRAIN_FOLDERS = ("afw", "helen/trainset", "lfpw/trainset")
COMMON_FOLDERS = ("helen/testset", "lfpw/testset")
IBUG_FOLDERS = ("ibug",)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# The paper's split sizes (train 90% / validation 10% of 3148).
EXPECTED_SIZES = {
    "train": 2834,
    "validation": 314,
    "test_common": 554,
    "test_ibug": 135,
    "test_full": 689,
}

_VERSION_LINE = re.compile(r"^version:\s*1(\.0*)?$")
_NPOINTS_LINE = re.compile(r"^n_points:\s*(\d+)$")


def parse_pts(path: epath.Path, num_points: int = NUM_LANDMARKS) -> np.ndarray:
  """Reads an iBUG ``.pts`` file, exactly as written (1-based pixels).

  The format: ``version: 1``, ``n_points:  68``, ``{``, one ``x y`` line
  per point, ``}``; blank lines only after the closing brace.

  Returns:
    ``(num_points, 2)`` float64 ``(x, y)`` as in the file (counting from 1).

  Raises:
    AnnotationFormatError: naming the file, the line and what was expected.
  """
  try:
    lines = path.read_text().splitlines()
  except UnicodeDecodeError as e:
    raise manual_data.format_error(
        path, f"byte {e.start}", "ASCII text", repr(e.object[e.start:e.end])
    ) from None
  stripped = [ln.strip() for ln in lines]
  while stripped and not stripped[-1]:
    stripped.pop()

  def line(i: int) -> str:
    return stripped[i] if i < len(stripped) else "<end of file>"

  if not _VERSION_LINE.match(line(0)):
    raise manual_data.format_error(path, "line 1", "'version: 1'",
                                   repr(line(0)))
  m = _NPOINTS_LINE.match(line(1))
  if not m:
    raise manual_data.format_error(path, "line 2", "'n_points: 68'",
                                   repr(line(1)))
  if int(m.group(1)) != num_points:
    raise manual_data.format_error(path, "line 2",
                                   f"n_points {num_points}", m.group(1))
  if line(2) != "{":
    raise manual_data.format_error(path, "line 3", "'{'", repr(line(2)))
  points = np.empty((num_points, 2), np.float64)
  for k in range(num_points):
    text = line(3 + k)
    fields = text.split()
    try:
      if len(fields) != 2:
        raise ValueError
      points[k] = [float(fields[0]), float(fields[1])]
    except ValueError:
      raise manual_data.format_error(
          path, f"line {4 + k}", f"two numbers 'x y' (point {k + 1} of "
          f"{num_points})", repr(text)) from None
    if not np.isfinite(points[k]).all():
      raise manual_data.format_error(path, f"line {4 + k}",
                                     "finite coordinates", repr(text))
  end = 3 + num_points
  if line(end) != "}":
    raise manual_data.format_error(path, f"line {end + 1}", "'}'",
                                   repr(line(end)))
  if len(stripped) > end + 1:
    raise manual_data.format_error(path, f"line {end + 2}",
                                   "nothing after '}'", repr(line(end + 1)))
  return points


def list_folder(root: epath.Path, folder: str
                ) -> tuple[dict[str, epath.Path], dict[str, epath.Path]]:
  """``.pts`` files and images of one 300W folder, keyed ``folder/stem``.

  Raises:
    ManualDataError: two images share a stem (e.g. ``x.jpg`` and ``x.png``).
  """
  annotations, images = {}, {}
  for p in sorted((root / folder).iterdir()):
    key = f"{folder}/{p.stem}"
    suffix = p.suffix.lower()
    if suffix == ".pts":
      annotations[key] = p
    elif suffix in IMAGE_SUFFIXES:
      if key in images:
        raise manual_data.ManualDataError(
            f"the300w: two images for one annotation: {images[key]} and {p}. "
            "Keep only the one from the original archive.")
      images[key] = p
  return annotations, images


def split_train_validation(keys: list[str], fraction: float, seed: int
                           ) -> tuple[list[str], list[str]]:
  """Holds out ``floor(fraction * len(keys))`` keys as validation.

  A permutation of the sorted keys drawn with ``numpy.random.default_rng(
  seed)``: the same files and seed always give the same split. Returns
  ``(train, validation)``, each sorted.
  """
  keys = sorted(keys)
  n_val = int(np.floor(fraction * len(keys)))
  order = np.random.default_rng(seed).permutation(len(keys))
  val = sorted(keys[i] for i in order[:n_val])
  train = sorted(keys[i] for i in order[n_val:])
  return train, val


@dataclasses.dataclass(eq=False)
class The300wConfig(landmark_dataset.LandmarkCropConfig):
  """300W settings.

  Attributes:
    validation_fraction: share of the 3148 training images held out as
      ``validation`` (the paper: 10%, 314 images).
    split_seed: seed of that hold-out.
  """
  validation_fraction: float = 0.1
  split_seed: int = 0


class The300w(landmark_dataset.ManualLandmarkBuilder):
  """300W faces, 68 landmarks, grey square crops (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      The300wConfig(
          name="default", image_size=80, enlarge=1.3,
          description="80x80 grey, landmark box enlarged 1.3x, 10% of the "
          "training images held out with seed 0."),
  ]
  NUM_LANDMARKS = NUM_LANDMARKS
  HOMEPAGE = "https://ibug.doc.ic.ac.uk/resources/300-W/"
  CITATION = """@article{sagonas2016300,
  title={300 Faces In-The-Wild Challenge: database and results},
  author={Sagonas, Christos and Antonakos, Epameinondas and Tzimiropoulos,
          Georgios and Zafeiriou, Stefanos and Pantic, Maja},
  journal={Image and Vision Computing}, volume={47}, pages={3--18}, year={2016}
}"""
  REQUIRED_PATHS = TRAIN_FOLDERS + COMMON_FOLDERS + IBUG_FOLDERS
  LAYOUT = """\
  <manual_dir>/
    afw/            *.jpg + *.pts   (337 faces)
    helen/trainset/ *.jpg + *.pts   (2000)
    helen/testset/  *.jpg + *.pts   (330)
    lfpw/trainset/  *.png + *.pts   (811)
    lfpw/testset/   *.png + *.pts   (224)
    ibug/           *.jpg + *.pts   (135)
  (each image next to the .pts file of the same stem)"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  300W cannot be downloaded automatically (registration, non-commercial
  licence). Download the AFW, HELEN, LFPW and IBUG archives with the 68-point
  .pts annotations from https://ibug.doc.ic.ac.uk/resources/300-W/ (section
  "Data") and extract them into the manual folder so that it holds afw/,
  helen/trainset/, helen/testset/, lfpw/trainset/, lfpw/testset/ and ibug/.
  """

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    config = self.builder_config
    annotated = {}  # key -> (image path, 0-based (68, 2) landmarks)
    groups = {}
    skips = manual_data.SkipLog(self.name)
    for name, folders in (("train_pool", TRAIN_FOLDERS),
                          ("test_common", COMMON_FOLDERS),
                          ("test_ibug", IBUG_FOLDERS)):
      groups[name] = []
      for folder in folders:
        annotations, images = list_folder(root, folder)
        for key in manual_data.pair_files(annotations, images, self.name,
                                          skips=skips):
          # .pts files are 1-based: convert to the 0-based convention here.
          annotated[key] = (images[key], parse_pts(annotations[key]) - 1.0)
          groups[name].append(key)
    skips.summarize()
    train, validation = split_train_validation(
        groups["train_pool"], config.validation_fraction, config.split_seed)
    splits = {
        "train": train,
        "validation": validation,
        "test_common": sorted(groups["test_common"]),
        "test_ibug": sorted(groups["test_ibug"]),
        "test_full": sorted(groups["test_common"] + groups["test_ibug"]),
    }
    manual_data.check_splits(self.name, splits, {
        "train": "the training folders minus the validation hold-out",
        "validation": f"{config.validation_fraction:g} of the "
                      f"{len(groups['train_pool'])} training images, rounded "
                      "down",
        "test_common": "helen/testset + lfpw/testset",
        "test_ibug": "ibug", "test_full": "common + ibug"})
    for split, keys in splits.items():
      manual_data.check_count(self.name, f"split '{split}'", len(keys),
                              EXPECTED_SIZES[split])
    return {split: self._generate_examples([(k, *annotated[k]) for k in keys])
            for split, keys in splits.items()}

  def _generate_examples(self, items):
    visible = np.ones((NUM_LANDMARKS,), np.float32)
    for key, image_path, landmarks in items:
      yield key, landmark_dataset.make_example(
          image_path, landmarks, visible, self.builder_config,
          landmark_dataset.eye_centre_distance, key)
