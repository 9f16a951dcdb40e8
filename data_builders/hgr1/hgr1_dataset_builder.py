"""HGR1 (Polish hand gestures, Kawulok et al.), 25 landmarks: a manual-download TFDS builder.

898 colour images of 12 subjects showing 27 gestures, each with an XML file
of hand feature points (layout in ``Hgr1.LAYOUT``). Stored: a grey 64x64
square around the visible landmarks enlarged 1.5x (the paper's input is
64x64 grey; it does not say how it framed the hand: 1.5x keeps the palm
sides and finger roots, which the landmarks do not reach, in view), zero
padding outside the photo.

**The feature-point files** (as public readers of the real files read them):
root ``<IMAGE WIDTH=".." HEIGHT="..">``, one or more ``<hand>`` children, some
empty, the points as ``<FeaturePoint category=".." type=".." x=".." y=".."/>``
with integer pixels. A point's identity is its (category, type) pair; no
number attribute exists and document order is not a numbering. An image has
17 to 25 of the 25 points; a point that is not annotated is simply absent.

**Landmark numbering** (``landmark_numbering``): the category and type
strings are not published, so none are hard-coded. The build collects the
distinct (category, type) pairs of all files and expects 25 (otherwise one
error lists the pairs, how many files have each, and a file showing each).
Numbers: the two pairs whose category is ``Wrist`` (any case) are #1 and #25
(the paper's wrist points, whose distance is the error normaliser), the one
whose type sorts first being #1; the other 23 are #2..#24 in natural order
of (category, type) (case-insensitive, digit runs compared as numbers:
``Finger2`` before ``Finger10``). Every image uses this one numbering; the
names are stored in the dataset's metadata (``landmark_names``,
``"<category>/<type>"`` per landmark, 0-based index = number - 1), where
``predict`` and ``input_pipeline.dataset_info`` read them. *Assumption*: the
paper's numbers #2..#24 may be ordered differently; only #1/#25 (the
normaliser) matter for the error, and they are fixed by the Wrist category.

Features (``landmark_dataset``): ``visible`` marks the annotated landmarks
(absent ones are stored as ``(0, 0)``); ``gesture`` is a ``ClassLabel``
whose names are the gesture prefixes of the file names
(``<gesture>_P_hgr1_id<NN>_<k>.jpg``), sorted; ``normalizer`` is the wrist
width, the distance between landmarks #1 and #25 (0-based 0 and 24), in
stored pixels; ``id`` is the file stem.

Skipped, never aborting the build (one warning each, a count per reason at
the end, ``manual_data.SkipLog``): an image whose file lacks a wrist point
(no normaliser), a feature-point file without its image.

Splits by subject (``id<NN>``): ``train`` 1-8 (573 images), ``validation``
11-12 (163), ``test`` 9-10 (162).

*Assumption*: coordinates are 0-based pixels (setting ``coordinate_base``;
the annotation tool is unknown). When an XML's ``WIDTH``/``HEIGHT`` differ
from its image's size, its points are rescaled to the image (one warning
with the count).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
import xml.etree.ElementTree as ET
from typing import Iterable, Mapping

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import landmark_dataset
from data_builders import manual_data

NUM_LANDMARKS = 25
WRIST = (0, 24)  # 0-based landmarks #1 and #25: the wrist width
WRIST_CATEGORY = "wrist"  # compared case-insensitively
# (image folder, feature-point folder) under the manual folder, in the order
# they are looked for: the plain unzip of the two archives, then the layout
# with each archive in its own folder.
LAYOUTS = (
    ("original_images", "feature_points"),
    ("hgr1_images/original_images", "hgr1_feature_pts/feature_points"),
)
SPLIT_SUBJECTS = {
    "train": tuple(range(1, 9)),
    "validation": (11, 12),
    "test": (9, 10),
}
EXPECTED_SIZES = {"train": 573, "validation": 163, "test": 162}
EXPECTED_GESTURES = 27
# SkipLog reasons.
NO_WRIST = "a wrist point is not annotated (no error normaliser)"

_STEM = re.compile(r"^(?P<gesture>[0-9A-Za-z]+)_P_hgr1_id(?P<subject>\d+)_"
                   r"(?P<take>\d+)$")

PointId = tuple  # (category, type)


def parse_stem(stem: str) -> tuple[str, int] | None:
  """``(gesture, subject id)`` of ``<gesture>_P_hgr1_id<NN>_<k>``, else None."""
  m = _STEM.match(stem)
  return (m.group("gesture"), int(m.group("subject"))) if m else None


@dataclasses.dataclass(frozen=True)
class FeaturePoints:
  """One feature-point file.

  Attributes:
    points: ``{(category, type): (x, y)}`` as written (pixels).
    size: ``(WIDTH, HEIGHT)`` of the root element, or None if absent.
  """
  points: Mapping[PointId, tuple[float, float]]
  size: tuple[int, int] | None


def parse_feature_points(path: epath.Path) -> FeaturePoints:
  """Reads one HGR1 feature-point XML file (module docstring: the format).

  Checks: root ``<IMAGE>``; at most one non-empty ``<hand>``; each
  ``<FeaturePoint>`` has ``category``, ``type``, numeric finite ``x`` and
  ``y``; no (category, type) twice; ``WIDTH``/``HEIGHT``, if present, are
  positive integers. Points are returned as written (no coordinate base).

  Raises:
    AnnotationFormatError: naming the file, the place and what was expected.
  """
  def fail(where, expected, found):
    return manual_data.format_error(path, where, expected, found)

  try:
    root = ET.fromstring(path.read_bytes())
  except ET.ParseError as e:
    raise fail(f"line {e.position[0]}", "well-formed XML", str(e)) from None
  if root.tag != "IMAGE":
    raise fail("root element", "<IMAGE>", f"<{root.tag}>")
  size = None
  if "WIDTH" in root.attrib or "HEIGHT" in root.attrib:
    try:
      size = (int(root.attrib["WIDTH"]), int(root.attrib["HEIGHT"]))
    except (KeyError, ValueError):
      raise fail("<IMAGE>", "integer WIDTH and HEIGHT attributes",
                 f"{dict(root.attrib)}") from None
    if min(size) <= 0:
      raise fail("<IMAGE>", "positive WIDTH and HEIGHT", f"{size}")
  hands = [h for h in root.findall("hand") if h.findall("FeaturePoint")]
  if len(hands) > 1:
    raise fail("<IMAGE>", "at most one <hand> with <FeaturePoint> elements",
               f"{len(hands)}")
  points = {}
  for order, point in enumerate(hands[0].findall("FeaturePoint")
                                if hands else []):
    where = f"<FeaturePoint> #{order + 1}"
    for attr in ("category", "type", "x", "y"):
      if attr not in point.attrib:
        raise fail(where, f"attribute '{attr}'",
                   f"attributes {sorted(point.attrib)}")
    try:
      xy = (float(point.attrib["x"]), float(point.attrib["y"]))
    except ValueError:
      raise fail(where, "numeric x and y",
                 f"x={point.attrib['x']!r} y={point.attrib['y']!r}") from None
    if not np.isfinite(xy).all():
      raise fail(where, "finite x and y", f"{xy}")
    key = (point.attrib["category"], point.attrib["type"])
    if key in points:
      raise fail(where, "each (category, type) once",
                 f"category={key[0]!r} type={key[1]!r} again")
    points[key] = xy
  return FeaturePoints(points, size)


def _natural(text: str) -> tuple:
  """Sort key: case-insensitive, digit runs compared as numbers."""
  return tuple(int(t) if t.isdigit() else t for t in
               re.split(r"(\d+)", text.lower()))


def _is_wrist(key: PointId) -> bool:
  return key[0].strip().lower() == WRIST_CATEGORY


def landmark_numbering(parsed: Mapping[str, FeaturePoints],
                       files: Mapping[str, epath.Path] | None = None
                       ) -> list[PointId]:
  """The 25 (category, type) pairs in landmark order (module docstring).

  Args:
    parsed: file key -> its parsed points, over the whole dataset.
    files: file key -> path, to name example files in the error.

  Returns:
    ``[(category, type)] * 25``: index ``i`` is landmark ``#i+1``.

  Raises:
    ManualDataError: not exactly 25 distinct pairs, or not exactly two of
      category ``Wrist``; lists every pair, its file count and an example.
  """
  count: dict[PointId, int] = {}
  example: dict[PointId, str] = {}
  for key in sorted(parsed):
    for pid in parsed[key].points:
      count[pid] = count.get(pid, 0) + 1
      example.setdefault(pid, str(files[key]) if files else key)
  wrists = sorted((p for p in count if _is_wrist(p)),
                  key=lambda p: _natural(p[1]))
  others = sorted((p for p in count if not _is_wrist(p)),
                  key=lambda p: (_natural(p[0]), _natural(p[1])))
  if len(count) != NUM_LANDMARKS or len(wrists) != 2:
    rows = "\n".join(
        f"  category={p[0]!r} type={p[1]!r}: in {count[p]} file(s), e.g. "
        f"{example[p]}" for p in sorted(count, key=lambda p: count[p]))
    raise manual_data.ManualDataError(
        f"hgr1: the feature-point files name {len(count)} distinct "
        f"(category, type) points, {len(wrists)} of category 'Wrist'; HGR1 "
        f"has {NUM_LANDMARKS}, 2 of them 'Wrist'. The points found, rarest "
        f"first:\n{rows}\nA point in few files is likely a typo or a file "
        "from another release: fix or remove those files.")
  return [wrists[0], *others, wrists[1]]


def landmark_names(numbering: Iterable[PointId]) -> list[str]:
  """``"<category>/<type>"`` per landmark: the ``landmark_names`` metadata."""
  return [f"{c}/{t}" for c, t in numbering]


def to_slots(points: FeaturePoints, numbering: list[PointId],
             coordinate_base: float = 0.0,
             image_size: tuple[int, int] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
  """One file's points in landmark order.

  Args:
    points: the parsed file.
    numbering: from :func:`landmark_numbering`.
    coordinate_base: subtracted from the coordinates (0: 0-based).
    image_size: ``(width, height)`` of the image; when it differs from the
      file's ``WIDTH``/``HEIGHT`` the points are rescaled to it (pixel
      centres at integers: the frames' edges, -0.5 and size - 0.5, match).

  Returns:
    ``landmarks (25, 2)`` float64 0-based ``(x, y)`` (0 where absent) and
    ``visible (25,)`` float32.
  """
  landmarks = np.zeros((len(numbering), 2), np.float64)
  visible = np.zeros((len(numbering),), np.float32)
  scale = np.ones(2)
  if image_size is not None and points.size is not None:
    scale = np.asarray(image_size, np.float64) / np.asarray(points.size)
  for slot, pid in enumerate(numbering):
    if pid in points.points:
      xy = np.asarray(points.points[pid], np.float64) - coordinate_base
      landmarks[slot] = (xy + 0.5) * scale - 0.5
      visible[slot] = 1.0
  return landmarks, visible


def wrist_width(landmarks: np.ndarray) -> float:
  """The paper's HGR1 normaliser: distance between landmarks #1 and #25."""
  return landmark_dataset.point_distance(landmarks, *WRIST)


