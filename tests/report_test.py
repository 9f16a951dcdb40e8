"""The report: mean and sample std over seeds against hand-computed numbers,
units, the paper's numbers beside each cell, per-split tables, missing cells."""

import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats

from landmark_ssl import configs
from landmark_ssl import report
from landmark_ssl import rundir

pytestmark = pytest.mark.filterwarnings("ignore:the load_module")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
EXP = {n: configs.load_experiment(f"{ROOT}/experiments/{n}.py")
       for n in ("blocks", "hgr1", "the300w", "the300w_rcn")}


def fake_results(workdir, experiment, run, metrics, status="finished",
                 error_unit=None, normalizer=None):
  """Writes ``results.json`` of one sweep run as train.py does."""
  exp = EXP[experiment]
  config = exp.get_config(run["config_arg"])
  config.update_from_flattened_dict(run["overrides"])
  normalizer = normalizer or config.eval.normalizer
  unit = error_unit or ("pixels" if normalizer == "pixels"
                        else f"fraction of {normalizer}")
  run_dir = os.path.join(workdir, run["name"])
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, "results.json"), "w") as f:
    json.dump({"config": config.to_dict(), "status": status, "steps": 10,
               "epochs": 1.0, "best_step": 5, "wall_time_s": 1.0,
               "device_kind": "cpu", "num_devices": 8, "num_processes": 1,
               "label_subset": {"fraction": config.data.labeled_fraction,
                                "count": 3, "file": "label_subset.json"},
               "normalizer": normalizer, "error_unit": unit,
               "metrics": metrics}, f)


def run_of(experiment, name):
  (run,) = [r for r in EXP[experiment].sweep() if r["name"] == name]
  return run


def test_blocks_mean_and_sample_std_by_hand(tmp_path):
  # seq_mt L+T+C at 5%: errors 1, 2, 4 pixels over seeds 0-2:
  # mean 7/3 = 2.3333; sample variance ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2
  # = (16 + 1 + 25) / 18 = 7/3, std 1.5275.
  for seed, err, acc in ((0, 1.0, 0.5), (1, 2.0, 0.75), (2, 4.0, 1.0)):
    fake_results(tmp_path, "blocks", run_of("blocks", f"seq_mt_L+T+C_f0.05_s{seed}"),
                 {"validation": {"landmark_error": 9.0},
                  "test": {"landmark_error": err, "accuracy/label": acc,
                           "num_images": 3200,
                           # as written before evaluation dropped them for
                           # pixel errors: the report must not show them
                           "failure_rate@0.08": 1.0, "auc@0.08": 0.0}})
  # comm_mt L at 100%, one seed: no std.
  fake_results(tmp_path, "blocks", run_of("blocks", "comm_mt_L_f1_s3"),
               {"test": {"landmark_error": 3.5, "num_images": 3200}})
  text = report.write_report(str(tmp_path), [f"{ROOT}/experiments/blocks.py"])
  assert "2.33 ± 1.53 (n=3) · paper 1.70 |" in text
  assert "3.50 (n=1) · paper 3.41" in text
  assert "– · paper 8.33" in text  # a paper cell without runs
  assert "## blocks, test: landmark_error (pixels)" in text
  assert "## blocks, test: accuracy/label (%)" in text
  assert "75.00 ± 25.00 (n=3)" in text  # accuracies in percent
  assert "validation" not in text.split("## Missing")[0]  # no validation table
  assert "failure_rate" not in text and "auc@" not in text
  rows = list(csv.DictReader(open(tmp_path / "report.csv")))
  (cell,) = [r for r in rows if r["metric"] == "landmark_error"
             and r["model"] == "seq_mt" and r["costs"] == "L+T+C"
             and float(r["fraction"]) == 0.05]
  assert math.isclose(float(cell["mean"]), 7 / 3)
  assert math.isclose(float(cell["std"]), math.sqrt(7 / 3))
  assert (cell["n"], cell["seeds"], float(cell["paper"])) == ("3", "0 1 2", 1.70)
  (single,) = [r for r in rows if r["metric"] == "landmark_error"
               and r["model"] == "comm_mt" and r["costs"] == "L"
               and float(r["fraction"]) == 1.0]
  assert single["std"] == "" and single["n"] == "1"
  # Missing: the 230 runs of Table 1 minus the 4 finished ones.
  missing = text.split("## Missing runs (")[1]
  assert missing.startswith("226)")
  line = [l for l in missing.splitlines()
          if l.startswith("- blocks, Seq-MT (L+T+C), 5%: ")]
  assert line == ["- blocks, Seq-MT (L+T+C), 5%: seq_mt_L+T+C_f0.05_s3 "
                  "(not started), seq_mt_L+T+C_f0.05_s4 (not started)"]
  # As the sweep's --only: the Seq-MT runs (110) less the 3 finished; the
  # tables still show every finished run (Comm-MT's too).
  only = report.write_report(str(tmp_path), [f"{ROOT}/experiments/blocks.py"],
                             only="^seq_mt_")
  missing = only.split("## Missing runs (")[1]
  assert missing.startswith("107)") and "comm_mt" not in missing
  assert "3.50 (n=1) · paper 3.41" in only
  # Rows in Table 1's order.
  table = text.split("## blocks, test: landmark_error")[1].split("##")[0]
  labels = [line.split("|")[1].strip() for line in table.splitlines()
            if line.startswith("| ") and "(" in line.split("|")[1]]
  assert labels == ["Seq-MT (L)", "Seq-MT (L+C)", "Seq-MT (L+T)",
                    "Seq-MT (L+T+C)", "Comm-MT (L)", "Comm-MT (L+C)",
                    "Heatmap-MT (L)", "Heatmap-MT (L+C)"]


