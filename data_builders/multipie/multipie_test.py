"""The Multipie builder on its fixtures (``dummy_data/``, see make_dummy_data.py)."""

import pathlib
import shutil
import warnings

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds

from data_builders import crop
from data_builders import dot_images
from data_builders import manual_data
from data_builders.multipie import make_dummy_data as fixtures
from data_builders.multipie import multipie_dataset_builder as lib
from landmark_ssl import evaluation

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
SPLITS = ("train", "validation", "test")
SUBJECT_SPLIT = {"001": "train", "151": "validation", "201": "test"}


def _build(data_dir, manual_dir, config=None, **settings):
  """Builds a named config, or a variant of the default with ``settings``."""
  if settings:
    config = lib.MultipieConfig(name="variant", image_size=64, enlarge=1.3,
                                **settings)
  kwargs = {"config": config} if config is not None else {}
  builder = lib.Multipie(data_dir=str(data_dir), **kwargs)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _build_recording(data_dir, manual_dir, config=None, **settings):
  """``_build``, returning the warnings it gave."""
  with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    _build(data_dir, manual_dir, config, **settings)
  return [r.message for r in record]


def _read_all(data_dir, split, config="default"):
  source = tfds.data_source(f"multipie/{config}", data_dir=str(data_dir),
                            split=split)
  return [source[i] for i in range(len(source))]


def _by_group(data_dir, config="default"):
  """group -> (image shot, label shot, example) over all splits."""
  result = {}
  for split in SPLITS:
    for ex in _read_all(data_dir, split, config):
      image, label = lib.parse_id(ex["id"])
      assert SUBJECT_SPLIT[label.subject] == split
      assert label.group not in result  # one example per group
      result[label.group] = (image, label, ex)
  return result


def _original_landmarks(label: lib.Shot) -> np.ndarray:
  """0-based landmarks of a fixture label file (written 1-based)."""
  return scipy.io.loadmat(fixtures.label_path(DUMMY, label))["pts"] - 1.0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  messages = _build_recording(data_dir, DUMMY)
  return data_dir, messages


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds_labelled")
  _build_recording(data_dir, DUMMY, "labelled_flash")
  return data_dir


def test_one_example_per_group_split_by_subject(built):
  groups = _by_group(built[0])
  # Every group of the used cameras with a 68-point label file and images,
  # once; the 66-point, image-less and profile-camera files are not used.
  assert set(groups) == set(fixtures.GROUPS)
  for group, (image, label, ex) in groups.items():
    flashes, labelled_flashes = fixtures.GROUPS[group]
    # The group's lowest labelled flash gives the landmarks.
    assert label.illumination == min(labelled_flashes)
    assert image.group == group and image.illumination in flashes
    assert ex["image"].shape == (64, 64, 1) and ex["image"].dtype == np.uint8
    assert ex["landmarks"].shape == (68, 2)
    np.testing.assert_array_equal(ex["visible"], np.ones(68, np.float32))


def test_random_illumination_is_the_seeded_draw(built, tmp_path):
  groups = _by_group(built[0])
  for group, (image, _, _) in groups.items():
    available = lib.group_illuminations(DUMMY, lib.Shot(*group, "00"))
    assert available == sorted(fixtures.GROUPS[group][0])
    # The draw of a group depends on its own numbers and images only.
    assert image.illumination == lib.draw_illumination(group, available, 0)
  # Not always the labelled flash: the draw uses the other flashes too.
  assert any(image.illumination != label.illumination
             for image, label, _ in groups.values())
  # Another seed draws another image for at least one group, still an
  # existing image of the group, with the same landmarks.
  _build_recording(tmp_path, DUMMY, split_seed=1)
  other = _by_group(tmp_path, config="variant")
  assert set(other) == set(groups)
  changed = [g for g in groups if other[g][0] != groups[g][0]]
  assert changed
  for group, (image, label, ex) in other.items():
    assert image.illumination in fixtures.GROUPS[group][0]
    assert image.illumination == lib.draw_illumination(
        group, sorted(fixtures.GROUPS[group][0]), 1)
    np.testing.assert_allclose(ex["landmarks"], groups[group][2]["landmarks"])
  assert len({lib.draw_illumination(("151", "03", "03", "13_0"),
                                    ["02", "08", "16"], seed)
              for seed in range(20)}) > 1


