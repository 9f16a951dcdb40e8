"""rundir: the one owner of a run directory's file names, its reads and its
status."""

import ast
import json
import multiprocessing
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from landmark_ssl import rundir

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "landmark_ssl"
# Every name rundir owns, and the patterns of the per-split files.
NAMES = (rundir.CONFIG, rundir.LABEL_SUBSET, rundir.CHECKPOINTS, rundir.METRICS,
         rundir.TENSORBOARD, rundir.RESULTS, rundir.EVALUATION, rundir.LOCK,
         rundir.LOG, rundir.SWEEP_LOCK, rundir.FIGURE_CAPTIONS)


def _docstrings(tree) -> set:
  """The ids of the string constants that are docstrings."""
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                         ast.AsyncFunctionDef)):
      body = node.body
      if (body and isinstance(body[0], ast.Expr) and
          isinstance(body[0].value, ast.Constant) and
          isinstance(body[0].value.value, str)):
        out.add(id(body[0].value))
  return out


def _spelled(source: str) -> list[str]:
  """The run-directory file names that ``source`` spells in string
  literals (f-string parts included), docstrings left out."""
  tree = ast.parse(source)
  docs = _docstrings(tree)
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.JoinedStr):
      parts = [v.value if isinstance(v, ast.Constant) else "{}"
               for v in node.values]
      text = "".join(str(p) for p in parts)
      for value in node.values:
        if isinstance(value, ast.Constant):
          docs.add(id(value))  # checked as part of the whole f-string
    elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and
          id(node) not in docs):
      text = node.value
    else:
      continue
    for name in NAMES:
      if name in ("checkpoints", "tensorboard", "figures"):
        hit = text == name  # common words: only a bare name is a file name
      else:
        hit = name in text
      if hit:
        found.append(name)
    if ("ced_" in text and ".json" in text) or (
        "predictions_" in text and ".npz" in text):
      found.append(text)
  return found


def test_no_module_but_rundir_spells_a_run_file_name():
  offenders = {}
  for path in PACKAGE.rglob("*.py"):
    if path.name == "rundir.py":
      continue
    found = _spelled(path.read_text())
    if found:
      offenders[str(path.relative_to(PACKAGE))] = found
  assert not offenders, offenders


def test_the_literal_finder_finds_them():
  source = ('"""Writes results.json."""\n'
            'A = "results.json"\nB = f"ced_{s}.json"\nC = "checkpoints"\n'
            'D = "the checkpoints of a run"\n')
  assert _spelled(source) == ["results.json", "ced_{}.json", "checkpoints"]


def test_status_follows_the_files(tmp_path):
  run = rundir.RunDir(tmp_path / "run")
  assert run.status() == rundir.Status.NEW and not run.is_run()
  run.path.mkdir()
  run.write_json(rundir.CONFIG, {"seed": 0})
  assert run.status() == rundir.Status.STARTED
  run.write_json(rundir.RESULTS, {"status": "preempted"})
  assert run.status() == rundir.Status.STARTED
  run.results_file.write_text('{"status": "finished"')  # cut short
  assert run.status() == rundir.Status.STARTED
  run.write_json(rundir.RESULTS, {"status": "finished"})
  assert run.status() == rundir.Status.FINISHED


def test_a_workdir_the_lock_made_goes_when_nothing_was_written(tmp_path):
  """A run that fails before writing leaves no directory behind, but a
  workdir that existed, or that got a file, is kept with its lock file."""
  made = tmp_path / "a" / "new"
  with pytest.raises(KeyError):
    with rundir.workdir_lock(made):
      assert sorted(p.name for p in made.iterdir()) == [rundir.LOCK]
      raise KeyError("failed its checks")
  assert not made.exists() and (tmp_path / "a").is_dir()
  with rundir.workdir_lock(made):
    (made / rundir.CONFIG).write_text("{}")
  assert sorted(p.name for p in made.iterdir()) == [rundir.CONFIG, rundir.LOCK]
  existing = tmp_path / "existing"
  existing.mkdir()
  with rundir.workdir_lock(existing):
    pass
  assert sorted(p.name for p in existing.iterdir()) == [rundir.LOCK]


def _hold(path, ready, release):
  with rundir.workdir_lock(path):
    ready.set()
    release.wait(30)


