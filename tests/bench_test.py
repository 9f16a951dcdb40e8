"""The train-step benchmark measures the training step of the experiment
config and reports consistent numbers (small 'quick' models, one repeat)."""

import json

import numpy as np
import pytest

from landmark_ssl.bench import train_step


def test_bench_costs_are_L_and_the_experiments_default():
  assert train_step.bench_costs(train_step.experiment_module("blocks")) == [
      "L", "L+T+C"]
  assert train_step.bench_costs(train_step.experiment_module("the300w")) == [
      "L", "L+T"]
  assert train_step.bench_costs(train_step.experiment_module("shapes")) == ["C"]
  with pytest.raises(FileNotFoundError, match="blocks"):
    train_step.experiment_module("blokcs")


def test_synthetic_batch_has_the_dataset_shapes_and_the_labelled_mix():
  exp = train_step.experiment_module("hgr1")
  config = exp.get_config("model=seq_mt,costs=L+T+C")
  batch = train_step.synthetic_batch(exp, config, 16)
  assert batch["image"].shape == (16,) + tuple(exp.IMAGE_SHAPE)
  assert batch["landmarks"].shape == (16, exp.NUM_LANDMARKS, 2)
  assert set(batch["labels"]) == set(exp.CLASSES)
  # labeled_share 0.25 of 16 rows keep their landmarks
  assert batch["has_landmarks"].sum() == 4
  assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0


def test_measure_experiment_reports_consistent_numbers():
  reference = 1e9  # a fake matrix-product speed, FLOP/s
  res = train_step.measure_experiment(
      "blocks", batch_size=8, repeats=1, matmul=lambda: reference,
      conv_method="fft", config_arg="quick", log=lambda s: None)
  json.dumps(res)
  assert set(res["steps"]) == {"L", "L+T+C"}
  assert res["matmul_flop_per_s"] == reference
  for s in res["steps"].values():
    assert s["images_per_s"] == pytest.approx(8 / s["step_time_s"])
    assert s["fraction_of_matmul"] == pytest.approx(
        s["model_flops"] / s["step_time_s"] / reference)
    assert s["step_time_median_s"] >= s["step_time_s"] > 0
    assert s["xla_memory_bytes"] > 0
    # model FLOPs count the direct convolutions the FFT step does not run
    assert s["counted_flops"] != s["model_flops"]
  full, single = res["steps"]["L+T+C"], res["steps"]["L"]
  # ELT runs the network on originals and warped copies: twice the FLOPs.
  assert 1.8 < full["model_flops"] / single["model_flops"] < 2.3
  assert res["full_to_L_time"] == pytest.approx(
      full["step_time_s"] / single["step_time_s"])
  assert res["max_rss_bytes"] > 0

  table = train_step.format_table({"blocks": res, "hgr1": {"error": "no data"}},
                                  2048)
  assert "blocks     L+T+C" in table and "hgr1       skipped: no data" in table
  assert np.isfinite(full["fraction_of_matmul"])
