"""The coco_keypoints builder on its fixtures (``dummy_data/``, see
make_dummy_data.py), the pure COCO checks on fresh random records, the
name mechanism, and the input pipeline's fixed labelled subset."""

import copy
import csv
import json
import math
import pathlib
import shutil
import subprocess
import sys
import warnings

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import crop
from data_builders import dot_images
from data_builders import manual_data
from data_builders.coco_keypoints import coco_annotations as ca
from data_builders.coco_keypoints import coco_keypoints_dataset_builder as lib
from data_builders.coco_keypoints import make_dummy_data as dummy
from landmark_ssl import build_data
from landmark_ssl import input_pipeline as ip

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
ANNOTATIONS = DUMMY / dummy.ANNOTATIONS
CLASSES = DUMMY / dummy.CLASSES
SIZE = 32  # stored side in these tests (fast)
FRACTION = 0.2  # validation and test shares of the labelled images


def _coco():
  return json.loads(ANNOTATIONS.read_text())


def _build(data_dir, name="faces", annotations=ANNOTATIONS, classes=CLASSES,
           manual_dir=DUMMY, **settings):
  settings = dict(dict(image_size=SIZE, validation_fraction=FRACTION,
                       test_fraction=FRACTION), **settings)
  return build_data.build_user_dataset(
      name, str(manual_dir), str(annotations),
      None if classes is None else str(classes), str(data_dir), **settings)


def _read(builder, split):
  source = builder.as_data_source(split=split)
  return [source[i] for i in range(len(source))]


def _records():
  """``{(image id, annotation id): (image record, annotation or None)}`` of
  the fixture's good records, read without the builder."""
  coco = _coco()
  images = {im["id"]: im for im in coco["images"]}
  out = {}
  for ann in coco["annotations"]:
    if ann["id"] in dummy.BAD.values() or ann["image_id"] in dummy.BAD.values():
      continue
    out[(ann["image_id"], ann["id"])] = (images[ann["image_id"]], ann)
  out[(14, -1)] = (images[14], None)
  return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  with pytest.warns(UserWarning) as record:
    builder = _build(data_dir)
  return data_dir, builder, [r.message for r in record]


# ------------------------------------------------------------- the build


def test_every_bad_record_is_one_message_naming_it_and_the_fix(built):
  _, builder, messages = built
  skipped = [str(m) for m in messages
             if isinstance(m, manual_data.SkippedFileWarning)]
  expected = {
      ca.MISSING_IMAGE: ("image id 20 (images/missing_20.png)",
                         "put the image there or fix its file_name"),
      ca.KEYPOINT_COUNT: ("annotation id 21 (image id 16)",
                          "give 5 (x, y, v) triplets"),
      ca.BBOX_OUTSIDE: ("annotation id 22 (image id 17)", "clip it"),
      ca.UNKNOWN_CATEGORY: ("annotation id 23 (image id 18)",
                            "fix its category_id"),
      ca.DUPLICATE_IMAGE_ID: ("image id 19 (images/face_19a.png)",
                              "give each image its own id"),
  }
  for reason, (record, fix) in expected.items():
    hits = [m for m in skipped if record in m]
    assert len(hits) == 1, (record, skipped)
    assert reason in hits[0] and fix in hits[0] and str(ANNOTATIONS) in hits[0]
  # Both records of the duplicate id, nothing else.
  assert len(skipped) == len(expected) + 1
  summaries = [str(m) for m in messages
               if isinstance(m, manual_data.SkipSummaryWarning)]
  assert len(summaries) == 1
  for reason in expected:
    n = 2 if reason == ca.DUPLICATE_IMAGE_ID else 1
    assert f"- {reason}: {n}" in summaries[0]
  assert builder.info.metadata["skipped"] == {
      r: (2 if r == ca.DUPLICATE_IMAGE_ID else 1) for r in expected}


