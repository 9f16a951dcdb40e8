"""The Hgr1 builder on its fixtures (``dummy_data/``, see make_dummy_data.py)."""

import pathlib
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import crop
from data_builders import dot_images
from data_builders import manual_data
from data_builders.hgr1 import hgr1_dataset_builder as lib
from data_builders.hgr1 import make_dummy_data

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
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


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  with pytest.warns(manual_data.DataCountWarning) as record:
    _build(data_dir, DUMMY)
  messages = [str(r.message) for r in record]
  assert any("gesture classes has 3 items; the paper has 27" in m
             for m in messages), messages
  assert any("split 'train' has 3 items; the paper has 573" in m
             for m in messages), messages
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


def test_visibility_landmarks_and_crop_match_the_xml(built):
  for split in SPLITS:
    for ex in _read_all(built, split):
      stem = ex["id"].decode()
      xml = DUMMY / lib.XML_DIR / f"{stem}.xml"
      original, visible = lib.parse_feature_points(xml)
      np.testing.assert_array_equal(ex["visible"], visible)
      assert visible.sum() == make_dummy_data.STEMS[stem]
      vis = visible > 0
      np.testing.assert_allclose(
          crop.apply_affine(original[vis], ex["crop"]), ex["landmarks"][vis],
          atol=1e-3)
      np.testing.assert_array_equal(ex["landmarks"][~vis], 0.0)
      # Wrist width: landmarks #1 and #25 of the original, times the zoom.
      scale = np.sqrt(abs(np.linalg.det(ex["crop"][:, :2])))
      width = np.linalg.norm(original[0] - original[24]) * scale
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


def _xml(points, hands=None):
  rows = "\n".join(f"<FeaturePoint {attrs} />" for attrs in points)
  hands = hands or f"<hand>{rows}</hand>"
  return f'<?xml version="1.0"?><IMAGE>{hands}</IMAGE>'


def _numbered(n_points, rng):
  slots = [0, 24] + list(rng.choice(np.arange(1, 24), n_points - 2,
                                    replace=False))
  xy = rng.uniform(0, 300, (25, 2))
  attrs = [f'number="{s + 1}" category="{"Wrist" if s in (0, 24) else "P"}" '
           f'x="{float(xy[s, 0])!r}" y="{float(xy[s, 1])!r}"' for s in slots]
  return attrs, slots, xy


def test_parser_reads_numbered_points_with_absent_ones(tmp_path):
  rng = np.random.default_rng()
  attrs, slots, xy = _numbered(int(rng.integers(17, 26)), rng)
  rng.shuffle(attrs)  # document order must not matter
  path = tmp_path / "a.xml"
  path.write_text(_xml(attrs, "<hand />" + "<hand>" + "".join(
      f"<FeaturePoint {a} />" for a in attrs) + "</hand>"))
  landmarks, visible = lib.parse_feature_points(path, coordinate_base=1.0)
  assert set(np.flatnonzero(visible)) == set(int(s) for s in slots)
  np.testing.assert_allclose(landmarks[slots], xy[slots] - 1.0)
  np.testing.assert_array_equal(landmarks[visible == 0], 0.0)


def test_parser_reads_25_unnumbered_points_in_order(tmp_path):
  rng = np.random.default_rng()
  xy = rng.uniform(0, 300, (25, 2))
  absent = int(rng.integers(1, 24))
  xy[absent] = -1.0
  attrs = [f'category="{"Wrist" if s in (0, 24) else "P"}" x="{float(xy[s, 0])!r}" '
           f'y="{float(xy[s, 1])!r}"' for s in range(25)]
  path = tmp_path / "b.xml"
  path.write_text(_xml(attrs))
  landmarks, visible = lib.parse_feature_points(path)
  assert visible.sum() == 24 and visible[absent] == 0
  keep = visible > 0
  np.testing.assert_allclose(landmarks[keep], xy[keep])


