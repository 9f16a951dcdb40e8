"""A COCO keypoints file (and an optional class table) read and checked into
the examples a ``coco_keypoints`` build writes.

Pure functions over the parsed JSON and CSV; the only I/O is reading those
two files (:func:`read_json`, :func:`read_class_table`) and the size of
each image through the ``image_size`` function the caller passes to
:func:`collect_examples`.

**The COCO fields read** (the keypoints format CVAT, Label Studio and
mmpose export):

* ``categories``: those with a non-empty ``keypoints`` list are the keypoint
  categories; they must all list the same keypoint names, which become the
  landmark names (in their order). Other categories are ignored.
* ``images``: ``id`` (integer), ``file_name`` (relative to the manual
  folder), optional ``width`` / ``height`` (checked against the file) and
  optional ``split``.
* ``annotations``: ``id``, ``image_id``, ``category_id``, optional
  ``keypoints`` (``[x1, y1, v1, x2, y2, v2, ...]``), optional ``bbox``
  (``[x, y, width, height]``), optional ``iscrowd``.

**Coordinates.** COCO keypoints are pixel indices (pixel centres at integer
coordinates, as this project's convention), so they are used as they are.
A ``bbox`` ``[x, y, w, h]`` is taken as the box ``x0, y0, x1, y1 = x, y,
x + w, y + h``: the numbers ``predict --box`` takes.

**Visibility.** ``v = 0`` is *not labelled* (``visible = 0``); ``v = 1``
(labelled, occluded) and ``v = 2`` (labelled, visible) are annotated
(``visible = 1``), as COCO defines them.

**One example per annotation**, cropped around its ``bbox`` (or around its
labelled keypoints when it has no ``bbox``). An annotation without a
labelled keypoint (no ``keypoints`` or all ``v = 0``) is an *unlabelled*
example: a training image with ``has_landmarks = False`` that keeps its
class labels. An image without any annotation is one unlabelled example
of the whole image (the square ``predict`` uses without a box).

**Class features**, each a ``ClassLabel`` whose names are the sorted values:

* every column of the class table (a CSV with a key column ``image_id`` or
  ``file_name``, an optional ``split`` column, and one column per class
  feature, one row per image); every image needs a value in each;
* ``category`` (the annotation's COCO category name) when the file has two
  or more keypoint categories. COCO ``attributes`` are not read.

**Splits.** A ``split`` field of the image record or a ``split`` column of
the class table (``train``, ``validation`` or ``val``, ``test``) when the
data has one; then every image needs one. Otherwise a split by image, drawn
from a seed: ``validation_fraction`` and ``test_fraction`` of the images
with labelled keypoints go to ``validation`` and ``test``, the rest and
every unlabelled image to ``train``. Evaluation needs landmarks, so an
unlabelled example in ``validation`` or ``test`` is left out.

**Bad records** are left out of the build, never aborting it: each gets one
``manual_data.SkipLog`` warning that names the record (file, image or
annotation id) and the fix, and the build ends with one summary of the
counts per reason. Problems with the whole file (not JSON, no keypoint
category, categories with different keypoint names, a malformed class
table) are one ``ManualDataError`` before anything is written.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from data_builders import manual_data

SPLITS = ("train", "validation", "test")
SPLIT_NAMES = {"train": "train", "validation": "validation",
               "val": "validation", "test": "test"}
CATEGORY_FEATURE = "category"
# Feature names a class table column may not take (the stored features).
RESERVED_FEATURES = ("image", "landmarks", "visible", "normalizer", "crop",
                     "id", "has_landmarks", "image_id", "annotation_id",
                     "split")
KEY_COLUMNS = ("image_id", "file_name")
# How far (pixels) a bbox may reach past the image border: tools round boxes.
BOX_TOLERANCE = 1.0
FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The error normaliser: the crop box's diagonal, or two named keypoints.
BBOX_NORMALIZER = "bbox"

# SkipLog reasons (one per kind of bad record).
MALFORMED_IMAGE = "malformed image record"
DUPLICATE_IMAGE_ID = "duplicate image id"
MISSING_IMAGE = "image file missing"
UNREADABLE_IMAGE = "image file unreadable"
SIZE_MISMATCH = "image size differs from its record"
MALFORMED_ANNOTATION = "malformed annotation record"
DUPLICATE_ANNOTATION_ID = "duplicate annotation id"
UNKNOWN_IMAGE = "annotation of an unknown image id"
UNKNOWN_CATEGORY = "unknown category"
KEYPOINT_COUNT = "keypoint count differs from its category"
BAD_KEYPOINTS = "malformed keypoints"
BAD_BBOX = "malformed bbox"
BBOX_OUTSIDE = "bbox outside the image"
KEYPOINT_OUTSIDE = "keypoint outside the image"
CROWD = "crowd annotation"
NO_NORMALIZER = "a normaliser keypoint is not labelled"
ZERO_NORMALIZER = "the error normaliser is zero"
NO_CLASS = "no class label"
BAD_SPLIT = "unknown split"
NO_SPLIT = "no split"
SPLIT_CONFLICT = "split differs between the file and the class table"
UNLABELLED_IN_EVAL = "unlabelled example in an evaluation split"


@dataclasses.dataclass(frozen=True)
class Schema:
  """The keypoint categories of a COCO file.

  Attributes:
    landmark_names: the keypoint names, in the categories' order.
    categories: ``{category id: name}`` of the keypoint categories.
    records: the keypoint categories' records as given (for export).
  """
  landmark_names: tuple[str, ...]
  categories: Mapping[int, str]
  records: tuple[Mapping[str, Any], ...]

  @property
  def num_landmarks(self) -> int:
    return len(self.landmark_names)


@dataclasses.dataclass(frozen=True)
class ClassTable:
  """A class table (CSV): one row per image.

  Attributes:
    path: the file, for messages.
    key: ``'image_id'`` or ``'file_name'``: the column naming the image.
    columns: the class feature columns, in file order.
    rows: ``{key value: {column: value}}`` (empty cells are ``''``).
    splits: ``{key value: split as written}`` when it has a ``split``
      column, else empty.
  """
  path: str
  key: str
  columns: tuple[str, ...]
  rows: Mapping[str, Mapping[str, str]]
  splits: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Example:
  """One example to write.

  Attributes:
    key: unique ``'<image id>/<annotation id>'`` (``-1`` without one).
    image_id, annotation_id: the COCO ids (``annotation_id`` -1: an image
      without annotation).
    file_name: the image's ``file_name`` as given.
    path: the image file.
    size: ``(width, height)`` of the image file.
    box: ``(x0, y0, x1, y1)`` to crop around, or None for the whole image.
    landmarks: ``(K, 2)`` float64 original pixels (0 where not labelled).
    visible: ``(K,)`` float32, 1 = labelled (``v`` 1 or 2).
    labels: ``{class feature: class name}``.
    split: the split given for the image, or None.
    normalizer: the error normaliser in original pixels (module docstring
      of the builder: the box diagonal, or the named keypoints' distance).
  """
  key: str
  image_id: int
  annotation_id: int
  file_name: str
  path: str
  size: tuple[int, int]
  box: tuple[float, float, float, float] | None
  landmarks: np.ndarray
  visible: np.ndarray
  labels: Mapping[str, str]
  split: str | None
  normalizer: float

  @property
  def has_landmarks(self) -> bool:
    return bool(np.any(self.visible > 0))


# --------------------------------------------------------------------------
# whole-file reading and checks


def _file_error(path, problem: str, fix: str) -> manual_data.ManualDataError:
  return manual_data.ManualDataError(f"{path}: {problem}. {fix}")


def read_json(path: str | os.PathLike) -> dict:
  """The COCO file as a dict with ``images``, ``annotations``, ``categories``
  lists.

  Raises:
    ManualDataError: missing file, not JSON, or a missing top-level list.
  """
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except FileNotFoundError:
    raise _file_error(path, "no such file", "Pass the COCO keypoints JSON "
                      "file exported by your annotation tool as "
                      "--annotations.") from None
  except (OSError, UnicodeDecodeError) as e:
    raise _file_error(path, f"cannot read it ({e})",
                      "Check the file's permissions and encoding (UTF-8)."
                      ) from None
  except json.JSONDecodeError as e:
    raise _file_error(path, f"not valid JSON (line {e.lineno}, column "
                      f"{e.colno}: {e.msg})", "Export it again as COCO "
                      "keypoints JSON.") from None
  if not isinstance(data, dict):
    raise _file_error(path, "the top level is not a JSON object",
                      'A COCO file is {"images": [...], "annotations": '
                      '[...], "categories": [...]}.')
  for key in ("images", "annotations", "categories"):
    if key not in data or not isinstance(data[key], list):
      raise _file_error(path, f"no '{key}' list", 'A COCO keypoints file has '
                        '"images", "annotations" and "categories" lists; '
                        "export it again as COCO keypoints.")
  return data


def keypoint_schema(coco: Mapping, path: str | os.PathLike) -> Schema:
  """The keypoint categories of ``coco`` (module docstring).

  Raises:
    ManualDataError: no category with keypoints, or keypoint categories
      whose keypoint names differ, or a malformed category record.
  """
  records, lists = [], {}
  for number, cat in enumerate(coco["categories"]):
    if not isinstance(cat, Mapping) or not isinstance(cat.get("id"), int):
      raise _file_error(path, f"category #{number + 1} has no integer 'id' "
                        f"({str(cat)[:80]})", "Fix the category record.")
    names = cat.get("keypoints")
    if not names:
      continue
    if (not isinstance(names, list) or
        not all(isinstance(n, str) and n for n in names)):
      raise _file_error(path, f"category id {cat['id']} has keypoints "
                        f"{str(names)[:80]}", "'keypoints' must be a list of "
                        "non-empty names.")
    if len(set(names)) != len(names):
      raise _file_error(path, f"category id {cat['id']} names a keypoint "
                        "twice", "Give every keypoint its own name.")
    records.append(dict(cat))
    lists[cat["id"]] = tuple(names)
  if not records:
    raise _file_error(path, "no category has a 'keypoints' list",
                      "This is not a COCO keypoints file: export the "
                      "keypoints (not boxes or masks) from your annotation "
                      "tool.")
  distinct = sorted(set(lists.values()))
  if len(distinct) > 1:
    rows = "\n".join(f"  category id {i} ({next(c.get('name') for c in records if c['id'] == i)!r}): "
                     f"{list(names)}" for i, names in sorted(lists.items()))
    raise _file_error(path, "its keypoint categories list different "
                      f"keypoints:\n{rows}\n", "One dataset has one set of "
                      "landmarks: split the file per category and build a "
                      "dataset of each (--name).")
  ids = [r["id"] for r in records]
  if len(set(ids)) != len(ids):
    raise _file_error(path, "two keypoint categories share an id",
                      "Give every category its own id.")
  return Schema(landmark_names=distinct[0],
                categories={r["id"]: str(r.get("name", r["id"]))
                            for r in records},
                records=tuple(records))


def read_class_table(path: str | os.PathLike) -> ClassTable:
  """Reads the class table CSV (module docstring).

  Raises:
    ManualDataError: missing file, no key column, no class column, a
      column whose name cannot be a feature, or an image listed twice.
  """
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      rows = list(csv.reader(f))
  except FileNotFoundError:
    raise _file_error(path, "no such file", "Pass the class table CSV as "
                      "--classes, or leave the flag out.") from None
  except (OSError, UnicodeDecodeError) as e:
    raise _file_error(path, f"cannot read it ({e})", "Save it as UTF-8 CSV."
                      ) from None
  rows = [r for r in rows if any(cell.strip() for cell in r)]
  if not rows:
    raise _file_error(path, "it is empty", "Give a header row (image_id or "
                      "file_name, then one column per class feature) and one "
                      "row per image.")
  header = [h.strip() for h in rows[0]]
  keys = [k for k in KEY_COLUMNS if k in header]
  if len(keys) != 1:
    raise _file_error(path, f"its header {header} has "
                      f"{'both' if keys else 'neither'} of the key columns "
                      f"{list(KEY_COLUMNS)}", "Name each image by exactly one "
                      "of them: 'image_id' (the COCO image id) or 'file_name'.")
  key = keys[0]
  columns = [h for h in header if h not in (key, "split")]
  if not columns and "split" not in header:
    raise _file_error(path, "it has no class column",
                      "Add one column per class feature (e.g. 'species').")
  for col in columns:
    if not FEATURE_NAME.match(col) or col in RESERVED_FEATURES:
      raise _file_error(path, f"column {col!r} cannot be a class feature "
                        f"(names are letters, digits and _, not one of "
                        f"{list(RESERVED_FEATURES)})", "Rename the column.")
  if len(set(header)) != len(header):
    raise _file_error(path, "its header names a column twice",
                      "Give every column its own name.")
  table, splits = {}, {}
  for line, row in enumerate(rows[1:], 2):
    if len(row) != len(header):
      raise _file_error(path, f"line {line} has {len(row)} cells, the header "
                        f"{len(header)}", "Give every row one cell per "
                        "column (an empty cell is allowed but skips that "
                        "image).")
    cells = {h: c.strip() for h, c in zip(header, row)}
    name = cells[key]
    if name in table:
      raise _file_error(path, f"line {line}: {key} {name!r} is listed twice",
                        "Keep one row per image.")
    table[name] = {c: cells[c] for c in columns}
    if "split" in cells:
      splits[name] = cells["split"]
  return ClassTable(str(path), key, tuple(columns), table, splits)


def class_feature_names(schema: Schema, table: ClassTable | None
                        ) -> tuple[str, ...]:
  """The class features of a build, sorted (module docstring).

  Raises:
    ManualDataError: a class table column named ``category`` while the
      file's categories are a class feature too.
  """
  names = list(table.columns) if table else []
  if len(schema.categories) > 1:
    if CATEGORY_FEATURE in names:
      raise _file_error(table.path, f"column {CATEGORY_FEATURE!r} clashes "
                        "with the class feature of the COCO categories",
                        "Rename the column.")
    names.append(CATEGORY_FEATURE)
  return tuple(sorted(names))


def normalizer_pair(normalizer: str, schema: Schema) -> tuple[int, int] | None:
  """``None`` for the bbox diagonal, else the 0-based indices of the two
  named keypoints of ``'name_a,name_b'``.

  Raises:
    ValueError: not ``'bbox'`` nor two distinct keypoint names.
  """
  if normalizer == BBOX_NORMALIZER:
    return None
  parts = [p.strip() for p in str(normalizer).split(",")]
  names = list(schema.landmark_names)
  if len(parts) != 2 or parts[0] == parts[1] or any(p not in names
                                                    for p in parts):
    raise ValueError(
        f"--normalizer={normalizer!r}: give 'bbox' (the box diagonal) or two "
        f"different keypoint names separated by a comma, from {names}.")
  return names.index(parts[0]), names.index(parts[1])


# --------------------------------------------------------------------------
# one record at a time


def parse_keypoints(values: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
  """``[x1, y1, v1, ...]`` -> ``(landmarks (K, 2), visible (K,))``.

  Raises:
    ValueError: the count is not ``3 K`` (the message starts with
      ``'count'``), or a value is not a finite number or ``v`` not 0, 1, 2.
  """
  if not isinstance(values, list):
    raise ValueError(f"keypoints is {type(values).__name__}, not a list")
  if len(values) != 3 * k:
    raise ValueError(f"count: {len(values)} numbers ({len(values) / 3:g} "
                     f"keypoints), its category has {k} ({3 * k} numbers)")
  try:
    arr = np.asarray(values, np.float64).reshape(k, 3)
  except (TypeError, ValueError):
    raise ValueError("a keypoint value is not a number") from None
  if not np.isfinite(arr).all():
    raise ValueError("a keypoint value is not finite")
  v = arr[:, 2]
  if not np.isin(v, (0, 1, 2)).all():
    raise ValueError(f"visibility values {sorted(set(v.tolist()))}; COCO's "
                     "are 0 (not labelled), 1 (occluded) and 2 (visible)")
  visible = (v > 0).astype(np.float32)
  landmarks = np.where(visible[:, None] > 0, arr[:, :2], 0.0)
  return landmarks, visible


def parse_bbox(values: Any) -> tuple[float, float, float, float]:
  """``[x, y, w, h]`` -> ``(x0, y0, x1, y1)``.

  Raises:
    ValueError: not four finite numbers with positive width and height.
  """
  try:
    x, y, w, h = (float(v) for v in values)
  except (TypeError, ValueError):
    raise ValueError(f"bbox {str(values)[:60]} is not [x, y, width, height]"
                     ) from None
  if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
    raise ValueError(f"bbox {values} needs finite numbers and a positive "
                     "width and height")
  return x, y, x + w, y + h


def box_inside(box: Sequence[float], size: tuple[int, int],
               tolerance: float = BOX_TOLERANCE) -> bool:
  """Whether ``(x0, y0, x1, y1)`` lies in a ``(width, height)`` image."""
  x0, y0, x1, y1 = box
  w, h = size
  return (x0 >= -tolerance and y0 >= -tolerance and x1 <= w + tolerance and
          y1 <= h + tolerance)


def points_inside(landmarks: np.ndarray, visible: np.ndarray,
                  size: tuple[int, int]) -> np.ndarray:
  """``(K,)`` bool: labelled keypoints inside the image (pixel centres
  ``0 .. W - 1``, half a pixel of slack to the edges), True where not
  labelled."""
  w, h = size
  x, y = landmarks[:, 0], landmarks[:, 1]
  inside = (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
  return inside | (visible <= 0)


def split_of(value: Any) -> str | None:
  """The split of a written value (``'val'`` -> ``'validation'``), None if
  unknown."""
  return SPLIT_NAMES.get(str(value).strip().lower())


# --------------------------------------------------------------------------
# the whole file


def _key(value: Any) -> Any:
  """A record's id as a dict key (ids of malformed records may be lists)."""
  return value if isinstance(value, (int, str, type(None))) else repr(value)


def _counts(records: Sequence) -> dict:
  """``{id: number of records with it}``."""
  out: dict = {}
  for r in records:
    if isinstance(r, Mapping):
      out[_key(r.get("id"))] = out.get(_key(r.get("id")), 0) + 1
  return out


def box_diagonal(box: Sequence[float] | None, size: tuple[int, int]) -> float:
  """Diagonal of ``(x0, y0, x1, y1)``, or of the whole ``(w, h)`` image."""
  if box is None:
    return float(math.hypot(*size))
  x0, y0, x1, y1 = box
  return float(math.hypot(x1 - x0, y1 - y0))


@dataclasses.dataclass(frozen=True)
class _Image:
  """A usable image record."""
  image_id: int
  file_name: str
  path: str
  size: tuple[int, int]
  labels: Mapping[str, str]
  split: str | None
  label: str  # how messages name it


def _check_image(image: Any, number: int, path, table: ClassTable | None,
                 root, image_size, has_split: bool, counts: Mapping
                 ) -> _Image | tuple[str, str]:
  """The usable image of a record, or ``(reason, detail)`` to skip it."""
  if not isinstance(image, Mapping):
    return MALFORMED_IMAGE, "an image record is a JSON object; fix or remove it"
  image_id, file_name = image.get("id"), image.get("file_name")
  if (not isinstance(image_id, int) or isinstance(image_id, bool) or
      not isinstance(file_name, str) or not file_name):
    return MALFORMED_IMAGE, "give it an integer 'id' and a 'file_name'"
  if counts[image_id] > 1:
    return DUPLICATE_IMAGE_ID, (
        f"{counts[image_id]} image records have id {image_id}; give each "
        "image its own id (its annotations are left out too)")
  file_path = os.path.join(os.fspath(root), file_name)
  try:
    size = tuple(int(v) for v in image_size(file_path))
  except FileNotFoundError:
    return MISSING_IMAGE, (f"expected at {file_path}; put the image there or "
                           "fix its file_name")
  except (OSError, ValueError) as e:
    return UNREADABLE_IMAGE, (f"{file_path} cannot be decoded ({e}); export "
                              "the image again")
  given = (image.get("width"), image.get("height"))
  if all(v is not None for v in given) and tuple(given) != size:
    return SIZE_MISMATCH, (
        f"the record says {given[0]}x{given[1]}, the file is {size[0]}x"
        f"{size[1]}; fix width and height or export the image again")
  split = None
  if has_split:
    split, problem = _split_for(image, table, file_name)
    if problem:
      return problem
  labels = {}
  if table is not None:
    row = table.rows.get(str(image_id) if table.key == "image_id"
                         else file_name)
    missing = [c for c in table.columns if not (row or {}).get(c)]
    if missing:
      where = ("has no row" if row is None else
               f"has no value in column(s) {missing}")
      return NO_CLASS, (f"{table.path} {where} for it; give it its class "
                        "label(s)")
    labels = {c: row[c] for c in table.columns}
  return _Image(image_id, file_name, file_path, size, labels, split,
                _image_label(path, image))


def _check_annotation(ann: Mapping, img: _Image, schema: Schema,
                      normalizer: tuple[int, int] | None,
                      features: Sequence[str]) -> Example | tuple[str, str]:
  """The example of an annotation of a usable image, or ``(reason,
  detail)`` to skip it."""
  k = schema.num_landmarks
  category = ann.get("category_id")
  if category not in schema.categories:
    return UNKNOWN_CATEGORY, (
        f"category_id {category!r} is not one of the keypoint categories "
        f"{sorted(schema.categories)}; fix its category_id or add the "
        "category with its keypoints")
  if ann.get("iscrowd"):
    return CROWD, ("a crowd region has no single object's keypoints; nothing "
                   "to fix if that is intended")
  if ann.get("keypoints") in (None, []):
    landmarks, visible = np.zeros((k, 2)), np.zeros((k,), np.float32)
  else:
    try:
      landmarks, visible = parse_keypoints(ann["keypoints"], k)
    except ValueError as e:
      return (KEYPOINT_COUNT if str(e).startswith("count") else BAD_KEYPOINTS,
              f"{e}; give {k} (x, y, v) triplets in the order "
              f"{list(schema.landmark_names)}")
  w, h = img.size
  box = None
  if ann.get("bbox") not in (None, []):
    try:
      box = parse_bbox(ann["bbox"])
    except ValueError as e:
      return BAD_BBOX, f"{e}; fix it or remove the bbox"
    if not box_inside(box, img.size):
      return BBOX_OUTSIDE, (f"bbox {ann['bbox']} reaches past the {w}x{h} "
                            "image; clip it to the image")
  outside = ~points_inside(landmarks, visible, img.size)
  if outside.any():
    names = [schema.landmark_names[i] for i in np.flatnonzero(outside)]
    return KEYPOINT_OUTSIDE, (f"keypoint(s) {names} lie outside the {w}x{h} "
                              "image; move them inside or set v = 0")
  labelled = bool(visible.any())
  if box is None and labelled:
    pts = landmarks[visible > 0]
    box = (*pts.min(0), *pts.max(0))
  norm = box_diagonal(box, img.size)
  if labelled and normalizer is not None:
    names = [schema.landmark_names[i] for i in normalizer]
    if not all(visible[i] > 0 for i in normalizer):
      return NO_NORMALIZER, (f"the error normaliser needs {names}; label both "
                             "or build with --normalizer=bbox")
    norm = float(np.linalg.norm(landmarks[normalizer[0]] -
                                landmarks[normalizer[1]]))
  if labelled and not norm > 0:
    return ZERO_NORMALIZER, (
        "its normaliser (the bbox diagonal, or the distance of the "
        "--normalizer keypoints) is 0; give it a bbox or fix the keypoints")
  labels = dict(img.labels)
  if CATEGORY_FEATURE in features:
    labels[CATEGORY_FEATURE] = schema.categories[category]
  return Example(
      key=f"{img.image_id}/{ann['id']}", image_id=img.image_id,
      annotation_id=int(ann["id"]), file_name=img.file_name, path=img.path,
      size=img.size, box=box, landmarks=np.asarray(landmarks, np.float64),
      visible=np.asarray(visible, np.float32), labels=labels,
      split=img.split, normalizer=norm)


def _image_label(path, image: Mapping) -> str:
  return f"{path}, image id {image.get('id')} ({image.get('file_name')})"


def collect_examples(coco: Mapping, path: str | os.PathLike, schema: Schema,
                     table: ClassTable | None, root: str | os.PathLike,
                     image_size: Callable[[str], tuple[int, int]],
                     normalizer: tuple[int, int] | None,
                     skips: manual_data.SkipLog) -> list[Example]:
  """Every usable example of the file; bad records go to ``skips``.

  Args:
    coco: from :func:`read_json`.
    path: the COCO file, for messages.
    schema: from :func:`keypoint_schema`.
    table: the class table, or None.
    root: the folder ``file_name`` is relative to (the manual folder).
    image_size: ``path -> (width, height)`` of an image file; raises
      ``FileNotFoundError`` for a missing file, ``OSError`` / ``ValueError``
      for one that cannot be decoded.
    normalizer: from :func:`normalizer_pair`.
    skips: where left-out records are reported.

  Returns:
    The examples, grouped by image in the file's image order.
  """
  k = schema.num_landmarks
  features = class_feature_names(schema, table)
  counts = _counts(coco["images"])
  has_split = any(isinstance(im, Mapping) and im.get("split") not in (None, "")
                  for im in coco["images"]) or bool(table and table.splits)
  images: dict[int, _Image] = {}
  reported: set = set()  # ids of skipped images: their annotations go too
  for number, record in enumerate(coco["images"]):
    checked = _check_image(record, number, path, table, root, image_size,
                           has_split, counts)
    if isinstance(checked, _Image):
      images[checked.image_id] = checked
      continue
    label = (_image_label(path, record) if isinstance(record, Mapping)
             else f"{path}, image record #{number + 1}")
    skips.skip(label, *checked)
    if isinstance(record, Mapping):
      reported.add(_key(record.get("id")))

  per_image: dict[int, list[Example]] = {i: [] for i in images}
  annotated: set = set()
  ann_counts = _counts(coco["annotations"])
  for number, ann in enumerate(coco["annotations"]):
    if (not isinstance(ann, Mapping) or not isinstance(ann.get("id"), int)
        or isinstance(ann.get("id"), bool)):
      skips.skip(f"{path}, annotation record #{number + 1}",
                 MALFORMED_ANNOTATION, "an annotation is a JSON object with "
                 "an integer 'id'; fix or remove it")
      continue
    where = (f"{path}, annotation id {ann['id']} (image id "
             f"{ann.get('image_id')})")
    image_id = _key(ann.get("image_id"))
    annotated.add(image_id)
    if image_id in reported:
      continue  # its image was reported
    if image_id not in images:
      skips.skip(where, UNKNOWN_IMAGE, f"no image record has id {image_id}; "
                 "fix its image_id or add the image")
      continue
    if ann_counts[ann["id"]] > 1:
      skips.skip(where, DUPLICATE_ANNOTATION_ID,
                 f"{ann_counts[ann['id']]} annotations have id {ann['id']}; "
                 "give each annotation its own id")
      continue
    checked = _check_annotation(ann, images[image_id], schema, normalizer,
                                features)
    if isinstance(checked, Example):
      per_image[image_id].append(checked)
    else:
      skips.skip(where, *checked)

  out = []
  for image_id, img in images.items():
    if image_id not in annotated:  # unlabelled: the whole image
      if CATEGORY_FEATURE in features:
        skips.skip(img.label, NO_CLASS, "it has no annotation, so no "
                   "category; annotate it (keypoints may stay v = 0)")
        continue
      per_image[image_id].append(Example(
          key=f"{image_id}/-1", image_id=image_id, annotation_id=-1,
          file_name=img.file_name, path=img.path, size=img.size, box=None,
          landmarks=np.zeros((k, 2)), visible=np.zeros((k,), np.float32),
          labels=dict(img.labels), split=img.split,
          normalizer=box_diagonal(None, img.size)))
    out.extend(per_image[image_id])
  return out


def _split_for(image: Mapping, table: ClassTable | None, file_name: str):
  """``(split, None)`` or ``(None, (reason, detail))`` for one image."""
  given = []
  if image.get("split") not in (None, ""):
    given.append(("its 'split' field", image["split"]))
  if table is not None and table.splits:
    key = str(image["id"]) if table.key == "image_id" else file_name
    value = table.splits.get(key, "")
    if value:
      given.append((f"the 'split' column of {table.path}", value))
  if not given:
    return None, (NO_SPLIT, "other images have a split, so every image needs "
                  "one: give it 'train', 'validation' or 'test'")
  splits = [split_of(v) for _, v in given]
  for (where, value), split in zip(given, splits):
    if split is None:
      return None, (BAD_SPLIT, f"{where} is {value!r}; use 'train', "
                    "'validation' (or 'val') or 'test'")
  if len(set(splits)) > 1:
    return None, (SPLIT_CONFLICT, " and ".join(
        f"{w} says {v!r}" for w, v in given) + "; make them agree")
  return splits[0], None


def assign_splits(examples: Sequence[Example], validation_fraction: float,
                  test_fraction: float, seed: int,
                  skips: manual_data.SkipLog, path: str | os.PathLike
                  ) -> dict[str, list[Example]]:
  """``{split: examples}`` (module docstring: given splits, else a seeded
  split by image of the images with labelled keypoints).

  Unlabelled examples that land in ``validation`` or ``test`` are reported
  to ``skips`` and left out.
  """
  given = any(ex.split is not None for ex in examples)
  if given:
    split_of_image = {ex.image_id: ex.split for ex in examples}
  else:
    labelled = sorted({ex.image_id for ex in examples if ex.has_landmarks})
    rng = np.random.default_rng(int(seed))
    order = [labelled[i] for i in rng.permutation(len(labelled))]
    n_val = _share(validation_fraction, len(order))
    n_test = _share(test_fraction, len(order))
    split_of_image = {i: "train" for i in {ex.image_id for ex in examples}}
    split_of_image.update({i: "validation" for i in order[:n_val]})
    split_of_image.update({i: "test" for i in order[n_val:n_val + n_test]})
  out = {split: [] for split in SPLITS}
  for ex in examples:
    split = split_of_image[ex.image_id]
    if split != "train" and not ex.has_landmarks:
      skips.skip(f"{path}, annotation id {ex.annotation_id} (image id "
                 f"{ex.image_id}, {ex.file_name})" if ex.annotation_id >= 0
                 else f"{path}, image id {ex.image_id} ({ex.file_name})",
                 UNLABELLED_IN_EVAL,
                 f"it is in '{split}', where errors are measured; label its "
                 "keypoints or move the image to 'train'")
      continue
    out[split].append(ex)
  return out


def _share(fraction: float, n: int) -> int:
  """Images of ``n`` for a held-out split: ``round(fraction n)``, at least
  one when the fraction is positive."""
  if fraction <= 0 or n == 0:
    return 0
  return max(1, int(round(fraction * n)))
