"""CMU Multi-PIE, 68 landmarks, emotion and camera labels: a manual-download TFDS builder.

Reads the Multi-PIE images and the 68-point landmark files from
``manual_dir`` (layout in ``Multipie.LAYOUT``). The paper's selection:

* the 5 cameras ``13_0``, ``14_0``, ``05_1`` (frontal), ``05_0``, ``04_1``
  (0, +-15 and +-30 degrees of yaw); landmark files of other cameras are
  ignored;
* one illumination per (subject, session, recording, camera), drawn among
  the illuminations that have a landmark file with
  ``numpy.random.default_rng([split_seed, subject, session, recording,
  camera])``: the draw of one group does not depend on which other files
  exist;
* emotion from (session, recording): s1 r1 neutral, r2 smile; s2 r1 neutral,
  r2 surprise, r3 squint; s3 r1 neutral, r2 smile, r3 disgust; s4 r1
  neutral, r2 neutral, r3 scream;
* split by subject id: ``train`` 1-150 (1875 images), ``validation`` 151-200
  (579), ``test`` 201-337 (1054); other ids are skipped with a warning.

Coordinates: the ``.mat`` files (key ``pts``, 68 x 2, ``(x, y)``) come from
MATLAB, whose pixel coordinates count from 1; the builder therefore
**subtracts 1 by default** (setting ``coordinate_base``; nothing published
confirms the base: check a few images, e.g. with the stored landmarks drawn
over ``image``, and rebuild with ``coordinate_base=0`` if they sit one pixel
off).

Stored: grey 64x64 square around the landmarks enlarged 1.3x (the paper uses
64x64 grey "as hands"; 1.3x is the authors' RCN face crop), zero padding
outside the photo; ``normalizer`` = distance between the eye centres (each
the midpoint of its corners, 0-based points 36/39 and 42/45) in stored
pixels; ``emotion`` (6 classes) and ``camera`` (the 5 used) ``ClassLabel``s;
``id`` = the image stem ``<subject>_<session>_<recording>_<camera>_<illum>``.
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import scipy.io
import tensorflow_datasets as tfds
from etils import epath

from data_builders import landmark_dataset
from data_builders import manual_data

NUM_LANDMARKS = 68
LANDMARK_DIR = "landmarks"
# Cameras in the order of their position around the subject; file names
# write them without the underscore (05_1 -> 051).
CAMERAS = ("13_0", "14_0", "05_1", "05_0", "04_1")
EMOTIONS = ("neutral", "surprise", "smile", "squint", "disgust", "scream")
EMOTION_OF = {
    (1, 1): "neutral", (1, 2): "smile",
    (2, 1): "neutral", (2, 2): "surprise", (2, 3): "squint",
    (3, 1): "neutral", (3, 2): "smile", (3, 3): "disgust",
    (4, 1): "neutral", (4, 2): "neutral", (4, 3): "scream",
}
SPLIT_SUBJECTS = {
    "train": (1, 150),
    "validation": (151, 200),
    "test": (201, 337),
}
EXPECTED_SIZES = {"train": 1875, "validation": 579, "test": 1054}

_LM_STEM = re.compile(r"^(?P<subject>\d{3})_(?P<session>\d{2})_"
                      r"(?P<recording>\d{2})_(?P<camera>\d{3})_"
                      r"(?P<illumination>\d{2})_lm$")


@dataclasses.dataclass(frozen=True)
class Shot:
  """One Multi-PIE image, from its landmark file name."""
  subject: str  # "001"
  session: str  # "01"
  recording: str  # "01"
  camera: str  # "05_1"
  illumination: str  # "05"

  @property
  def stem(self) -> str:
    cam = self.camera.replace("_", "")
    return (f"{self.subject}_{self.session}_{self.recording}_{cam}_"
            f"{self.illumination}")

  @property
  def group(self) -> tuple[str, str, str, str]:
    return (self.subject, self.session, self.recording, self.camera)

  def image_path(self, root: epath.Path) -> epath.Path:
    return (root / f"session{self.session}" / "multiview" / self.subject /
            self.recording / self.camera / f"{self.stem}.png")


def parse_landmark_name(stem: str) -> Shot | None:
  """The ``Shot`` of ``<subject>_<session>_<recording>_<cam>_<illum>_lm``."""
  m = _LM_STEM.match(stem)
  if not m:
    return None
  cam = m.group("camera")
  return Shot(m.group("subject"), m.group("session"), m.group("recording"),
              f"{cam[:2]}_{cam[2]}", m.group("illumination"))


def emotion_of(shot: Shot, path: epath.Path) -> str:
  """The emotion of a (session, recording); an error for unknown pairs."""
  key = (int(shot.session), int(shot.recording))
  if key not in EMOTION_OF:
    raise manual_data.format_error(
        path, "file name", "a Multi-PIE (session, recording) among "
        f"{sorted(EMOTION_OF)}", f"session {key[0]}, recording {key[1]}")
  return EMOTION_OF[key]


def parse_landmark_mat(path: epath.Path, coordinate_base: float = 1.0
                       ) -> np.ndarray:
  """Reads key ``pts`` (68 x 2, ``(x, y)``) of a landmark ``.mat`` file.

  Returns:
    ``(68, 2)`` float64 0-based pixels (``coordinate_base`` subtracted).

  Raises:
    AnnotationFormatError: unreadable file, missing key, wrong shape.
  """
  try:
    with path.open("rb") as f:
      content = scipy.io.loadmat(f)
  except (ValueError, TypeError, OSError, NotImplementedError) as e:
    raise manual_data.format_error(
        path, "file", "a MATLAB .mat file (v4 to v7.2)", str(e)) from None
  if "pts" not in content:
    keys = sorted(k for k in content if not k.startswith("__"))
    raise manual_data.format_error(path, "key 'pts'", "a variable 'pts'",
                                   f"variables {keys}")
  try:
    pts = np.asarray(content["pts"], np.float64)
  except (TypeError, ValueError):
    raise manual_data.format_error(path, "key 'pts'", "a numeric array",
                                   repr(type(content["pts"]))) from None
  if pts.shape != (NUM_LANDMARKS, 2):
    raise manual_data.format_error(path, "key 'pts'",
                                   f"shape ({NUM_LANDMARKS}, 2)", str(pts.shape))
  if not np.isfinite(pts).all():
    raise manual_data.format_error(path, "key 'pts'", "finite coordinates",
                                   "NaN or inf")
  return pts - coordinate_base


def pick_illuminations(shots: list[Shot], seed: int) -> list[Shot]:
  """One shot per (subject, session, recording, camera), drawn with ``seed``.

  Each group draws with its own generator seeded by the seed and the group's
  numbers, among its illuminations sorted; returns the picks sorted by stem.
  """
  groups: dict[tuple, list[Shot]] = {}
  for shot in shots:
    groups.setdefault(shot.group, []).append(shot)
  picks = []
  for group, members in groups.items():
    members = sorted(members, key=lambda s: s.illumination)
    numbers = [int(g.replace("_", "")) for g in group]
    rng = np.random.default_rng([seed, *numbers])
    picks.append(members[int(rng.integers(len(members)))])
  return sorted(picks, key=lambda s: s.stem)


def split_of(subject: str) -> str | None:
  """``train`` / ``validation`` / ``test`` of a subject id, or None."""
  sid = int(subject)
  for split, (lo, hi) in SPLIT_SUBJECTS.items():
    if lo <= sid <= hi:
      return split
  return None


@dataclasses.dataclass(eq=False)
class MultipieConfig(landmark_dataset.LandmarkCropConfig):
  """Multi-PIE settings.

  Attributes:
    coordinate_base: subtracted from the ``.mat`` coordinates (1: MATLAB's
      1-based pixels, assumed; 0 if they turn out 0-based).
    split_seed: seed of the illumination draw.
  """
  coordinate_base: float = 1.0
  split_seed: int = 0


class Multipie(landmark_dataset.ManualLandmarkBuilder):
  """Multi-PIE faces, 68 landmarks, 6 emotions, 5 cameras (module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      MultipieConfig(
          name="default", image_size=64, enlarge=1.3,
          description="64x64 grey, landmark box enlarged 1.3x, .mat points "
          "taken as 1-based, illumination draw with seed 0."),
  ]
  NUM_LANDMARKS = NUM_LANDMARKS
  HOMEPAGE = ("https://www.cs.cmu.edu/afs/cs/project/PIE/MultiPie/Multi-Pie/"
              "Home.html")
  CITATION = """@article{gross2010multi,
  title={Multi-PIE},
  author={Gross, Ralph and Matthews, Iain and Cohn, Jeffrey and Kanade,
          Takeo and Baker, Simon},
  journal={Image and Vision Computing}, volume={28}, number={5},
  pages={807--813}, year={2010}
}"""
  REQUIRED_PATHS = (LANDMARK_DIR, "session01/multiview", "session02/multiview",
                    "session03/multiview", "session04/multiview")
  LAYOUT = f"""\
  <manual_dir>/
    {LANDMARK_DIR}/**/<subject>_<session>_<recording>_<cam>_<illum>_lm.mat
        (key 'pts', 68 x 2; any sub-folders; e.g. 001_01_01_051_05_lm.mat)
    session01/multiview/<subject>/<recording>/<camera>/
        <subject>_01_<recording>_<cam>_<illum>.png
        (e.g. session01/multiview/001/01/05_1/001_01_01_051_05.png)
    session02/multiview/...   session03/multiview/...   session04/multiview/..."""
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Multi-PIE is licensed by Carnegie Mellon University and cannot be
  downloaded automatically. Obtain the release (images of sessions 1-4) and
  its 68-point landmark files via
  https://www.cs.cmu.edu/afs/cs/project/PIE/MultiPie/Multi-Pie/Home.html, put
  the session01..session04 folders in the manual folder and the *_lm.mat
  files under {LANDMARK_DIR}/ in it.
  """

  def _class_labels(self):
    return {"emotion": tfds.features.ClassLabel(names=list(EMOTIONS)),
            "camera": tfds.features.ClassLabel(names=list(CAMERAS))}

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    config = self.builder_config
    shots, lm_files = [], {}
    found = [folder / name for folder, _, names in (root / LANDMARK_DIR).walk()
             for name in names if name.endswith("_lm.mat")]
    for path in sorted(found):
      shot = parse_landmark_name(path.stem)
      if shot is None:
        raise manual_data.ManualDataError(
            f"multipie: {path} does not follow <subject>_<session>_"
            "<recording>_<cam>_<illum>_lm.mat. Remove files that are not "
            "Multi-PIE landmark files.")
      if shot.camera not in CAMERAS:
        continue  # a view the paper does not use
      emotion_of(shot, path)  # fail early on unknown (session, recording)
      shots.append(shot)
      lm_files[shot.stem] = path
    if not shots:
      raise manual_data.ManualDataError(
          f"multipie: no landmark file of cameras {', '.join(CAMERAS)} under "
          f"{root / LANDMARK_DIR}. Expected layout:\n{self.LAYOUT}\n"
          f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    images = {s.stem: s.image_path(root) for s in shots
              if s.image_path(root).exists()}
    manual_data.pair_files(lm_files, images, self.name,
                           warn_unannotated=False)

    picks = pick_illuminations(shots, config.split_seed)
    splits = {split: [] for split in SPLIT_SUBJECTS}
    skipped = set()
    for shot in picks:
      split = split_of(shot.subject)
      if split is None:
        skipped.add(shot.subject)
        continue
      landmarks = parse_landmark_mat(lm_files[shot.stem],
                                     config.coordinate_base)
      splits[split].append((shot, images[shot.stem], landmarks,
                            emotion_of(shot, lm_files[shot.stem])))
    if skipped:
      warnings.warn(manual_data.DataCountWarning(
          f"multipie: skipping subjects {sorted(skipped)[:10]} (ids outside "
          f"{SPLIT_SUBJECTS})."), stacklevel=2)
    for split, items in splits.items():
      manual_data.check_count(self.name, f"split '{split}'", len(items),
                              EXPECTED_SIZES[split])
    return {split: self._generate_examples(items)
            for split, items in splits.items()}

  def _generate_examples(self, items):
    visible = np.ones((NUM_LANDMARKS,), np.float32)
    for shot, image_path, landmarks, emotion in items:
      yield shot.stem, landmark_dataset.make_example(
          image_path, landmarks, visible, self.builder_config,
          landmark_dataset.eye_centre_distance, shot.stem,
          {"emotion": emotion, "camera": shot.camera})
