"""Writes the coco_keypoints test fixtures into ``dummy_data/`` (run once,
committed).

A COCO keypoints file as annotation tools export it (``info``,
``licenses``, ``images`` with ``width``/``height``, ``annotations`` with
``keypoints``, ``num_keypoints``, ``bbox``, ``area``, ``iscrowd``,
``categories`` with ``keypoints`` and ``skeleton``), tiny grey and colour
images (PNG and JPEG, some in a sub-folder), and a class table CSV.

Every object is one template of five keypoints (``TEMPLATE``) under its own
rotation, scale and shift, drawn as a bright dot per keypoint on black, so
a build that misplaces or reorders keypoints fails the tests. Besides the
labelled objects (some keypoints ``v = 0`` or ``v = 1``) and an image with
two objects, the file holds unlabelled data (annotations with every
``v = 0``, an image without annotation) and one bad record of each kind
the builder must report (``BAD``).

  PYTHONPATH=. python data_builders/coco_keypoints/make_dummy_data.py
"""

from __future__ import annotations

import csv
import json
import pathlib
import shutil

import numpy as np

from data_builders import dot_images

OUT = pathlib.Path(__file__).parent / "dummy_data"
ANNOTATIONS = "annotations.json"
CLASSES = "classes.csv"
KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
# The template: (x, y) per keypoint about the origin, in pixels.
TEMPLATE = np.array([[0.0, 4.0], [-7.0, -5.0], [7.0, -5.0], [-14.0, 1.0],
                     [14.0, 2.0]])
SIGMA = 1.3  # dot size in original pixels
CATEGORY = {"id": 1, "name": "face", "supercategory": "face",
            "keypoints": list(KEYPOINTS),
            "skeleton": [[2, 1], [3, 1], [4, 2], [5, 3]]}
OTHER_CATEGORY = {"id": 2, "name": "background", "supercategory": "none"}
# image id -> (file name, [visibility per keypoint of each object] or None
# for an image without annotation). v: 0 not labelled, 1 occluded, 2 visible.
ALL = [2, 2, 2, 2, 2]
GOOD = {
    1: ("images/face_01.png", [ALL]),
    2: ("images/face_02.png", [[2, 2, 2, 0, 2]]),
    3: ("images/face_03.jpg", [[2, 1, 2, 2, 2]]),
    4: ("images/face_04.png", [ALL]),
    5: ("images/face_05.jpg", [[2, 2, 2, 2, 0]]),
    6: ("images/face_06.png", [ALL]),
    7: ("images/face_07.png", [[1, 2, 2, 2, 2]]),
    8: ("images/face_08.jpg", [ALL]),
    9: ("images/batch2/face_09.png", [ALL]),
    10: ("images/batch2/face_10.jpg", [[2, 2, 1, 2, 2]]),
    11: ("images/two_faces.png", [ALL, [2, 2, 2, 2, 0]]),
    12: ("images/unlabelled_12.png", [[0] * 5]),
    13: ("images/face_13.png", [[0, 2, 2, 0, 0]]),
    14: ("images/no_annotation_14.png", None),
    15: ("images/unlabelled_15.jpg", [[0] * 5]),
}
UNLABELLED_IMAGES = (12, 14, 15)
# The bad records, one of each kind: what the builder reports, by record.
BAD = {
    "missing_image": 20,       # image id whose file is absent
    "keypoint_count": 21,      # annotation id: 4 keypoints for 5
    "bbox_outside": 22,        # annotation id: bbox past the image
    "unknown_category": 23,    # annotation id: category 7
    "duplicate_image_id": 19,  # two image records share it
}
LIGHTING = ("day", "night")


def _pose(rng: np.random.Generator, size: tuple[int, int],
          centre: np.ndarray) -> np.ndarray:
  """The template rotated, scaled and moved to ``centre``."""
  angle = np.deg2rad(rng.uniform(-25, 25))
  scale = rng.uniform(0.9, 1.15)
  rot = scale * np.array([[np.cos(angle), -np.sin(angle)],
                          [np.sin(angle), np.cos(angle)]])
  return np.round(TEMPLATE @ rot.T + centre, 2)


