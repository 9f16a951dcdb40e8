"""predict --format=coco (coco_export) and the ELT disagreement it scores
keypoints with: ids and file names as the dataset's COCO file gave them,
keypoints in the original image's pixels, a score per keypoint, and a file
the coco_keypoints builder reads back."""

import json
import math
import warnings

import numpy as np
import pytest
from absl import flags

import conftest
from data_builders import manual_data
from data_builders.coco_keypoints import coco_annotations as ca
from data_builders.coco_keypoints import coco_keypoints_dataset_builder as ckb
from landmark_ssl import coco_export
from landmark_ssl import elt_disagreement
from landmark_ssl import input_pipeline
from landmark_ssl import predict


def test_scores_are_one_at_agreement_and_fall_with_disagreement():
  rng = np.random.default_rng()
  size = int(rng.integers(16, 128))
  d = np.sort(rng.uniform(0, size, 50))
  s = coco_export.keypoint_scores(d, size)
  assert np.all((s > 0) & (s <= 1)) and np.all(np.diff(s) <= 0)
  assert coco_export.keypoint_scores(np.zeros(3), size).tolist() == [1.0] * 3
  assert coco_export.keypoint_scores(
      [coco_export.SCORE_SCALE * size], size)[0] == pytest.approx(1 / math.e)


def test_images_keep_their_ids_and_file_names_new_ones_get_fresh_ids():
  rng = np.random.default_rng()
  ids = rng.permutation(1000)[:6] + 1
  names = ["a/x.png", "b/x.png", "c/y.jpg", "z.png", "deep/er/w.png", "v.png"]
  known = {n: {"id": int(i), "width": 9, "height": 9}
           for n, i in zip(names, ids)}
  paths = ["/data/a/x.png", "rel/deep/er/w.png", "/else/y.jpg", "x.png",
           "/new/u.png", "c/y.jpg", "other/v.png"]
  got = coco_export.match_images(paths, known)
  want_known = {0: "a/x.png", 1: "deep/er/w.png", 2: "c/y.jpg",
                6: "v.png"}
  for i, name in want_known.items():
    assert got[i] == (known[name]["id"], name)
  # x.png is ambiguous (a/ or b/), u.png unknown, c/y.jpg already used by
  # /else/y.jpg: fresh ids above the dataset's, paths as given.
  fresh = [got[i] for i in (3, 4, 5)]
  assert [f[1] for f in fresh] == ["x.png", "/new/u.png", "c/y.jpg"]
  assert [f[0] for f in fresh] == list(range(ids.max() + 1, ids.max() + 4))


def test_a_constant_model_disagrees_by_how_far_the_transforms_move_it():
  rng = np.random.default_rng()
  n, h, w, k = 3, 20, 24, 4
  points = rng.uniform(2, 18, (k, 2))
  fn = lambda x: np.broadcast_to(points, (len(x), k, 2))
  ranges = {"rotation": 40.0, "scale": 0.2, "translation": 0.1}
  t = elt_disagreement.draw_transforms(int(rng.integers(1000)), 5, ranges,
                                       (h, w))
  d = elt_disagreement.keypoint_disagreement(
      fn, rng.uniform(size=(n, h, w, 1)), t)
  moved = np.einsum("tij,kj->tki", t[:, :, :2], points) + t[:, None, :, 2]
  want = np.linalg.norm(moved - points, axis=-1).mean(0)
  np.testing.assert_allclose(d, np.broadcast_to(want, (n, k)), rtol=1e-4,
                             atol=1e-4)


def test_in_frame_leaves_out_the_transforms_that_move_a_point_out():
  """Known answer: a constant model, transforms that push some points out
  of the frame; only the transforms keeping a point inside count for it,
  and a point none keeps inside is nan."""
  rng = np.random.default_rng()
  h, w, k = 20, 24, 6
  points = rng.uniform(0, 20, (k, 2))
  points[0] = (-5.0, 3.0)  # outside to begin with: moved out by most
  fn = lambda x: np.broadcast_to(points, (len(x), k, 2))
  ranges = {"rotation": 90.0, "scale": 0.1, "translation": 0.4}
  t = elt_disagreement.draw_transforms(int(rng.integers(1000)), 8, ranges,
                                       (h, w))
  d = elt_disagreement.keypoint_disagreement(
      fn, rng.uniform(size=(2, h, w, 1)), t, in_frame=True)
  moved = np.einsum("tij,kj->tki", t[:, :, :2], points) + t[:, None, :, 2]
  residual = np.linalg.norm(moved - points, axis=-1)
  kept = ((moved[..., 0] >= 0) & (moved[..., 0] <= w - 1) &
          (moved[..., 1] >= 0) & (moved[..., 1] <= h - 1))
  assert 0 < kept.sum() < kept.size  # the draw moves some out, not all
  with np.errstate(invalid="ignore"):
    want = (residual * kept).sum(0) / kept.sum(0)
  np.testing.assert_allclose(d, np.broadcast_to(want, (2, k)), rtol=1e-4,
                             atol=1e-4)  # nan where no transform kept it
  np.testing.assert_array_equal(
      elt_disagreement.inside(moved, (h, w)), kept)
  far = elt_disagreement.keypoint_disagreement(
      lambda x: np.full((len(x), 1, 2), -100.0), np.zeros((1, h, w, 1)), t,
      in_frame=True)
  assert np.isnan(far).all()


