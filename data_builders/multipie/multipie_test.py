"""The Multipie builder on its fixtures (``dummy_data/``, see make_dummy_data.py)."""

import pathlib
import shutil

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds

from data_builders import crop
from data_builders import dot_images
from data_builders import landmark_dataset
from data_builders import manual_data
from data_builders.multipie import make_dummy_data
from data_builders.multipie import multipie_dataset_builder as lib

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
SUBJECT_SPLIT = {"001": "train", "151": "validation", "201": "test"}


def _build(data_dir, manual_dir, **config):
  kwargs = {}
  if config:
    kwargs["config"] = lib.MultipieConfig(name="variant", image_size=64,
                                          enlarge=1.3, **config)
  builder = lib.Multipie(data_dir=str(data_dir), **kwargs)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _read_all(data_dir, split, config="default"):
  source = tfds.data_source(f"multipie/{config}", data_dir=str(data_dir),
                            split=split)
  return [source[i] for i in range(len(source))]


def _shot(example_id):
  return lib.parse_landmark_name(example_id + "_lm")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  with pytest.warns(manual_data.DataCountWarning) as record:
    _build(data_dir, DUMMY)
  messages = [str(r.message) for r in record]
  assert any("split 'test' has 2 items; the paper has 1054" in m
             for m in messages), messages
  return data_dir


def test_one_image_per_group_split_by_subject(built):
  groups = {}
  for split in ("train", "validation", "test"):
    for ex in _read_all(built, split):
      shot = _shot(ex["id"].decode())
      assert SUBJECT_SPLIT[shot.subject] == split
      assert shot.group not in groups  # one illumination per group
      groups[shot.group] = shot.illumination
      assert ex["image"].shape == (64, 64, 1) and ex["image"].dtype == np.uint8
      assert ex["landmarks"].shape == (68, 2)
      np.testing.assert_array_equal(ex["visible"], np.ones(68, np.float32))
  # Every group of the used cameras appears once, with an illumination that
  # has a landmark file; the other camera (19_0) and the image without
  # landmarks (illumination 12) are not used.
  assert {g: make_dummy_data.GROUPS[g] for g in groups} == make_dummy_data.GROUPS
  assert all(groups[g] in make_dummy_data.GROUPS[g] for g in groups)


def test_illumination_draw_is_the_seeded_one(built):
  shots = [lib.Shot(*g, i) for g, ills in make_dummy_data.GROUPS.items()
           for i in ills]
  for seed in range(5):
    picks = lib.pick_illuminations(shots, seed)
    assert len(picks) == len(make_dummy_data.GROUPS)
    # Independent of the other groups: picking from one group alone agrees.
    for pick in picks:
      alone = [s for s in shots if s.group == pick.group]
      assert lib.pick_illuminations(alone, seed) == [pick]
  stored = {ex["id"].decode() for s in ("train", "validation", "test")
            for ex in _read_all(built, s)}
  assert stored == {p.stem for p in lib.pick_illuminations(shots, 0)}
  # The 3-illumination group does not always draw the same one.
  group = ("151", "03", "03", "13_0")
  alone = [s for s in shots if s.group == group]
  assert len({lib.pick_illuminations(alone, seed)[0].illumination
              for seed in range(20)}) > 1


def test_labels(built):
  builder = tfds.builder("multipie", data_dir=str(built))
  emotions = builder.info.features["emotion"].names
  cameras = builder.info.features["camera"].names
  assert len(emotions) == 6 and cameras == list(lib.CAMERAS)
  expected_emotion = {(1, 1): "neutral", (1, 2): "smile", (2, 3): "squint",
                      (3, 3): "disgust", (4, 2): "neutral",
                      (2, 2): "surprise", (4, 3): "scream"}
  for split in ("train", "validation", "test"):
    for ex in _read_all(built, split):
      shot = _shot(ex["id"].decode())
      key = (int(shot.session), int(shot.recording))
      assert emotions[ex["emotion"]] == expected_emotion[key]
      assert cameras[ex["camera"]] == shot.camera