def test_splits_by_image_labelled_evaluation_unlabelled_train(built):
  _, builder, _ = built
  records = _records()
  labelled_images = {im for (im, _), (_, ann) in records.items()
                     if ann and any(ann["keypoints"][2::3])}
  n = len(labelled_images)
  split_of = {}
  for split in ca.SPLITS:
    for ex in _read(builder, split):
      split_of.setdefault(int(ex["image_id"]), set()).add(split)
      if split != "train":
        assert ex["has_landmarks"]
  assert all(len(s) == 1 for s in split_of.values())  # by image
  assert set(split_of) == {im for im, _ in records}
  for im in dummy.UNLABELLED_IMAGES:
    assert split_of[im] == {"train"}
  for split in ("validation", "test"):
    images = {im for im, s in split_of.items() if split in s}
    assert len(images) == round(FRACTION * n)
  keys = {(int(ex["image_id"]), int(ex["annotation_id"]))
          for split in ca.SPLITS for ex in _read(builder, split)}
  assert keys == set(records)


def test_landmarks_visibility_ids_and_classes_are_the_records(built):
  _, builder, _ = built
  records = _records()
  lighting = {int(r["image_id"]): r["lighting"]
              for r in csv.DictReader(open(CLASSES))}
  names = builder.info.features["lighting"].names
  assert names == sorted(set(lighting.values()))
  for split in ca.SPLITS:
    for ex in _read(builder, split):
      image, ann = records[(int(ex["image_id"]), int(ex["annotation_id"]))]
      assert ex["id"].decode() == image["file_name"]
      assert names[ex["lighting"]] == lighting[image["id"]]
      kp = np.zeros((5, 3)) if ann is None else np.reshape(
          ann["keypoints"], (5, 3))
      np.testing.assert_array_equal(ex["visible"], kp[:, 2] > 0)
      assert ex["has_landmarks"] == (kp[:, 2] > 0).any()
      want = crop.apply_affine(kp[:, :2], ex["crop"])
      vis = kp[:, 2] > 0
      np.testing.assert_allclose(ex["landmarks"][vis], want[vis], atol=1e-3)
      np.testing.assert_array_equal(ex["landmarks"][~vis], 0.0)


def test_landmarks_sit_on_their_dots(built):
  _, builder, _ = built
  for split in ca.SPLITS:
    for ex in _read(builder, split):
      vis = ex["visible"] > 0
      if not vis.any():
        continue
      found = dot_images.dot_centroids(ex["image"], ex["landmarks"][vis],
                                       radius=2)
      err = np.linalg.norm(found - ex["landmarks"][vis], axis=-1)
      assert err.max() < 0.5, (ex["image_id"], err)


def test_the_crop_is_predicts_box_crop_and_the_normaliser_the_box_diagonal(
    built):
  from landmark_ssl import predict  # pylint: disable=g-import-not-at-top
  _, builder, _ = built
  records = _records()
  enlarge = builder.builder_config.enlarge
  for split in ca.SPLITS:
    for ex in _read(builder, split):
      image, ann = records[(int(ex["image_id"]), int(ex["annotation_id"]))]
      w, h = image["width"], image["height"]
      if ann is None:
        box, diag = None, math.hypot(w, h)
      else:
        x, y, bw, bh = ann["bbox"]
        box, diag = (x, y, x + bw, y + bh), math.hypot(bw, bh)
      want = predict.input_affine(w, h, box, enlarge, SIZE)
      np.testing.assert_allclose(ex["crop"], want, rtol=1e-5, atol=1e-4)
      scale = math.sqrt(abs(np.linalg.det(want[:, :2])))
      assert ex["normalizer"] == pytest.approx(diag * scale, rel=1e-5)
      assert ex["image"].shape == (SIZE, SIZE, 1)


def test_metadata_names_categories_and_images(built):
  _, builder, _ = built
  meta = builder.info.metadata
  assert meta["landmark_names"] == list(dummy.KEYPOINTS)
  assert meta["coco_categories"] == [dummy.CATEGORY]
  images = {im["file_name"]: im for im in _coco()["images"]}
  for name, entry in meta["coco_images"].items():
    assert entry == {"id": images[name]["id"], "width": images[name]["width"],
                     "height": images[name]["height"]}
  assert set(meta["coco_images"]) == {
      image["file_name"] for image, _ in _records().values()}
  assert meta["labeled_examples"]["train"] == sum(
      bool(ex["has_landmarks"]) for ex in _read(builder, "train"))