def _annotation(ann_id: int, image_id: int, points: np.ndarray,
                visibility, rng: np.random.Generator,
                category: int = 1) -> dict:
  """A COCO annotation: bbox around the object with a few pixels' margin."""
  lo = points.min(0) - rng.uniform(2, 4, 2)
  hi = points.max(0) + rng.uniform(2, 4, 2)
  x, y = np.round(lo, 1)
  w, h = np.round(hi - lo, 1)
  keypoints = []
  for (px, py), v in zip(points, visibility):
    keypoints += [float(px), float(py), int(v)] if v else [0.0, 0.0, 0]
  return {"id": ann_id, "image_id": image_id, "category_id": category,
          "keypoints": keypoints,
          "num_keypoints": int(sum(1 for v in visibility if v)),
          "bbox": [float(x), float(y), float(w), float(h)],
          "area": float(w * h), "iscrowd": 0, "segmentation": []}


def _image_record(image_id: int, file_name: str, size: tuple[int, int]
                  ) -> dict:
  return {"id": image_id, "file_name": file_name, "width": size[0],
          "height": size[1], "license": 1, "date_captured": ""}


def _save(path: pathlib.Path, size: tuple[int, int], points: np.ndarray,
          rng: np.random.Generator) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  colour = (None if path.suffix == ".png" and rng.random() < 0.5 else
            tuple(int(c) for c in rng.integers(180, 256, 3)))
  dot_images.save_dot_image(path, (size[1], size[0]), points, SIGMA, colour)


def main() -> None:
  rng = np.random.default_rng(28)
  if OUT.exists():
    shutil.rmtree(OUT)
  OUT.mkdir(parents=True)
  images, annotations = [], []
  ann_id = 100
  for image_id, (name, objects) in GOOD.items():
    n = len(objects or [None])
    size = (int(rng.integers(56, 72)) * n, int(rng.integers(48, 64)))
    drawn = []
    for i, visibility in enumerate(objects or []):
      centre = np.array([size[0] * (i + 0.5) / n, size[1] / 2.0])
      points = _pose(rng, size, centre + rng.uniform(-3, 3, 2))
      drawn.append(points)
      annotations.append(_annotation(ann_id, image_id, points, visibility,
                                     rng))
      ann_id += 1
    _save(OUT / name, size, (np.concatenate(drawn) if drawn else
                             np.zeros((0, 2))), rng)
    images.append(_image_record(image_id, name, size))

  def good_image(image_id: int, name: str) -> tuple[dict, np.ndarray]:
    size = (64, 56)
    points = _pose(rng, size, np.array([32.0, 28.0]))
    if name:
      _save(OUT / name, size, points, rng)
    return _image_record(image_id, name, size), points

  # A missing file.
  record, points = good_image(BAD["missing_image"], "")
  record["file_name"] = "images/missing_20.png"
  images.append(record)
  annotations.append(_annotation(ann_id, record["id"], points, ALL, rng))
  ann_id += 1
  # Wrong keypoint count, bbox outside the image, unknown category: each
  # on an image of its own.
  for image_id, bad in ((16, "keypoint_count"), (17, "bbox_outside"),
                        (18, "unknown_category")):
    record, points = good_image(image_id, f"images/face_{image_id}.png")
    images.append(record)
    ann = _annotation(BAD[bad], image_id, points, ALL, rng,
                      category=7 if bad == "unknown_category" else 1)
    if bad == "keypoint_count":
      ann["keypoints"] = ann["keypoints"][:12]
      ann["num_keypoints"] = 4
    if bad == "bbox_outside":
      ann["bbox"][2] = float(record["width"])  # x + w past the right edge
    annotations.append(ann)
  # Two image records with one id.
  for suffix in ("a", "b"):
    record, points = good_image(BAD["duplicate_image_id"],
                                f"images/face_19{suffix}.png")
    images.append(record)
  annotations.append(_annotation(ann_id, BAD["duplicate_image_id"], points,
                                 ALL, rng))
  coco = {
      "info": {"description": "coco_keypoints test fixture", "version": "1.0",
               "year": 2024, "contributor": "", "date_created": ""},
      "licenses": [{"id": 1, "name": "CC0", "url": ""}],
      "images": images,
      "annotations": annotations,
      "categories": [CATEGORY, OTHER_CATEGORY],
  }
  (OUT / ANNOTATIONS).write_text(json.dumps(coco, indent=1) + "\n")
  with open(OUT / CLASSES, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["image_id", "lighting"])
    for image_id in sorted({record["id"] for record in images}):
      writer.writerow([image_id, LIGHTING[image_id % 2]])


if __name__ == "__main__":
  main()