def test_labels(built):
  builder = tfds.builder("multipie", data_dir=str(built[0]))
  emotions = builder.info.features["emotion"].names
  cameras = builder.info.features["camera"].names
  assert len(emotions) == 6 and cameras == list(lib.CAMERAS)
  expected_emotion = {(1, 1): "neutral", (1, 2): "smile", (2, 3): "squint",
                      (3, 3): "disgust", (4, 2): "neutral",
                      (2, 2): "surprise", (4, 3): "scream"}
  for _, label, ex in _by_group(built[0]).values():
    key = (int(label.session), int(label.recording))
    assert emotions[ex["emotion"]] == expected_emotion[key]
    assert cameras[ex["camera"]] == label.camera


def test_landmarks_sit_on_their_dots_and_crop_maps_original(built):
  """Random flash: the label file's landmarks sit on the drawn image's dots."""
  for image, label, ex in _by_group(built[0]).values():
    found = dot_images.dot_centroids(ex["image"], ex["landmarks"], radius=2)
    err = np.linalg.norm(found - ex["landmarks"], axis=-1)
    assert err.max() < 0.5, (ex["id"], err.max())
    original = _original_landmarks(label)
    np.testing.assert_allclose(crop.apply_affine(original, ex["crop"]),
                               ex["landmarks"], atol=1e-3)


def test_labelled_flash_uses_the_label_flash(built, labelled):
  default = _by_group(built[0])
  groups = _by_group(labelled, config="labelled_flash")
  assert set(groups) == set(default)
  for group, (image, label, ex) in groups.items():
    assert image == label  # the labelled flash's own image
    assert ex["id"].decode() == f"{label.stem}:{label.label_stem}"
    found = dot_images.dot_centroids(ex["image"], ex["landmarks"], radius=2)
    assert np.linalg.norm(found - ex["landmarks"], axis=-1).max() < 0.5
    # Same label file, same crop, whatever flash the default drew.
    np.testing.assert_allclose(ex["landmarks"], default[group][2]["landmarks"])
    np.testing.assert_allclose(ex["crop"], default[group][2]["crop"])


def _eye_distance(landmarks, first, second):
  return np.linalg.norm(np.mean(landmarks[list(first)], axis=0) -
                        np.mean(landmarks[list(second)], axis=0))


def test_normalizer_variants(built, tmp_path):
  _build_recording(tmp_path, DUMMY, "eyelid_mean")
  default = _by_group(built[0])
  eyelid = _by_group(tmp_path, config="eyelid_mean")
  assert set(eyelid) == set(default)
  for group, (_, _, ex) in eyelid.items():
    ref = default[group][2]
    corners = _eye_distance(ref["landmarks"], (36, 39), (42, 45))
    lids = _eye_distance(ex["landmarks"], range(36, 42), range(42, 48))
    assert ref["normalizer"] == pytest.approx(corners, rel=1e-5)
    assert ex["normalizer"] == pytest.approx(lids, rel=1e-5)
    assert abs(lids - corners) > 1e-3  # the fixture tells them apart
    # The evaluation's readings of the stored landmarks agree.
    lm = ex["landmarks"][None]
    assert evaluation.normalizers("inter_pupil", lm)[0] == pytest.approx(
        ex["normalizer"], rel=1e-5)
    assert evaluation.normalizers("eye_centers", lm)[0] == pytest.approx(
        ref["normalizer"], rel=1e-5)


def test_skips_are_reported_once_with_counts(built):
  messages = built[1]
  summaries = [str(m) for m in messages
               if isinstance(m, manual_data.SkipSummaryWarning)]
  assert len(summaries) == 1
  summary = summaries[0]
  short = str(fixtures.label_path(DUMMY, fixtures.SHORT))
  no_image = str(fixtures.label_path(DUMMY, fixtures.NO_IMAGE))
  extra = str(fixtures.label_path(
      DUMMY, lib.Shot(*fixtures.TWO_LABELS,
                      max(fixtures.GROUPS[fixtures.TWO_LABELS][1]))))
  assert f"- {lib.WRONG_COUNT}: 1, e.g.:\n  {short}" in summary, summary
  assert f"- {manual_data.NO_IMAGE}: 1, e.g.:\n  {no_image}" in summary
  assert f"- {lib.EXTRA_LABEL}: 1, e.g.:\n  {extra}" in summary
  assert "3 file(s) left out" in summary
  assert fixtures.OTHER_CAMERA.stem not in summary  # ignored, not skipped
  per_file = [str(m) for m in messages
              if isinstance(m, manual_data.SkippedFileWarning)]
  assert any(short in m and "(66 points)" in m for m in per_file), per_file
  counts = [str(m) for m in messages
            if isinstance(m, manual_data.DataCountWarning)]
  assert any("split 'test' has 2 items; the paper has 1054" in m
             for m in counts), counts