@pytest.mark.parametrize("text, expected", [
    ("<IMAGE><hand>", "well-formed XML"),
    ("<ROOT/>", "<IMAGE>"),
    (_xml([], "<hand/>"), "exactly one <hand>"),
    (_xml([], '<hand><FeaturePoint number="1" category="Wrist" x="1" y="1"/>'
              '</hand><hand><FeaturePoint number="1" category="Wrist" '
              'x="1" y="1"/></hand>'), "exactly one <hand>"),
    (_xml(['number="1" category="Wrist" x="1"']), "attribute 'y'"),
    (_xml(['number="1" category="Wrist" x="1" y="a"']), "numeric x and y"),
    (_xml(['number="26" category="P" x="1" y="1"']), "number in 1..25"),
    (_xml(['number="1" category="Wrist" x="1" y="1"',
           'number="1" category="Wrist" x="2" y="2"']), "each landmark number once"),
    (_xml(['number="1" category="Wrist" x="1" y="1"',
           'number="5" category="Wrist" x="2" y="2"']), "landmarks #1 and #25"),
    (_xml(['number="1" category="Wrist" x="1" y="1"',
           'category="P" x="2" y="2"']), "on every point or on none"),
    (_xml(['category="Wrist" x="1" y="1"'] * 20), "all 25 points in order"),
    (_xml(['number="1" category="Wrist" x="1" y="1"',
           'number="2" category="P" x="2" y="2"']), "both wrist points"),
])
def test_malformed_xml_names_file_and_expectation(tmp_path, text, expected):
  path = tmp_path / "bad.xml"
  path.write_text(text)
  with pytest.raises(manual_data.AnnotationFormatError) as info:
    lib.parse_feature_points(path)
  assert str(path) in str(info.value) and expected in str(info.value), (
      str(info.value))


# ------------------------------------------------------------- bad input


def _copy_dummy(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY, manual)
  return manual


def _expect_error(tmp_path, manual, error, *fragments):
  data_dir = tmp_path / "tfds"
  with pytest.raises(error) as info:
    _build(data_dir, manual)
  for fragment in fragments:
    assert fragment in str(info.value), str(info.value)
  assert not list(data_dir.glob("hgr1/default/*"))


@pytest.mark.parametrize("make_empty", [False, True])
def test_missing_or_empty_manual_dir(tmp_path, make_empty):
  manual = tmp_path / "nothing_here"
  if make_empty:
    manual.mkdir()
  _expect_error(tmp_path, manual, manual_data.ManualDataError, str(manual),
                lib.XML_DIR, "sun.aei.polsl.pl")


def test_missing_feature_points_folder(tmp_path):
  manual = _copy_dummy(tmp_path)
  shutil.rmtree(manual / "hgr1_feature_pts")
  _expect_error(tmp_path, manual, manual_data.ManualDataError,
                f"lacks {lib.XML_DIR}")


def test_malformed_xml_in_the_build(tmp_path):
  manual = _copy_dummy(tmp_path)
  xml = manual / lib.XML_DIR / "A_P_hgr1_id10_2.xml"
  xml.write_text(xml.read_text().replace('x="', 'X="', 1))
  _expect_error(tmp_path, manual, manual_data.AnnotationFormatError, str(xml),
                "attribute 'x'")


def test_xml_without_image_is_an_error(tmp_path):
  manual = _copy_dummy(tmp_path)
  image = manual / lib.IMAGE_DIR / "A_P_hgr1_id11_1.jpg"
  image.unlink()
  _expect_error(tmp_path, manual, manual_data.ManualDataError,
                "A_P_hgr1_id11_1.xml", "1 annotation file(s)")


def test_image_without_xml_is_skipped_with_a_warning(tmp_path):
  manual = _copy_dummy(tmp_path)
  (manual / lib.XML_DIR / "A_P_hgr1_id11_1.xml").unlink()
  with pytest.warns(manual_data.UnannotatedImageWarning, match="1 image"):
    with pytest.warns(manual_data.DataCountWarning):
      _build(tmp_path / "tfds", manual)
  assert len(_read_all(tmp_path / "tfds", "validation")) == 1


def test_unexpected_file_name(tmp_path):
  manual = _copy_dummy(tmp_path)
  shutil.copy(manual / lib.IMAGE_DIR / "A_P_hgr1_id11_1.jpg",
              manual / lib.IMAGE_DIR / "holiday.jpg")
  _expect_error(tmp_path, manual, manual_data.ManualDataError, "holiday.jpg",
                "<gesture>_P_hgr1_id<NN>_<k>")
