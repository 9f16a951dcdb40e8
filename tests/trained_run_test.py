"""Tests of trained_run: load_run's config, model and parameters, predict on
image arrays, and the messages for wrong inputs."""

import json
import re

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds

import landmark_ssl
from landmark_ssl import checkpointing
from landmark_ssl import configs
from landmark_ssl import evaluator
from landmark_ssl import rundir
from landmark_ssl import trained_run


# --------------------------------------------------------------------------
# check_images (pure)


def test_uint8_is_scaled_and_floats_pass():
  images = np.array([0, 51, 255], np.uint8).reshape(1, 1, 3, 1)
  out = trained_run.check_images(images, (1, 3, 1))
  assert out.dtype == np.float32
  np.testing.assert_allclose(out.ravel(), [0.0, 0.2, 1.0], rtol=1e-6)
  floats = np.linspace(0, 1, 6, dtype=np.float64).reshape(2, 1, 3, 1)
  np.testing.assert_array_equal(trained_run.check_images(floats, (1, 3, 1)),
                                floats.astype(np.float32))


@pytest.mark.parametrize("shape,hint", [
    ((64, 64, 1), r"images\[None\]"),
    ((5, 64, 64), r"images\[\.\.\., None\]"),
    ((5, 32, 32, 1), "Crop and resize them to 64x64"),
    ((5, 64, 64, 3), "1 channel"),
    ((5, 64, 64, 1, 1), None),
])
def test_wrong_shapes_name_the_expected_one(shape, hint):
  with pytest.raises(ValueError) as info:
    trained_run.check_images(np.zeros(shape, np.float32), (64, 64, 1),
                             "blocks/small")
  message = str(info.value)
  assert "(N, 64, 64, 1)" in message and "blocks/small" in message
  assert f"got shape {shape}" in message
  if hint:
    assert re.search(hint, message), message


def test_wrong_dtype_and_range_say_the_fix():
  with pytest.raises(ValueError, match="uint8 images or floats in"):
    trained_run.check_images(np.zeros((1, 2, 2, 1), np.int64), (2, 2, 1))
  with pytest.raises(ValueError, match=r"values in \[0, 255\]; divide"):
    trained_run.check_images(np.array([0.0, 9.0, 255.0, 1.0]).reshape(
        1, 2, 2, 1), (2, 2, 1))


# --------------------------------------------------------------------------
# a trained run


@pytest.fixture(scope="module")
def loaded(tiny_blocks_run):
  return landmark_ssl.load_run(tiny_blocks_run.workdir, batch_size=8)


def _test_split(run_dir):
  """The final evaluation's test predictions and the same test images."""
  preds = np.load(run_dir / "predictions_test.npz")
  config = json.loads((run_dir / "config.json").read_text())
  source = tfds.data_source(config["data"]["name"], split="test",
                            data_dir=config["data"]["data_dir"])
  index = preds["index"]
  images = np.stack([source[int(i)]["image"] for i in index])
  return images, preds


def test_load_run_has_the_runs_config_step_and_model(loaded, tiny_blocks_run):
  run_dir = tiny_blocks_run.workdir
  stored = json.loads((run_dir / "config.json").read_text())
  assert loaded.config.to_dict() == json.loads(json.dumps(
      configs.with_defaults(stored)))
  results = json.loads((run_dir / "results.json").read_text())
  assert loaded.step == results["best_step"]
  assert loaded.image_shape == (60, 60, 1)
  assert loaded.num_landmarks == 5 and loaded.landmark_names == ()
  assert type(loaded.model).__name__ == "SeqMT"
  assert isinstance(loaded, landmark_ssl.TrainedRun)


def test_params_are_the_best_checkpoints_as_orbax_stores_them(
    loaded, tiny_blocks_run):
  path = (tiny_blocks_run.workdir / rundir.CHECKPOINTS /
          str(loaded.step) / "state")
  raw = ocp.StandardCheckpointer().restore(path)["params"]
  flat = jax.tree_util.tree_leaves_with_path(loaded.params)
  raw_flat = dict(jax.tree_util.tree_leaves_with_path(raw))
  assert len(flat) == len(raw_flat) > 0
  for key, value in flat:
    assert isinstance(value, np.ndarray)
    np.testing.assert_array_equal(value, np.asarray(raw_flat[key]),
                                  err_msg=jax.tree_util.keystr(key))


def test_predict_equals_the_runs_final_evaluation(loaded, tiny_blocks_run):
  images, preds = _test_split(tiny_blocks_run.workdir)
  n = 20  # more than one forward pass of 8, and a partial last one
  got = loaded.predict(images[:n])  # uint8, as stored
  assert got.shape == (n, 5, 2) and got.dtype == np.float32
  np.testing.assert_allclose(got, preds["pred_landmarks"][:n], atol=1e-4)
  # Floats in [0, 1] are the same input; model.apply gives the same landmarks.
  floats = images[:n].astype(np.float32) / 255
  np.testing.assert_allclose(loaded.predict(floats), got, atol=1e-5)
  out = loaded.model.apply(loaded.variables, floats, train=False)
  np.testing.assert_allclose(np.asarray(out["landmarks"]), got, atol=1e-4)
  assert loaded.predict(images[:0]).shape == (0, 5, 2)


def test_predict_rejects_a_wrong_shape_naming_the_expected(loaded):
  with pytest.raises(ValueError, match=r"shape \(N, 60, 60, 1\).*images\[None\]"):
    loaded.predict(np.zeros((60, 60, 1), np.uint8))


def test_load_run_without_a_run_says_so(tmp_path):
  with pytest.raises(evaluator.NoCheckpointError, match="no config.json"):
    landmark_ssl.load_run(tmp_path)
