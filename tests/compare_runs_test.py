"""landmark_ssl.compare_runs: what differs between two runs, on fresh random
run files and on committed ones."""

import copy
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from landmark_ssl import compare_runs

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "blocks" / "seq_mt_L+T_f0.01_s0"


def _events(rng, steps, values=("loss", "landmark", "grad_norm")):
  events = []
  for step in steps:
    events.append({"event": "train", "step": step, "epoch": step / 10,
                   "images_per_s": float(rng.uniform(10, 100)),
                   "wall_time_s": float(rng.uniform(1, 9)),
                   **{k: float(rng.normal()) for k in values}})
    events.append({"event": "eval", "split": "validation", "step": step,
                   "landmark_error": float(rng.uniform(1, 9))})
  return events


def test_leaf_differences():
  rng = np.random.default_rng()
  a = {"x": {"y": 1, "z": [1, 2]}, "w": None, "e": {}}
  b = copy.deepcopy(a)
  assert compare_runs.leaf_differences(a, b) == compare_runs.LeafDifferences(
      [], [], [])
  b["x"]["y"] = int(rng.integers(2, 9))
  b["x"]["new"] = "v"
  del b["w"]
  d = compare_runs.leaf_differences(a, b)
  assert d.differ == [("x.y", 1, b["x"]["y"])]
  assert d.only_a == ["w"] and d.only_b == ["x.new"]


def test_first_divergence_finds_the_step_timings_aside():
  rng = np.random.default_rng()
  steps = list(range(10, 210, 10))
  a = _events(rng, steps)
  b = copy.deepcopy(a)
  for e in b:  # timings differ between any two runs: not a divergence
    if e["event"] == "train":
      e["images_per_s"] += 1.0
      e["wall_time_s"] *= 2
  assert compare_runs.first_divergence(a, b) == (None, len(steps))
  k = int(rng.integers(len(steps)))
  trains = [e for e in b if e["event"] == "train"]
  for e in trains[k:]:
    e["landmark"] = e["landmark"] * (1 + 1e-6) + 1e-9
  d, common = compare_runs.first_divergence(a, b)
  assert common == len(steps)
  assert (d.step, d.key, d.steps_equal) == (steps[k], "landmark", k)
  a_trains = [e for e in a if e["event"] == "train"]
  assert (d.a, d.b) == (a_trains[k]["landmark"], trains[k]["landmark"])
  assert d.relative == pytest.approx(abs(d.a - d.b) / max(abs(d.a), abs(d.b)))
  # Only steps both logged count: B logging every other step.
  sparse = [e for e in b if e["step"] % 20 == 0]
  d2, common2 = compare_runs.first_divergence(a, sparse)
  assert common2 == len([s for s in steps if s % 20 == 0])
  assert d2.step == min(s for s in steps[k:] if s % 20 == 0)


def test_validation_pairs_and_spread():
  rng = np.random.default_rng()
  a = _events(rng, range(1, 31))
  b = _events(rng, range(2, 41, 2))
  pairs = compare_runs.validation_pairs(a, b, "landmark_error")
  assert [s for s, _, _ in pairs] == list(range(2, 31, 2))
  va = {e["step"]: e["landmark_error"] for e in a if e["event"] == "eval"}
  assert all(x == va[s] for s, x, _ in pairs)
  picked = compare_runs.spread(pairs, 4)
  assert len(picked) == 4 and picked[0] == pairs[0] and picked[-1] == pairs[-1]
  assert compare_runs.spread(pairs, 0) == pairs == compare_runs.spread(pairs, 99)


def _copy_run(tmp_path, name):
  dst = tmp_path / name
  shutil.copytree(COMMITTED, dst)
  return dst


def _edit_json(path, edit):
  value = json.loads(path.read_text())
  edit(value)
  path.write_text(json.dumps(value))


