"""The quick start says what a healthy install gets, and it is true: the
README's number, ``experiments/blocks.py``'s ``QUICK_RESULT`` and the run
committed in ``results/quick/`` (trained by the README's command with
today's quick config) agree; ``main`` ends a quick run with a line that sets
the run's error beside that number.

When the quick config changes, this fails until the run is redone:
``python -m landmark_ssl.main --config=experiments/blocks.py:quick
--workdir=/tmp/quick``, then copy its ``config.json``, ``results.json`` and
``metrics.jsonl`` to ``results/quick/`` and its test error, rounded to
0.01 px, to ``QUICK_RESULT`` and the README's quick start.
"""

import json
import pathlib
import re

import pytest

from landmark_ssl import configs
from landmark_ssl import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
QUICK = ROOT / "results" / "quick"
BLOCKS = str(ROOT / "experiments" / "blocks.py")
EXP = configs.load_experiment(BLOCKS)


def committed_error() -> float:
  results = json.loads((QUICK / "results.json").read_text())
  expected = EXP.QUICK_RESULT
  return results["metrics"][expected["split"]][expected["metric"]]


def test_committed_run_is_todays_quick_config_and_small():
  assert {p.name for p in QUICK.iterdir()} == {
      "config.json", "results.json", "metrics.jsonl"}
  assert sum(p.stat().st_size for p in QUICK.iterdir()) < 200_000
  stored = json.loads((QUICK / "config.json").read_text())
  today = json.loads(json.dumps(EXP.get_config("quick").to_dict()))  # lists
  diffs = configs.config_differences(stored, today)
  assert not diffs, ("results/quick/ is a run of another config than "
                     f"blocks.py:quick ({diffs}); redo it (module docstring)")
  results = json.loads((QUICK / "results.json").read_text())
  assert results["status"] == "finished" and results["device_kind"] == "cpu"


def test_expected_value_is_the_committed_runs_and_says_it_learned():
  expected = EXP.QUICK_RESULT
  assert expected["value"] == round(committed_error(), 2)
  assert expected["value"] < 3.0 < expected["wrong_above"]
  assert expected["where"].rstrip("/") == "results/quick"


def test_readme_quick_start_quotes_the_expected_value():
  readme = (ROOT / "README.md").read_text()
  start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
  quoted = re.findall(r"healthy install's,? (\d+\.\d\d) px", start)
  assert quoted == [f"{EXP.QUICK_RESULT['value']:.2f}"], (
      "the README's quick start must quote QUICK_RESULT's value once, as "
      "\"a healthy install's, X.XX px\"")
  wrong = re.findall(r"above (\d+(?:\.\d+)?) px", start)
  assert [float(w) for w in wrong] == [EXP.QUICK_RESULT["wrong_above"]]


def _finished_run(tmp_path, error):
  (tmp_path / "results.json").write_text(json.dumps({
      "status": "finished", "error_unit": "pixels",
      "metrics": {"test": {"landmark_error": error}}}))
  return str(tmp_path)


def test_quick_run_ends_with_its_error_beside_the_expected(tmp_path):
  workdir = _finished_run(tmp_path, 7.4423)
  line = main.quick_result_line(f"{BLOCKS}:quick", EXP.get_config("quick"),
                                workdir)
  value = EXP.QUICK_RESULT["value"]
  assert line.startswith("quick run: test landmark_error 7.44 px; ")
  assert f"a healthy install gets about {value:.2f} px" in line
  assert "above 4 px means it did not learn" in line
  assert "changed" not in line


def test_quick_run_line_names_the_settings_a_run_changed(tmp_path):
  workdir = _finished_run(tmp_path, 3.0)
  config = EXP.get_config("quick")
  config.unlock()
  config.seed = 1
  config.train.max_epochs = 2.0
  config.data.data_dir = "/elsewhere"  # where the data are: not a change
  line = main.quick_result_line(f"{BLOCKS}:quick", config, workdir)
  assert line.endswith("this run changed seed, train.max_epochs.)"), line


@pytest.mark.parametrize("argument", ["", ":model=seq_mt", ":quickly"])
def test_no_line_for_runs_that_are_not_quick(tmp_path, argument):
  workdir = _finished_run(tmp_path, 3.0)
  assert main.quick_result_line(BLOCKS + argument,
                                EXP.get_config(""), workdir) is None


def test_no_line_without_an_expectation_or_results(tmp_path):
  shapes = str(ROOT / "experiments" / "shapes.py")
  workdir = _finished_run(tmp_path, 3.0)
  assert main.quick_result_line(f"{shapes}:quick", None, workdir) is None
  assert main.quick_result_line(f"{BLOCKS}:quick", EXP.get_config("quick"),
                                str(tmp_path / "unfinished")) is None