def test_keypoint_pair_normaliser(tmp_path):
  with pytest.warns(UserWarning) as record:
    builder = _build(tmp_path, normalizer="nose,left_ear")
  for split in ca.SPLITS:
    for ex in _read(builder, split):
      if not ex["has_landmarks"]:
        continue
      assert ex["visible"][0] and ex["visible"][3]
      assert ex["normalizer"] == pytest.approx(
          np.linalg.norm(ex["landmarks"][0] - ex["landmarks"][3]), rel=1e-4)
  # Images 2 and 13 lack the left ear or the nose: left out, one message
  # each naming the annotation.
  assert builder.info.metadata["skipped"][ca.NO_NORMALIZER] == 2
  lacking = [a["id"] for a in _coco()["annotations"] if a["image_id"] in (2, 13)]
  for ann_id in lacking:
    assert sum(f"annotation id {ann_id} " in str(r.message) and
               "--normalizer=bbox" in str(r.message) for r in record) == 1


# ------------------------------------------------------------ names


def test_datasets_side_by_side_under_their_names(built, tmp_path):
  data_dir, first, _ = built
  other = tmp_path / "other.json"
  coco = _coco()
  for im in coco["images"]:
    im["split"] = "train" if im["id"] % 3 else "test"
  coco["images"] = [im for im in coco["images"] if im["id"] not in (11, 12)]
  other.write_text(json.dumps(coco))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    # Splits given by the file: validation is empty, one error, nothing built.
    with pytest.raises(manual_data.ManualDataError,
                       match=r"split 'validation' \(the images whose split"):
      _build(data_dir, "faces_b", other, classes=None, image_size=24)
    assert "faces_b" not in lib.built_names(str(data_dir))
    for im in coco["images"]:
      im["split"] = ("train", "val", "test")[im["id"] % 3]
    other.write_text(json.dumps(coco))
    _build(data_dir, "faces_b", other, classes=None, image_size=24)
  assert lib.built_names(str(data_dir)) == ["faces", "faces_b"]
  a = build_data.make_builder("faces", str(data_dir))
  b = build_data.make_builder("coco_keypoints/faces_b", str(data_dir))
  assert a.info.features["image"].shape == (SIZE, SIZE, 1)
  assert b.info.features["image"].shape == (24, 24, 1)
  assert "lighting" in a.info.features and "lighting" not in b.info.features
  assert a.info.splits["train"].num_examples == first.info.splits[
      "train"].num_examples
  info = ip.get_dataset_info(ml_collections.ConfigDict(
      dict(name="faces_b", data_dir=str(data_dir))))
  assert info.image_shape == (24, 24, 1) and info.num_landmarks == 5
  assert info.landmark_names == dummy.KEYPOINTS


def test_a_built_name_is_refused_unless_overwrite(built, tmp_path):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _build(tmp_path, image_size=16)
    with pytest.raises(manual_data.ManualDataError, match="--overwrite"):
      _build(tmp_path, image_size=24)
    # A failing rebuild leaves the old build as it was.
    with pytest.raises(manual_data.ManualDataError):
      _build(tmp_path, image_size=24, overwrite=True, validation_fraction=0.9,
             test_fraction=0.05)
    assert build_data.make_builder("faces", str(tmp_path)).info.features[
        "image"].shape == (16, 16, 1)
    _build(tmp_path, image_size=24, overwrite=True)
  builder = build_data.make_builder("faces", str(tmp_path))
  assert builder.info.features["image"].shape == (24, 24, 1)
  assert {s: v.num_examples for s, v in builder.info.splits.items()} == {
      s: v.num_examples for s, v in built[1].info.splits.items()}
  assert not list(tmp_path.glob(".faces-building-*"))  # the aside builds
  assert lib.built_names(str(tmp_path)) == ["faces"]