def test_a_committed_run_against_itself_and_against_changed_copies(tmp_path):
  a = compare_runs.RunFiles.read(COMMITTED)
  same = compare_runs.compare(a, compare_runs.RunFiles.read(COMMITTED))
  assert "config:\n  same\ndata:\n  same examples and label subset\n" in same
  assert "stack:\n  same\n" in same
  assert "training values equal at all 40 common logged steps" in same
  # B: another CPU, another test split, another label subset, a changed
  # setting, and training values apart from the 7th logged step on.
  b_dir = _copy_run(tmp_path, "b")
  def change_results(r):
    r["stack"]["cpu_features"] = ["sse4_2"]
    r["data"]["splits"]["test"]["sha256"] = "0" * 64
    r["label_subset"]["sha256"] = "f" * 64
  _edit_json(b_dir / "results.json", change_results)
  _edit_json(b_dir / "config.json",
             lambda c: c["optim"].update(learning_rate=0.5))
  lines = (b_dir / "metrics.jsonl").read_text().splitlines()
  events = [json.loads(line) for line in lines]
  trains = [e for e in events if e["event"] == "train"]
  trains[6]["loss"] += 1.0
  (b_dir / "metrics.jsonl").write_text(
      "\n".join(json.dumps(e) for e in events) + "\n")
  text = compare_runs.compare(a, compare_runs.RunFiles.read(b_dir))
  assert "optim.learning_rate: A 0.001, B 0.5" in text
  assert 'cpu_features: A ["sse4_2", "avx", "avx2", "fma"], B ["sse4_2"]' in text
  assert f"splits.test.sha256: A \"{a.results['data']['splits']['test']['sha256']}\"" in text
  assert "label subset: A " in text
  assert (f"equal at 6 of 40 common logged steps, first apart at step "
          f"{trains[6]['step']}: loss") in text


def test_runs_that_predate_the_records_are_not_recorded(tmp_path):
  b_dir = _copy_run(tmp_path, "old")
  def old(r):
    del r["data"], r["label_subset"]["sha256"]
    r["stack"] = {k: v for k, v in r["stack"].items()
                  if k not in ("cpus", "cpu_features")}
  _edit_json(b_dir / "results.json", old)
  text = compare_runs.compare(compare_runs.RunFiles.read(COMMITTED),
                              compare_runs.RunFiles.read(b_dir))
  assert "data: not recorded in B" in text
  assert "label subset: digest not recorded in B" in text
  assert ("not recorded in B (written before they were): cpu_features, "
          "cpus.count, cpus.usable") in text


def test_cli(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.compare_runs",
       f"--workdirs={COMMITTED},{COMMITTED}", "--evals=3"],
      capture_output=True, text=True, cwd=ROOT, check=False)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.count("\n    ") == 3  # three validation lines
  missing = tmp_path / "nothing"
  proc = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.compare_runs",
       f"--workdirs={COMMITTED},{missing}"],
      capture_output=True, text=True, cwd=ROOT, check=False)
  assert proc.returncode == 2
  assert f"{missing} has no config.json" in proc.stderr


@pytest.mark.parametrize("edit, what", [
    (lambda r: r.update(metrics=5), "'metrics' should be a JSON object, not 5"),
    (lambda r: r["metrics"].update(test=[1.5]),
     "metrics['test'] should be a JSON object, not [1.5]"),
    (lambda r: r.update(stack="cpu"), "'stack' should be a JSON object"),
])
def test_a_hand_edited_results_file_is_named_not_a_traceback(tmp_path, edit,
                                                             what):
  b_dir = _copy_run(tmp_path, "edited")
  _edit_json(b_dir / "results.json", edit)
  with pytest.raises(ValueError) as info:
    compare_runs.RunFiles.read(b_dir)
  assert str(info.value).startswith(f"{b_dir / 'results.json'}: {what}")
  proc = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.compare_runs",
       f"--workdirs={COMMITTED},{b_dir}"],
      capture_output=True, text=True, cwd=ROOT, check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert what in proc.stderr
  (b_dir / "results.json").write_text("[1, 2]")
  with pytest.raises(ValueError, match="holds a JSON list, not the object"):
    compare_runs.RunFiles.read(b_dir)
