"""HGR1 (Polish hand gestures, Kawulok et al.), 25 landmarks: a manual-download TFDS builder.

898 colour images of 12 subjects showing 27 gestures, each with an XML file
of hand feature points (layout in ``Hgr1.LAYOUT``). Stored: a grey 64x64
square around the visible landmarks enlarged 1.5x (the paper's input is
64x64 grey; it does not say how it framed the hand: 1.5x keeps the palm
sides and finger roots, which the landmarks do not reach, in view), zero
padding outside the photo.

Features (``landmark_dataset``): ``visible`` marks the annotated landmarks
(17 to 25 per image; absent ones are stored as ``(0, 0)``); ``gesture`` is a
``ClassLabel`` whose names are the gesture prefixes of the file names
(``<gesture>_P_hgr1_id<NN>_<k>.jpg``), sorted; ``normalizer`` is the wrist
width, the distance between landmarks #1 and #25 (0-based 0 and 24), in
stored pixels; ``id`` is the file stem.

Splits by subject (``id<NN>``): ``train`` 1-8 (573 images), ``validation``
11-12 (163), ``test`` 9-10 (162).

**The feature-point XML schema is not published.** ``parse_feature_points``
holds the best-informed guess, and fails loudly (file + what was expected)
on anything else; see its docstring for the evidence and the assumptions.
Coordinates are taken as 0-based pixels (setting ``coordinate_base``).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import landmark_dataset
from data_builders import manual_data

NUM_LANDMARKS = 25
WRIST = (0, 24)  # 0-based landmarks #1 and #25: the wrist width
IMAGE_DIR = "hgr1_images/original_images"
XML_DIR = "hgr1_feature_pts/feature_points"
SPLIT_SUBJECTS = {
    "train": tuple(range(1, 9)),
    "validation": (11, 12),
    "test": (9, 10),
}
EXPECTED_SIZES = {"train": 573, "validation": 163, "test": 162}
EXPECTED_GESTURES = 27
# Attributes that may carry a point's 1-based landmark number (a guess; see
# parse_feature_points).
INDEX_ATTRIBUTES = ("number", "id", "index", "nr")

_STEM = re.compile(r"^(?P<gesture>[0-9A-Za-z]+)_P_hgr1_id(?P<subject>\d+)_"
                   r"(?P<take>\d+)$")


def parse_stem(stem: str) -> tuple[str, int] | None:
  """``(gesture, subject id)`` of ``<gesture>_P_hgr1_id<NN>_<k>``, else None."""
  m = _STEM.match(stem)
  return (m.group("gesture"), int(m.group("subject"))) if m else None


def parse_feature_points(path: epath.Path, coordinate_base: float = 0.0
                         ) -> tuple[np.ndarray, np.ndarray]:
  """Reads one HGR1 feature-point XML file into 25 landmark slots.

  Schema (best-informed guess; the dataset page does not document it). The
  one public reader found (MATLAB wrist-localisation code that converts
  these files with ``xml2struct``) reads
  ``s.IMAGE.hand{1,1}.FeaturePoint{i}.Attributes.{category, x, y}`` and
  keeps the two points whose ``category`` is ``'Wrist'``. Hence:

  * root element ``<IMAGE>``; one or more ``<hand>`` children (``hand{1,1}``
    suggests there may be several), of which exactly one must hold
    ``<FeaturePoint>`` elements;
  * each ``<FeaturePoint>`` has ``category``, ``x`` and ``y`` attributes;
  * the paper numbers the landmarks #1..#25 with the wrist at #1 and #25.
    Which XML point is which number is not known; this parser takes it from
    an integer attribute named one of ``INDEX_ATTRIBUTES`` (1-based) when
    every point has one, and otherwise from document order, which it only
    accepts when all 25 points are listed;
  * a point with a negative coordinate counts as absent (not annotated);
  * consistency checks that catch a wrong guess: points of category
    ``Wrist`` (any case) must be #1 or #25, both wrist points must be
    present (the error normaliser needs them), at most 25 points, no number
    twice.

  Args:
    path: the ``.xml`` file.
    coordinate_base: subtracted from the coordinates (0: already 0-based).

  Returns:
    ``landmarks (25, 2)`` float64 0-based ``(x, y)`` (0 where absent) and
    ``visible (25,)`` float32.

  Raises:
    AnnotationFormatError: naming the file and what was expected.
  """
  def fail(where, expected, found):
    return manual_data.format_error(path, where, expected, found)

  try:
    root = ET.fromstring(path.read_bytes())
  except ET.ParseError as e:
    raise fail(f"line {e.position[0]}", "well-formed XML", str(e)) from None
  if root.tag != "IMAGE":
    raise fail("root element", "<IMAGE>", f"<{root.tag}>")
  hands = [h for h in root.findall("hand") if h.findall("FeaturePoint")]
  if len(hands) != 1:
    raise fail("<IMAGE>", "exactly one <hand> with <FeaturePoint> elements",
               f"{len(hands)}")
  points = hands[0].findall("FeaturePoint")
  if len(points) > NUM_LANDMARKS:
    raise fail("<hand>", f"at most {NUM_LANDMARKS} <FeaturePoint>",
               f"{len(points)}")

  has_index = [any(a in p.attrib for a in INDEX_ATTRIBUTES) for p in points]
  if any(has_index) and not all(has_index):
    raise fail("<FeaturePoint>", "a landmark number attribute (one of "
               f"{', '.join(INDEX_ATTRIBUTES)}) on every point or on none",
               f"it on {sum(has_index)} of {len(points)} points")
  if not any(has_index) and len(points) != NUM_LANDMARKS:
    raise fail("<hand>", f"either a landmark number attribute (one of "
               f"{', '.join(INDEX_ATTRIBUTES)}) on each <FeaturePoint>, or "
               f"all {NUM_LANDMARKS} points in order (the parser cannot tell "
               "which landmarks the listed points are)",
               f"{len(points)} points without numbers")

  landmarks = np.zeros((NUM_LANDMARKS, 2), np.float64)
  visible = np.zeros((NUM_LANDMARKS,), np.float32)
  seen = set()
  for order, point in enumerate(points):
    where = f"<FeaturePoint> #{order + 1}"
    for attr in ("category", "x", "y"):
      if attr not in point.attrib:
        raise fail(where, f"attribute '{attr}'",
                   f"attributes {sorted(point.attrib)}")
    try:
      xy = np.array([float(point.attrib["x"]), float(point.attrib["y"])])
    except ValueError:
      raise fail(where, "numeric x and y",
                 f"x={point.attrib['x']!r} y={point.attrib['y']!r}") from None
    if not np.isfinite(xy).all():
      raise fail(where, "finite x and y", f"{xy}")
    if any(has_index):
      name = next(a for a in INDEX_ATTRIBUTES if a in point.attrib)
      try:
        slot = int(point.attrib[name]) - 1
      except ValueError:
        slot = -1
      if not 0 <= slot < NUM_LANDMARKS:
        raise fail(where, f"{name} in 1..{NUM_LANDMARKS}",
                   repr(point.attrib[name]))
    else:
      slot = order
    if slot in seen:
      raise fail(where, "each landmark number once",
                 f"landmark #{slot + 1} again")
    seen.add(slot)
    if point.attrib["category"].lower() == "wrist" and slot not in WRIST:
      raise fail(where, "the 'Wrist' points to be landmarks #1 and #25 (the "
                 "paper's wrist width); the guessed numbering does not fit "
                 "this file", f"a 'Wrist' point as landmark #{slot + 1}")
    if (xy < 0).any():
      continue  # not annotated
    landmarks[slot] = xy - coordinate_base
    visible[slot] = 1.0
  for slot in WRIST:
    if not visible[slot]:
      raise fail("<hand>", "both wrist points (landmarks #1 and #25; the "
                 "error normaliser needs them)", f"landmark #{slot + 1} absent")
  return landmarks, visible


def wrist_width(landmarks: np.ndarray) -> float:
  """The paper's HGR1 normaliser: distance between landmarks #1 and #25."""
  return landmark_dataset.point_distance(landmarks, *WRIST)