def test_coordinate_base_setting_shifts_landmarks(built, tmp_path):
  _build_recording(tmp_path, DUMMY, coordinate_base=0.0)
  default = {ex["id"]: ex for ex in _read_all(built[0], "test")}
  variant = _read_all(tmp_path, "test", config="variant")
  # The same seed draws the same images.
  assert {ex["id"] for ex in variant} == set(default)
  for ex in variant:
    ref = default[ex["id"]]
    # Same crop size, box moved by (+1, +1) original pixels: landmarks in the
    # crop are unchanged, the crop's translation absorbs the shift.
    np.testing.assert_allclose(ex["landmarks"], ref["landmarks"], atol=1e-3)
    np.testing.assert_allclose(
        crop.apply_affine(np.array([1.0, 1.0]), ex["crop"]),
        crop.apply_affine(np.array([0.0, 0.0]), ref["crop"]), atol=1e-3)


def _copy_dummy(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY, manual)
  return manual


def test_landmarks_folder_is_accepted_instead_of_labels(built, tmp_path):
  manual = _copy_dummy(tmp_path)
  # The older layout: any sub-folders under landmarks/.
  legacy = manual / lib.LEGACY_LABEL_DIR
  for path in sorted((manual / lib.LABEL_DIR).rglob("*_lm.mat")):
    target = legacy / lib.parse_landmark_name(path.stem).camera / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    path.rename(target)
  shutil.rmtree(manual / lib.LABEL_DIR)
  messages = _build_recording(tmp_path / "tfds", manual)
  assert not any(isinstance(m, lib.LabelFolderWarning) for m in messages)
  ids = {ex["id"] for s in SPLITS for ex in _read_all(tmp_path / "tfds", s)}
  assert ids == {ex["id"] for s in SPLITS for ex in _read_all(built[0], s)}


def test_labels_folder_wins_over_landmarks_folder(tmp_path):
  (tmp_path / lib.LABEL_DIR).mkdir()
  assert lib.label_folder(tmp_path) == tmp_path / lib.LABEL_DIR
  (tmp_path / lib.LEGACY_LABEL_DIR).mkdir()
  with pytest.warns(lib.LabelFolderWarning, match="reading labels/ only"):
    assert lib.label_folder(tmp_path) == tmp_path / lib.LABEL_DIR
  shutil.rmtree(tmp_path / lib.LABEL_DIR)
  assert lib.label_folder(tmp_path) == tmp_path / lib.LEGACY_LABEL_DIR


def test_ids_and_configs():
  image, label = lib.parse_id(b"001_01_01_051_12:001_01_01_051_05_lm")
  assert image == lib.Shot("001", "01", "01", "05_1", "12")
  assert label == image.with_illumination("05")
  assert lib.example_id(image, label) == "001_01_01_051_12:001_01_01_051_05_lm"
  with pytest.raises(ValueError):
    lib.parse_id("001_01_01_051_12")
  names = {c.name: c for c in lib.Multipie.BUILDER_CONFIGS}
  assert names["default"].illumination == "random"
  assert names["default"].normalizer == "eye_corners"
  assert names["labelled_flash"].illumination == "labelled"
  assert names["eyelid_mean"].normalizer == "eyelid_mean"
  for bad in ({"illumination": "flash"}, {"normalizer": "pupils"}):
    with pytest.raises(ValueError, match=next(iter(bad))):
      lib.MultipieConfig(name="bad", **bad)
  from landmark_ssl import build_data  # pylint: disable=g-import-not-at-top
  builder = build_data.make_builder("multipie/labelled_flash", "/nonexistent")
  assert builder.builder_config.illumination == "labelled"


# ------------------------------------------------------------- bad input


