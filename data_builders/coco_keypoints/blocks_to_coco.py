r"""A slice of Blocks as a COCO keypoints file: a small dataset of "your own"
for the README's walk-through and the tests.

  python -m data_builders.coco_keypoints.blocks_to_coco --out=DIR \
      [--images=160] [--labeled_fraction=0.25] [--seed=0]

Writes into ``--out``:

* ``images/blocks_<i>.png``: Blocks images (60x60 grey figures of five
  squares and a triangle, ``data_builders.blocks``), drawn from ``--seed``;
* ``annotations.json``: COCO keypoints, one category ``block_figure`` with
  the keypoints ``square_1`` (next to the triangle) to ``square_5``; every
  image has one annotation with the figure's ``bbox`` (the box of its lit
  pixels); ``--labeled_fraction`` of the images (a seeded draw) have their
  keypoints (``v = 2``), the others ``v = 0`` (unlabelled, as an annotation
  tool exports images whose keypoints nobody placed yet);
* ``classes.csv``: ``image_id,figure``: the figure's class (one of 15),
  known for every image.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Sequence

from absl import app
from absl import flags
import numpy as np
from PIL import Image

from data_builders import synthetic
from data_builders.blocks import blocks_dataset_builder as blocks

KEYPOINTS = tuple(f"square_{k + 1}" for k in range(blocks.NUM_LANDMARKS))
CATEGORY = {"id": 1, "name": "block_figure", "supercategory": "shape",
            "keypoints": list(KEYPOINTS),
            "skeleton": [[k + 1, k + 2] for k in range(len(KEYPOINTS) - 1)]}


def lit_box(image: np.ndarray) -> list[float]:
  """COCO ``bbox`` ``[x, y, w, h]`` of the non-zero pixels of ``(H, W)``."""
  ys, xs = np.nonzero(image)
  x0, y0 = int(xs.min()), int(ys.min())
  return [float(x0), float(y0), float(xs.max() + 1 - x0),
          float(ys.max() + 1 - y0)]


def blocks_coco(out: str, num_images: int, labeled_fraction: float,
                seed: int = 0) -> dict:
  """Writes the files (module docstring) and returns the COCO dict."""
  if num_images < 1 or not 0.0 <= labeled_fraction <= 1.0:
    raise ValueError(f"--images={num_images} must be >= 1 and "
                     f"--labeled_fraction={labeled_fraction} in [0, 1].")
  os.makedirs(os.path.join(out, "images"), exist_ok=True)
  rng = np.random.default_rng(int(seed))
  labeled = set(rng.permutation(num_images)[:round(labeled_fraction *
                                                   num_images)].tolist())
  images, annotations, classes = [], [], []
  for i in range(num_images):
    example = blocks.make_example(
        synthetic.example_rng(int(seed), "train", i), i)
    grey = example["image"][..., 0]
    name = f"images/blocks_{i:04d}.png"
    Image.fromarray(grey).save(os.path.join(out, name))
    keypoints = []
    for x, y in example["landmarks"]:
      keypoints += ([round(float(x), 2), round(float(y), 2), 2]
                    if i in labeled else [0.0, 0.0, 0])
    box = lit_box(grey)
    images.append({"id": i + 1, "file_name": name, "width": grey.shape[1],
                   "height": grey.shape[0]})
    annotations.append({
        "id": i + 1, "image_id": i + 1, "category_id": 1,
        "keypoints": keypoints,
        "num_keypoints": len(KEYPOINTS) if i in labeled else 0,
        "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    classes.append((i + 1, blocks.FIGURES[example["label"]]))
  coco = {"info": {"description": f"{num_images} Blocks images (seed "
                                  f"{seed}), {len(labeled)} with keypoints"},
          "images": images, "annotations": annotations,
          "categories": [CATEGORY]}
  with open(os.path.join(out, "annotations.json"), "w") as f:
    json.dump(coco, f)
  with open(os.path.join(out, "classes.csv"), "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["image_id", "figure"])
    writer.writerows(classes)
  return coco


def define_flags() -> None:
  flags.DEFINE_string("out", None, "Folder to write into.", required=True)
  flags.DEFINE_integer("images", 160, "Number of images.")
  flags.DEFINE_float("labeled_fraction", 0.25,
                     "Share of the images with keypoints.")
  flags.DEFINE_integer("seed", 0, "Seed of the images and of the draw.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  try:
    coco = blocks_coco(f.out, f.images, f.labeled_fraction, f.seed)
  except ValueError as e:
    raise SystemExit(f"blocks_to_coco: {e}") from None
  labelled = sum(a["num_keypoints"] > 0 for a in coco["annotations"])
  print(f"{len(coco['images'])} images ({labelled} with keypoints) in "
        f"{f.out}: annotations.json, classes.csv, images/")


if __name__ == "__main__":
  define_flags()
  app.run(main)
