r"""Landmarks of new images with a trained run.

  python -m landmark_ssl.predict --workdir=RUN --images=a.jpg,b.png --out=DIR \
      [--box=x0,y0,x1,y1 | --boxes=boxes.json | --boxes=boxes.csv] \
      [--batch_size=32] [--step=N] [--data_dir=DIR] [--format=coco] \
      [--max_pixels=N] [more images ...]

``--images`` takes comma-separated files or folders (a folder stands for
its ``.jpg``, ``.jpeg``, ``.png``, ``.bmp``, ``.gif``, ``.tif`` and ``.tiff``
files, sorted); image paths after the flags are added (shell globs work).

For each image, as the training data was prepared:

1. read with PIL and converted to the stored format (grey ``L`` as the
   builders do, or RGB for a 3-channel dataset); no EXIF rotation, so pixel
   coordinates are those of the file as stored;
2. cropped to a square and resized to the model's input (the stored image
   size of the run's dataset) with ``data_builders.crop``:

   * with a **box** ``x0,y0,x1,y1`` (original pixels; ``--box`` for every
     image, ``--boxes`` per image): the box is taken as the bounding box of
     the landmarks, and the square the builder would crop around such
     landmarks is used: centred on the box, side = longer side of the box
     times the dataset's ``enlarge`` (HGR1 1.5, Multi-PIE and 300W 1.3).
     For Shapes / Blocks, whose stored image is the whole original, the box
     is the square region the model should see (``enlarge`` 1). A face
     detector's box is usually larger than the landmarks' box: shrink it
     first for the best results;
   * without a box: the whole image, centred on a square of side
     ``max(width, height)`` (zero padding on the short side);

3. run through the best checkpoint (or ``--step``) in batches of
   ``--batch_size`` (one compilation);
4. the landmarks are mapped back with the inverse of the crop affine
   (``geometry.invert_affine``, ``geometry.transform_points``).

Outputs in ``--out``:

* ``landmarks.json``: the run, its checkpoint step, and per image ``file``,
  ``width``, ``height``, ``box`` (or null), ``crop`` (the ``(2, 3)`` affine
  original pixels -> model input pixels), ``landmarks`` ``[[x, y], ...]``
  in original pixels (0-based, pixel centres at integer coordinates:
  pixel ``[i, j]`` is ``x = j, y = i``), ``classes`` (models with class
  heads: per head the predicted ``label``, its ``index`` and the
  ``probabilities`` of every class) and ``overlay``; ``errors`` lists the
  images that failed;
  ``landmark_names`` gives one name per landmark when the dataset stores
  them (HGR1: ``"<category>/<type>"`` of its feature-point files), else
  null;
* ``landmarks.csv``: one row per image and landmark: ``file, landmark, name,
  x, y`` (``landmark`` 0-based; ``name`` empty without stored names);
* ``overlays/<image stem>.png``: the original image with the landmarks (orange),
  the box (dashed cyan) and the square the model saw (dotted yellow);
* with ``--format=coco``, ``coco_keypoints.json``: COCO keypoints with the
  image ids and file names of the run's dataset and a score per keypoint,
  to load into an annotation tool (``coco_export``).

An ``--out`` that already holds any of these files (an earlier prediction's,
or yours) is refused before anything runs, naming them, unless
``--overwrite``; other files there are left alone.

An image that cannot be read (missing, not an image, corrupt, or over
``--max_pixels`` pixels: a decompression bomb is refused before it is
decoded) or whose box is invalid or lies entirely outside it is reported
(the message names the file) and skipped; the others are processed. A box
that reaches outside its image is warned about (the crop is padded with
black there). Grey images of 16 bits (PNG, TIFF) are scaled to 8 bits
(65535 -> 255), not clipped. Exit status: 0 all images done, 1 some failed, 2 nothing
could run (no checkpoint in ``--workdir``, bad flags or boxes file, files
in ``--out`` without ``--overwrite``).

The run's dataset must be available at its ``config.data.data_dir`` (or
``--data_dir``): its metadata gives the input size, the crop enlargement
and the class names (Shapes / Blocks are built on demand).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
from typing import List, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np
from PIL import Image

from data_builders import crop as crop_lib

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff")
# Larger images are refused unread (--max_pixels): PIL's own limit.
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS
JSON_FILE = "landmarks.json"
CSV_FILE = "landmarks.csv"
OVERLAY_DIR = "overlays"

Box = tuple  # (x0, y0, x1, y1) in original pixels


class ImageError(ValueError):
  """One image cannot be processed (the message names the file)."""


# --------------------------------------------------------------------------
# pure functions


def parse_box(text: str | Sequence[float], where: str = "--box") -> Box:
  """``'x0,y0,x1,y1'`` (or 4 numbers) -> a checked box tuple."""
  parts = text.split(",") if isinstance(text, str) else list(text)
  try:
    box = tuple(float(v) for v in parts)
  except (TypeError, ValueError):
    box = ()
  if len(box) != 4 or not np.all(np.isfinite(box)):
    raise ValueError(f"{where}: {text!r} is not a box x0,y0,x1,y1 (four "
                     "numbers, original-image pixels).")
  x0, y0, x1, y1 = box
  if not (x1 > x0 and y1 > y0):
    raise ValueError(f"{where}: box {text!r} is empty; it needs x1 > x0 and "
                     "y1 > y0 (x0,y0 the top-left corner).")
  return box


def read_boxes(path: str) -> dict[str, Box]:
  """Boxes per image from a JSON or CSV file.

  JSON: ``{"<image path or file name>": [x0, y0, x1, y1], ...}``, or a
  COCO keypoints file (each image's first ``bbox``, by ``file_name`` and
  base name: ``coco_export.boxes_of``). CSV: a header ``file,x0,y0,x1,y1``
  and one row per image.

  Raises:
    ValueError: naming the file and what is wrong.
  """
  try:
    with open(path, newline="") as f:
      text = f.read()
  except OSError as e:
    raise ValueError(f"--boxes={path}: cannot read it ({e}).") from None
  out = {}
  if path.lower().endswith(".json"):
    try:
      data = json.loads(text)
    except ValueError as e:
      raise ValueError(f"--boxes={path} is not valid JSON ({e}).") from None
    if isinstance(data, dict) and {"images", "annotations"} <= set(data):
      from landmark_ssl import coco_export  # pylint: disable=g-import-not-at-top
      try:
        return coco_export.boxes_of(data)
      except ValueError as e:
        raise ValueError(f"--boxes={path}: {e}") from None
    if not isinstance(data, dict):
      raise ValueError(f"--boxes={path}: expected a JSON object "
                       '{"image.jpg": [x0, y0, x1, y1], ...}.')
    for key, value in data.items():
      out[str(key)] = parse_box(value, f"--boxes={path}, {key!r}")
    return out
  rows = list(csv.DictReader(text.splitlines()))
  needed = ("file", "x0", "y0", "x1", "y1")
  if not rows or any(k not in rows[0] for k in needed):
    raise ValueError(f"--boxes={path}: expected a CSV with the header "
                     f"{','.join(needed)} and one row per image (or a .json "
                     "file).")
  for number, row in enumerate(rows, 2):
    out[row["file"]] = parse_box([row[k] for k in needed[1:]],
                                 f"--boxes={path}, line {number}")
  return out


def check_images_exist(paths: Sequence[str]) -> None:
  """Raises ``ValueError`` if none of ``paths`` is a file (a path mistyped,
  or a pattern the shell did not expand because nothing matched it)."""
  if not any(os.path.isfile(p) for p in paths):
    shown = ", ".join(repr(p) for p in paths[:3]) + (
        ", ..." if len(paths) > 3 else "")
    raise ValueError(
        f"No image file found: {shown} " + ("is" if len(paths) == 1 else
                                             "are") +
        " not a file (a pattern such as photos/*.jpg reaches predict "
        "as it is when it matches nothing). Give existing files or "
        "folders.")


def check_boxes_match(boxes: Mapping[str, Box], paths: Sequence[str],
                      boxes_file: str) -> None:
  """Raises ``ValueError`` if ``boxes`` (read from ``boxes_file``) has the
  box of none of ``paths``; warns when some images have none."""
  missing = [p for p in paths if box_for(p, boxes) is None]
  if boxes and len(missing) == len(paths):
    raise ValueError(
        f"--boxes={boxes_file} has a box for none of the {len(paths)} "
        f"image(s): it names e.g. {next(iter(boxes))!r}, the first image "
        f"given is {paths[0]!r} (matched by the path as given, else by its "
        "file name). Give the boxes file of these images, or leave --boxes "
        "out to use each whole image.")
  if missing:
    logging.warning("--boxes=%s has no box for %d of %d image(s) (e.g. %s): "
                    "those are used whole.", boxes_file, len(missing),
                    len(paths), missing[0])


def box_for(path: str, boxes: Mapping[str, Box] | None) -> Box | None:
  """The box of ``path`` in ``boxes`` (by the path as given, else by its
  file name), or ``None``."""
  if not boxes:
    return None
  return boxes.get(path, boxes.get(os.path.basename(path)))


def input_square(width: int, height: int, box: Box | None,
                 enlarge: float) -> tuple[np.ndarray, float]:
  """``(centre (2,), side)`` of the square the model sees (module
  docstring): around the box enlarged as the builder enlarges the landmarks'
  box, else the whole image."""
  if box is None:
    return np.array([(width - 1) / 2.0, (height - 1) / 2.0]), float(
        max(width, height))
  x0, y0, x1, y1 = box
  return crop_lib.square_box(np.array([[x0, y0], [x1, y1]]), None, enlarge)


def input_affine(width: int, height: int, box: Box | None, enlarge: float,
                 size: int) -> np.ndarray:
  """``(2, 3)`` affine: original pixels -> pixels of the ``size x size``
  model input (``crop.crop_affine`` of :func:`input_square`)."""
  center, side = input_square(width, height, box, enlarge)
  return crop_lib.crop_affine(center, side, size)


def model_input(image: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
  """``(size, size, C) float32`` in [0, 1]: ``image`` (``(H, W)`` or
  ``(H, W, 3)`` uint8) warped by ``affine`` (``crop.warp_image``)."""
  out = crop_lib.warp_image(image, affine, size)
  if out.ndim == 2:
    out = out[..., None]
  return out.astype(np.float32) / np.float32(255.0)


def to_original(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
  """``(..., K, 2)`` model-input points -> original pixels, with the inverse
  of ``affine`` (``(..., 2, 3)``, original -> model input)."""
  from landmark_ssl import geometry  # pylint: disable=g-import-not-at-top
  inverse = geometry.invert_affine(np.asarray(affine, np.float32))
  return np.asarray(geometry.transform_points(
      np.asarray(points, np.float32), inverse), np.float64)


def softmax(logits: np.ndarray) -> np.ndarray:
  z = np.asarray(logits, np.float64)
  z = np.exp(z - z.max(axis=-1, keepdims=True))
  return z / z.sum(axis=-1, keepdims=True)


def load_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS
               ) -> Image.Image:
  """The decoded image file (PIL), with more than 8 bits per grey value
  scaled to 8 bits (:func:`to_8_bit`).

  Args:
    path: the image file.
    max_pixels: larger images are refused before they are decoded (a
      decompression bomb: a small file that decodes to gigabytes).

  Raises:
    ImageError: naming the file (missing, unreadable, not an image, over
      ``max_pixels``).
  """
  limit = Image.MAX_IMAGE_PIXELS
  try:
    # max_pixels replaces PIL's own limit (which raises above twice its
    # value, before the size can be reported).
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as img:
      width, height = img.size
      if width * height > max_pixels:
        raise ImageError(
            f"{path}: {width}x{height} = {width * height} pixels, over "
            f"--max_pixels={max_pixels} (a decompression bomb, or a very "
            f"large photo); skipped. To read it, pass --max_pixels="
            f"{width * height} (decoding needs about "
            f"{width * height * 4 / 2**30:.1f} GiB of memory).")
      img.load()
      return to_8_bit(img.copy())
  except FileNotFoundError:
    raise ImageError(f"{path}: no such file.") from None
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    if isinstance(e, ImageError):
      raise
    raise ImageError(f"{path}: cannot read the image ({e}); is it a "
                     "complete JPEG/PNG/... file?") from None
  finally:
    Image.MAX_IMAGE_PIXELS = limit


def to_8_bit(img: Image.Image) -> Image.Image:
  """``img`` with 16-bit grey values (PIL ``I;16*``, or ``I`` as 16-bit
  PNGs and TIFFs decode) scaled to 8 bits (``v / 257``: 65535 -> 255)
  and float ones (``F``) in [0, 1] scaled by 255 (else clipped to
  [0, 255]), as ``L``; any other mode as it is. PIL's own conversion would
  clip them to black and white."""
  if img.mode.startswith("I;16") or img.mode == "I":
    scaled = np.asarray(img, np.float64) / 257.0
  elif img.mode == "F":
    values = np.asarray(img, np.float64)
    finite = values[np.isfinite(values)]
    scale = 255.0 if finite.size and 0 <= finite.min() and finite.max() <= 1 \
        else 1.0
    scaled = np.nan_to_num(values * scale)
  else:
    return img
  return Image.fromarray(np.clip(np.round(scaled), 0, 255).astype(np.uint8),
                         "L")


def model_array(img: Image.Image, channels: int) -> np.ndarray:
  """``(H, W)`` grey (PIL ``L``, as the builders convert) or ``(H, W, 3)``
  RGB uint8."""
  return np.asarray(to_8_bit(img).convert("L" if channels == 1 else "RGB"),
                    np.uint8)


def display_array(img: Image.Image) -> np.ndarray:
  """The image as it looks: grey files ``(H, W)``, others ``(H, W, 3)``
  RGB, uint8 (for overlays)."""
  img = to_8_bit(img)
  return np.asarray(img.convert("L" if img.mode in ("1", "L") else "RGB"),
                    np.uint8)


def read_image(path: str, channels: int,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
  """:func:`model_array` of the file ``path`` (raises :class:`ImageError`)."""
  return model_array(load_image(path, max_pixels), channels)


def box_problem(box: Box | None, width: int, height: int) -> str | None:
  """What is wrong with ``box`` on a ``width x height`` image: ``None`` if
  it lies within the image (pixel edges -0.5 .. size - 0.5), a warning if
  it reaches outside (the crop pads with black there).

  Raises:
    ValueError: the box and the image do not overlap at all.
  """
  if box is None:
    return None
  x0, y0, x1, y1 = box
  lo, hi_x, hi_y = -0.5, width - 0.5, height - 0.5
  if x1 <= lo or y1 <= lo or x0 >= hi_x or y0 >= hi_y:
    raise ValueError(
        f"box {list(box)} lies entirely outside the {width}x{height} image "
        f"(x in [-0.5, {hi_x}], y in [-0.5, {hi_y}]); check its "
        "coordinates (original-image pixels, x0,y0,x1,y1).")
  if x0 < lo or y0 < lo or x1 > hi_x or y1 > hi_y:
    return (f"box {list(box)} reaches outside the {width}x{height} image; "
            "the crop is padded with black there.")
  return None


def list_images(items: Sequence[str]) -> list[str]:
  """Files as given; folders expand to their image files (sorted)."""
  out = []
  for item in items:
    if os.path.isdir(item):
      found = sorted(os.path.join(item, n) for n in os.listdir(item)
                     if n.lower().endswith(IMAGE_SUFFIXES))
      if not found:
        logging.warning("%s: no image files (%s) in this folder.", item,
                        ", ".join(IMAGE_SUFFIXES))
      out.extend(found)
    else:
      out.append(item)
  return out


def overlay_names(paths: Sequence[str]) -> list[str]:
  """``<stem>.png`` per image, ``<stem>_2.png``... where stems repeat."""
  seen: dict[str, int] = {}
  out = []
  for p in paths:
    stem = os.path.splitext(os.path.basename(p))[0]
    seen[stem] = seen.get(stem, 0) + 1
    out.append(f"{stem}.png" if seen[stem] == 1 else f"{stem}_{seen[stem]}.png")
  return out


# --------------------------------------------------------------------------
# the model


@dataclasses.dataclass
class Predictor:
  """A restored run, ready to predict batches of model inputs.

  Attributes:
    run: the ``evaluator.RestoredRun``.
    size: side of the model input (the dataset's stored image).
    channels: channels of the model input.
    enlarge: the builder's landmark-box enlargement (1 for synthetic data).
    class_names: ``{head: [class names]}``.
    batch_size: images per forward pass (a multiple of the devices).
  """
  run: object
  size: int
  channels: int
  enlarge: float
  class_names: dict
  batch_size: int

  @classmethod
  def load(cls, workdir: str, step: int | None = None,
           data_dir: str | None = None, batch_size: int = 32) -> "Predictor":
    """Restores ``workdir``'s best checkpoint (or ``step``).

    Raises:
      evaluator.NoCheckpointError: no config or checkpoint.
    """
    from landmark_ssl import evaluator  # pylint: disable=g-import-not-at-top
    from landmark_ssl import input_pipeline  # pylint: disable=g-import-not-at-top
    run = evaluator.restore_run(workdir, step, data_dir)
    builder = input_pipeline.open_dataset(run.config.data)
    h, w, c = run.info.image_shape
    if h != w or c not in (1, 3):
      raise ValueError(f"dataset {run.config.data.name!r} stores {h}x{w}x{c} "
                       "images; predict needs square grey or RGB images.")
    enlarge = float(getattr(builder.builder_config, "enlarge", 1.0) or 1.0)
    names = {head: list(builder.info.features[head].names or [])
             for head in run.heads}
    devices = run.mesh.devices.size
    batch = max(devices, -(-int(batch_size) // devices) * devices)
    return cls(run, int(h), int(c), enlarge, names, batch)

  def __post_init__(self):
    from landmark_ssl import steps  # pylint: disable=g-import-not-at-top
    self._eval = steps.jit_eval_step(self.run.mesh)

  def predict(self, inputs: np.ndarray) -> dict:
    """``inputs`` ``(N, size, size, C)`` -> ``{'landmarks': (N, K, 2) in
    model-input pixels, 'logits': {head: (N, classes)}}`` (host arrays).
    Pads to ``batch_size`` so that every call has the compiled shape."""
    import jax  # pylint: disable=g-import-not-at-top
    from landmark_ssl import steps  # pylint: disable=g-import-not-at-top
    n = len(inputs)
    if not 0 < n <= self.batch_size:
      raise ValueError(f"predict takes 1 to {self.batch_size} images, got {n}.")
    padded = np.zeros((self.batch_size,) + inputs.shape[1:], np.float32)
    padded[:n] = inputs
    batch = steps.global_batch({"image": padded}, self.run.mesh)
    out = jax.device_get(self._eval(self.run.state, batch))
    return {"landmarks": np.asarray(out["landmarks"])[:n],
            "logits": {k: np.asarray(v)[:n] for k, v in out["logits"].items()}}

  def classes(self, logits: Mapping[str, np.ndarray], i: int) -> dict:
    """The class predictions of image ``i`` per head."""
    out = {}
    for head, values in logits.items():
      p = softmax(values[i])
      names = self.class_names.get(head) or [str(j) for j in range(len(p))]
      best = int(np.argmax(p))
      out[head] = {"label": names[best], "index": best,
                   "probabilities": {n: float(v) for n, v in zip(names, p)}}
    return out


# --------------------------------------------------------------------------
# orchestration


def predict_files(predictor: Predictor, paths: Sequence[str], out_dir: str,
                  boxes: Mapping[str, Box] | None = None,
                  default_box: Box | None = None,
                  overlays: bool = True,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
  """Predicts every image of ``paths``, writes the outputs (module
  docstring) in ``out_dir`` and returns the ``landmarks.json`` content."""
  from landmark_ssl.analysis import plots  # pylint: disable=g-import-not-at-top
  os.makedirs(out_dir, exist_ok=True)
  names = overlay_names(paths)
  records, errors = [], []
  todo = list(zip(paths, names))
  for start in range(0, len(todo), predictor.batch_size):
    chunk, inputs = [], []
    for path, name in todo[start:start + predictor.batch_size]:
      try:
        decoded = load_image(path, max_pixels)
        image = model_array(decoded, predictor.channels)
        box = box_for(path, boxes) or default_box
        h, w = image.shape[:2]
        try:
          warning = box_problem(box, w, h)
        except ValueError as e:
          raise ImageError(f"{path}: {e}") from None
        if warning:
          logging.warning("%s: %s", path, warning)
        affine = input_affine(w, h, box, predictor.enlarge, predictor.size)
      except ImageError as e:
        errors.append({"file": path, "error": str(e)})
        logging.error("%s", e)
        continue
      inputs.append(model_input(image, affine, predictor.size))
      chunk.append((path, name, display_array(decoded) if overlays else image,
                    box, affine))
    if not chunk:
      continue
    out = predictor.predict(np.stack(inputs))
    affines = np.stack([c[4] for c in chunk])
    points = to_original(out["landmarks"], affines)
    for i, (path, name, image, box, affine) in enumerate(chunk):
      h, w = image.shape[:2]
      record = {
          "file": path, "width": int(w), "height": int(h),
          "box": None if box is None else [float(v) for v in box],
          "crop": np.asarray(affine, np.float64).tolist(),
          "landmarks": points[i].tolist(),
      }
      classes = predictor.classes(out["logits"], i)
      if classes:
        record["classes"] = classes
      if overlays:
        title = os.path.basename(path) + "".join(
            f"  {head}: {c['label']} ({100 * max(c['probabilities'].values()):.0f}%)"
            for head, c in classes.items())
        fig = plots.prediction_overlay(
            image, points[i], title, box,
            input_square(w, h, box, predictor.enlarge))
        record["overlay"] = os.path.join(OVERLAY_DIR, name)
        plots.save_png(fig, os.path.join(out_dir, OVERLAY_DIR, name))
      records.append(record)
  result = {"workdir": None, "step": int(predictor.run.step),
            "dataset": predictor.run.config.data.name,
            "model": predictor.run.config.model.name,
            "costs": predictor.run.config.costs,
            "input_size": predictor.size, "enlarge": predictor.enlarge,
            "landmark_names": list(predictor.run.info.landmark_names) or None,
            "coordinates": "original image pixels, 0-based, pixel centres at "
                           "integer coordinates",
            "images": records, "errors": errors}
  return result


def write_outputs(result: dict, out_dir: str) -> None:
  """``landmarks.json`` and ``landmarks.csv`` of :func:`predict_files`."""
  with open(os.path.join(out_dir, JSON_FILE), "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")
  with open(os.path.join(out_dir, CSV_FILE), "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["file", "landmark", "name", "x", "y"])
    names = result.get("landmark_names") or []
    for record in result["images"]:
      for k, (x, y) in enumerate(record["landmarks"]):
        name = names[k] if k < len(names) else ""
        writer.writerow([record["file"], k, name, f"{x:.3f}", f"{y:.3f}"])


def output_paths(paths: Sequence[str], overlays: bool,
                 output_format: str) -> List[str]:
  """The files a prediction of ``paths`` writes, relative to ``--out``."""
  out = [JSON_FILE, CSV_FILE]
  if output_format == "coco":
    from landmark_ssl import coco_export  # pylint: disable=g-import-not-at-top
    out.append(coco_export.COCO_FILE)
  if overlays:
    out += [os.path.join(OVERLAY_DIR, n) for n in overlay_names(paths)]
  return out


def check_out_dir(out_dir: str, names: Sequence[str], overwrite: bool) -> None:
  """Refuses an ``out_dir`` that is a file, or that holds any of ``names``
  unless ``overwrite``: nothing there is replaced without being asked."""
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise ValueError(f"--out={out_dir} is a file; give a directory (it is "
                     "made if missing).")
  there = [n for n in names if os.path.exists(os.path.join(out_dir, n))]
  if there and not overwrite:
    shown = ", ".join(there[:3]) + (f" and {len(there) - 3} more"
                                    if len(there) > 3 else "")
    raise FileExistsError(
        f"--out={out_dir} already holds {shown}. Pass --overwrite to replace "
        "them, or give another --out.")


def run_predict(workdir: str, paths: Sequence[str], out_dir: str,
                box: str | None = None, boxes_file: str | None = None,
                batch_size: int = 32, step: int | None = None,
                data_dir: str | None = None, overlays: bool = True,
                output_format: str = "json",
                max_pixels: int = DEFAULT_MAX_PIXELS,
                overwrite: bool = False) -> dict:
  """The CLI's work: checks the arguments, restores the run, predicts and
  writes everything (``output_format='coco'``: also ``coco_keypoints.json``,
  see ``coco_export``). Returns the ``landmarks.json`` content.

  Raises:
    ValueError: bad box or boxes file (or one with none of the images),
      both given, no image file, or none readable (then nothing is
      written); ``out_dir`` is a file.
    FileExistsError: ``out_dir`` holds files of these names (an earlier
      prediction's, or yours) and not ``overwrite``.
    evaluator.NoCheckpointError: ``workdir`` has no config or checkpoint.
  """
  if box is not None and boxes_file is not None:
    raise ValueError("Give either --box (one box for every image) or --boxes "
                     "(a file of boxes per image), not both.")
  default_box = parse_box(box) if box is not None else None
  boxes = read_boxes(boxes_file) if boxes_file is not None else None
  paths = list_images(paths)
  if not paths:
    raise ValueError("No image given: pass --images=a.jpg,b.png (or a "
                     "folder), or image paths after the flags.")
  check_out_dir(out_dir, output_paths(paths, overlays, output_format),
                overwrite)
  check_images_exist(paths)
  if boxes is not None:
    check_boxes_match(boxes, paths, boxes_file)
  predictor = Predictor.load(workdir, step, data_dir, batch_size)
  result = predict_files(predictor, paths, out_dir, boxes, default_box,
                         overlays, max_pixels)
  if not result["images"]:
    raise ValueError(
        f"None of the {len(paths)} image(s) could be read, so nothing was "
        "written: " + "; ".join(e["error"] for e in result["errors"][:3]) +
        ("; ..." if len(result["errors"]) > 3 else "") + ".")
  result["workdir"] = os.fspath(workdir)
  write_outputs(result, out_dir)
  if output_format == "coco":
    from landmark_ssl import coco_export  # pylint: disable=g-import-not-at-top
    coco_export.write_coco(predictor, result, out_dir, lambda r: model_input(
        read_image(r["file"], predictor.channels, max_pixels),
        np.asarray(r["crop"]),
        predictor.size))
  return result


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_string("workdir", None, "Directory of a trained run.",
                      flag_values=flag_values)
  flags.DEFINE_list("images", [], "Image files or folders, comma-separated "
                    "(paths after the flags are added).",
                    flag_values=flag_values)
  flags.DEFINE_string("out", None, "Output directory.", flag_values=flag_values)
  flags.DEFINE_string("box", None, "x0,y0,x1,y1: the landmarks' box in "
                      "original pixels, for every image.",
                      flag_values=flag_values)
  flags.DEFINE_string("boxes", None, "JSON or CSV file of boxes per image "
                      "(see the module docstring).", flag_values=flag_values)
  flags.DEFINE_integer("batch_size", 32, "Images per forward pass.",
                       flag_values=flag_values)
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the best).",
                       flag_values=flag_values)
  flags.DEFINE_string("data_dir", None, "TFDS data dir of the run's dataset "
                      "(default: its config.data.data_dir).",
                      flag_values=flag_values)
  flags.DEFINE_enum("format", "json", ["json", "coco"], "coco: also write "
                    "coco_keypoints.json (COCO keypoints with per-keypoint "
                    "scores, for annotation tools; see coco_export).",
                    flag_values=flag_values)
  flags.DEFINE_bool("overwrite", False, "Replace the files of an earlier "
                    "prediction in --out (refused without it).",
                    flag_values=flag_values)
  flags.DEFINE_bool("overlays", True, "Write overlay PNGs.",
                    flag_values=flag_values)
  flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS, "Images with more "
                       "pixels (width x height) are skipped unread, naming "
                       "them (decompression bombs).", lower_bound=1,
                       flag_values=flag_values)
  flags.mark_flags_as_required(["workdir", "out"], flag_values=flag_values)


EXIT_SOME_FAILED = 1
EXIT_USAGE = 2


def main(argv):
  FLAGS = flags.FLAGS
  from landmark_ssl import metrics_log  # pylint: disable=g-import-not-at-top
  metrics_log.quiet_library_logs()
  try:
    result = run_predict(FLAGS.workdir, list(FLAGS.images) + list(argv[1:]),
                         FLAGS.out, FLAGS.box, FLAGS.boxes, FLAGS.batch_size,
                         FLAGS.step, FLAGS.data_dir, FLAGS.overlays,
                         FLAGS.format, FLAGS.max_pixels, FLAGS.overwrite)
  except (OSError, ValueError) as e:
    logging.error("%s", e)
    sys.exit(EXIT_USAGE)
  done, failed = len(result["images"]), len(result["errors"])
  print(f"{done} image(s) done, {failed} failed; wrote "
        f"{os.path.join(FLAGS.out, JSON_FILE)}, "
        f"{os.path.join(FLAGS.out, CSV_FILE)}"
        + (f" and {os.path.join(FLAGS.out, OVERLAY_DIR)}/" if FLAGS.overlays
           else "") + ".")
  for e in result["errors"]:
    print(f"FAILED {e['error']}", file=sys.stderr)
  if failed:
    sys.exit(EXIT_SOME_FAILED)


if __name__ == "__main__":
  define_flags()
  app.run(main)
