"""Writes the HGR1 test fixtures into ``dummy_data/`` (run once, committed).

A few tiny colour JPEGs per split in the HGR1 layout, each black with a bright
dot at every *visible* landmark, and the feature-point XML in the schema
``hgr1_dataset_builder.parse_feature_points`` expects (a guess: the real
schema is undocumented). Most files number their points with a ``number``
attribute and leave some landmarks out (occluded); one lists all 25 in order
without numbers. Categories other than ``Wrist`` are made up.

  PYTHONPATH=. python data_builders/hgr1/make_dummy_data.py
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np

from data_builders import dot_images
from data_builders.hgr1 import hgr1_dataset_builder as lib

OUT = pathlib.Path(__file__).parent / "dummy_data"
# stem -> number of visible landmarks (25 = all, listed in order, no numbers)
STEMS = {
    "1_P_hgr1_id01_1": 20,   # train
    "A_P_hgr1_id05_2": 17,   # train
    "B_P_hgr1_id08_10": 25,  # train, unnumbered
    "A_P_hgr1_id11_1": 22,   # validation
    "1_P_hgr1_id12_3": 24,   # validation
    "B_P_hgr1_id09_1": 19,   # test
    "A_P_hgr1_id10_2": 21,   # test
}
SIGMA = 1.8  # dot size in original pixels (the crop shrinks ~0.6x)
EXTENT = 70.0  # span of the landmark grid in original pixels


def _category(slot: int) -> str:
  if slot in lib.WRIST:
    return "Wrist"
  return "Fingertip" if slot % 4 == 0 else "Joint"


def write_xml(path: pathlib.Path, points: np.ndarray, visible: np.ndarray,
              numbered: bool) -> None:
  """Writes the guessed schema: <IMAGE><hand><FeaturePoint .../></hand>
  <hand/></IMAGE>, absent points left out (numbered) or at (-1, -1)."""
  rows = []
  for slot, ((x, y), vis) in enumerate(zip(points, visible)):
    if not vis and numbered:
      continue
    if not vis:
      x = y = -1.0
    number = f' number="{slot + 1}"' if numbered else ""
    rows.append(f'    <FeaturePoint{number} category="{_category(slot)}" '
                f'x="{x:.2f}" y="{y:.2f}" />')
  body = "\n".join(rows)
  path.write_text(
      '<?xml version="1.0" encoding="utf-8"?>\n'
      f'<IMAGE name="{path.stem}.jpg">\n  <hand>\n{body}\n  </hand>\n'
      '  <hand />\n</IMAGE>\n')


def main() -> None:
  rng = np.random.default_rng(25)
  if OUT.exists():
    shutil.rmtree(OUT)
  images = OUT / lib.IMAGE_DIR
  xmls = OUT / lib.XML_DIR
  images.mkdir(parents=True)
  xmls.mkdir(parents=True)
  for stem, n_visible in STEMS.items():
    h, w = int(rng.integers(100, 130)), int(rng.integers(100, 140))
    center = (rng.uniform(EXTENT / 2 + 6, w - EXTENT / 2 - 6),
              rng.uniform(EXTENT / 2 + 6, h - EXTENT / 2 - 6))
    # Coordinates rounded as written to the XML, so the dots sit exactly there.
    points = np.round(
        dot_images.grid_points(lib.NUM_LANDMARKS, center, EXTENT, rng,
                               jitter=0.1), 2)
    visible = np.zeros(lib.NUM_LANDMARKS, np.float32)
    others = [s for s in range(lib.NUM_LANDMARKS) if s not in lib.WRIST]
    visible[list(lib.WRIST)] = 1.0
    visible[rng.choice(others, n_visible - 2, replace=False)] = 1.0
    colour = tuple(int(c) for c in rng.integers(180, 256, 3))
    dot_images.save_dot_image(images / f"{stem}.jpg", (h, w),
                              points[visible > 0], SIGMA, colour)
    write_xml(xmls / f"{stem}.xml", points, visible,
              numbered=n_visible < lib.NUM_LANDMARKS)


if __name__ == "__main__":
  main()