def test_random_values_match_numpy(tmp_path):
  rng = np.random.default_rng()
  errs = rng.uniform(0.05, 0.6, size=5)
  for seed, err in enumerate(errs):
    fake_results(tmp_path, "hgr1", run_of("hgr1", f"heatmap_mt_L+C_f0.2_s{seed}"),
                 {"test": {"landmark_error": float(err),
                           "accuracy/gesture": float(1 - err)}})
  runs, unfinished = report.load_runs(str(tmp_path))
  assert len(runs) == 5 and not unfinished
  stats = report.aggregate(runs)
  s = stats[report.CellKey(report.Cell("hgr1", "heatmap_mt", "L+C", "", 0.2),
                           "test", "landmark_error", "% of wrist")]
  assert math.isclose(s.mean, 100 * np.mean(errs))  # fractions -> percent
  assert math.isclose(s.std, 100 * np.std(errs, ddof=1))
  assert math.isclose(s.std, statistics.stdev(100 * errs))
  assert s.n == 5 and s.seeds == (0, 1, 2, 3, 4)
  text = report.render_markdown(stats)
  assert "paper 43.20" in text and "paper 87.55" in text


def test_by_splits_rows_and_selects_on_validation(tmp_path):
  rng = np.random.default_rng()
  betas = (0.1, 1.0, 3.0)
  val = rng.uniform(1.0, 5.0, size=(3, 3))  # beta x seed
  test = val + rng.normal(0.0, 0.3, size=(3, 3))
  for i, beta in enumerate(betas):
    for seed in range(3):
      run = run_of("blocks", f"seq_mt_L_f0.05_s{seed}")
      run = dict(run, name=f"{run['name']}_model.beta={beta}",
                 overrides=dict(run["overrides"], **{"model.beta": beta}))
      fake_results(tmp_path, "blocks", run,
                   {"validation": {"landmark_error": float(val[i, seed])},
                    "test": {"landmark_error": float(test[i, seed])}})
  text = report.write_report(str(tmp_path), by=["model.beta"])
  table = text.split("## blocks, test: landmark_error")[1].split("##")[0]
  for i, beta in enumerate(betas):
    line = [l for l in table.splitlines()
            if l.startswith(f"| Seq-MT (L), model.beta={beta} |")]
    assert len(line) == 1
    assert (f"{test[i].mean():.2f} ± {test[i].std(ddof=1):.2f} (n=3) · "
            "paper 3.95") in line[0]
  sel = text.split("## Selection on validation")[1].split("\n## ")[0]
  assert "### blocks, Seq-MT (L), 5%: landmark_error (pixels)" in sel
  best = int(np.argmin(val.mean(1)))
  for i, beta in enumerate(betas):
    cell = f"{val[i].mean():.2f} ± {val[i].std(ddof=1):.2f} (n=3)"
    want = f"**{cell}**" if i == best else cell
    assert f"| model.beta={beta} | {want} | {test[i].mean():.2f}" in sel
  assert sel.count("**") == 2 and "Mixed settings" not in text
  assert "not compared" not in sel
  rows = [r for r in csv.DictReader(open(tmp_path / "report.csv"))
          if r["metric"] == "landmark_error" and r["n"] != "0"]
  assert sorted(r["settings"] for r in rows) == [
      f"model.beta={b}" for b in betas]
  # A setting with a seed missing is shown but not compared, even when its
  # mean is the best.
  run = run_of("blocks", "seq_mt_L_f0.05_s0")
  fake_results(tmp_path / "extra", "blocks",
               dict(run, name="b9", overrides=dict(run["overrides"],
                                                   **{"model.beta": 9.0})),
               {"validation": {"landmark_error": 0.01},
                "test": {"landmark_error": 0.02}})
  (choices,) = report.selections(report.load_runs(str(tmp_path),
                                                  ["model.beta"])[0]).values()
  assert [(c.settings, c.compared) for c in choices][-1] == (
      "model.beta=9.0", False)
  assert [c.best for c in choices] == [i == best for i in range(4)]
  text = report.write_report(str(tmp_path), by=["model.beta"])
  assert "| model.beta=9.0 | 0.01 (n=1), not compared: seeds 0 |" in text
  shutil.rmtree(tmp_path / "extra")
  # Without --by only the protocol's beta (blocks.py: 1.0) is in the table
  # beside the paper; each other value is its own group outside the
  # protocol, named, without the paper's number; nothing is averaged across.
  text = report.write_report(str(tmp_path))
  main, outside = text.split("## Runs outside the tables' protocol")
  i = betas.index(1.0)
  assert (f"| Seq-MT (L) | – · paper 8.33 | {test[i].mean():.2f} ± "
          f"{test[i].std(ddof=1):.2f} (n=3) · paper 3.95") in main
  for i, beta in enumerate(betas):
    if beta == 1.0:
      continue
    group = outside.split(f"### Differs in: model.beta={beta}\n")[1].split(
        "### Differs in")[0]
    assert (f"| Seq-MT (L) | {test[i].mean():.2f} ± "
            f"{test[i].std(ddof=1):.2f} (n=3) |") in group
    assert "paper" not in group
  assert f"(n=9)" not in text and "Mixed settings" not in text
  assert "Selection on validation" not in text
  with pytest.raises(ValueError, match="config key 'model.betta'"):
    report.write_report(str(tmp_path), by=["model.betta"])