def test_a_locked_run_is_running_and_busy(tmp_path):
  run = rundir.RunDir(tmp_path)
  run.write_json(rundir.CONFIG, {"seed": 0})
  ctx = multiprocessing.get_context("fork")
  ready, release = ctx.Event(), ctx.Event()
  holder = ctx.Process(target=_hold, args=(tmp_path, ready, release))
  holder.start()
  try:
    assert ready.wait(30)
    assert run.status() == rundir.Status.RUNNING
    with pytest.raises(rundir.WorkdirBusyError, match=f"pid {holder.pid}"):
      with rundir.workdir_lock(tmp_path):
        pass
  finally:
    release.set()
    holder.join(30)
  assert run.status() == rundir.Status.STARTED  # the lock went with it


def test_read_json_names_the_file_and_the_fix(tmp_path):
  path = tmp_path / rundir.RESULTS
  path.write_text('{"status": "fin')
  with pytest.raises(rundir.CorruptFileError,
                     match=r"ends early.*python -m landmark_ssl.main"):
    rundir.read_json(path)
  path.write_text("[1, 2]")
  with pytest.raises(rundir.CorruptFileError, match="JSON list"):
    rundir.read_json(path)


def test_read_events_skips_a_cut_last_line(tmp_path, caplog):
  path = tmp_path / rundir.METRICS
  events = [{"event": "train", "step": s, "loss": float(s)} for s in (1, 2, 3)]
  text = "".join(json.dumps(e) + "\n" for e in events)
  path.write_text(text + '{"event": "train", "st')
  assert rundir.read_events(path) == events
  assert rundir.is_metrics_file(path)
  path.write_text("not json\n" + text)
  assert rundir.read_events(path) == events
  assert not rundir.is_metrics_file(path)


def test_find_results_walks_in_order_and_reports_bad_files(tmp_path):
  for name, text in (("b", '{"status": "finished"}'), ("a/x", "{"),
                     ("c", '{"status": "failed"}')):
    (tmp_path / name).mkdir(parents=True)
    (tmp_path / name / rundir.RESULTS).write_text(text)
  found = list(rundir.find_results(tmp_path))
  assert [pathlib.Path(d).relative_to(tmp_path).as_posix()
          for d, _, _ in found] == ["a/x", "b", "c"]
  assert found[0][1] is None and rundir.RESULTS in found[0][2]
  assert found[1][1] == {"status": "finished"} and found[1][2] is None


def test_rundir_is_jax_free():
  code = ("import sys; import landmark_ssl.rundir, landmark_ssl.analysis.runs; "
          "print(sorted(m for m in sys.modules if m.split('.')[0] in "
          "('jax', 'jaxlib', 'flax', 'orbax')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True).stdout.strip()
  assert out == "[]"


def test_damaged_run_files_name_the_fix_that_rewrites_them(tmp_path, caplog):
  """A cut-short results.json is named with the command
  that writes it again (main, not evaluate, which writes evaluation.json);
  a metrics.jsonl cut short still gives its complete events."""
  (tmp_path / "results.json").write_text('{"status": "finished", "met')
  with pytest.raises(ValueError) as info:
    rundir.read_json(tmp_path / "results.json")
  message = str(info.value)
  assert message.startswith(f"{tmp_path / 'results.json'} is not valid JSON")
  assert "python -m landmark_ssl.main command again" in message
  assert "evaluate" not in message
  (tmp_path / "ced_test.json").write_text("{")
  with pytest.raises(ValueError,
                     match=f"landmark_ssl.evaluate --workdir={tmp_path} "):
    rundir.read_json(tmp_path / "ced_test.json")
  (tmp_path / "metrics.jsonl").write_text(
      '{"event": "train", "step": 5, "loss": 1.0}\n{"event": "tra')
  with caplog.at_level("WARNING"):
    assert rundir.read_events(tmp_path / "metrics.jsonl") == [
        {"event": "train", "step": 5, "loss": 1.0}]
  assert "an incomplete last line" in caplog.text



@pytest.mark.parametrize("under", ["", "sub/run"])
def test_a_workdir_that_is_or_lies_under_a_file_is_named(tmp_path, under):
  """Not a traceback from mkdir: the file is named, and left as it was."""
  afile = tmp_path / "notes.txt"
  text = f"mine {np.random.default_rng().integers(1 << 30)}"
  afile.write_text(text)
  with pytest.raises(rundir.NotADirectoryWorkdirError,
                     match=f"{afile} is a file. Give --workdir the path of a "
                     "directory"):
    with rundir.workdir_lock(afile / under if under else afile):
      pass
  assert afile.read_text() == text
