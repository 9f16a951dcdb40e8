"""experiments/custom.py: shapes, K and class heads come from the built
dataset of your own, never from the file; it trains on the coco_keypoints
fixtures (the session's ``coco_run``)."""

import json
import pathlib

import jax
import ml_collections
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

import conftest
from landmark_ssl import configs
from landmark_ssl import evaluator
from landmark_ssl import input_pipeline
from landmark_ssl import models
from landmark_ssl import program as program_lib

pytestmark = pytest.mark.filterwarnings("ignore:the load_module")

PATH = str(pathlib.Path(__file__).resolve().parents[1] / "experiments" /
           "custom.py")
EXP = configs.load_experiment(PATH)


def test_the_file_holds_no_shape_of_the_data():
  for name in ("IMAGE_SHAPE", "NUM_LANDMARKS", "CLASSES"):
    assert not hasattr(EXP, name)
  config = EXP.get_config("")
  assert config.data.name == "" and config.data.class_heads == ("*",)
  assert config.data.labeled_fraction == 1.0
  assert config.eval.normalizer == "dataset"


def test_the_name_is_set_on_the_command_line(tmp_path):
  name = "d" + str(np.random.default_rng().integers(10**6))
  argv = ["prog", f"--config={PATH}:quick", f"--config.data.name={name}",
          f"--config.data.data_dir={tmp_path}"]
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=fv, sys_argv=argv,
                                  lock_config=True)
  fv(argv)
  assert fv.config.data.name == name
  with pytest.raises(ValueError, match=f"Unknown dataset '{name}'"):
    input_pipeline.get_dataset_info(fv.config.data)


def _model_of(config, info):
  config = input_pipeline.with_class_heads(config, info)
  heads = program_lib.model_heads(config, info)
  net = models.create_model(config.model, info.num_landmarks, heads)
  images = jax.ShapeDtypeStruct((2,) + info.image_shape, np.float32)
  out = jax.eval_shape(lambda x: net.apply(
      net.init(jax.random.PRNGKey(0), x), x), images)
  return heads, out


def test_shapes_and_heads_follow_the_dataset(tmp_path):
  """Two datasets of one's own with different sizes, K and classes: the
  same config builds the model each needs."""
  rng = np.random.default_rng()
  coco = json.loads((conftest.COCO_FIXTURES / "annotations.json").read_text())
  k = int(rng.integers(2, 5))
  keep = sorted(rng.choice(5, k, replace=False))
  for cat in coco["categories"]:
    if "keypoints" in cat:
      cat["keypoints"] = [cat["keypoints"][i] for i in keep]
      cat.pop("skeleton")
  for ann in coco["annotations"]:
    kp = np.reshape(ann["keypoints"], (-1, 3))
    if len(kp) == 5:
      ann["keypoints"] = kp[keep].ravel().tolist()
  path = tmp_path / "fewer.json"
  path.write_text(json.dumps(coco))
  size = int(rng.integers(12, 40))
  from landmark_ssl import build_data  # pylint: disable=g-import-not-at-top
  import warnings  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    build_data.build_user_dataset(
        "fewer", str(conftest.COCO_FIXTURES), str(path), None, str(tmp_path),
        image_size=size, validation_fraction=0.2, test_fraction=0.2)
  conftest.build_coco_fixture(tmp_path, image_size=24)
  for name, shape, num, classes in (
      ("fewer", (size, size, 1), k, {}),
      ("faces", (24, 24, 1), 5, {"lighting": 2})):
    config = EXP.get_config("costs=L+T" if not classes else "")
    config.data.name, config.data.data_dir = name, str(tmp_path)
    info = input_pipeline.get_dataset_info(config.data)
    assert (info.image_shape, info.num_landmarks, dict(info.classes)) == (
        shape, num, classes)
    heads, out = _model_of(config, info)
    assert heads == classes
    assert out["landmarks"].shape == (2, num, 2)
    assert {h: v.shape for h, v in out["logits"].items()} == {
        h: (2, n) for h, n in classes.items()}
  # The class term without class features: one error naming the fix.
  config = EXP.get_config("")
  config.data.name, config.data.data_dir = "fewer", str(tmp_path)
  info = input_pipeline.get_dataset_info(config.data)
  with pytest.raises(ValueError, match="costs=L\\+T"):
    input_pipeline.with_class_heads(config, info)
  # Named heads are kept as they are.
  named = EXP.get_config("")
  named.data.class_heads = ("lighting",)
  assert input_pipeline.with_class_heads(named, info) is named


def test_it_trains_on_the_fixture_dataset(coco_run):
  results = json.loads((coco_run.workdir / "results.json").read_text())
  assert results["status"] == "finished" and results["steps"] == 4
  assert results["config"]["data"]["class_heads"] == ["*"]
  for split in ("validation", "test"):
    assert np.isfinite(results["metrics"][split]["landmark_error"])
  builder = input_pipeline.open_dataset(coco_run.config.data)
  flags_ = input_pipeline.read_labeled_flags(builder.as_data_source("train"))
  subset = json.loads((coco_run.workdir / "label_subset.json").read_text())
  assert subset["indices"] == np.flatnonzero(flags_).tolist()
  preds = np.load(coco_run.workdir / "predictions_test.npz")
  n_test = builder.info.splits["test"].num_examples
  assert preds["pred_landmarks"].shape == (n_test, 5, 2)
  assert preds["logits_lighting"].shape == (n_test, 2)
  run = evaluator.restore_run(coco_run.workdir)
  assert run.heads == {"lighting": 2}
  assert run.info.image_shape == (32, 32, 1)
  assert tuple(run.config.data.class_heads) == ("lighting",)


def test_sweep_lists_each_cost_and_seed():
  runs = EXP.sweep(seeds=(3, 7))
  assert len(runs) == 8 and len({r["name"] for r in runs}) == 8
  for r in runs:
    config = EXP.get_config(r["config_arg"])
    config.update_from_flattened_dict(r["overrides"])
    assert r["name"] == configs.run_name("seq_mt", config.costs, 1.0,
                                         config.seed)