def test_accuracy_selection_takes_the_largest(tmp_path):
  for alpha, acc in ((0.1, 0.9), (1.0, 0.6)):
    run = run_of("blocks", "seq_mt_L+C_f0.05_s0")
    run = dict(run, name=f"a{alpha}",
               overrides=dict(run["overrides"], **{"loss.alpha": alpha}))
    fake_results(tmp_path, "blocks", run,
                 {"validation": {"accuracy/label": acc, "landmark_error": 2.0},
                  "test": {"accuracy/label": acc}})
    path = tmp_path / f"a{alpha}" / "results.json"
    data = json.loads(path.read_text())
    data["selection"] = {"metric": "accuracy/label", "mode": "max"}
    path.write_text(json.dumps(data))
  (choices,) = report.selections(report.load_runs(str(tmp_path),
                                                  ["loss.alpha"])[0]).values()
  assert [(c.settings, c.best, c.unit) for c in choices] == [
      ("loss.alpha=0.1", True, "%"), ("loss.alpha=1.0", False, "%")]
  assert math.isclose(choices[0].validation.mean, 90.0)


def test_300w_has_one_table_per_test_split_and_rows_of_both_files(tmp_path):
  splits = {"test_common": 0.04, "test_ibug": 0.09, "test_full": 0.05}
  fake_results(tmp_path, "the300w", run_of("the300w", "seq_mt_L+T_f1_s0"),
               {k: {"landmark_error": v, "failure_rate@0.08": 0.1,
                    "auc@0.08": 0.5} for k, v in splits.items()})
  fake_results(tmp_path, "the300w_rcn", run_of("the300w_rcn", "rcn_plus_L_f0.05_s0"),
               {"test_full": {"landmark_error": 0.07}})
  fake_results(tmp_path, "the300w_rcn", run_of("the300w_rcn", "rcn_L_f1_s0"),
               {"test_full": {"landmark_error": 0.055}})
  files = [f"{ROOT}/experiments/the300w.py", f"{ROOT}/experiments/the300w_rcn.py"]
  text = report.write_report(str(tmp_path), files)
  for split, paper in (("test_common", 4.84), ("test_ibug", 9.53),
                       ("test_full", 5.74)):
    table = text.split(f"## the300w, {split}: landmark_error (% of eye_centers)")[1]
    table = table.split("##")[0]
    line = [l for l in table.splitlines() if l.startswith("| Seq-MT (L+T)")][0]
    assert f"{100 * splits[split]:.2f} (n=1) · paper {paper:.2f}" in line
  full = text.split("## the300w, test_full: landmark_error")[1].split("##")[0]
  assert "| RCN+ (L) | 7.00 (n=1) · paper 7.26 |" in full
  assert "5.50 (n=1) · paper 5.54" in full  # RCN [12] at 100%
  assert "## the300w, test_ibug: failure_rate@0.08 (%)" in text
  assert text.split("## Missing runs (")[1].startswith(f"{100 + 55 - 3})")


