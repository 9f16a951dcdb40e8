"""The Hgr1 builder on its fixtures (``dummy_data/``, see make_dummy_data.py)."""

import pathlib
import shutil
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import crop
from data_builders import dot_images
from data_builders import manual_data
from data_builders.hgr1 import hgr1_dataset_builder as lib
from data_builders.hgr1 import make_dummy_data

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
IMAGE_DIR, XML_DIR = lib.LAYOUTS[0]
SPLITS = {
    "train": {"1_P_hgr1_id01_1", "A_P_hgr1_id05_2", "B_P_hgr1_id08_10"},
    "validation": {"A_P_hgr1_id11_1", "1_P_hgr1_id12_3"},
    "test": {"B_P_hgr1_id09_1", "A_P_hgr1_id10_2"},
}


def _build(data_dir, manual_dir):
  builder = lib.Hgr1(data_dir=str(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _read_all(data_dir, split):
  source = tfds.data_source("hgr1", data_dir=str(data_dir), split=split)
  return [source[i] for i in range(len(source))]


def _xml_points(path):
  """The file's points read independently of the builder's parser."""
  root = ET.parse(path).getroot()
  return {(p.get("category"), p.get("type")): (float(p.get("x")),
                                               float(p.get("y")))
          for p in root.iter("FeaturePoint")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  with pytest.warns(UserWarning) as record:
    _build(data_dir, DUMMY)
  messages = [str(r.message) for r in record]
  assert any("gesture classes has 3 items; the paper has 27" in m
             for m in messages), messages
  assert any("split 'train' has 3 items; the paper has 573" in m
             for m in messages), messages
  # The image without its ulnar wrist point: one warning, one summary line.
  missing = str(DUMMY / XML_DIR / f"{make_dummy_data.NO_WRIST}.xml")
  assert any(missing in m and lib.NO_WRIST in m for m in messages
             if "skipping" in m), messages
  summaries = [r.message for r in record
               if isinstance(r.message, manual_data.SkipSummaryWarning)]
  assert len(summaries) == 1 and f"{lib.NO_WRIST}: 1" in str(summaries[0])
  return data_dir


def test_splits_by_subject_shapes_and_labels(built):
  builder = tfds.builder("hgr1", data_dir=str(built))
  names = builder.info.features["gesture"].names
  assert names == ["1", "A", "B"]
  for split, stems in SPLITS.items():
    examples = _read_all(built, split)
    assert {ex["id"].decode() for ex in examples} == stems
    for ex in examples:
      assert ex["image"].shape == (64, 64, 1) and ex["image"].dtype == np.uint8
      assert ex["landmarks"].shape == (25, 2) and ex["visible"].shape == (25,)
      stem = ex["id"].decode()
      assert names[ex["gesture"]] == stem.split("_")[0]


def test_numbering_by_identity_is_stored_and_wrist_first_and_last(built):
  names = tfds.builder("hgr1", data_dir=str(built)).info.metadata[
      "landmark_names"]
  assert len(names) == 25 and len(set(names)) == 25
  assert names[0] == "Wrist/radial" and names[24] == "Wrist/ulnar"
  assert set(names) == {f"{c}/{t}" for c, t in make_dummy_data.IDENTITIES}


def test_each_landmark_is_the_named_point_of_its_file(built):
  names = tfds.builder("hgr1", data_dir=str(built)).info.metadata[
      "landmark_names"]
  for split in SPLITS:
    for ex in _read_all(built, split):
      stem = ex["id"].decode()
      written = _xml_points(DUMMY / XML_DIR / f"{stem}.xml")
      assert ex["visible"].sum() == make_dummy_data.STEMS[stem]
      for k, name in enumerate(names):
        key = tuple(name.split("/"))
        assert ex["visible"][k] == (key in written)
        if key in written:
          np.testing.assert_allclose(
              crop.apply_affine(np.array([written[key]]), ex["crop"])[0],
              ex["landmarks"][k], atol=1e-3)
        else:
          np.testing.assert_array_equal(ex["landmarks"][k], 0.0)


def _similarity_residual(a, b):
  """RMS residual of the best similarity transform mapping points a to b."""
  za = a[:, 0] + 1j * a[:, 1]
  zb = b[:, 0] + 1j * b[:, 1]
  za, zb = za - za.mean(), zb - zb.mean()
  s = np.vdot(za, zb) / np.vdot(za, za)
  return np.sqrt(np.mean(np.abs(s * za - zb) ** 2))


def test_one_number_is_the_same_feature_in_every_image(built):
  """All hands are one template moved rigidly (make_dummy_data), and the XML
  lists points in a different order in every file: landmark k of any image
  maps onto landmark k of any other by one similarity transform."""
  examples = [ex for split in SPLITS for ex in _read_all(built, split)]
  spacing = 64 / 1.5 / 4  # grid spacing in stored pixels, roughly
  for a in examples:
    for b in examples:
      both = (a["visible"] > 0) & (b["visible"] > 0)
      assert both.sum() >= 9
      res = _similarity_residual(a["landmarks"][both], b["landmarks"][both])
      assert res < 0.1 * spacing, (a["id"], b["id"], res)
      # A numbering that differed between files would not fit:
      perm = np.roll(np.flatnonzero(both), 1)
      wrong = _similarity_residual(a["landmarks"][both], b["landmarks"][perm])
      assert wrong > 0.5 * spacing


def test_crop_and_wrist_width(built):
  for split in SPLITS:
    for ex in _read_all(built, split):
      vis = ex["visible"] > 0
      assert vis[0] and vis[24]
      width = np.linalg.norm(ex["landmarks"][0] - ex["landmarks"][24])
      assert ex["normalizer"] == pytest.approx(width, rel=1e-4)
      # The visible landmarks' box, enlarged 1.5x, fills the 64 pixels.
      span = np.ptp(ex["landmarks"][vis], axis=0).max()
      assert span == pytest.approx(64 / 1.5, rel=1e-4)


def test_visible_landmarks_sit_on_their_dots(built):
  for split in SPLITS:
    for ex in _read_all(built, split):
      vis = ex["visible"] > 0
      found = dot_images.dot_centroids(ex["image"], ex["landmarks"][vis],
                                       radius=3)
      err = np.linalg.norm(found - ex["landmarks"][vis], axis=-1)
      assert err.max() < 0.5, (ex["id"], err.max())


# ------------------------------------------------------------ XML parser


def _xml(points, hands=None, size='WIDTH="300" HEIGHT="200"'):
  rows = "\n".join(f"<FeaturePoint {attrs} />" for attrs in points)
  hands = f"<hand>{rows}</hand>" if hands is None else hands
  return f'<?xml version="1.0"?><IMAGE {size}>{hands}</IMAGE>'


def test_parser_and_numbering_ignore_document_order(tmp_path):
  rng = np.random.default_rng()
  # 25 invented identities: two wrist points, 23 others.
  ids = [("Wrist", "a"), ("Wrist", "b")] + [
      (f"Cat{c}", f"t{int(rng.integers(0, 3))}") for c in range(23)]
  parsed, truth = {}, {}
  for f in range(6):
    n = 25 if f == 0 else int(rng.integers(17, 26))
    kept = ids[:2] + [ids[2 + i] for i in rng.choice(23, n - 2, replace=False)]
    xy = {k: tuple(int(v) for v in rng.integers(0, 300, 2)) for k in kept}
    attrs = [f'category="{k[0]}" type="{k[1]}" x="{v[0]}" y="{v[1]}"'
             for k, v in xy.items()]
    rng.shuffle(attrs)  # document order must not matter
    path = tmp_path / f"{f}.xml"
    path.write_text(_xml(attrs, "<hand/><hand>" + "".join(
        f"<FeaturePoint {a} />" for a in attrs) + "</hand><hand/>"))
    parsed[str(f)] = lib.parse_feature_points(path)
    truth[str(f)] = xy
  numbering = lib.landmark_numbering(parsed)
  assert numbering[0] == ("Wrist", "a") and numbering[24] == ("Wrist", "b")
  assert sorted(numbering) == sorted(ids)
  for key, points in parsed.items():
    assert points.size == (300, 200)
    landmarks, visible = lib.to_slots(points, numbering, coordinate_base=1.0)
    for k, pid in enumerate(numbering):
      assert visible[k] == (pid in truth[key])
      expected = np.array(truth[key][pid]) - 1.0 if pid in truth[key] else 0.0
      np.testing.assert_allclose(landmarks[k], expected)


def test_natural_order_of_the_other_points():
  points = {("Wrist", "2"): (0, 0), ("Wrist", "10"): (1, 1)}
  points.update({("Finger", f"p{i}"): (i, i) for i in range(2, 12)})
  points.update({("finger", f"q{i}"): (i, i) for i in range(13)})
  numbering = lib.landmark_numbering({"a": lib.FeaturePoints(points, None)})
  assert numbering[0] == ("Wrist", "2") and numbering[24] == ("Wrist", "10")
  assert numbering[1:3] == [("Finger", "p2"), ("Finger", "p3")]
  assert numbering[9:11] == [("Finger", "p10"), ("Finger", "p11")]
  assert numbering[11] == ("finger", "q0")


def test_rescaled_when_the_file_size_differs_from_the_image():
  """Pixel centres at integers: the file's frame edges (-0.5 and its size
  - 0.5) land on the image's, and a pixel's centre on the centre of the
  pixels it covers."""
  rng = np.random.default_rng()
  file_size = rng.integers(20, 200, 2)
  image_size = rng.integers(20, 200, 2)
  ids = [("Wrist", "a"), ("Wrist", "b"), ("Finger", "c")]
  inside = rng.uniform(0, file_size - 1)
  points = lib.FeaturePoints(dict(zip(ids, [(-0.5, -0.5),
                                            tuple(file_size - 0.5),
                                            tuple(inside)])),
                             tuple(file_size))
  landmarks, _ = lib.to_slots(points, ids, 0.0, tuple(image_size))
  np.testing.assert_allclose(landmarks[0], [-0.5, -0.5])
  np.testing.assert_allclose(landmarks[1], image_size - 0.5)
  # Twice the size: pixel 0's centre is between image pixels 0 and 1.
  points = lib.FeaturePoints({ids[0]: (0.0, 0.0)}, (100, 50))
  landmarks, _ = lib.to_slots(points, ids[:1], 0.0, (200, 100))
  np.testing.assert_allclose(landmarks[0], [0.5, 0.5])
  # The map is affine: the random point keeps its place between the edges.
  points = lib.FeaturePoints({ids[2]: tuple(inside)}, tuple(file_size))
  landmarks, _ = lib.to_slots(points, ids[2:], 0.0, tuple(image_size))
  np.testing.assert_allclose((landmarks[0] + 0.5) / image_size,
                             (inside + 0.5) / file_size)


def test_unreadable_image_is_one_error_naming_it(tmp_path):
  manual = _copy_dummy(tmp_path)
  image = sorted((manual / IMAGE_DIR).iterdir())[0]
  image.write_bytes(b"")
  _expect_error(tmp_path, manual, manual_data.ManualDataError, str(image),
                "cannot read the image")


def test_not_25_identities_lists_them_with_counts_and_files(tmp_path):
  points = {("Wrist", "a"): (0, 0), ("Wrist", "b"): (1, 1)}
  points.update({("Finger", str(i)): (i, i) for i in range(23)})
  typo = dict(points)
  typo[("Fnger", "3")] = typo.pop(("Finger", "3"))
  parsed = {"good": lib.FeaturePoints(points, None),
            "odd": lib.FeaturePoints(typo, None)}
  files = {"good": tmp_path / "good.xml", "odd": tmp_path / "odd.xml"}
  with pytest.raises(manual_data.ManualDataError) as info:
    lib.landmark_numbering(parsed, files)
  text = str(info.value)
  assert "26 distinct" in text
  assert f"category='Fnger' type='3': in 1 file(s), e.g. {files['odd']}" in text
  assert f"category='Finger' type='3': in 1 file(s), e.g. {files['good']}" in text


@pytest.mark.parametrize("text, expected", [
    ("<IMAGE><hand>", "well-formed XML"),
    ("<ROOT/>", "<IMAGE>"),
    (_xml([], size='WIDTH="a" HEIGHT="2"'), "integer WIDTH and HEIGHT"),
    (_xml(['category="Wrist" type="a" x="1" y="1"'],
          '<hand><FeaturePoint category="Wrist" type="a" x="1" y="1"/>'
          '</hand><hand><FeaturePoint category="Wrist" type="a" '
          'x="1" y="1"/></hand>'), "at most one <hand>"),
    (_xml(['category="Wrist" type="a" x="1"']), "attribute 'y'"),
    (_xml(['category="Wrist" x="1" y="2"']), "attribute 'type'"),
    (_xml(['category="Wrist" type="a" x="1" y="a"']), "numeric x and y"),
    (_xml(['category="Wrist" type="a" x="1" y="1"',
           'category="Wrist" type="a" x="2" y="2"']),
     "each (category, type) once"),
])
def test_malformed_xml_names_file_and_expectation(tmp_path, text, expected):
  path = tmp_path / "bad.xml"
  path.write_text(text)
  with pytest.raises(manual_data.AnnotationFormatError) as info:
    lib.parse_feature_points(path)
  assert str(path) in str(info.value) and expected in str(info.value), (
      str(info.value))


def test_empty_hands_and_absent_points_parse():
  path = DUMMY / XML_DIR / "A_P_hgr1_id05_2.xml"
  points = lib.parse_feature_points(path)
  assert len(points.points) == 17 and points.size is not None


# ------------------------------------------------------------- bad input


def _copy_dummy(tmp_path, nested=False):
  manual = tmp_path / "manual"
  if not nested:
    shutil.copytree(DUMMY, manual)
  else:
    for (plain, deep) in zip(lib.LAYOUTS[0], lib.LAYOUTS[1]):
      shutil.copytree(DUMMY / plain, manual / deep)
  return manual


def _expect_error(tmp_path, manual, error, *fragments):
  data_dir = tmp_path / "tfds"
  with pytest.raises(error) as info, warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the fixture's counts and skips
    _build(data_dir, manual)
  for fragment in fragments:
    assert fragment in str(info.value), str(info.value)
  assert not list(data_dir.glob("hgr1/default/*/*.array_record*"))


def test_nested_layout_builds_the_same(tmp_path, built):
  manual = _copy_dummy(tmp_path, nested=True)
  with pytest.warns(UserWarning):
    _build(tmp_path / "tfds", manual)
  for split in SPLITS:
    a = _read_all(built, split)
    b = _read_all(tmp_path / "tfds", split)
    assert [x["id"] for x in a] == [x["id"] for x in b]
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x["landmarks"], y["landmarks"])


@pytest.mark.parametrize("make_empty", [False, True])
def test_missing_or_empty_manual_dir(tmp_path, make_empty):
  manual = tmp_path / "nothing_here"
  if make_empty:
    manual.mkdir()
  data_dir = tmp_path / "tfds"
  with pytest.raises(manual_data.ManualDataError) as info:
    _build(data_dir, manual)
  for fragment in (str(manual), XML_DIR, "sun.aei.polsl.pl"):
    assert fragment in str(info.value)


def test_missing_feature_points_folder(tmp_path):
  manual = _copy_dummy(tmp_path)
  shutil.rmtree(manual / XML_DIR)
  with pytest.raises(manual_data.ManualDataError) as info:
    _build(tmp_path / "tfds", manual)
  assert "holds neither original_images + feature_points" in str(info.value)


def test_malformed_xml_in_the_build(tmp_path):
  manual = _copy_dummy(tmp_path)
  xml = manual / XML_DIR / "A_P_hgr1_id10_2.xml"
  xml.write_text(xml.read_text().replace('x="', 'X="', 1))
  _expect_error(tmp_path, manual, manual_data.AnnotationFormatError, str(xml),
                "attribute 'x'")


def test_xml_without_image_is_skipped_and_counted(tmp_path):
  manual = _copy_dummy(tmp_path)
  (manual / IMAGE_DIR / "A_P_hgr1_id11_1.jpg").unlink()
  with pytest.warns(UserWarning) as record:
    _build(tmp_path / "tfds", manual)
  summary = [str(r.message) for r in record
             if isinstance(r.message, manual_data.SkipSummaryWarning)]
  assert len(summary) == 1
  assert f"{manual_data.NO_IMAGE}: 1" in summary[0]
  assert "A_P_hgr1_id11_1.xml" in summary[0]
  assert f"{lib.NO_WRIST}: 1" in summary[0]
  assert len(_read_all(tmp_path / "tfds", "validation")) == 1


def test_image_without_xml_is_skipped_with_a_warning(tmp_path):
  manual = _copy_dummy(tmp_path)
  (manual / XML_DIR / "A_P_hgr1_id11_1.xml").unlink()
  with pytest.warns(manual_data.UnannotatedImageWarning, match="1 image"):
    with pytest.warns(manual_data.DataCountWarning):
      _build(tmp_path / "tfds", manual)
  assert len(_read_all(tmp_path / "tfds", "validation")) == 1


def test_empty_split_is_one_error_naming_it(tmp_path):
  manual = _copy_dummy(tmp_path)
  for stem in SPLITS["validation"]:
    (manual / XML_DIR / f"{stem}.xml").unlink()
  _expect_error(tmp_path, manual, manual_data.ManualDataError,
                "split 'validation' (subjects 11, 12)", "train: 3")


def test_unexpected_file_name(tmp_path):
  manual = _copy_dummy(tmp_path)
  shutil.copy(manual / IMAGE_DIR / "A_P_hgr1_id11_1.jpg",
              manual / IMAGE_DIR / "holiday.jpg")
  data_dir = tmp_path / "tfds"
  with pytest.raises(manual_data.ManualDataError) as info:
    _build(data_dir, manual)
  assert "holiday.jpg" in str(info.value)
  assert "<gesture>_P_hgr1_id<NN>_<k>" in str(info.value)


def test_names_reach_the_dataset_info_and_predict_outputs(built, tmp_path):
  from landmark_ssl import input_pipeline, predict  # pylint: disable=g-import-not-at-top
  builder = tfds.builder("hgr1", data_dir=str(built))
  info = input_pipeline.dataset_info(builder)
  assert info.landmark_names[0] == "Wrist/radial"
  assert info.landmark_names == tuple(builder.info.metadata["landmark_names"])
  xy = np.random.default_rng().uniform(0, 64, (25, 2))
  predict.write_outputs({"landmark_names": list(info.landmark_names),
                         "images": [{"file": "a.jpg",
                                     "landmarks": xy.tolist()}]},
                        str(tmp_path))
  import csv  # pylint: disable=g-import-not-at-top
  rows = list(csv.DictReader(open(tmp_path / "landmarks.csv")))
  assert [r["name"] for r in rows] == list(info.landmark_names)
  np.testing.assert_allclose([float(r["x"]) for r in rows], xy[:, 0],
                             atol=1e-3)
