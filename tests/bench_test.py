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


def test_bench_costs_of_another_model_are_those_it_may_be_trained_with():
  exp = train_step.experiment_module("blocks")
  # Heatmap-MT's argmax has no gradient: no ELT, so its fullest costs are L+C.
  assert train_step.bench_costs(exp, "heatmap_mt") == ["L", "L+C"]
  assert train_step.bench_costs(exp, "comm_mt") == ["L", "L+T+C"]
  for model, allowed in exp.MODELS.items():
    assert set(train_step.bench_costs(exp, model)) <= set(allowed)
  with pytest.raises(ValueError, match="heatmap_mt"):
    train_step.bench_model(exp, "hourglass")
  with pytest.raises(ValueError, match="--model"):
    train_step.compile_step(exp, "L", 8, "fft", None,
                            config_arg="quick,model=comm_mt")


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
  assert res["model"] == "seq_mt" and "model seq_mt" in table
  assert np.isfinite(full["fraction_of_matmul"])


def test_measure_experiment_times_the_model_it_is_given():
  res = train_step.measure_experiment(
      "blocks", batch_size=8, repeats=1, matmul=lambda: 1e9,
      conv_method="fft", config_arg="quick", log=lambda s: None,
      model="heatmap_mt")
  assert res["model"] == "heatmap_mt"
  assert set(res["steps"]) == {"L", "L+C"}
  # L+C adds the class head's FLOPs to the heatmap net's, which dominate.
  ratio = res["steps"]["L+C"]["model_flops"] / res["steps"]["L"]["model_flops"]
  assert 1.0 < ratio < 1.5


def test_op_scope_names_the_pass_and_the_module():
  from landmark_ssl.bench import profile
  def scope(op_name):
    return profile.op_scope({"op_name": op_name, "opcode": "add", "fft_type": ""})
  assert scope("jit(train_step)/transpose(jvp(SeqMT))/landmark_net/conv2/"
               "reduce_sum") == "backward SeqMT/landmark_net/conv2"
  assert scope("jit(train_step)/jvp(SeqMT)/landmark_net/jit(relu)/max") == (
      "forward SeqMT/landmark_net")
  assert scope("jit(train_step)/jvp(vmap(jit(_map_coordinates)))/ge") == "forward -"
  assert scope("jit(train_step)/div") == "other -"
  assert profile.op_scope(None) == "other -"


def test_profile_counts_the_ffts_the_train_step_runs():
  from landmark_ssl.bench import profile
  # Quick Seq-MT: kernels (7, 7, 7, 1), so three FFT layers. Forward: one
  # RFFT and one IRFFT each; backward: the output cotangent's RFFT each, and
  # the input cotangent's IRFFT except for the first layer (no input grad).
  res = profile.profile_experiment("blocks", "L", batch_size=8, steps_run=2,
                                   conv_method="fft", config_arg="quick")
  kinds = {g["group"]: g for g in res["by_kind"]}
  assert kinds["fft RFFT"]["ops_per_step_and_device"] == 6
  assert kinds["fft IRFFT"]["ops_per_step_and_device"] == 5
  for key in ("by_kind", "by_scope"):
    assert sum(g["share"] for g in res[key]) == pytest.approx(1.0)
    assert sum(g["ms_per_step"] for g in res[key]) == pytest.approx(
        res["op_ms_per_step"])
  scopes = {g["group"] for g in res["by_scope"]}
  assert {"forward SeqMT/landmark_net/conv0",
          "backward SeqMT/landmark_net/conv2"} <= scopes
  assert res["wall_ms_per_step"] > 0 and res["devices"] >= 1
  json.dumps(res)
  assert "fft IRFFT" in profile.format_profile(res)

  direct = profile.profile_experiment("blocks", "L", batch_size=8, steps_run=1,
                                      conv_method="direct", config_arg="quick")
  assert not any(g["group"].startswith("fft") for g in direct["by_kind"])