def test_unfinished_runs_are_listed_not_counted(tmp_path):
  run = run_of("blocks", "seq_mt_L_f0.01_s0")
  fake_results(tmp_path, "blocks", run, {"test": {"landmark_error": 5.0}},
               status="running")
  text = report.write_report(str(tmp_path), [f"{ROOT}/experiments/blocks.py"])
  assert "No finished runs yet." in text
  assert "- blocks, Seq-MT (L), 1%: seq_mt_L_f0.01_s0 (started, not finished), " \
      "seq_mt_L_f0.01_s1 (not started)" in text
  assert "status running" in text


def test_a_directory_without_runs_is_refused_unless_runs_are_expected(
    tmp_path):
  """A --workdir with no run in it is a wrong path (exit 2, nothing written);
  one with a run in progress, or with --config, is a report."""
  (tmp_path / "notes").mkdir()
  with pytest.raises(ValueError, match=r"holds no runs \(no directory under "
                     r"it has a config.json\); pass the --workdir"):
    report.write_report(str(tmp_path))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]
  out = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.report", f"--workdir={tmp_path}"],
      capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
  assert out.returncode == 2 and "holds no runs" in out.stderr
  assert "Aggregates a sweep" not in out.stderr  # the message, not the help
  text = report.write_report(str(tmp_path), [f"{ROOT}/experiments/blocks.py"])
  assert "No finished runs yet." in text and "## Missing runs (" in text
  (tmp_path / "notes" / rundir.CONFIG).write_text("{}")  # started, no results
  assert "No finished runs yet." in report.write_report(str(tmp_path))


def test_a_column_setting_is_part_of_the_protocol(tmp_path):
  """Blocks' 20% runs train 200 epochs (the sweep's column setting): one at
  the old 40 epochs is outside the protocol, and its cell's missing run
  says so; the 200-epoch run is in the table."""
  long_run = run_of("blocks", "seq_mt_L_f0.2_s0")
  assert long_run["overrides"]["train.max_epochs"] == 200
  forty = dict(long_run, name="seq_mt_L_f0.2_s1", overrides=dict(
      long_run["overrides"], seed=1, **{"train.max_epochs": 40.0}))
  for run, err in ((long_run, 0.5), (forty, 1.5)):
    fake_results(tmp_path, "blocks", run, {"test": {"landmark_error": err}})
  text = report.write_report(str(tmp_path), [f"{ROOT}/experiments/blocks.py"])
  table = text.split("## blocks, test: landmark_error (pixels)")[1]
  (line,) = [l for l in table.splitlines() if l.startswith("| Seq-MT (L) |")]
  assert "0.50 (n=1) · paper 1.98" in line
  outside = text.split("## Runs outside the tables' protocol")[1]
  assert "Differs in: train.max_epochs=40.0" in outside
  assert "1.50 (n=1)" in outside
  assert ("seq_mt_L_f0.2_s1 (finished outside the protocol), "
          "seq_mt_L_f0.2_s2 (not started)") in text


def test_bad_results_name_the_file(tmp_path):
  bad = tmp_path / "x" / "results.json"
  bad.parent.mkdir()
  bad.write_text("{not json")
  with pytest.raises(ValueError, match="x/results.json"):
    report.load_runs(str(tmp_path))
  bad.write_text(json.dumps({"status": "finished", "metrics": {}}))
  with pytest.raises(ValueError, match="x/results.json lacks 'config'"):
    report.load_runs(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="--workdir"):
    report.load_runs(str(tmp_path / "nope"))