def _expect_error(tmp_path, manual, error, *fragments, config=None):
  data_dir = tmp_path / "tfds"
  with pytest.raises(error) as info:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      _build(data_dir, manual, config)
  for fragment in fragments:
    assert fragment in str(info.value), str(info.value)
  # Nothing half-written is left behind (TFDS's .config/ is no record).
  assert not [p for p in data_dir.glob("multipie/*/*")
              if p.parent.name != ".config"]
  return str(info.value)


@pytest.mark.parametrize("make_empty", [False, True])
def test_missing_or_empty_manual_dir(tmp_path, make_empty):
  manual = tmp_path / "nothing_here"
  if make_empty:
    manual.mkdir()
  _expect_error(tmp_path, manual, manual_data.ManualDataError, str(manual),
                "session01/multiview", "labels/051/", "_lm.mat", "cs.cmu.edu")


def test_missing_session_or_label_folder(tmp_path):
  manual = _copy_dummy(tmp_path)
  shutil.rmtree(manual / "session03")
  shutil.rmtree(manual / lib.LABEL_DIR)
  _expect_error(tmp_path, manual, manual_data.ManualDataError,
                "lacks session03/multiview, labels/")


def test_empty_validation_split_is_named(tmp_path):
  manual = _copy_dummy(tmp_path)
  for path in (manual / lib.LABEL_DIR).rglob("151_*_lm.mat"):
    path.unlink()
  _expect_error(tmp_path, manual, manual_data.ManualDataError,
                "split 'validation' (subjects 151-200)", "validation: 0")


@pytest.mark.parametrize("content, expected", [
    ({"points": np.zeros((68, 2))}, "key 'pts'"),
    ({"pts": np.zeros((68, 3))}, "shape (N, 2)"),
    ({"pts": np.full((68, 2), np.nan)}, "finite coordinates"),
    ({"pts": np.full((66, 2), np.inf)}, "finite coordinates"),
    (None, "a MATLAB .mat file"),
])
def test_malformed_mat_names_file_and_key(tmp_path, content, expected):
  manual = _copy_dummy(tmp_path)
  mat = manual / lib.LABEL_DIR / "050" / "151_04_02_050_03_lm.mat"
  if content is None:
    mat.write_bytes(b"not a mat file at all" * 10)
  else:
    scipy.io.savemat(mat, content)
  _expect_error(tmp_path, manual, manual_data.AnnotationFormatError, str(mat),
                expected)


def test_unknown_session_recording(tmp_path):
  manual = _copy_dummy(tmp_path)
  src = manual / lib.LABEL_DIR / "050" / "151_04_02_050_03_lm.mat"
  bad = src.with_name("151_01_03_050_03_lm.mat")  # session 1 has no r3
  shutil.copy(src, bad)
  _expect_error(tmp_path, manual, manual_data.AnnotationFormatError, str(bad),
                "session 1, recording 3")


def test_labelled_flash_without_its_image_is_skipped(tmp_path):
  """``labelled_flash`` skips a group whose labelled image is missing even if
  other flashes exist (the default build would draw among those)."""
  manual = _copy_dummy(tmp_path)
  label = lib.Shot("151", "03", "03", "13_0", "08")
  label.image_path(manual).unlink()
  messages = _build_recording(tmp_path / "tfds", manual, "labelled_flash")
  summary = next(str(m) for m in messages
                 if isinstance(m, manual_data.SkipSummaryWarning))
  assert f"- {manual_data.NO_IMAGE}: 2, e.g.:" in summary, summary
  assert str(fixtures.label_path(manual, label)) in summary
  validation = _read_all(tmp_path / "tfds", "validation", "labelled_flash")
  assert [lib.parse_id(ex["id"])[1].group for ex in validation] == [
      ("151", "04", "02", "05_0")]


def test_stray_or_duplicate_label_file(tmp_path):
  manual = _copy_dummy(tmp_path)
  stray = manual / lib.LABEL_DIR / "notes_lm.mat"
  stray.write_bytes(b"")
  _expect_error(tmp_path, manual, manual_data.ManualDataError, str(stray))
  stray.unlink()
  src = manual / lib.LABEL_DIR / "050" / "151_04_02_050_03_lm.mat"
  copy = manual / lib.LABEL_DIR / "051" / src.name
  shutil.copy(src, copy)
  _expect_error(tmp_path, manual, manual_data.ManualDataError,
                "two label files of one name", str(copy))
