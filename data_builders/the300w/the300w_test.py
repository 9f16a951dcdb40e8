"""The300w builder on its fixtures (``dummy_data/``, see make_dummy_data.py)."""

import pathlib
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import crop
from data_builders import dot_images
from data_builders import landmark_dataset
from data_builders import manual_data
from data_builders.the300w import the300w_dataset_builder as lib

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
SPLIT_SIZES = {"train": 9, "validation": 1, "test_common": 4, "test_ibug": 2,
               "test_full": 6}


def _build(data_dir, manual_dir):
  builder = lib.The300w(data_dir=str(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _read_all(data_dir, split):
  source = tfds.data_source("the300w", data_dir=str(data_dir), split=split)
  return [source[i] for i in range(len(source))]


def _original_landmarks(example_id):
  """0-based landmarks of the fixture, read from its 1-based .pts file."""
  return lib.parse_pts(DUMMY / f"{example_id}.pts") - 1.0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  # Fixture counts are far from the paper's: one warning per split.
  with pytest.warns(manual_data.DataCountWarning) as record:
    _build(data_dir, DUMMY)
  assert len(record) == len(SPLIT_SIZES)
  assert "the paper has 2834" in str(record[0].message)
  return data_dir


def test_split_sizes_and_shapes(built):
  for split, size in SPLIT_SIZES.items():
    examples = _read_all(built, split)
    assert len(examples) == size, split
    for ex in examples:
      assert ex["image"].shape == (80, 80, 1) and ex["image"].dtype == np.uint8
      assert ex["landmarks"].shape == (68, 2)
      assert ex["landmarks"].dtype == np.float32
      np.testing.assert_array_equal(ex["visible"], np.ones(68, np.float32))
      assert ex["crop"].shape == (2, 3)


def test_splits_hold_the_right_folders(built):
  ids = {s: {ex["id"].decode() for ex in _read_all(built, s)}
         for s in SPLIT_SIZES}
  pool = {p.relative_to(DUMMY).with_suffix("").as_posix()
          for f in lib.TRAIN_FOLDERS for p in (DUMMY / f).glob("*.pts")}
  assert ids["train"] | ids["validation"] == pool
  assert not ids["train"] & ids["validation"]
  assert ids["test_full"] == ids["test_common"] | ids["test_ibug"]
  assert all(i.startswith("ibug/") for i in ids["test_ibug"])
  assert all(i.split("/")[1] == "testset" for i in ids["test_common"])
  # The hold-out is the seeded draw, computed here independently.
  _, val = lib.split_train_validation(sorted(pool), 0.1, 0)
  assert ids["validation"] == set(val)


def test_landmarks_sit_on_their_dots(built):
  """The fixtures have a dot at every 0-based landmark: after the 1-based
  conversion, crop and resize each stored landmark must be on its dot."""
  for split in ("train", "validation", "test_full"):
    for ex in _read_all(built, split):
      found = dot_images.dot_centroids(ex["image"], ex["landmarks"], radius=3)
      err = np.linalg.norm(found - ex["landmarks"], axis=-1)
      assert err.max() < 0.5, (ex["id"], err.max())


def test_crop_maps_original_to_stored_and_normalizer(built):
  for ex in _read_all(built, "test_full"):
    original = _original_landmarks(ex["id"].decode())
    np.testing.assert_allclose(crop.apply_affine(original, ex["crop"]),
                               ex["landmarks"], atol=1e-3)
    # The eye-centre distance of the original, scaled by the crop's zoom.
    scale = np.sqrt(abs(np.linalg.det(ex["crop"][:, :2])))
    expected = landmark_dataset.eye_centre_distance(original) * scale
    assert ex["normalizer"] == pytest.approx(expected, rel=1e-4)
    # The landmark box, enlarged 1.3x, fills the 80 pixels.
    span = np.ptp(ex["landmarks"], axis=0).max()
    assert span == pytest.approx(80 / 1.3, rel=1e-4)


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
  # Nothing half-written is left behind.
  assert not list(data_dir.glob("the300w/default/*"))
  return str(info.value)


@pytest.mark.parametrize("make_empty", [False, True])
def test_missing_or_empty_manual_dir(tmp_path, make_empty):
  manual = tmp_path / "nothing_here"
  if make_empty:
    manual.mkdir()
  message = _expect_error(tmp_path, manual, manual_data.ManualDataError,
                          str(manual), "helen/trainset", "ibug.doc.ic.ac.uk")
  assert "Traceback" not in message


def test_missing_folder_is_named(tmp_path):
  manual = _copy_dummy(tmp_path)
  shutil.rmtree(manual / "ibug")
  _expect_error(tmp_path, manual, manual_data.ManualDataError, "lacks ibug")


@pytest.mark.parametrize("line, text, expected", [
    (1, "version: 2", "'version: 1'"),
    (2, "n_points: 67", "n_points 68"),
    (10, "12.5", "two numbers"),
    (40, "1.0 abc", "two numbers"),
    (72, "", "'}'"),
])
def test_malformed_pts_names_file_and_line(tmp_path, line, text, expected):
  manual = _copy_dummy(tmp_path)
  pts = sorted((manual / "helen" / "testset").glob("*.pts"))[0]
  lines = pts.read_text().splitlines()
  lines[line - 1] = text
  pts.write_text("\n".join(lines) + "\n")
  _expect_error(tmp_path, manual, manual_data.AnnotationFormatError,
                str(pts), f"line {line}", expected)


def test_annotation_without_image_is_skipped_and_counted(tmp_path):
  manual = _copy_dummy(tmp_path)
  image = sorted((manual / "helen" / "testset").glob("*.jpg"))[0]
  image.unlink()
  with pytest.warns(UserWarning) as record:
    _build(tmp_path / "tfds", manual)
  summary = [str(r.message) for r in record
             if isinstance(r.message, manual_data.SkipSummaryWarning)]
  assert len(summary) == 1, [str(r.message) for r in record]
  assert f"{manual_data.NO_IMAGE}: 1" in summary[0]
  assert str(image.with_suffix(".pts")) in summary[0]
  ids = {ex["id"].decode() for ex in _read_all(tmp_path / "tfds",
                                                "test_common")}
  assert ids and not any(image.stem in i for i in ids)


def test_too_few_training_images_for_validation_names_the_split(tmp_path):
  manual = _copy_dummy(tmp_path)
  pts = sorted(p for folder in lib.TRAIN_FOLDERS
               for p in (manual / folder).glob("*.pts"))
  for p in pts[1:]:  # one training image: 10% of it is no image
    p.unlink()
  with pytest.warns(UserWarning):
    _expect_error(tmp_path, manual, manual_data.ManualDataError,
                  "split 'validation' (0.1 of the 1 training images",
                  "validation: 0")


def test_unreadable_image_is_named_and_nothing_is_left(tmp_path):
  manual = _copy_dummy(tmp_path)
  image = sorted((manual / "lfpw" / "testset").glob("*.png"))[0]
  image.write_bytes(image.read_bytes()[:100])  # truncated
  with pytest.warns(manual_data.DataCountWarning):
    _expect_error(tmp_path, manual, manual_data.ManualDataError, str(image),
                  "cannot read the image")


def test_coinciding_eye_corners_are_an_error(tmp_path):
  manual = _copy_dummy(tmp_path)
  pts = sorted((manual / "ibug").glob("*.pts"))[0]
  points = lib.parse_pts(pts)
  points[[36, 39, 42, 45]] = points[36]
  rows = "\n".join(f"{x} {y}" for x, y in points)
  pts.write_text(f"version: 1\nn_points: 68\n{{\n{rows}\n}}\n")
  with pytest.warns(manual_data.DataCountWarning):
    _expect_error(tmp_path, manual, manual_data.ManualDataError,
                  str(pts.with_suffix(".jpg")), "normaliser")


def test_image_without_annotation_is_skipped_with_a_warning(tmp_path):
  manual = _copy_dummy(tmp_path)
  pts = sorted((manual / "ibug").glob("*.pts"))[0]
  pts.unlink()
  with pytest.warns(manual_data.UnannotatedImageWarning, match="1 image"):
    with pytest.warns(manual_data.DataCountWarning):
      _build(tmp_path / "tfds", manual)
  assert len(_read_all(tmp_path / "tfds", "test_ibug")) == 1


def test_parse_pts_reads_what_was_written(tmp_path):
  rng = np.random.default_rng()
  points = rng.uniform(0, 500, (68, 2))
  path = tmp_path / "x.pts"
  rows = "\n".join(f"{float(x)!r} {float(y)!r}" for x, y in points)
  path.write_text(f"version: 1\nn_points:  68\n{{\n{rows}\n}}\n\n")
  np.testing.assert_array_equal(lib.parse_pts(path), points)


def test_pts_that_is_not_text_names_the_file_and_byte(tmp_path):
  rng = np.random.default_rng()
  rows = "\n".join(f"{x:.3f} {y:.3f}" for x, y in rng.uniform(0, 500, (68, 2)))
  text = f"version: 1\nn_points:  68\n{{\n{rows}\n}}\n".encode()
  at = int(rng.integers(20, len(text)))
  path = tmp_path / "x.pts"
  path.write_bytes(text[:at] + b"\xb0" + text[at:])
  with pytest.raises(manual_data.AnnotationFormatError) as info:
    lib.parse_pts(pathlib.Path(path))
  assert str(path) in str(info.value)
  assert f"byte {at}: expected ASCII text" in str(info.value)