def test_cli_writes_both_files(tmp_path):
  fake_results(tmp_path, "blocks", run_of("blocks", "heatmap_mt_L_f0.5_s0"),
               {"test": {"landmark_error": 2.5}})
  out = subprocess.run([sys.executable, "-m", "landmark_ssl.report",
                        f"--workdir={tmp_path}"], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, check=True)
  assert "2.50 (n=1) · paper 2.78" in out.stdout
  assert "Missing runs" not in out.stdout  # no --config: nothing expected
  assert (tmp_path / "report.md").read_text() in out.stdout
  assert len(list(csv.DictReader(open(tmp_path / "report.csv")))) == 46


def test_by_a_key_only_some_models_have_leaves_the_others_unsplit(tmp_path):
  # A beta grid of Seq-MT beside a Comm-MT baseline (no model.beta): the
  # baseline keeps its plain row, the grid's runs split by beta.
  rng = np.random.default_rng()
  errs = rng.uniform(1, 9, size=3)
  for beta, err in zip((0.1, 3.0), errs):
    run = run_of("blocks", "seq_mt_L_f0.05_s0")
    fake_results(tmp_path, "blocks",
                 dict(run, name=f"b{beta}",
                      overrides=dict(run["overrides"], **{"model.beta": beta})),
                 {"validation": {"landmark_error": err},
                  "test": {"landmark_error": err}})
  comm = run_of("blocks", "comm_mt_L_f0.05_s0")
  assert "model.beta" not in dict(configs.flat_items(
      EXP["blocks"].get_config(comm["config_arg"]).to_dict()))
  fake_results(tmp_path, "blocks", comm,
               {"validation": {"landmark_error": errs[2]},
                "test": {"landmark_error": errs[2]}})
  text = report.write_report(str(tmp_path), by=["model.beta"])
  table = text.split("landmark_error (pixels)")[1]
  for row, err in (("Seq-MT (L), model.beta=0.1", errs[0]),
                   ("Seq-MT (L), model.beta=3.0", errs[1]),
                   ("Comm-MT (L)", errs[2])):
    (line,) = [l for l in table.splitlines() if l.startswith(f"| {row} |")]
    assert f"{err:.2f} (n=1)" in line
  assert "Mixed settings" not in text
  with pytest.raises(ValueError, match="no finished run .* 'model.betta'"):
    report.write_report(str(tmp_path), by=["model.beta", "model.betta"])


def test_a_run_without_a_newer_config_key_pools_with_runs_at_its_default(tmp_path):
  # Seed 0 was written before loss.elt_stop_gradient existed, seed 1 has it
  # at its default: one cell of two seeds, not "Mixed settings"; a third
  # run that sets it otherwise is outside the protocol, in its own group.
  rng = np.random.default_rng()
  errs = rng.uniform(1, 9, size=3)
  for seed, stop in ((0, None), (1, "none")):
    run = run_of("blocks", f"seq_mt_L+T_f0.05_s{seed}")
    overrides = dict(run["overrides"])
    if stop is not None:
      overrides["loss.elt_stop_gradient"] = stop
    fake_results(tmp_path, "blocks", dict(run, overrides=overrides),
                 {"validation": {"landmark_error": errs[seed]},
                  "test": {"landmark_error": errs[seed]}})
    if stop is None:
      path = os.path.join(tmp_path, run["name"], "results.json")
      data = json.load(open(path))
      del data["config"]["loss"]["elt_stop_gradient"]
      json.dump(data, open(path, "w"))
  text = report.write_report(str(tmp_path))
  (line,) = [l for l in text.splitlines() if l.startswith("| Seq-MT (L+T) |")]
  assert f"{statistics.mean(errs[:2]):.2f} ± {statistics.stdev(errs[:2]):.2f} (n=2)" in line
  assert "Mixed settings" not in text
  run = run_of("blocks", "seq_mt_L+T_f0.05_s2")
  fake_results(tmp_path, "blocks",
               dict(run, overrides=dict(run["overrides"],
                                        **{"loss.elt_stop_gradient": "original"})),
               {"validation": {"landmark_error": errs[2]},
                "test": {"landmark_error": errs[2]}})
  text = report.write_report(str(tmp_path))
  main, outside = text.split("## Runs outside the tables' protocol")
  assert f"(n=2)" in main and f"{errs[2]:.2f} (n=1)" not in main
  assert 'Differs in: loss.elt_stop_gradient="original"' in outside
  assert f"{errs[2]:.2f} (n=1)" in outside


