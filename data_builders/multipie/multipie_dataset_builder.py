"""CMU Multi-PIE, 68 landmarks, emotion and camera labels: a manual-download TFDS builder.

Reads the Multi-PIE images and the 68-point label files from ``manual_dir``
(layout in ``Multipie.LAYOUT``, as the archives unpack):

* label files ``labels/<cam>/<stem>_lm.mat`` with ``<stem>`` =
  ``<subject>_<session>_<recording>_<cam>_<illum>`` (``<cam>`` is the camera
  without its underscore, ``05_1`` -> ``051``; e.g.
  ``labels/051/001_01_01_051_05_lm.mat``), variable ``pts``, ``N x 2``
  ``(x, y)``. A ``landmarks/`` folder (any sub-folders) is accepted instead
  of ``labels/``; when both exist, ``labels/`` is read, ``landmarks/`` is
  ignored and a ``LabelFolderWarning`` says so;
* images ``session<SS>/multiview/<subject>/<recording>/<camera>/
  <subject>_<session>_<recording>_<cam>_<illum>.png``, illuminations
  (flashes) ``00``-``19``.

Selection (the paper's):

* the 5 cameras ``13_0``, ``14_0``, ``05_1`` (frontal), ``05_0``, ``04_1``
  (0, +-15 and +-30 degrees of yaw); label files of other cameras (the
  profile views have 39 points) are ignored;
* **one example per labelled (subject, session, recording, camera)**, a
  *group*: the paper's 1875 / 579 / 1054 images count these. The release
  labels one flash of each group; if a group has several label files, the
  one of the lowest illumination number is used and the others are skipped
  (``SkipLog`` reason ``EXTRA_LABEL``);
* illumination (``MultipieConfig.illumination``): the paper uses "a random
  illumination". ``"random"`` (default) draws one image among all the
  group's images present in its folder (every flash, sorted by
  illumination) with ``numpy.random.default_rng([split_seed, subject,
  session, recording, camera])`` (camera as a number, ``05_1`` -> 51), so
  the draw of one group does not depend on which other files exist; the
  landmarks are those of the label file (the landmarks do not move with the
  flash). ``"labelled"`` (config ``labelled_flash``)
  uses the image of the labelled flash itself;
* emotion from (session, recording): s1 r1 neutral, r2 smile; s2 r1 neutral,
  r2 surprise, r3 squint; s3 r1 neutral, r2 smile, r3 disgust; s4 r1
  neutral, r2 neutral, r3 scream;
* split by subject id: ``train`` 1-150 (1875 images), ``validation`` 151-200
  (579), ``test`` 201-337 (1054); other ids are left out with one warning.

Files left out, never an abort (one ``SkippedFileWarning`` each and one
``SkipSummaryWarning`` with the counts per reason once all files are read):
a label file of a used camera whose ``pts`` has another number of points
than 68 (a few frontal files have 66; ``WRONG_COUNT``), a label file whose
group has no image (``manual_data.NO_IMAGE``; with ``labelled_flash``: whose
labelled flash image is missing), a second label file of a group
(``EXTRA_LABEL``). Hard errors naming the file: a ``*_lm.mat`` whose name
does not parse, an unknown (session, recording), a file that is not a
``.mat``, has no ``pts``, is not ``N x 2`` or holds NaN/inf, and a split
that would be empty.

Stored: grey 64x64 square around the landmarks enlarged 1.3x (the paper uses
64x64 grey "as hands"; 1.3x is the authors' RCN face crop), zero padding
outside the photo; ``emotion`` (6 classes) and ``camera`` (the 5 used)
``ClassLabel``s; ``id`` = ``<image stem>:<label file stem>``, e.g.
``001_01_01_051_12:001_01_01_051_05_lm`` (image flash 12, landmarks from the
label file of flash 05; ``parse_id`` splits it, ``Shot.image_path`` gives the
image's path).

Error normaliser (``MultipieConfig.normalizer``), in stored pixels:

* ``"eye_corners"`` (default): the distance between the eye centres, each
  the midpoint of the eye's corners (0-based points 36/39 and 42/45). This
  is the normaliser of the paper and of the authors' RCN code: compare the
  paper's Multi-PIE numbers with this one;
* ``"eyelid_mean"`` (config ``eyelid_mean``): each eye centre is the mean of
  its six points (36-41 and 42-47). The same reading needs no rebuild: a
  run of ``landmark_ssl.main`` with ``--config.eval.normalizer=inter_pupil``
  computes exactly this distance from the stored landmarks of a default
  build (``eye_centers`` gives the default one, ``dataset`` whatever the
  build stored; ``landmark_ssl.evaluation.normalizers`` does the same on
  saved predictions).

Build a config by name: ``python -m landmark_ssl.build_data
--dataset=multipie/labelled_flash --manual_dir=<folder>`` (configs
``default``, ``labelled_flash``, ``eyelid_mean``).

Assumptions (not confirmed by anything published; check a few images, e.g.
with the stored landmarks drawn over ``image``):

* the ``.mat`` coordinates count pixels from 1 (MATLAB's convention): the
  builder **subtracts 1** (setting ``coordinate_base``; rebuild with
  ``coordinate_base=0`` if the landmarks sit one pixel off);
* ``pts`` columns are ``(x, y)`` and its rows follow the 68-point (iBUG)
  order, so that points 36-47 are the eyes;
* the landmarks of the labelled flash hold for every flash of the group
  (the subject is assumed not to move during the flash sequence);
* the paper draws one illumination per group once (not per epoch), and
  its subject ranges are Multi-PIE subject ids, not ranks.
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
LABEL_DIR = "labels"  # as the label archive unpacks: labels/<cam>/...
LEGACY_LABEL_DIR = "landmarks"  # accepted instead (any sub-folders)
SESSION_DIRS = tuple(f"session0{s}/multiview" for s in range(1, 5))
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
ILLUMINATIONS = ("random", "labelled")
NORMALIZERS = {
    "eye_corners": landmark_dataset.eye_centre_distance,
    "eyelid_mean": landmark_dataset.eyelid_mean_distance,
}
# SkipLog reasons (besides manual_data.NO_IMAGE).
WRONG_COUNT = f"label file without {NUM_LANDMARKS} points"
EXTRA_LABEL = "second label file of one (subject, session, recording, camera)"

_LM_STEM = re.compile(r"^(?P<subject>\d{3})_(?P<session>\d{2})_"
                      r"(?P<recording>\d{2})_(?P<camera>\d{3})_"
                      r"(?P<illumination>\d{2})_lm$")


class LabelFolderWarning(UserWarning):
  """Both ``labels/`` and ``landmarks/`` exist; only ``labels/`` is read."""


@dataclasses.dataclass(frozen=True)
class Shot:
  """One Multi-PIE image: a group and one of its illuminations."""
  subject: str  # "001"
  session: str  # "01"
  recording: str  # "01"
  camera: str  # "05_1"
  illumination: str  # "05"

  @property
  def group_stem(self) -> str:
    """``<subject>_<session>_<recording>_<cam>``, e.g. ``001_01_01_051``."""
    cam = self.camera.replace("_", "")
    return f"{self.subject}_{self.session}_{self.recording}_{cam}"

  @property
  def stem(self) -> str:
    """The image stem, e.g. ``001_01_01_051_05``."""
    return f"{self.group_stem}_{self.illumination}"

  @property
  def label_stem(self) -> str:
    """The label file stem, e.g. ``001_01_01_051_05_lm``."""
    return f"{self.stem}_lm"

  @property
  def group(self) -> tuple[str, str, str, str]:
    return (self.subject, self.session, self.recording, self.camera)

  def with_illumination(self, illumination: str) -> Shot:
    return dataclasses.replace(self, illumination=illumination)

  def folder(self, root: epath.Path) -> epath.Path:
    """The folder of the group's images."""
    return (root / f"session{self.session}" / "multiview" / self.subject /
            self.recording / self.camera)

  def image_path(self, root: epath.Path) -> epath.Path:
    return self.folder(root) / f"{self.stem}.png"


