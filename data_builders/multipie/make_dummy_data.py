"""Writes the Multi-PIE test fixtures into ``dummy_data/`` (run once, committed).

The layout of the unpacked archives: label files
``labels/<cam>/<stem>_lm.mat`` (variable ``pts``, 1-based as MATLAB counts,
the builder's default assumption) and tiny colour PNGs
``session<SS>/multiview/<subject>/<recording>/<camera>/<stem>.png``.

Each group (subject, session, recording, camera) has several flash images
and, as in the release, a label file for one of them. Its images are black
with a bright dot at every one of its 68 landmarks, at the same places in
every flash (the face does not move between flashes) but in a different
colour per flash, so the landmarks of the label file sit on the dots of
whichever flash the builder draws. Special cases:

* ``TWO_LABELS``: a group with two label files (same points): one example;
* ``SHORT``: a frontal label file with 66 points (its image exists): skipped;
* ``NO_IMAGE``: a label file whose group has no image: skipped;
* ``OTHER_CAMERA``: a profile-camera label file (39 points): ignored.

  PYTHONPATH=. python data_builders/multipie/make_dummy_data.py
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import scipy.io

from data_builders import dot_images
from data_builders.multipie import multipie_dataset_builder as lib

OUT = pathlib.Path(__file__).parent / "dummy_data"
# (subject, session, recording, camera) ->
#   (illuminations with an image, illuminations with a label file)
GROUPS = {
    ("001", "01", "01", "05_1"): (("00", "05", "07", "12"), ("05", "07")),
    ("001", "01", "02", "14_0"): (("06", "10", "14"), ("10",)),  # smile
    ("001", "02", "03", "04_1"): (("00", "11"), ("00",)),  # squint
    ("151", "03", "03", "13_0"): (("02", "08", "16"), ("08",)),  # disgust
    ("151", "04", "02", "05_0"): (("03", "09"), ("03",)),  # neutral
    ("201", "02", "02", "05_1"): (("01", "11", "17"), ("11",)),  # surprise
    ("201", "04", "03", "13_0"): (("04", "19"), ("19",)),  # scream
}
TWO_LABELS = ("001", "01", "01", "05_1")
SHORT = lib.Shot("201", "01", "01", "05_1", "05")  # 66 points: skipped
SHORT_POINTS = 66
NO_IMAGE = lib.Shot("151", "01", "01", "04_1", "06")  # no image: skipped
OTHER_CAMERA = lib.Shot("001", "01", "01", "19_0", "05")  # 39 points: ignored
SIGMA = 1.0  # dot size in original pixels
EXTENT = 54.0  # span of the landmark grid in original pixels


def label_path(root: pathlib.Path, shot: lib.Shot) -> pathlib.Path:
  """``labels/<cam>/<stem>_lm.mat`` (camera without the underscore)."""
  return (root / lib.LABEL_DIR / shot.camera.replace("_", "") /
          f"{shot.label_stem}.mat")


def group_points(rng: np.random.Generator) -> tuple[tuple[int, int],
                                                     np.ndarray]:
  """An image size ``(h, w)`` and 68 0-based dot centres inside it."""
  h, w = int(rng.integers(80, 100)), int(rng.integers(80, 110))
  center = (rng.uniform(EXTENT / 2 + 4, w - EXTENT / 2 - 4),
            rng.uniform(EXTENT / 2 + 4, h - EXTENT / 2 - 4))
  points = dot_images.grid_points(lib.NUM_LANDMARKS, center, EXTENT, rng,
                                  jitter=0.1)
  return (h, w), points


def write_image(shot: lib.Shot, shape: tuple[int, int], points: np.ndarray,
                rng: np.random.Generator) -> None:
  """The shot's PNG: its dots in a colour of its own (the flash)."""
  path = shot.image_path(OUT)
  path.parent.mkdir(parents=True, exist_ok=True)
  colour = tuple(int(c) for c in rng.integers(180, 256, 3))
  dot_images.save_dot_image(path, shape, points, SIGMA, colour)


def write_mat(shot: lib.Shot, points0: np.ndarray) -> None:
  """The shot's label file, ``pts`` 1-based."""
  path = label_path(OUT, shot)
  path.parent.mkdir(parents=True, exist_ok=True)
  scipy.io.savemat(path, {"pts": points0 + 1.0})


def main() -> None:
  rng = np.random.default_rng(68)
  if OUT.exists():
    shutil.rmtree(OUT)
  for group, (flashes, labelled) in GROUPS.items():
    shape, points = group_points(rng)
    for illum in flashes:
      write_image(lib.Shot(*group, illum), shape, points, rng)
    for illum in labelled:
      write_mat(lib.Shot(*group, illum), points)
  shape, points = group_points(rng)
  write_image(SHORT, shape, points, rng)
  write_mat(SHORT, points[:SHORT_POINTS])
  write_mat(NO_IMAGE, group_points(rng)[1])
  write_mat(OTHER_CAMERA, rng.uniform(0, 80, (39, 2)))
  for session_dir in lib.SESSION_DIRS:
    (OUT / session_dir).mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
  main()
