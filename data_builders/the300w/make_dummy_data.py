"""Writes the 300W test fixtures into ``dummy_data/`` (run once, committed).

A few tiny images per folder in the iBUG layout, each a black picture with a
bright dot at every one of its 68 landmarks and the matching ``.pts`` file
(1-based, as iBUG writes them). The builder test checks that after the
1-based conversion, crop and resize, every stored landmark sits on its dot.

  PYTHONPATH=. python data_builders/the300w/make_dummy_data.py
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np

from data_builders import dot_images

OUT = pathlib.Path(__file__).parent / "dummy_data"
# folder -> (number of faces, image suffix): 10 training faces so that the
# 10% hold-out has one, and 2 per test folder.
FOLDERS = {
    "afw": (3, ".jpg"),
    "helen/trainset": (4, ".jpg"),
    "lfpw/trainset": (3, ".png"),
    "helen/testset": (2, ".jpg"),
    "lfpw/testset": (2, ".png"),
    "ibug": (2, ".jpg"),
}
SIGMA = 1.0  # dot size in original pixels
EXTENT = 56.0  # span of the landmark grid in original pixels


def write_pts(path: pathlib.Path, points0: np.ndarray) -> None:
  """iBUG ``.pts`` with 1-based coordinates (``points0`` is 0-based)."""
  rows = "\n".join(f"{x + 1.0:.3f} {y + 1.0:.3f}" for x, y in points0)
  path.write_text(f"version: 1\nn_points:  {len(points0)}\n{{\n{rows}\n}}\n")


def main() -> None:
  rng = np.random.default_rng(300)
  if OUT.exists():
    shutil.rmtree(OUT)
  for folder, (count, suffix) in FOLDERS.items():
    (OUT / folder).mkdir(parents=True)
    for i in range(count):
      stem = f"face{i:02d}_{int(rng.integers(1000, 9999))}"
      h, w = int(rng.integers(80, 110)), int(rng.integers(80, 120))
      # Near a border sometimes: the 1.3x square then leaves the image.
      center = (rng.uniform(EXTENT / 2 + 4, w - EXTENT / 2 - 4),
                rng.uniform(EXTENT / 2 + 4, h - EXTENT / 2 - 4))
      points = dot_images.grid_points(68, center, EXTENT, rng, jitter=0.1)
      colour = tuple(int(c) for c in rng.integers(180, 256, 3))
      dot_images.save_dot_image(OUT / folder / f"{stem}{suffix}", (h, w),
                                points, SIGMA, colour)
      write_pts(OUT / folder / f"{stem}.pts", points)


if __name__ == "__main__":
  main()