def parse_landmark_name(stem: str) -> Shot | None:
  """The ``Shot`` of ``<subject>_<session>_<recording>_<cam>_<illum>_lm``."""
  m = _LM_STEM.match(stem)
  if not m:
    return None
  cam = m.group("camera")
  return Shot(m.group("subject"), m.group("session"), m.group("recording"),
              f"{cam[:2]}_{cam[2]}", m.group("illumination"))


def example_id(image: Shot, label: Shot) -> str:
  """The stored ``id``: ``<image stem>:<label file stem>``."""
  return f"{image.stem}:{label.label_stem}"


def parse_id(stored_id: str | bytes) -> tuple[Shot, Shot]:
  """``(image shot, label shot)`` of a stored ``id`` (``example_id``)."""
  if isinstance(stored_id, bytes):
    stored_id = stored_id.decode()
  image, _, label = stored_id.partition(":")
  label_shot = parse_landmark_name(label)
  image_shot = parse_landmark_name(image + "_lm")
  if image_shot is None or label_shot is None:
    raise ValueError(f"{stored_id!r} is not a Multi-PIE example id "
                     "(<image stem>:<label file stem>).")
  return image_shot, label_shot


def emotion_of(shot: Shot, path: epath.Path) -> str:
  """The emotion of a (session, recording); an error for unknown pairs."""
  key = (int(shot.session), int(shot.recording))
  if key not in EMOTION_OF:
    raise manual_data.format_error(
        path, "file name", "a Multi-PIE (session, recording) among "
        f"{sorted(EMOTION_OF)}", f"session {key[0]}, recording {key[1]}")
  return EMOTION_OF[key]