@dataclasses.dataclass(eq=False)
class Hgr1Config(landmark_dataset.LandmarkCropConfig):
  """HGR1 settings.

  Attributes:
    coordinate_base: subtracted from the XML coordinates; 0 if they are
      0-based pixels (assumed: the annotation tool is unknown), 1 if 1-based.
  """
  coordinate_base: float = 0.0


class Hgr1(landmark_dataset.ManualLandmarkBuilder):
  """HGR1 hands, 25 landmarks, 27 gestures (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      Hgr1Config(name="default", image_size=64, enlarge=1.5,
                 description="64x64 grey, visible-landmark box enlarged "
                 "1.5x, XML coordinates taken as 0-based."),
  ]
  NUM_LANDMARKS = NUM_LANDMARKS
  HOMEPAGE = "http://sun.aei.polsl.pl/~mkawulok/gestures/"
  CITATION = """@article{kawulok2014self,
  title={Self-adaptive algorithm for segmenting skin regions},
  author={Kawulok, Michal and Kawulok, Jolanta and Nalepa, Jakub and
          Smolka, Bogdan},
  journal={EURASIP Journal on Advances in Signal Processing},
  volume={2014}, number={170}, pages={1--22}, year={2014}
}
@inproceedings{nalepa2014fast,
  title={Fast and accurate hand shape classification},
  author={Nalepa, Jakub and Kawulok, Michal},
  booktitle={International Conference: Beyond Databases, Architectures and
             Structures}, pages={364--373}, year={2014}
}"""
  REQUIRED_PATHS = (IMAGE_DIR, XML_DIR)
  LAYOUT = f"""\
  <manual_dir>/
    {IMAGE_DIR}/<gesture>_P_hgr1_id<NN>_<k>.jpg   (898 images)
    {XML_DIR}/<same stem>.xml                   (one per image)
    (hgr1_skin/skin_masks/ may be there too; it is not used)"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  HGR1 cannot be downloaded automatically (licence). From the Hand Gesture
  Recognition database page http://sun.aei.polsl.pl/~mkawulok/gestures/
  download the HGR1 archives of the original images and of the hand feature
  points, and extract both into the manual folder so that it holds
  {IMAGE_DIR}/ and {XML_DIR}/.
  """

  def _class_labels(self):
    # Names come from the file names at build time (_split_generators).
    return {"gesture": tfds.features.ClassLabel()}

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    annotations = {p.stem: p for p in (root / XML_DIR).glob("*.xml")}
    images = {p.stem: p for p in (root / IMAGE_DIR).iterdir()
              if p.suffix.lower() in (".jpg", ".jpeg")}
    bad = [p for p in list(annotations.values()) + list(images.values())
           if parse_stem(p.stem) is None]
    if bad:
      raise manual_data.ManualDataError(
          f"hgr1: {len(bad)} file name(s) do not follow "
          f"<gesture>_P_hgr1_id<NN>_<k>, e.g. {bad[0]}. Remove files that "
          "are not part of HGR1.")
    stems = manual_data.pair_files(annotations, images, self.name)
    coordinate_base = self.builder_config.coordinate_base
    parsed = {s: parse_feature_points(annotations[s], coordinate_base)
              for s in stems}

    gestures = sorted({parse_stem(s)[0] for s in stems})
    manual_data.check_count(self.name, "the gesture classes", len(gestures),
                            EXPECTED_GESTURES)
    self.info.features["gesture"].names = gestures

    splits = {}
    for split, subjects in SPLIT_SUBJECTS.items():
      splits[split] = [s for s in stems if parse_stem(s)[1] in subjects]
      manual_data.check_count(self.name, f"split '{split}'",
                              len(splits[split]), EXPECTED_SIZES[split])
    used = sum(len(v) for v in splits.values())
    if used != len(stems):
      warnings.warn(manual_data.DataCountWarning(
          f"hgr1: skipping {len(stems) - used} image(s) of subjects outside "
          f"ids {sorted(sum(SPLIT_SUBJECTS.values(), ()))}."), stacklevel=2)
    return {split: self._generate_examples(
        [(s, images[s], *parsed[s]) for s in keys])
            for split, keys in splits.items()}

  def _generate_examples(self, items):
    for stem, image_path, landmarks, visible in items:
      yield stem, landmark_dataset.make_example(
          image_path, landmarks, visible, self.builder_config, wrist_width,
          stem, {"gesture": parse_stem(stem)[0]})