def test_an_equivariant_model_does_not_disagree():
  """The intensity centroid of a blob moves with the image."""
  rng = np.random.default_rng()
  size = 40
  ys, xs = np.mgrid[0:size, 0:size]
  centres = rng.uniform(16, 24, (4, 2))
  images = np.stack([np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 8.0)
                     for cx, cy in centres])[..., None].astype(np.float32)

  def centroid(x):
    x = np.asarray(x)[..., 0]
    m = x.sum((1, 2))
    return np.stack([(x * xs).sum((1, 2)) / m,
                     (x * ys).sum((1, 2)) / m], -1)[:, None, :]

  ranges = {"rotation": 30.0, "scale": 0.1, "translation": 0.05}
  t = elt_disagreement.draw_transforms(int(rng.integers(1000)), 6, ranges,
                                       (size, size))
  d = elt_disagreement.keypoint_disagreement(centroid, images, t)
  assert d.max() < 0.05, d


def test_ranges_are_the_runs_elt_then_augmentation_then_defaults():
  import ml_collections  # pylint: disable=g-import-not-at-top
  c = ml_collections.ConfigDict({
      "loss": {"elt": {"rotation": 0.0, "scale": 0.0, "translation": 0.0}},
      "augment": {"rotation": 7.0, "scale": 0.0, "translation": 0.0}})
  assert elt_disagreement.ranges_of(c)["rotation"] == 7.0
  c.loss.elt.scale = 0.3
  assert elt_disagreement.ranges_of(c) == {"rotation": 0.0, "scale": 0.3,
                                           "translation": 0.0}
  c.loss.elt.scale, c.augment.rotation = 0.0, 0.0
  assert elt_disagreement.ranges_of(c) == elt_disagreement.DEFAULT_RANGES


def test_the_format_flag():
  fv = flags.FlagValues()
  predict.define_flags(fv)
  fv(["prog", "--workdir=w", "--out=o", "--format=coco"])
  assert fv.format == "coco"
  with pytest.raises(flags.IllegalFlagValueError):
    fv(["prog", "--workdir=w", "--out=o", "--format=yaml"])