def test_a_failed_first_build_leaves_no_folder_of_its_name(tmp_path):
  """A first build that fails (here: the images' folder is missing) leaves
  nothing under the name, so the retry is a first build again."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with pytest.raises(manual_data.ManualDataError):
      _build(tmp_path, manual_dir=tmp_path / "no_such_folder")
    assert not lib.dataset_dir(str(tmp_path), "faces").parent.exists()
    _build(tmp_path, image_size=16)
  assert lib.built_names(str(tmp_path)) == ["faces"]


@pytest.mark.parametrize("name,match", [
    ("Faces", "lower-case"), ("blocks", "built-in"), ("1x", "starting with"),
    ("coco_keypoints", "built-in")])
def test_bad_names(tmp_path, name, match):
  with pytest.raises(ValueError, match=match):
    _build(tmp_path, name)


def test_unknown_name_lists_the_built_ones(built):
  data_dir, _, _ = built
  with pytest.raises(ValueError) as info:
    build_data.make_builder("facse", str(data_dir))
  text = str(info.value)
  assert "Unknown dataset 'facse'" in text and "'faces'" in text
  assert "--name=facse" in text
  with pytest.raises(ValueError, match="needs the name"):
    build_data.make_builder("coco_keypoints", str(data_dir))


# ------------------------------------------------- whole-file problems


def _whole_file_error(tmp_path, coco=None, classes_text=None, text=None,
                      error=manual_data.ManualDataError, **settings):
  path = tmp_path / "a.json"
  path.write_text(text if text is not None else json.dumps(coco))
  classes = None
  if classes_text is not None:
    classes = tmp_path / "c.csv"
    classes.write_text(classes_text)
  data_dir = tmp_path / "tfds"
  with pytest.raises(error) as info:
    _build(data_dir, annotations=path, classes=classes, **settings)
  assert not data_dir.exists() or not any(data_dir.rglob("*.array_record*"))
  return str(info.value)


def test_whole_file_problems_are_one_error_naming_file_and_fix(tmp_path):
  coco = _coco()
  text = _whole_file_error(tmp_path, text="{")
  assert "not valid JSON" in text and "a.json" in text
  assert "no 'images' list" in _whole_file_error(tmp_path, {"annotations": []})
  no_kp = copy.deepcopy(coco)
  no_kp["categories"][0].pop("keypoints")
  assert "export the keypoints" in _whole_file_error(tmp_path, no_kp)
  two = copy.deepcopy(coco)
  two["categories"].append(dict(dummy.CATEGORY, id=3, keypoints=["a", "b"]))
  assert "split the file per category" in _whole_file_error(tmp_path, two)
  text = _whole_file_error(tmp_path, coco, "name,lighting\n1,day\n")
  assert "c.csv" in text and "'image_id' (the COCO image id)" in text
  assert "listed twice" in _whole_file_error(
      tmp_path, coco, "image_id,lighting\n1,day\n1,night\n")
  assert "cannot be a class feature" in _whole_file_error(
      tmp_path, coco, "image_id,image\n1,day\n")
  assert "from ['nose'" in _whole_file_error(
      tmp_path, coco, error=ValueError, normalizer="nose,chin")
  assert "--validation_fraction" in _whole_file_error(
      tmp_path, coco, error=ValueError, validation_fraction=0.0)


def test_no_labelled_training_image_is_an_error(tmp_path):
  coco = _coco()
  for im in coco["images"]:
    im["split"] = "train" if im["id"] in dummy.UNLABELLED_IMAGES else "test"
  for im in coco["images"][:2]:
    im["split"] = "validation"
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    text = _whole_file_error(tmp_path, coco)
  assert "no training image has labelled keypoints" in text


# --------------------------------------------- records, without writing


def _collect(coco, table=None, normalizer=None, root=DUMMY):
  schema = ca.keypoint_schema(coco, "x.json")
  skips = manual_data.SkipLog("t")
  with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    examples = ca.collect_examples(coco, "x.json", schema, table, root,
                                   lib.image_size, normalizer, skips)
  return examples, skips, [str(r.message) for r in record]


def _one_skip(coco, reason, record, **kwargs):
  examples, skips, messages = _collect(coco, **kwargs)
  extra = {r: n for r, n in skips.counts.items()
           if r not in _collect(_coco())[1].counts}
  assert extra == {reason: 1}, skips.counts
  hit = [m for m in messages if record in m and reason in m]
  assert len(hit) == 1, messages
  return examples, hit[0]


def test_more_bad_records_each_named_with_its_fix(tmp_path):
  rng = np.random.default_rng()
  coco = _coco()
  good = [a for a in coco["annotations"] if a["image_id"] in range(1, 11)]
  cases = []
  c = copy.deepcopy(coco)
  ann = c["annotations"][coco["annotations"].index(rng.choice(good))]
  ann["bbox"] = [1, 2, -3, 4]
  cases.append((c, ca.BAD_BBOX, f"annotation id {ann['id']}", "positive width"))
  c = copy.deepcopy(coco)
  ann = c["annotations"][coco["annotations"].index(rng.choice(good))]
  ann["keypoints"][3 * int(rng.integers(5)) + 2] = 3
  cases.append((c, ca.BAD_KEYPOINTS, f"annotation id {ann['id']}", "COCO's"))
  c = copy.deepcopy(coco)
  ann = c["annotations"][coco["annotations"].index(rng.choice(good))]
  k = 3 * int(np.flatnonzero(np.array(ann["keypoints"][2::3]) > 0)[0])
  ann["keypoints"][k] = -5.0
  cases.append((c, ca.KEYPOINT_OUTSIDE, f"annotation id {ann['id']}",
                "set v = 0"))
  c = copy.deepcopy(coco)
  ann = c["annotations"][coco["annotations"].index(rng.choice(good))]
  ann["iscrowd"] = 1
  cases.append((c, ca.CROWD, f"annotation id {ann['id']}", "crowd"))
  c = copy.deepcopy(coco)
  c["annotations"].append(dict(c["annotations"][0], id=999, image_id=555))
  cases.append((c, ca.UNKNOWN_IMAGE, "annotation id 999", "fix its image_id"))
  c = copy.deepcopy(coco)
  im = c["images"][int(rng.integers(10))]
  im["width"] += 1
  cases.append((c, ca.SIZE_MISMATCH, f"image id {im['id']}", "fix width"))
  c = copy.deepcopy(coco)
  im = c["images"][int(rng.integers(10))]
  im["file_name"] = "broken.png"
  cases.append((c, ca.UNREADABLE_IMAGE, f"image id {im['id']}",
                "export the image again"))
  (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
  for c, reason, record, fix in cases:
    root = tmp_path if reason == ca.UNREADABLE_IMAGE else DUMMY
    if root == tmp_path:
      shutil.copytree(DUMMY / "images", tmp_path / "images",
                      dirs_exist_ok=True)
    _, message = _one_skip(c, reason, record, root=root)
    assert fix in message, message
  # A duplicate annotation id: both annotations are left out.
  c = copy.deepcopy(coco)
  dup = dict(rng.choice(good))
  dup["image_id"] = 1 if dup["image_id"] != 1 else 2
  c["annotations"].append(dup)
  examples, skips, messages = _collect(c)
  assert skips.counts[ca.DUPLICATE_ANNOTATION_ID] == 2
  assert sum(f"annotation id {dup['id']} " in m and "its own id" in m
             for m in messages) == 2
  assert dup["id"] not in {ex.annotation_id for ex in examples}


def test_class_table_gaps_and_category_classes():
  coco = _coco()
  rows = {str(i): {"lighting": "day"} for i in range(1, 30)}
  missing = int(np.random.default_rng().integers(1, 11))
  rows[str(missing)] = {"lighting": ""}
  table = ca.ClassTable("c.csv", "image_id", ("lighting",), rows, {})
  _, message = _one_skip(coco, ca.NO_CLASS, f"image id {missing} ",
                         table=table)
  assert "c.csv has no value in column(s) ['lighting']" in message
  # Two keypoint categories: 'category' is a class feature; the image
  # without annotation has none.
  two = copy.deepcopy(coco)
  two["categories"].append(dict(dummy.CATEGORY, id=5, name="mask"))
  flipped = {a["id"] for a in two["annotations"][::2]}
  for a in two["annotations"]:
    if a["id"] in flipped:
      a["category_id"] = 5
  examples, skips, _ = _collect(two)
  assert skips.counts.get(ca.NO_CLASS) == 1
  assert ca.class_feature_names(ca.keypoint_schema(two, "x"), None) == (
      "category",)
  for ex in examples:
    assert ex.labels["category"] == ("mask" if ex.annotation_id in flipped
                                     else "face")


def test_explicit_splits_aliases_conflicts_and_gaps():
  rng = np.random.default_rng()
  coco = _coco()
  written = {}
  for im in coco["images"]:
    written[im["id"]] = str(rng.choice(["train", "val", "Validation", "test"]))
    im["split"] = written[im["id"]]
  examples, skips, _ = _collect(coco)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    splits = ca.assign_splits(examples, 0.1, 0.1, 0, skips, "x.json")
  for split, items in splits.items():
    for ex in items:
      assert ca.split_of(written[ex.image_id]) == split
      assert ex.has_landmarks or split == "train"
  unlabelled_eval = [ex for ex in examples if not ex.has_landmarks
                     and ca.split_of(written[ex.image_id]) != "train"]
  assert skips.counts.get(ca.UNLABELLED_IN_EVAL, 0) == len(unlabelled_eval)
  # A gap, an unknown value, a conflict with the class table.
  gap = copy.deepcopy(coco)
  del gap["images"][0]["split"]
  _one_skip(gap, ca.NO_SPLIT, "image id 1 ")
  bad = copy.deepcopy(coco)
  bad["images"][1]["split"] = "holdout"
  _, message = _one_skip(bad, ca.BAD_SPLIT, "image id 2 ")
  assert "'holdout'" in message
  table = ca.ClassTable("c.csv", "image_id", (), {},
                        {"3": "test" if written[3] == "train" else "train"})
  _one_skip(coco, ca.SPLIT_CONFLICT, "image id 3 ", table=table)


# -------------------------------------------------- pure, random inputs


def test_parse_keypoints_and_bbox_round_trip():
  rng = np.random.default_rng()
  for _ in range(20):
    k = int(rng.integers(1, 30))
    xy = rng.uniform(-50, 500, (k, 2))
    v = rng.integers(0, 3, k)
    flat = np.concatenate([xy, v[:, None]], 1).ravel().tolist()
    landmarks, visible = ca.parse_keypoints(flat, k)
    np.testing.assert_array_equal(visible, v > 0)
    np.testing.assert_allclose(landmarks[v > 0], xy[v > 0])
    np.testing.assert_array_equal(landmarks[v == 0], 0.0)
    with pytest.raises(ValueError, match="^count"):
      ca.parse_keypoints(flat[:-3], k)
    x, y, w, h = rng.uniform(0, 100, 4) + 0.1
    assert ca.parse_bbox([x, y, w, h]) == pytest.approx((x, y, x + w, y + h))
    size = (int(rng.integers(10, 200)), int(rng.integers(10, 200)))
    box = ca.parse_bbox([x, y, w, h])
    assert ca.box_inside(box, size) == (
        x >= -1 and y >= -1 and x + w <= size[0] + 1 and y + h <= size[1] + 1)


def test_seeded_split_properties_on_random_examples():
  rng = np.random.default_rng()
  for _ in range(10):
    examples = []
    n_images = int(rng.integers(5, 60))
    for image_id in range(n_images):
      for a in range(int(rng.integers(1, 4))):
        vis = (rng.random(3) < rng.uniform(0, 1)).astype(np.float32)
        examples.append(ca.Example(
            f"{image_id}/{a}", image_id, a, f"{image_id}.png", "", (9, 9),
            None, np.zeros((3, 2)), vis, {}, None, 1.0))
    val, test = rng.uniform(0.05, 0.4, 2)
    seed = int(rng.integers(1 << 20))
    skips = manual_data.SkipLog("t")
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      splits = ca.assign_splits(examples, val, test, seed, skips, "x")
      again = ca.assign_splits(examples, val, test, seed,
                               manual_data.SkipLog("t"), "x")
    assert {s: [e.key for e in v] for s, v in splits.items()} == {
        s: [e.key for e in v] for s, v in again.items()}
    labelled = {e.image_id for e in examples if e.has_landmarks}
    where = {}
    for split, items in splits.items():
      for e in items:
        where.setdefault(e.image_id, set()).add(split)
        assert split == "train" or e.has_landmarks
    assert all(len(s) == 1 for s in where.values())
    n_val = min(len(labelled), max(1, round(val * len(labelled))))
    n_test = min(len(labelled) - n_val, max(1, round(test * len(labelled))))
    for split, n in (("validation", n_val), ("test", n_test)):
      images = {e.image_id for e in splits[split]}
      assert images <= labelled and len(images) == (n if labelled else 0)
    kept = sum(len(v) for v in splits.values())
    assert kept + skips.counts.get(ca.UNLABELLED_IN_EVAL, 0) == len(examples)


# ---------------------------------------- the pipeline's fixed subset


def _data_config(data_dir, **overrides):
  c = ml_collections.ConfigDict(dict(
      name="faces", data_dir=str(data_dir), labeled_fraction=1.0,
      labeled_share=0.25, batch_size=8, eval_batch_size=8,
      train_split="train", read_threads=1, prefetch_batches=1))
  c.update(overrides)
  return c


def test_the_pipeline_labels_only_flagged_examples(built):
  data_dir, builder, _ = built
  flags = np.array([bool(ex["has_landmarks"])
                    for ex in _read(builder, "train")])
  assert 0 < flags.sum() < len(flags)
  seed = int(np.random.default_rng().integers(1000))
  everything = ip.select_labeled(_data_config(data_dir), seed)
  np.testing.assert_array_equal(everything, np.flatnonzero(flags))
  half = ip.select_labeled(_data_config(data_dir, labeled_fraction=0.5), seed)
  assert set(half) <= set(everything)
  assert len(half) == max(1, round(0.5 * flags.sum()))
  loader = ip.TrainLoader(_data_config(data_dir), seed, everything, 0, 1)
  assert loader.labeled_per_batch == max(1, round(8 * flags.mean()),
                                         math.ceil(8 * 0.25))
  for step in range(3):
    batch = loader.get_batch(step)
    has = batch["has_landmarks"] > 0
    assert flags[batch["index"][has]].all()
    assert not flags[batch["index"][~has]].any()
  with pytest.raises(ValueError, match="without landmark labels"):
    ip.TrainLoader(_data_config(data_dir), seed,
                   np.flatnonzero(~flags)[:1], 0, 1)


def test_build_data_takes_a_bare_unknown_name_as_a_typo(tmp_path):
  """`build_data --dataset=hgr2` names the known datasets and how to build
  one of your own, instead of asking for coco_keypoints' files."""
  out = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.build_data", "--dataset=hgr2",
       f"--data_dir={tmp_path}"], capture_output=True, text=True, timeout=300,
      cwd=pathlib.Path(__file__).resolve().parents[2])
  assert out.returncode != 0
  assert "Unknown dataset 'hgr2'" in out.stderr and "'hgr1'" in out.stderr
  assert ("--dataset=coco_keypoints --name=hgr2 --manual_dir=<its images>"
          in out.stderr)
  assert "Traceback" not in out.stderr
  assert not list(tmp_path.iterdir())


def test_build_data_refuses_a_data_dir_that_is_a_file(tmp_path):
  afile = tmp_path / "afile"
  afile.write_text("mine")
  out = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.build_data", "--dataset=blocks",
       f"--data_dir={afile}"], capture_output=True, text=True, timeout=300,
      cwd=pathlib.Path(__file__).resolve().parents[2])
  assert out.returncode != 0 and "Traceback" not in out.stderr
  assert f"--data_dir={afile} is a file, not a directory" in out.stderr
  assert afile.read_text() == "mine"
