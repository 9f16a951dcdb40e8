"""Writes the HGR1 test fixtures into ``dummy_data/`` (run once, committed).

A few tiny colour JPEGs in the plain-unzip layout (``original_images/``,
``feature_points/``), each black with a bright dot at every annotated
landmark, and feature-point XML files in the format of the real ones: root
``<IMAGE WIDTH HEIGHT>``, a ``<hand>`` with ``<FeaturePoint category type x
y>`` in shuffled order, integer pixels, absent points left out (17 to 25 per
file), and an empty second ``<hand>``. The category and type names are
invented (the real ones are not published).

Every hand is one template (``TEMPLATE``: a point per identity) under its
own rotation, scale and shift, so a builder that numbers the points of two
files differently cannot map one image's landmarks onto another's by a
similarity transform (``hgr1_test``). One file lacks a wrist point: the
build skips it.

  PYTHONPATH=. python data_builders/hgr1/make_dummy_data.py
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np

from data_builders import dot_images
from data_builders.hgr1 import hgr1_dataset_builder as lib

OUT = pathlib.Path(__file__).parent / "dummy_data"
IMAGE_DIR, XML_DIR = lib.LAYOUTS[0]
# Invented identities: 2 wrist points, 3 palm points, 4 per finger.
IDENTITIES = ([("Wrist", "radial"), ("Wrist", "ulnar")]
              + [("Palm", t) for t in ("centre", "left", "right")]
              + [(f, t) for f in ("Thumb", "Index", "Middle", "Ring", "Little")
                 for t in ("base", "joint1", "joint2", "tip")])
# stem -> number of annotated points (a wrist point missing: skipped).
STEMS = {
    "1_P_hgr1_id01_1": 20,   # train
    "A_P_hgr1_id05_2": 17,   # train
    "B_P_hgr1_id08_10": 25,  # train
    "A_P_hgr1_id03_1": 22,   # train; no ulnar wrist point: skipped
    "A_P_hgr1_id11_1": 22,   # validation
    "1_P_hgr1_id12_3": 24,   # validation
    "B_P_hgr1_id09_1": 19,   # test
    "A_P_hgr1_id10_2": 21,   # test
}
NO_WRIST = "A_P_hgr1_id03_1"
SIGMA = 1.8  # dot size in original pixels (the crop shrinks ~0.6x)
EXTENT = 64.0  # span of the template in original pixels


def template() -> dict:
  """``{(category, type): (x, y)}`` about the origin, the same every call."""
  pts = dot_images.grid_points(len(IDENTITIES), (0.0, 0.0), EXTENT,
                               np.random.default_rng(1), jitter=0.1)
  return dict(zip(IDENTITIES, pts))


def write_xml(path: pathlib.Path, points: dict, size: tuple[int, int],
              rng: np.random.Generator) -> None:
  """The real files' format, points in shuffled order."""
  keys = list(points)
  rows = [f'    <FeaturePoint category="{c}" type="{t}" '
          f'x="{int(points[(c, t)][0])}" y="{int(points[(c, t)][1])}" />'
          for c, t in (keys[i] for i in rng.permutation(len(keys)))]
  path.write_text(
      '<?xml version="1.0" encoding="utf-8"?>\n'
      f'<IMAGE WIDTH="{size[0]}" HEIGHT="{size[1]}">\n  <hand>\n'
      + "\n".join(rows) + '\n  </hand>\n  <hand />\n</IMAGE>\n')


def main() -> None:
  rng = np.random.default_rng(25)
  if OUT.exists():
    shutil.rmtree(OUT)
  (OUT / IMAGE_DIR).mkdir(parents=True)
  (OUT / XML_DIR).mkdir(parents=True)
  shape = template()
  for stem, n_points in STEMS.items():
    h, w = int(rng.integers(110, 130)), int(rng.integers(110, 140))
    angle = np.deg2rad(rng.uniform(-30, 30))
    scale = rng.uniform(0.9, 1.1)
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)],
                            [np.sin(angle), np.cos(angle)]])
    centre = np.array([w / 2, h / 2]) + rng.uniform(-4, 4, 2)
    others = [k for k in IDENTITIES if k[0] != "Wrist"]
    kept = [others[i] for i in rng.choice(len(others), n_points - 2,
                                          replace=False)]
    wrists = [("Wrist", "radial")] + (
        [] if stem == NO_WRIST else [("Wrist", "ulnar")])
    if stem == NO_WRIST:
      kept.append(("Palm", "centre") if ("Palm", "centre") not in kept
                  else next(k for k in others if k not in kept))
    # Integer pixels, as in the real files; the dots sit exactly there.
    points = {k: tuple(np.round(rot @ shape[k] + centre).astype(int))
              for k in wrists + kept}
    colour = tuple(int(c) for c in rng.integers(180, 256, 3))
    dot_images.save_dot_image(OUT / IMAGE_DIR / f"{stem}.jpg", (h, w),
                              np.array(list(points.values()), np.float64),
                              SIGMA, colour)
    write_xml(OUT / XML_DIR / f"{stem}.xml", points, (w, h), rng)


if __name__ == "__main__":
  main()