def read_label_file(path: epath.Path) -> np.ndarray:
  """Reads variable ``pts`` of a label ``.mat`` file, as written.

  Returns:
    ``(N, 2)`` float64 ``(x, y)`` in the file's coordinates (N is 68 for
    the cameras the paper uses, but not checked here).

  Raises:
    AnnotationFormatError: unreadable file, no ``pts``, not ``N x 2``,
      NaN or inf.
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
  if pts.ndim != 2 or pts.shape[1] != 2:
    raise manual_data.format_error(path, "key 'pts'",
                                   "shape (N, 2), (x, y) per row",
                                   str(pts.shape))
  if not np.isfinite(pts).all():
    raise manual_data.format_error(path, "key 'pts'", "finite coordinates",
                                   "NaN or inf")
  return pts


def draw_illumination(group: tuple[str, str, str, str],
                      illuminations: list[str], seed: int) -> str:
  """The illumination drawn for ``group`` among ``illuminations``.

  A generator of its own, seeded by ``seed`` and the group's numbers, picks
  one of the illuminations sorted; the result depends on nothing else.
  """
  if not illuminations:
    raise ValueError(f"group {group} has no illumination to draw from.")
  numbers = [int(g.replace("_", "")) for g in group]
  rng = np.random.default_rng([seed, *numbers])
  options = sorted(illuminations)
  return options[int(rng.integers(len(options)))]


def group_illuminations(root: epath.Path, shot: Shot) -> list[str]:
  """The illuminations of the group of ``shot`` that have an image, sorted."""
  folder = shot.folder(root)
  if not folder.is_dir():
    return []
  pattern = re.compile(rf"^{re.escape(shot.group_stem)}_(\d{{2}})\.png$")
  found = (pattern.match(p.name) for p in folder.iterdir())
  return sorted(m.group(1) for m in found if m)


def split_of(subject: str) -> str | None:
  """``train`` / ``validation`` / ``test`` of a subject id, or None."""
  sid = int(subject)
  for split, (lo, hi) in SPLIT_SUBJECTS.items():
    if lo <= sid <= hi:
      return split
  return None


def label_folder(root: epath.Path) -> epath.Path | None:
  """``labels/``, else ``landmarks/``, else None (warns when both exist)."""
  labels, legacy = root / LABEL_DIR, root / LEGACY_LABEL_DIR
  if labels.is_dir():
    if legacy.exists():
      warnings.warn(LabelFolderWarning(
          f"multipie: {root} holds both {LABEL_DIR}/ and {LEGACY_LABEL_DIR}/; "
          f"reading {LABEL_DIR}/ only. Remove {LEGACY_LABEL_DIR}/ to silence "
          "this warning."), stacklevel=2)
    return labels
  return legacy if legacy.is_dir() else None


def find_label_files(folder: epath.Path) -> list[tuple[Shot, epath.Path]]:
  """Every ``*_lm.mat`` under ``folder`` (any depth), sorted by path.

  Raises:
    ManualDataError: a ``*_lm.mat`` name that does not parse, or one name
      twice (in two sub-folders).
  """
  found = sorted(sub / name for sub, _, names in folder.walk()
                 for name in names if name.endswith("_lm.mat"))
  result, seen = [], {}
  for path in found:
    shot = parse_landmark_name(path.stem)
    if shot is None:
      raise manual_data.ManualDataError(
          f"multipie: {path} does not follow <subject>_<session>_"
          "<recording>_<cam>_<illum>_lm.mat. Remove files that are not "
          "Multi-PIE label files.")
    if shot in seen:
      raise manual_data.ManualDataError(
          f"multipie: two label files of one name: {seen[shot]} and {path}. "
          "Keep only the one from the original archive.")
    seen[shot] = path
    result.append((shot, path))
  return result


@dataclasses.dataclass(eq=False)
class MultipieConfig(landmark_dataset.LandmarkCropConfig):
  """Multi-PIE settings.

  Attributes:
    coordinate_base: subtracted from the ``.mat`` coordinates (1: MATLAB's
      1-based pixels, assumed; 0 if they turn out 0-based).
    split_seed: seed of the illumination draw.
    illumination: ``"random"`` (a seeded draw among the group's images) or
      ``"labelled"`` (the image of the labelled flash).
    normalizer: ``"eye_corners"`` (midpoints of 36/39 and 42/45; the
      paper's) or ``"eyelid_mean"`` (means of 36-41 and 42-47).
  """
  coordinate_base: float = 1.0
  split_seed: int = 0
  illumination: str = "random"
  normalizer: str = "eye_corners"

  def __post_init__(self):
    if self.illumination not in ILLUMINATIONS:
      raise ValueError(f"MultipieConfig.illumination={self.illumination!r}; "
                       f"choose one of {list(ILLUMINATIONS)}.")
    if self.normalizer not in NORMALIZERS:
      raise ValueError(f"MultipieConfig.normalizer={self.normalizer!r}; "
                       f"choose one of {sorted(NORMALIZERS)}.")


class Multipie(landmark_dataset.ManualLandmarkBuilder):
  """Multi-PIE faces, 68 landmarks, 6 emotions, 5 cameras (module docstring)."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "2.0.0": "labels/<cam>/ layout; illumination drawn among all images "
               "of a group; id names image and label file; label files "
               "without 68 points or without image are skipped; configs "
               "labelled_flash and eyelid_mean.",
  }
  BUILDER_CONFIGS = [
      MultipieConfig(
          name="default", image_size=64, enlarge=1.3,
          description="64x64 grey, landmark box enlarged 1.3x, .mat points "
          "taken as 1-based, one image per group drawn among its flashes "
          "with seed 0, eye-corner-midpoint normaliser."),
      MultipieConfig(
          name="labelled_flash", image_size=64, enlarge=1.3,
          illumination="labelled",
          description="As default, but each group's image is that of its "
          "labelled flash."),
      MultipieConfig(
          name="eyelid_mean", image_size=64, enlarge=1.3,
          normalizer="eyelid_mean",
          description="As default, but the stored normaliser is the distance "
          "between the means of points 36-41 and 42-47."),
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
  # The label folder (labels/ or landmarks/) is checked in _split_generators.
  REQUIRED_PATHS = SESSION_DIRS
  LAYOUT = f"""\
  <manual_dir>/
    {LABEL_DIR}/<cam>/<subject>_<session>_<recording>_<cam>_<illum>_lm.mat
        (variable 'pts', 68 x 2 for the cameras used; <cam> without the
        underscore; e.g. {LABEL_DIR}/051/001_01_01_051_05_lm.mat)
        ({LEGACY_LABEL_DIR}/**/<same names> is accepted instead)
    session01/multiview/<subject>/<recording>/<camera>/
        <subject>_01_<recording>_<cam>_<illum>.png   (illum 00..19)
        (e.g. session01/multiview/001/01/05_1/001_01_01_051_05.png)
    session02/multiview/...   session03/multiview/...   session04/multiview/..."""
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Multi-PIE is licensed by Carnegie Mellon University and cannot be
  downloaded automatically. Obtain the image release (sessions 1-4) via
  https://www.cs.cmu.edu/afs/cs/project/PIE/MultiPie/Multi-Pie/Home.html
  and its 68-point label files (distributed as MPie_Labels). Put the
  session01..session04 folders (each holding multiview/) and the label
  files' {LABEL_DIR}/ folder (one sub-folder per camera) in the manual
  folder, as they unpack.
  """

  def _class_labels(self):
    return {"emotion": tfds.features.ClassLabel(names=list(EMOTIONS)),
            "camera": tfds.features.ClassLabel(names=list(CAMERAS))}

  def _split_generators(self, dl_manager):
    config = self.builder_config
    root = manual_data.manual_root(dl_manager, self.name, self.LAYOUT,
                                   self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    folder = label_folder(root)
    manual_data.require_paths(
        root, SESSION_DIRS + (() if folder else (f"{LABEL_DIR}/",)),
        self.name, self.LAYOUT, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    skips = manual_data.SkipLog(self.name)

    # Every label file of a used camera and subject, read and checked.
    by_group: dict[str, list[tuple[Shot, epath.Path, np.ndarray]]] = {}
    outside, any_used = set(), False
    for shot, path in find_label_files(folder):
      if shot.camera not in CAMERAS:
        continue  # a view the paper does not use
      any_used = True
      emotion_of(shot, path)  # fail early on unknown (session, recording)
      if split_of(shot.subject) is None:
        outside.add(shot.subject)
        continue
      pts = read_label_file(path)
      if len(pts) != NUM_LANDMARKS:
        skips.skip(path, WRONG_COUNT, f"{len(pts)} points")
        continue
      by_group.setdefault(shot.group_stem, []).append(
          (shot, path, pts - config.coordinate_base))
    if not any_used:
      raise manual_data.ManualDataError(
          f"multipie: no label file of cameras {', '.join(CAMERAS)} under "
          f"{folder}. Expected layout:\n{self.LAYOUT}\n"
          f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")

    # One label file per group, and the group's image.
    labels, annotations, chosen = {}, {}, {}
    for key, entries in sorted(by_group.items()):
      entries.sort(key=lambda e: e[0].illumination)
      labels[key] = entries[0]
      annotations[key] = entries[0][1]
      for _, path, _ in entries[1:]:
        skips.skip(path, EXTRA_LABEL, f"the group keeps {entries[0][1].name}")
      label_shot = entries[0][0]
      if config.illumination == "labelled":
        image = label_shot
        if not image.image_path(root).exists():
          continue
      else:
        available = group_illuminations(root, label_shot)
        if not available:
          continue
        image = label_shot.with_illumination(draw_illumination(
            label_shot.group, available, config.split_seed))
      chosen[key] = image
    keys = manual_data.pair_files(
        annotations, {k: s.image_path(root) for k, s in chosen.items()},
        self.name, warn_unannotated=False, skips=skips)

    splits = {split: [] for split in SPLIT_SUBJECTS}
    for key in keys:
      label_shot, path, landmarks = labels[key]
      image = chosen[key]
      splits[split_of(label_shot.subject)].append(
          (example_id(image, label_shot), image.image_path(root), landmarks,
           emotion_of(label_shot, path), label_shot.camera))
    if outside:
      warnings.warn(manual_data.DataCountWarning(
          f"multipie: leaving out the label files of {len(outside)} "
          f"subject(s) outside ids {SPLIT_SUBJECTS}, e.g. "
          f"{sorted(outside)[:10]}."), stacklevel=2)
    skips.summarize()
    manual_data.check_splits(self.name, splits, causes={
        split: f"subjects {lo}-{hi}"
        for split, (lo, hi) in SPLIT_SUBJECTS.items()})
    for split, items in splits.items():
      manual_data.check_count(self.name, f"split '{split}'", len(items),
                              EXPECTED_SIZES[split])
    return {split: self._generate_examples(items)
            for split, items in splits.items()}

  def _generate_examples(self, items):
    config = self.builder_config
    visible = np.ones((NUM_LANDMARKS,), np.float32)
    for key, image_path, landmarks, emotion, camera in items:
      yield key, landmark_dataset.make_example(
          image_path, landmarks, visible, config,
          NORMALIZERS[config.normalizer], key,
          {"emotion": emotion, "camera": camera})
