"""Predictions as a COCO keypoints file, to load into an annotation tool and
correct (``python -m landmark_ssl.predict ... --format=coco``); and the
boxes of a COCO file for ``predict --boxes=<file.json>`` (:func:`boxes_of`),
so that predict crops each image as the ``coco_keypoints`` build did.

``coco_keypoints.json`` in predict's ``--out`` holds, for the predicted
images:

* ``images``: ``id``, ``file_name``, ``width``, ``height``. An image of the
  run's own dataset (built with ``--dataset=coco_keypoints``) keeps its
  COCO ``id`` and ``file_name`` as given in the file it was built from,
  matched by path: the dataset's ``file_name`` that ends the predicted
  path (else the same base name, when only one image has it). Other images
  get new ids above the dataset's and their path as given to predict.
* ``annotations``: one per image: ``keypoints`` ``[x, y, 2, ...]`` in the
  original image's pixels (COCO's keypoint coordinates are pixel indices,
  as predict's), ``v = 2`` (labelled, visible) for every keypoint;
  ``keypoint_scores`` (one per keypoint, in ``(0, 1]``), ``score`` (their
  mean), ``bbox`` (predict's box, else the keypoints' box) and ``area``,
  ``category_id``, ``num_keypoints``, ``iscrowd`` 0, and the predicted
  classes as ``attributes`` (``{head: class name}``, as CVAT reads them).
* ``categories``: the dataset's keypoint categories (``coco_categories``
  metadata), else one category named after the dataset with its landmark
  names (or ``"1"``, ``"2"``, ...) as keypoints.

**Keypoint scores**: ``exp(-d_k / (SCORE_SCALE * S))``, where ``d_k`` is
the keypoint's ELT disagreement (``elt_disagreement``; ``num_transforms``
transforms from the run's ELT ranges, in pixels of the ``S x S`` model
input): 1 for a keypoint the model moves exactly with the image, ``1/e``
at a disagreement of 5% of the input side. Low scores mark the keypoints
to check first.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

COCO_FILE = "coco_keypoints.json"
SCORE_SCALE = 0.05  # of the model input's side
NUM_TRANSFORMS = 8
CATEGORY_HEAD = "category"  # the class feature of several COCO categories


# --------------------------------------------------------------------------
# pure functions


def keypoint_scores(disagreement: np.ndarray, input_size: int) -> np.ndarray:
  """Per-keypoint scores in ``(0, 1]`` from ELT disagreements in model-input
  pixels (module docstring)."""
  d = np.asarray(disagreement, np.float64)
  return np.exp(-np.maximum(d, 0.0) / (SCORE_SCALE * float(input_size)))


def match_images(paths: Sequence[str],
                 known: Mapping[str, Mapping[str, Any]] | None
                 ) -> list[tuple[int, str]]:
  """``(image id, file_name)`` of each predicted path (module docstring).

  Args:
    paths: the files as given to predict.
    known: the dataset's ``coco_images`` metadata, ``{file_name: {"id",
      ...}}``, or None.
  """
  known = dict(known or {})
  by_base: dict[str, list[str]] = {}
  for name in known:
    by_base.setdefault(os.path.basename(name), []).append(name)
  next_id = max([int(v["id"]) for v in known.values()] + [0]) + 1
  out, used = [], {}
  for path in paths:
    parts = os.path.normpath(path).split(os.sep)
    found = None
    for name in sorted(known, key=len, reverse=True):
      tail = os.path.normpath(name).split(os.sep)
      if parts[-len(tail):] == tail:
        found = name
        break
    if found is None and len(by_base.get(os.path.basename(path), [])) == 1:
      found = by_base[os.path.basename(path)][0]
    if found is not None and found not in used:
      used[found] = path
      out.append((int(known[found]["id"]), found))
    else:
      out.append((next_id, path))
      next_id += 1
  return out


def boxes_of(coco: Mapping) -> dict[str, tuple[float, float, float, float]]:
  """``predict --boxes`` of a COCO keypoints file: each image's first
  annotation's ``bbox`` ``[x, y, w, h]`` as the box ``(x, y, x + w, y + h)``
  the builder cropped around, keyed by the image's ``file_name`` and, when
  no other image has it, its base name. Images without a ``bbox`` get none
  (predict then sees the whole image, as the builder did).

  Raises:
    ValueError: a ``bbox`` that is not four numbers with width, height > 0.
  """
  names = {im.get("id"): im.get("file_name") for im in coco.get("images", [])
           if isinstance(im, Mapping)}
  out: dict = {}
  for ann in coco.get("annotations", []):
    if not isinstance(ann, Mapping) or not ann.get("bbox"):
      continue
    name = names.get(ann.get("image_id"))
    if not isinstance(name, str) or name in out:
      continue
    bbox = ann["bbox"]
    try:
      x, y, w, h = (float(v) for v in bbox)
      usable = w > 0 and h > 0 and math.isfinite(x + y + w + h)
    except (TypeError, ValueError):
      usable = False
    if not usable:
      raise ValueError(
          f"annotation {ann.get('id')!r} of image {name!r} has the bbox "
          f"{bbox!r}; a COCO bbox is [x, y, width, height] in pixels, with "
          "width and height > 0.")
    out[name] = (x, y, x + w, y + h)
  bases: dict[str, list[str]] = {}
  for name in names.values():
    if isinstance(name, str):
      bases.setdefault(os.path.basename(name), []).append(name)
  for base, full in bases.items():
    if len(full) == 1 and full[0] in out and base not in out:
      out[base] = out[full[0]]
  return out


def categories(metadata: Mapping | None, landmark_names: Sequence[str],
               num_landmarks: int, dataset: str) -> list[dict]:
  """The ``categories`` of the file (module docstring)."""
  stored = list((metadata or {}).get("coco_categories") or [])
  if stored:
    return [dict(c) for c in stored]
  names = list(landmark_names) or [str(k + 1) for k in range(num_landmarks)]
  return [{"id": 1, "name": str(dataset).replace("/", "_"),
           "supercategory": "", "keypoints": names, "skeleton": []}]


def annotation(ann_id: int, image_id: int, category_id: int,
               landmarks: np.ndarray, scores: np.ndarray,
               box: Sequence[float] | None,
               classes: Mapping[str, str] | None = None) -> dict:
  """One COCO annotation of predicted ``(K, 2)`` landmarks."""
  pts = np.asarray(landmarks, np.float64)
  keypoints = []
  for x, y in pts:
    keypoints += [round(float(x), 2), round(float(y), 2), 2]
  if box is None:
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
  else:
    x0, y0, x1, y1 = (float(v) for v in box)
  w, h = float(x1 - x0), float(y1 - y0)
  out = {"id": int(ann_id), "image_id": int(image_id),
         "category_id": int(category_id), "keypoints": keypoints,
         "num_keypoints": int(len(pts)),
         "keypoint_scores": [round(float(s), 4) for s in scores],
         "score": round(float(np.mean(scores)), 4),
         "bbox": [round(float(x0), 2), round(float(y0), 2), round(w, 2),
                  round(h, 2)],
         "area": round(w * h, 2), "iscrowd": 0}
  if classes:
    out["attributes"] = dict(classes)
  return out


def document(result: Mapping, scores: Sequence[np.ndarray],
             cats: Sequence[Mapping], known: Mapping | None) -> dict:
  """The COCO file of predict's ``result`` (``landmarks.json`` content)
  with ``scores`` per image."""
  records = list(result["images"])
  ids = match_images([r["file"] for r in records], known)
  by_name = {str(c.get("name")): c["id"] for c in cats}
  images, annotations = [], []
  for i, (record, (image_id, file_name)) in enumerate(zip(records, ids)):
    images.append({"id": image_id, "file_name": file_name,
                   "width": int(record["width"]),
                   "height": int(record["height"])})
    classes = {head: c["label"]
               for head, c in (record.get("classes") or {}).items()}
    category = by_name.get(classes.get(CATEGORY_HEAD), cats[0]["id"])
    annotations.append(annotation(i + 1, image_id, category,
                                  np.asarray(record["landmarks"]), scores[i],
                                  record.get("box"), classes))
  return {
      "info": {"description": f"landmark_ssl predictions of the run in "
                              f"{result.get('workdir')} (checkpoint step "
                              f"{result.get('step')}); keypoint_scores: ELT "
                              "consistency, low = check first"},
      "images": images, "annotations": annotations,
      "categories": [dict(c) for c in cats],
  }


# --------------------------------------------------------------------------
# orchestration


def disagreements(predictor, records: Sequence[Mapping],
                  read_input: Callable[[Mapping], np.ndarray],
                  num_transforms: int = NUM_TRANSFORMS, seed: int = 0
                  ) -> list[np.ndarray]:
  """``(K,)`` ELT disagreement (model-input pixels) of each predicted image.

  Args:
    predictor: ``predict.Predictor``.
    records: ``landmarks.json`` images.
    read_input: a record -> its ``(S, S, C)`` model input (predict reads
      the file again and crops it with the record's ``crop``).
    num_transforms: transforms per image (from the run's ELT ranges).
    seed: seed of the transforms.
  """
  from landmark_ssl import elt_disagreement  # pylint: disable=g-import-not-at-top
  size = predictor.size
  transforms = elt_disagreement.draw_transforms(
      seed, num_transforms, elt_disagreement.ranges_of(predictor.run.config),
      (size, size))
  predict_fn = lambda x: predictor.predict(x)["landmarks"]
  out = []
  for start in range(0, len(records), predictor.batch_size):
    chunk = records[start:start + predictor.batch_size]
    inputs = np.stack([read_input(r) for r in chunk]).astype(np.float32)
    out.extend(elt_disagreement.keypoint_disagreement(predict_fn, inputs,
                                                      transforms))
  return out


def write_coco(predictor, result: Mapping, out_dir: str,
               read_input: Callable[[Mapping], np.ndarray],
               num_transforms: int = NUM_TRANSFORMS) -> str:
  """Writes ``coco_keypoints.json`` of predict's ``result`` in ``out_dir``;
  returns its path (``read_input``: see :func:`disagreements`)."""
  from landmark_ssl import input_pipeline  # pylint: disable=g-import-not-at-top
  run = predictor.run
  metadata = input_pipeline.open_dataset(run.config.data).info.metadata or {}
  cats = categories(metadata, run.info.landmark_names,
                    run.info.num_landmarks, run.config.data.name)
  d = disagreements(predictor, result["images"], read_input, num_transforms)
  scores = [keypoint_scores(x, predictor.size) for x in d]
  doc = document(result, scores, cats, metadata.get("coco_images"))
  path = os.path.join(out_dir, COCO_FILE)
  with open(path, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
  return path