def test_predict_writes_coco_the_builder_reads_back(coco_run, tmp_path):
  coco = json.loads((conftest.COCO_FIXTURES / "annotations.json").read_text())
  records = {im["file_name"]: im for im in coco["images"]}
  boxes = {}
  for ann in coco["annotations"]:
    im = next(i for i in coco["images"] if i["id"] == ann["image_id"])
    x, y, w, h = ann["bbox"]
    boxes.setdefault(im["file_name"], [x, y, x + w, y + h])
  # Images of the dataset, and one its build left out (a bad annotation).
  names = ["images/face_01.png", "images/batch2/face_10.jpg",
           "images/two_faces.png", "images/face_16.png"]
  paths = [str(conftest.COCO_FIXTURES / n) for n in names]
  boxes_file = tmp_path / "boxes.json"
  boxes_file.write_text(json.dumps(
      {str(conftest.COCO_FIXTURES / n): boxes[n] for n in names}))
  out = tmp_path / "out"
  result = predict.run_predict(str(coco_run.workdir), paths, str(out),
                               boxes_file=str(boxes_file), batch_size=8,
                               overlays=False, output_format="coco")
  doc = json.loads((out / coco_export.COCO_FILE).read_text())
  assert (out / predict.JSON_FILE).exists()
  metadata = input_pipeline.open_dataset(coco_run.config.data).info.metadata
  known = {k: v["id"] for k, v in metadata["coco_images"].items()}
  assert "images/face_16.png" not in known
  by_id = {im["id"]: im for im in doc["images"]}
  assert len(by_id) == 4
  for name, image in zip(names, doc["images"]):
    if name in known:
      assert (image["id"], image["file_name"]) == (records[name]["id"], name)
    else:
      assert image["id"] > max(known.values())
      assert image["file_name"] == str(conftest.COCO_FIXTURES / name)
    assert (image["width"], image["height"]) == (
        records[name]["width"], records[name]["height"])
  assert doc["categories"] == [
      c for c in coco["categories"] if c.get("keypoints")]
  for ann, record in zip(doc["annotations"], result["images"]):
    kp = np.reshape(ann["keypoints"], (-1, 3))
    assert kp.shape == (5, 3) and (kp[:, 2] == 2).all()
    np.testing.assert_allclose(kp[:, :2], record["landmarks"], atol=0.006)
    scores = np.asarray(ann["keypoint_scores"])
    assert scores.shape == (5,) and np.all((scores > 0) & (scores <= 1))
    assert ann["score"] == pytest.approx(scores.mean(), abs=1e-4)
    assert set(ann["attributes"]) == {"lighting"}
    x, y, w, h = ann["bbox"]
    np.testing.assert_allclose([x, y, x + w, y + h],
                               boxes[names[doc["annotations"].index(ann)]],
                               atol=0.01)
  # The builder's own checks accept the file: every prediction comes back.
  path = tmp_path / "exported.json"
  path.write_text(json.dumps(doc))
  parsed = ca.read_json(path)
  schema = ca.keypoint_schema(parsed, path)
  skips = manual_data.SkipLog("t")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    examples = ca.collect_examples(
        dict(parsed, images=[dict(im, file_name=name) for im, name in
                             zip(parsed["images"], names)]),
        path, schema, None, conftest.COCO_FIXTURES, ckb.image_size, None,
        skips)
  assert not caught, [str(w.message) for w in caught]
  assert len(examples) == 4 and all(ex.visible.all() for ex in examples)
  for ex, record in zip(examples, result["images"]):
    np.testing.assert_allclose(ex.landmarks, record["landmarks"], atol=0.006)


def test_boxes_of_a_coco_file_for_predict(tmp_path):
  rng = np.random.default_rng()
  names = ["a/p.png", "b/p.png", "c/q.jpg", "r.png", "s.png"]
  images = [{"id": int(i), "file_name": n, "width": 90, "height": 80}
            for i, n in zip(rng.permutation(100)[:5] + 1, names)]
  annotations, want = [], {}
  for k, im in enumerate(images[:4]):
    for j in range(int(rng.integers(1, 3))):
      x, y, w, h = (float(v) for v in rng.uniform(1, 40, 4))
      annotations.append({"id": 10 * k + j, "image_id": im["id"],
                          "category_id": 1, "bbox": [x, y, w, h]})
      want.setdefault(im["file_name"], (x, y, x + w, y + h))
  annotations.append({"id": 99, "image_id": images[4]["id"],
                      "category_id": 1})  # no bbox: the whole image
  coco = {"images": images, "annotations": annotations, "categories": []}
  path = tmp_path / "ann.json"
  path.write_text(json.dumps(coco))
  boxes = predict.read_boxes(str(path))
  assert boxes == coco_export.boxes_of(coco)
  for name, box in want.items():
    assert boxes[name] == pytest.approx(box)
  assert boxes["q.jpg"] == pytest.approx(want["c/q.jpg"])  # unique base name
  assert "p.png" not in boxes  # a/p.png and b/p.png: ambiguous
  assert "s.png" not in boxes
  assert predict.box_for("/data/c/q.jpg", boxes) == pytest.approx(
      want["c/q.jpg"])
  # A malformed bbox: the file, the annotation and COCO's form are named.
  for bad in ([1, 2, 3], [1, 2, "sixteen", 4], [5, 5, -3, 4], [1, 2, 0, 3]):
    annotations.append({"id": 123, "image_id": images[4]["id"],
                        "category_id": 1, "bbox": bad})
    path.write_text(json.dumps(coco))
    with pytest.raises(ValueError) as info:
      predict.read_boxes(str(path))
    assert str(info.value) == (
        f"--boxes={path}: annotation 123 of image 's.png' has the bbox "
        f"{bad!r}; a COCO bbox is [x, y, width, height] in pixels, with "
        "width and height > 0.")
    annotations.pop()
