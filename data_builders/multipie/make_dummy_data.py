"""Writes the Multi-PIE test fixtures into ``dummy_data/`` (run once, committed).

Tiny colour PNGs in the Multi-PIE layout, each black with a bright dot at
every one of its 68 landmarks, and ``*_lm.mat`` files (key ``pts``, 1-based
as MATLAB counts, the builder's default assumption). Some groups have several
illuminations with landmark files (the builder draws one), one image has no
landmark file (normal in Multi-PIE), and one landmark file belongs to a
camera the paper does not use (39 points, must be ignored).

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
# (subject, session, recording, camera) -> illuminations with landmark files
GROUPS = {
    ("001", "01", "01", "05_1"): ("05", "07"),  # train, neutral
    ("001", "01", "02", "14_0"): ("10",),  # train, smile
    ("001", "02", "03", "04_1"): ("00",),  # train, squint
    ("151", "03", "03", "13_0"): ("02", "08", "16"),  # validation, disgust
    ("151", "04", "02", "05_0"): ("03",),  # validation, neutral
    ("201", "02", "02", "05_1"): ("11",),  # test, surprise
    ("201", "04", "03", "13_0"): ("19",),  # test, scream
}
IMAGE_ONLY = lib.Shot("001", "01", "01", "05_1", "12")
OTHER_CAMERA = lib.Shot("001", "01", "01", "19_0", "05")
SIGMA = 1.0  # dot size in original pixels
EXTENT = 54.0  # span of the landmark grid in original pixels


def write_image(shot: lib.Shot, rng: np.random.Generator) -> np.ndarray:
  """Writes the shot's dot image; returns its 0-based landmarks."""
  h, w = int(rng.integers(80, 100)), int(rng.integers(80, 110))
  center = (rng.uniform(EXTENT / 2 + 4, w - EXTENT / 2 - 4),
            rng.uniform(EXTENT / 2 + 4, h - EXTENT / 2 - 4))
  points = dot_images.grid_points(lib.NUM_LANDMARKS, center, EXTENT, rng,
                                  jitter=0.1)
  path = shot.image_path(OUT)
  path.parent.mkdir(parents=True, exist_ok=True)
  colour = tuple(int(c) for c in rng.integers(180, 256, 3))
  dot_images.save_dot_image(path, (h, w), points, SIGMA, colour)
  return points


def write_mat(shot: lib.Shot, points0: np.ndarray) -> None:
  """``<stem>_lm.mat`` with ``pts`` 1-based; landmark files sit in one
  sub-folder per camera (any sub-folders under landmarks/ are read)."""
  folder = OUT / lib.LANDMARK_DIR / shot.camera
  folder.mkdir(parents=True, exist_ok=True)
  scipy.io.savemat(folder / f"{shot.stem}_lm.mat", {"pts": points0 + 1.0})


def main() -> None:
  rng = np.random.default_rng(68)
  if OUT.exists():
    shutil.rmtree(OUT)
  for (subject, session, recording, camera), illums in GROUPS.items():
    for illum in illums:
      shot = lib.Shot(subject, session, recording, camera, illum)
      write_mat(shot, write_image(shot, rng))
  write_image(IMAGE_ONLY, rng)
  write_mat(OTHER_CAMERA, rng.uniform(0, 80, (39, 2)))
  for session in ("01", "02", "03", "04"):
    (OUT / f"session{session}" / "multiview").mkdir(parents=True,
                                                    exist_ok=True)


if __name__ == "__main__":
  main()