def test_paired_effects_by_hand(tmp_path):
  """C and T gains per seed, their mean, and the sign / t tests computed by
  hand from fresh random errors; a seed only one row has is left out."""
  rng = np.random.default_rng()
  errors = {costs: rng.uniform(1, 5, 5) for costs in ("L", "L+C", "L+T")}
  for costs, errs in errors.items():
    seeds = range(5) if costs != "L+T" else range(4)  # L+T lacks seed 4
    for seed in seeds:
      fake_results(tmp_path, "blocks",
                   run_of("blocks", f"seq_mt_{costs}_f0.05_s{seed}"),
                   {"validation": {"landmark_error": 1.0},
                    "test": {"landmark_error": float(errs[seed])}})
  runs, _ = report.load_runs(str(tmp_path))
  effects = {(e.base, e.added): e for e in report.paired_effects(runs)}
  assert set(effects) == {("L", "L+C"), ("L", "L+T")}  # no L+T+C runs
  c = effects[("L", "L+C")]
  d = errors["L"] - errors["L+C"]
  assert [s for s, _ in c.differences] == [0, 1, 2, 3, 4]
  np.testing.assert_allclose([v for _, v in c.differences], d)
  assert c.mean == pytest.approx(d.mean())
  t = d.mean() / (d.std(ddof=1) / np.sqrt(5))
  assert c.p_t == pytest.approx(2 * scipy.stats.t.sf(abs(t), 4), rel=1e-6)
  k = int((d > 0).sum())
  # Two-sided exact binomial test of k of 5 (p = 1/2), by hand.
  probs = [math.comb(5, i) / 32 for i in range(6)]
  assert c.p_sign == pytest.approx(
      sum(p for p in probs if p <= probs[k] * (1 + 1e-9)))
  assert c.paper == pytest.approx(3.95 - 3.45)
  t_effect = effects[("L", "L+T")]
  assert [s for s, _ in t_effect.differences] == [0, 1, 2, 3]
  text = report.render_markdown(report.aggregate(runs),
                                effects=report.paired_effects(runs))
  assert "## Paired effects of the costs" in text
  assert f"| 5% | C: L − L+C | " in text and f"{c.mean:+.2f}" in text
  # Each line names the seeds it pairs: L+T lacks seed 4.
  (t_line,) = [l for l in text.splitlines() if "| T: L − L+T |" in l]
  per_seed = " ".join(f"{v:+.2f}" for v in errors["L"][:4] - errors["L+T"][:4])
  assert f"| {per_seed} (seeds 0-3) |" in t_line
  assert report.seed_ranges([6, 0, 1, 3, 4]) == "seeds 0-1, 3-4, 6"
  assert report.seed_ranges([2]) == "seed 2"


def test_quick_runs_are_never_beside_the_paper(tmp_path):
  """A quick run (small net, blocks/small) is reported in its own group,
  naming what differs, and not averaged with a protocol run of its cell."""
  run = run_of("blocks", "seq_mt_L_f0.05_s0")
  fake_results(tmp_path, "blocks", run,
               {"validation": {"landmark_error": 2.0},
                "test": {"landmark_error": 2.0}})
  quick = dict(run, name="quick", config_arg=run["config_arg"] + ",quick")
  fake_results(tmp_path, "blocks", quick,
               {"validation": {"landmark_error": 7.33},
                "test": {"landmark_error": 7.33}})
  runs, _ = report.load_runs(str(tmp_path))
  by_dir = {os.path.basename(r.run_dir): r.protocol for r in runs}
  assert by_dir["seq_mt_L_f0.05_s0"] == ()
  assert 'data.name="blocks/small"' in by_dir["quick"]
  text = report.write_report(str(tmp_path))
  main, outside = text.split("## Runs outside the tables' protocol")
  assert "2.00 (n=1) · paper 3.95" in main and "7.33" not in main
  assert 'data.name="blocks/small"' in outside
  group = outside.split("### Differs in:")[1].split("## Figures")[0]
  assert "7.33 (n=1) |" in group and "paper" not in group
  # With another table's experiment file given, the Blocks runs are still
  # held to Blocks' protocol (the repository's file), not taken as at it.
  other = report.write_report(str(tmp_path), [f"{ROOT}/experiments/hgr1.py"])
  main = other.split("## Runs outside the tables' protocol")[0]
  assert "7.33" not in main and "2.00 (n=1) · paper 3.95" in main
  rows = list(csv.DictReader(open(tmp_path / "report.csv")))
  quick_rows = [r for r in rows if r["mean"] and float(r["mean"]) == 7.33]
  assert quick_rows and all(r["paper"] == "" and "outside the protocol"
                            in r["settings"] for r in quick_rows)