def find_folders(root: epath.Path) -> tuple[epath.Path, epath.Path] | None:
  """``(image folder, feature-point folder)`` of the first of ``LAYOUTS``
  present under ``root``, or None."""
  for images, xmls in LAYOUTS:
    if (root / images).is_dir() and (root / xmls).is_dir():
      return root / images, root / xmls
  return None


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

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "2.0.0": "Landmarks numbered by their (category, type) identity, "
               "absent points and the plain-unzip layout accepted, images "
               "without a wrist point skipped; landmark_names metadata.",
  }
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
  LAYOUT = f"""\
  <manual_dir>/
    {LAYOUTS[0][0]}/<gesture>_P_hgr1_id<NN>_<k>.jpg   (898 images)
    {LAYOUTS[0][1]}/<same stem>.xml                    (one per image)
  (the plain unzip of the two archives; skin masks, if there, are not used.
  Also accepted: {LAYOUTS[1][0]}/ and {LAYOUTS[1][1]}/.)"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  HGR1 cannot be downloaded automatically (licence). From the Hand Gesture
  Recognition database page http://sun.aei.polsl.pl/~mkawulok/gestures/
  download the HGR1 archives of the original images and of the hand feature
  points, and unzip both into the manual folder, so that it holds
  {LAYOUTS[0][0]}/ and {LAYOUTS[0][1]}/.
  """

  def _metadata(self):
    return tfds.core.MetadataDict()  # landmark_names, set at build time

  def _class_labels(self):
    # Names come from the file names at build time (_split_generators).
    return {"gesture": tfds.features.ClassLabel()}

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    folders = find_folders(root)
    if folders is None:
      raise manual_data.ManualDataError(
          f"hgr1: {root} holds neither {' + '.join(LAYOUTS[0])} nor "
          f"{' + '.join(LAYOUTS[1])}. Expected layout:\n{self.LAYOUT}\n"
          f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    image_dir, xml_dir = folders
    annotations = {p.stem: p for p in xml_dir.glob("*.xml")}
    images = {p.stem: p for p in image_dir.iterdir()
              if p.suffix.lower() in (".jpg", ".jpeg")}
    bad = [p for p in list(annotations.values()) + list(images.values())
           if parse_stem(p.stem) is None]
    if bad:
      raise manual_data.ManualDataError(
          f"hgr1: {len(bad)} file name(s) do not follow "
          f"<gesture>_P_hgr1_id<NN>_<k>, e.g. {bad[0]}. Remove files that "
          "are not part of HGR1.")
    skips = manual_data.SkipLog(self.name)
    stems = manual_data.pair_files(annotations, images, self.name,
                                   skips=skips)
    parsed = {s: parse_feature_points(annotations[s]) for s in stems}
    numbering = landmark_numbering(parsed, annotations)
    self.info.metadata["landmark_names"] = landmark_names(numbering)

    base = self.builder_config.coordinate_base
    items, rescaled = {}, []
    for s in stems:
      if not all(numbering[w] in parsed[s].points for w in WRIST):
        skips.skip(annotations[s], NO_WRIST)
        continue
      size = parsed[s].size
      image_size = landmark_dataset.image_size(images[s])
      if size is not None and tuple(size) != tuple(image_size):
        rescaled.append(str(annotations[s]))
      items[s] = (s, images[s], *to_slots(parsed[s], numbering, base,
                                          image_size))
    if rescaled:
      warnings.warn(manual_data.DataCountWarning(
          f"hgr1: {len(rescaled)} feature-point file(s) give a WIDTH x "
          "HEIGHT other than their image's size; their points were rescaled "
          f"to the image, e.g. {rescaled[0]}."), stacklevel=2)
    skips.summarize()

    gestures = sorted({parse_stem(s)[0] for s in items})
    manual_data.check_count(self.name, "the gesture classes", len(gestures),
                            EXPECTED_GESTURES)
    self.info.features["gesture"].names = gestures

    splits = {split: [s for s in items if parse_stem(s)[1] in subjects]
              for split, subjects in SPLIT_SUBJECTS.items()}
    manual_data.check_splits(self.name, splits, {
        split: f"subjects {', '.join(map(str, subjects))}"
        for split, subjects in SPLIT_SUBJECTS.items()})
    for split, keys in splits.items():
      manual_data.check_count(self.name, f"split '{split}'", len(keys),
                              EXPECTED_SIZES[split])
    used = sum(len(v) for v in splits.values())
    if used != len(items):
      warnings.warn(manual_data.DataCountWarning(
          f"hgr1: skipping {len(items) - used} image(s) of subjects outside "
          f"ids {sorted(sum(SPLIT_SUBJECTS.values(), ()))}."), stacklevel=2)
    return {split: self._generate_examples([items[s] for s in keys])
            for split, keys in splits.items()}

  def _generate_examples(self, items):
    for stem, image_path, landmarks, visible in items:
      yield stem, landmark_dataset.make_example(
          image_path, landmarks, visible, self.builder_config, wrist_width,
          stem, {"gesture": parse_stem(stem)[0]})