def test_landmarks_sit_on_their_dots_and_crop_maps_original(built):
  for split in ("train", "validation", "test"):
    for ex in _read_all(built, split):
      found = dot_images.dot_centroids(ex["image"], ex["landmarks"], radius=2)
      err = np.linalg.norm(found - ex["landmarks"], axis=-1)
      assert err.max() < 0.5, (ex["id"], err.max())
      stem = ex["id"].decode()
      mat = DUMMY / lib.LANDMARK_DIR / _shot(stem).camera / f"{stem}_lm.mat"
      original = scipy.io.loadmat(mat)["pts"] - 1.0
      np.testing.assert_allclose(crop.apply_affine(original, ex["crop"]),
                                 ex["landmarks"], atol=1e-3)
      scale = np.sqrt(abs(np.linalg.det(ex["crop"][:, :2])))
      expected = landmark_dataset.eye_centre_distance(original) * scale
      assert ex["normalizer"] == pytest.approx(expected, rel=1e-4)


def test_coordinate_base_setting_shifts_landmarks(built, tmp_path):
  with pytest.warns(manual_data.DataCountWarning):
    _build(tmp_path, DUMMY, coordinate_base=0.0)
  default = {ex["id"]: ex for ex in _read_all(built, "test")}
  for ex in _read_all(tmp_path, "test", config="variant"):
    ref = default[ex["id"]]
    # Same crop size, box moved by (+1, +1) original pixels: landmarks in the
    # crop are unchanged, the crop's translation absorbs the shift.
    np.testing.assert_allclose(ex["landmarks"], ref["landmarks"], atol=1e-3)
    np.testing.assert_allclose(
        crop.apply_affine(np.array([1.0, 1.0]), ex["crop"]),
        crop.apply_affine(np.array([0.0, 0.0]), ref["crop"]), atol=1e-3)


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
  assert not list(data_dir.glob("multipie/default/*"))


@pytest.mark.parametrize("make_empty", [False, True])
def test_missing_or_empty_manual_dir(tmp_path, make_empty):
  manual = tmp_path / "nothing_here"
  if make_empty:
    manual.mkdir()
  _expect_error(tmp_path, manual, manual_data.ManualDataError, str(manual),
                "session01/multiview", "_lm.mat", "cs.cmu.edu")


def test_missing_session_folder(tmp_path):
  manual = _copy_dummy(tmp_path)
  shutil.rmtree(manual / "session03")
  _expect_error(tmp_path, manual, manual_data.ManualDataError,
                "lacks session03/multiview")


@pytest.mark.parametrize("content, expected", [
    ({"points": np.zeros((68, 2))}, "key 'pts'"),
    ({"pts": np.zeros((66, 2))}, "shape (68, 2)"),
    ({"pts": np.full((68, 2), np.nan)}, "finite coordinates"),
    (None, "a MATLAB .mat file"),
])
def test_malformed_mat_names_file_and_key(tmp_path, content, expected):
  manual = _copy_dummy(tmp_path)
  mat = manual / lib.LANDMARK_DIR / "05_0" / "151_04_02_050_03_lm.mat"
  if content is None:
    mat.write_bytes(b"not a mat file at all" * 10)
  else:
    scipy.io.savemat(mat, content)
  _expect_error(tmp_path, manual, manual_data.AnnotationFormatError, str(mat),
                expected)


def test_unknown_session_recording(tmp_path):
  manual = _copy_dummy(tmp_path)
  src = manual / lib.LANDMARK_DIR / "05_0" / "151_04_02_050_03_lm.mat"
  bad = src.with_name("151_01_03_050_03_lm.mat")  # session 1 has no r3
  shutil.copy(src, bad)
  _expect_error(tmp_path, manual, manual_data.AnnotationFormatError, str(bad),
                "session 1, recording 3")


def test_landmark_file_without_image_is_an_error(tmp_path):
  manual = _copy_dummy(tmp_path)
  shot = lib.Shot("151", "03", "03", "13_0", "08")
  shot.image_path(manual).unlink()
  _expect_error(tmp_path, manual, manual_data.ManualDataError,
                f"{shot.stem}_lm.mat", "1 annotation file(s)")


def test_stray_file_in_landmarks_folder(tmp_path):
  manual = _copy_dummy(tmp_path)
  (manual / lib.LANDMARK_DIR / "notes_lm.mat").write_bytes(b"")
  _expect_error(tmp_path, manual, manual_data.ManualDataError, "notes_lm.mat")
