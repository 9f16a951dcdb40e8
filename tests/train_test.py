"""Tests of the training loop: results, resume after SIGKILL / SIGTERM, NaN
guard, config mismatch, CLI errors, re-evaluation.

Most runs use the in-memory fixture pipeline (tests/fake_pipeline.py) and the
tiny config of tests/tiny_config.py; subprocess runs go through
``landmark_ssl.main`` (tests/fake_main.py) with the 8 simulated devices of
conftest.py (the environment is inherited).
"""

import functools
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import flax
import jax
import numpy as np
import pytest

import fake_pipeline
import tiny_config
from landmark_ssl import checkpointing
from landmark_ssl import configs
from landmark_ssl import evaluator
from landmark_ssl import metrics_log
from landmark_ssl import program as program_lib
from landmark_ssl import provenance
from landmark_ssl import rundir
from landmark_ssl import train

REPO = pathlib.Path(__file__).resolve().parents[1]
TIMING_KEYS = ("images_per_s", "wall_time_s")


@pytest.fixture
def fake(monkeypatch):
  monkeypatch.setattr(train, "input_pipeline", fake_pipeline)
  monkeypatch.setattr(evaluator, "input_pipeline", fake_pipeline)


def _command(workdir, *extra):
  return [sys.executable, str(REPO / "tests" / "fake_main.py"),
          f"--config={REPO / 'tests' / 'tiny_config.py'}",
          f"--workdir={workdir}", *extra]


def _run(workdir, *extra, timeout=240, cwd=REPO):
  return subprocess.run(_command(workdir, *extra), capture_output=True,
                        text=True, timeout=timeout, cwd=cwd)


def _events(workdir):
  path = pathlib.Path(workdir) / rundir.METRICS
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line]


def _without_timing(events):
  """What must equal between runs: the events but their timing and their
  start events (a resumed run has one per start)."""
  return [{k: v for k, v in e.items() if k not in TIMING_KEYS} for e in events
          if e["event"] != "start"]


def _starts(events):
  return [e["step"] for e in events if e["event"] == "start"]


def _start_and_wait_for_step(workdir, min_step, timeout=240):
  """Starts a run and returns once it has logged training step >= min_step."""
  proc = subprocess.Popen(_command(workdir), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, cwd=REPO)
  deadline = time.time() + timeout
  while time.time() < deadline:
    steps = [e["step"] for e in _events(workdir) if e["event"] == "train"]
    if steps and max(steps) >= min_step:
      return proc
    if proc.poll() is not None:
      raise AssertionError(f"run ended (rc {proc.returncode}) before step "
                           f"{min_step}: {proc.stderr.read()[-3000:]}")
    time.sleep(0.02)
  proc.kill()
  raise AssertionError(f"run did not reach step {min_step} in {timeout}s")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run of the tiny config through the CLI."""
  workdir = tmp_path_factory.mktemp("reference")
  start = time.time()
  proc = _run(workdir)
  assert proc.returncode == 0, proc.stderr[-5000:]
  results = json.loads((workdir / "results.json").read_text())
  return workdir, results, time.time() - start


# --------------------------------------------------------------------------
# pure helpers


def test_config_differences_name_the_keys():
  a = train.config_to_dict(tiny_config.get_config())
  c = tiny_config.get_config()
  c.optim.learning_rate = 0.5
  c.seed = 3
  diffs = configs.config_differences(a, train.config_to_dict(c))
  assert len(diffs) == 2
  assert diffs[0].startswith("optim.learning_rate: workdir has 0.01, given 0.5")
  assert diffs[1].startswith("seed: workdir has 0, given 3")
  b = dict(a, extra={"x": 1})
  assert configs.config_differences(a, b) == [
      "extra.x: workdir has (absent), given 1"]


def test_early_stopping_state():
  p = checkpointing.initial_progress()
  seq = [(5.0, 10), (4.0, 20), (4.5, 30), (4.0, 40), (4.2, 50)]
  for value, step in seq:
    p = train.update_early_stopping(p, value, step, "min", patience=3)
  # 4.0 at 20 is the best; the tie at 40 moves best_step (orbax keeps the
  # later of equal checkpoints) without resetting the counter.
  assert p["best_value"] == 4.0 and p["best_step"] == 40
  assert p["evals_without_improvement"] == 3 and p["stopped_early"]
  assert p["num_evals"] == 5
  q = checkpointing.initial_progress()
  for value, step in [(0.5, 1), (0.4, 2), (0.6, 3)]:
    q = train.update_early_stopping(q, value, step, "max", patience=0)
  assert q["best_step"] == 3 and not q["stopped_early"]


def test_selection_value():
  m = {"landmark_error": 0.3, "accuracy/a": 0.5, "accuracy/b": 0.7}
  assert evaluator.selection_value(m, frozenset({"L", "C"})) == 0.3
  assert evaluator.selection_value(m, frozenset({"C"})) == pytest.approx(0.6)
  assert configs.selection_rule(frozenset({"C"})) == ("accuracy", "max")


def test_optimizer_clipping_and_schedule():
  c = tiny_config.get_config().optim
  params = {"w": np.ones(3, np.float32)}
  grads = {"w": np.full(3, 100.0, np.float32)}
  c.grad_clip_norm = 1.0
  c.learning_rate = 1.0
  c.schedule = "constant"
  tx = program_lib.make_optimizer(c, 10)
  updates, _ = tx.update(grads, tx.init(params), params)
  # Adam's first step is -lr * sign(g) whatever the scale: clipping shows
  # only through the moments, so compare several steps of gradients of
  # random norms, some above the clip, with Adam written out by hand.
  np.testing.assert_allclose(updates["w"], -np.ones(3), rtol=1e-4)
  rng = np.random.default_rng()
  clip = float(rng.uniform(0.5, 2.0))
  gs = [rng.normal(size=3).astype(np.float32) * float(rng.uniform(0.1, 10))
        for _ in range(6)]
  gs[1] *= 3 * clip / np.linalg.norm(gs[1])  # one clipped for sure
  m = v = np.zeros(3)
  expected = []
  for t, g in enumerate(gs, 1):
    g = g * min(1.0, clip / np.linalg.norm(g))
    m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
    expected.append(-(m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t))
                                           + 1e-8))
  for clip_norm, clipped in ((clip, True), (0.0, False)):
    c.grad_clip_norm = clip_norm
    tx = program_lib.make_optimizer(c, 10)
    state = tx.init(params)
    got = []
    for g in gs:
      updates, state = tx.update({"w": g}, state, params)
      got.append(np.asarray(updates["w"]))
    same = np.allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert same == clipped, (clip_norm, got, expected)
  c.grad_clip_norm = 1.0
  c.schedule = "cosine"
  tx = program_lib.make_optimizer(c, 4)
  state = tx.init(params)
  sizes = []
  for _ in range(4):
    updates, state = tx.update(grads, state, params)
    sizes.append(float(np.abs(updates["w"]).max()))
  assert sizes[0] > sizes[1] > sizes[2] > sizes[3]  # cosine decay
  c.schedule = "linear"
  with pytest.raises(ValueError, match="config.optim.schedule='linear'"):
    program_lib.make_optimizer(c, 4)


def test_metrics_log_drops_events_after_resume_step(tmp_path):
  log = metrics_log.MetricsLog(tmp_path, None, enabled=True)
  for step in (5, 10, 15):
    log.write("train", step, {"loss": float(step)})
  log.write("eval", 10, {"landmark_error": 1.0}, split="validation")
  log.close()
  log = metrics_log.MetricsLog(tmp_path, 10, enabled=True)
  log.close()
  assert [(e["event"], e["step"]) for e in _events(tmp_path)] == [
      ("train", 5), ("train", 10), ("eval", 10)]
  assert list((tmp_path / "tensorboard").iterdir())


def test_a_crash_truncated_metrics_log_is_kept_but_its_last_line(tmp_path,
                                                                  caplog):
  """Issue 24 item 3: the line a crash cut short is dropped with a warning
  naming the file; every complete event up to the resume step is kept."""
  log = metrics_log.MetricsLog(tmp_path, None, enabled=True)
  for step in (5, 10, 15):
    log.write("train", step, {"loss": float(step)})
  log.close()
  path = tmp_path / rundir.METRICS
  complete = path.read_text()
  with path.open("a") as f:
    f.write('{"event": "eval", "split": "validation", "step": 15, "landm')
  with caplog.at_level("WARNING"):
    log = metrics_log.MetricsLog(tmp_path, 15, enabled=True)
  log.write("train", 20, {"loss": 20.0})
  log.close()
  assert path.read_text() == complete + json.dumps(
      {"event": "train", "step": 20, "loss": 20.0}) + "\n"
  warning = " ".join(r.getMessage() for r in caplog.records)
  assert f"{path}, line 4 of 4: an incomplete last line" in warning
  assert [e["step"] for e in rundir.read_events(path)] == [5, 10, 15, 20]


def test_truncated_config_and_results_are_named_with_the_fix(
    fake, tmp_path, monkeypatch, caplog):
  """Issue 24 item 3: a cut-short config.json is refused naming the file
  and the fix; a cut-short results.json is named and rewritten by the run
  (it goes on from its checkpoint)."""
  config = tiny_config.get_config()
  text = json.dumps(train.config_to_dict(config), indent=2)
  (tmp_path / "config.json").write_text(text[:len(text) // 2])
  (tmp_path / "checkpoints" / "12").mkdir(parents=True)
  messages = []
  for call in (lambda: train.train_and_evaluate(config, tmp_path),
               lambda: evaluator.read_config(tmp_path)):
    with pytest.raises(rundir.CorruptFileError) as info:
      call()
    messages.append(str(info.value))
    assert messages[-1].startswith(
        f"{tmp_path / 'config.json'} is not valid JSON")
    assert "it ends early: cut short by a crash or a full disk" in messages[-1]
    assert 'holds a copy under "config"' in messages[-1]
  assert ("pass --overwrite to start this run again from scratch (deleting "
          "checkpoints)") in messages[0]
  assert (tmp_path / "config.json").read_text() == text[:len(text) // 2]
  # results.json: named in a warning; the run goes on (here it stops at the
  # dataset, which comes after that check).
  (tmp_path / "config.json").write_text(text)
  (tmp_path / "results.json").write_text('{"status": "finished", "metr')

  def no_data(data_config):
    raise FileNotFoundError("stop here")

  monkeypatch.setattr(fake_pipeline, "get_dataset_info", no_data)
  with caplog.at_level("WARNING"), pytest.raises(FileNotFoundError,
                                                 match="stop here"):
    train.train_and_evaluate(config, tmp_path)
  warning = " ".join(r.getMessage() for r in caplog.records)
  assert f"{tmp_path / 'results.json'} is not valid JSON" in warning
  assert "goes on from its latest checkpoint and writes it again" in warning


# --------------------------------------------------------------------------
# whole runs


def test_reference_run_results(reference):
  workdir, results, seconds = reference
  print(f"tiny reference run (CLI, 8 simulated devices): {seconds:.1f}s")
  assert results["status"] == "finished"
  assert results["steps"] == 48 and results["epochs"] == 8.0
  assert results["num_devices"] == 8 and results["num_processes"] == 1
  subset = results["label_subset"]
  indices = json.loads((workdir / "label_subset.json").read_text())["indices"]
  assert len(indices) == 48
  assert subset == {"fraction": 0.5, "count": 48, "file": "label_subset.json",
                    "sha256": hashlib.sha256(np.array(
                        sorted(indices), "<i8").tobytes()).hexdigest()}
  # What it read: every split it used, with its size.
  assert results["data"]["name"] == "fake"
  assert {k: v["examples"] for k, v in results["data"]["splits"].items()} == {
      "train": 96, "validation": 40, "test": 36}
  assert results["normalizer"] == "dataset"
  assert results["error_unit"] == "fraction of dataset"
  assert results["config"] == json.loads((workdir / "config.json").read_text())
  # The stack that produced it (provenance_test tests its parts).
  stack = results["stack"]
  assert stack["device_kind"] == results["device_kind"] == "cpu"
  assert stack["packages"]["jax"] == jax.__version__
  assert stack["packages"]["numpy"] == np.__version__
  assert set(stack) >= {"python", "cpu", "code"}
  assert set(results["metrics"]) == {"validation", "test"}
  for split, n in (("validation", 40), ("test", 36)):
    m = results["metrics"][split]
    assert set(m) == {"landmark_error", "failure_rate@0.08", "failure_rate@0.10",
                      "auc@0.08", "accuracy/label", "num_images"}
    assert m["num_images"] == n
  pred = np.load(workdir / "predictions_test.npz")
  assert pred["pred_landmarks"].shape == (36, 2, 2)
  assert np.mean(pred["errors"]) == pytest.approx(
      results["metrics"]["test"]["landmark_error"])
  ced = json.loads((workdir / "ced_test.json").read_text())
  assert len(ced["errors_sorted"]) == 36
  # Checkpoints: only the latest, the one before and the best survive.
  steps_kept = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                      if p.name.isdigit())
  assert steps_kept[-2:] == [45, 48] and results["best_step"] in steps_kept
  assert len(steps_kept) <= 3
  # It learned: the final validation error is far below the first evaluation's.
  evals = [e for e in _events(workdir) if e["event"] == "eval"]
  assert [e["step"] for e in evals] == [12, 24, 36, 48]
  assert results["metrics"]["validation"]["landmark_error"] < 0.6 * evals[0][
      "landmark_error"]
  assert (workdir / "tensorboard").is_dir()


def test_sigkill_and_resume_is_bit_identical(reference, tmp_path):
  ref_dir, ref_results, _ = reference
  proc = _start_and_wait_for_step(tmp_path, 16)
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL
  assert not (tmp_path / "results.json").exists()
  resumed = _run(tmp_path)
  assert resumed.returncode == 0, resumed.stderr[-5000:]
  assert "Resuming from the checkpoint of step" in resumed.stderr
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["metrics"] == ref_results["metrics"]  # exact equality
  assert results["best_step"] == ref_results["best_step"]
  assert results["steps"] == ref_results["steps"]
  a = np.load(tmp_path / "predictions_test.npz")
  b = np.load(ref_dir / "predictions_test.npz")
  for key in b.files:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  # The metrics log reads as one uninterrupted run, but for its two starts:
  # from step 0 and from the checkpoint, each with the code that ran.
  assert _without_timing(_events(tmp_path)) == _without_timing(_events(ref_dir))
  starts = _starts(_events(tmp_path))
  assert _starts(_events(ref_dir)) == [0] and starts[0] == 0
  assert len(starts) == 2 and 0 < starts[1] <= 16, starts
  code = provenance.code()
  kind = jax.devices()[0].device_kind
  recorded = results["stack"]["starts"]
  assert [{k: v for k, v in s.items() if k != "wall_time_s"}
          for s in recorded] == [{"step": s, "code": code, "device_kind": kind}
                                 for s in starts]
  # The wall time before each start: none before the first, and before
  # the resumed one, what the checkpoint of its step had accumulated.
  assert recorded[0]["wall_time_s"] == 0.0
  assert 0 < recorded[1]["wall_time_s"] < results["wall_time_s"]
  assert ref_results["stack"]["starts"] == [
      {"step": 0, "code": code, "device_kind": kind, "wall_time_s": 0.0}]


def test_sigterm_checkpoints_exits_75_and_resumes(reference, tmp_path):
  _, ref_results, _ = reference
  proc = _start_and_wait_for_step(tmp_path, 10)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 75, stderr[-3000:]
  assert "Preempted: saved the checkpoint of step" in stderr
  assert not (tmp_path / "results.json").exists()
  saved = [int(p.name) for p in (tmp_path / "checkpoints").iterdir()
           if p.name.isdigit()]
  assert max(saved) >= 10
  # Resume through a relative --workdir (orbax itself wants absolute paths).
  resumed = _run(tmp_path.name, cwd=tmp_path.parent)
  assert resumed.returncode == 0, resumed.stderr[-5000:]
  results_text = (tmp_path / "results.json").read_text()
  assert json.loads(results_text)["metrics"] == ref_results["metrics"]
  # A finished run started again does nothing and says so.
  again = _run(tmp_path)
  assert again.returncode == 0
  assert "already finished" in again.stderr
  assert (tmp_path / "results.json").read_text() == results_text


def _damage_state(step_dir, how):
  """Damages a checkpoint as a crash or a bad disk would."""
  state = step_dir / "state"
  if how == "truncated tensors":
    for path in state.rglob("*"):
      if path.is_file() and path.parent.name == "d":
        with path.open("r+b") as f:
          f.truncate(10)
  elif how == "no _METADATA":
    (state / "_METADATA").unlink()
  elif how == "empty folder":
    shutil.rmtree(step_dir)
    step_dir.mkdir()


@flax.struct.dataclass
class _TinyState:
  """A stand-in for steps.TrainState (a pytree node class, not a dict)."""
  w: jax.Array
  step: jax.Array


def _tiny_checkpoints(workdir, steps, best):
  """A checkpoint manager of ``workdir`` holding a small state at ``steps``
  (evaluated ones where ``best`` gives their selection value)."""
  mngr = checkpointing.manager(rundir.RunDir(workdir).checkpoint_dir, "min")
  for step in steps:
    state = _TinyState(jax.numpy.full((4, 3), float(step)),
                       jax.numpy.asarray(step))
    metrics = ({checkpointing.SELECTION_KEY: best[step]} if step in best
               else None)
    checkpointing.save(mngr, step, state, {"step": step}, metrics)
  mngr.wait_until_finished()
  return mngr


@pytest.mark.parametrize("how", ["truncated tensors", "no _METADATA",
                                 "empty folder"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(
    how, tmp_path, caplog):
  """Issue 24 item 4: the latest, the previous and the best checkpoints
  are kept; a damaged latest is skipped with a warning naming it and
  deleted (its step is saved again as the run goes on); if none restores:
  one line naming the folder and the fix, and nothing deleted."""
  mngr = _tiny_checkpoints(tmp_path, [2, 4, 6, 8], best={2: 0.5, 6: 0.9})
  ckpt = tmp_path / "checkpoints"
  assert mngr.all_steps() == [2, 6, 8]  # best, previous, latest
  like = _TinyState(jax.numpy.zeros((4, 3)), jax.numpy.asarray(0))
  _damage_state(ckpt / "8", how)
  with caplog.at_level("WARNING"):
    step, state, progress = checkpointing.restore_latest(mngr, like)
  assert (step, progress) == (6, {"step": 6})
  np.testing.assert_array_equal(state.w, np.full((4, 3), 6.0))
  warnings = " ".join(r.getMessage() for r in caplog.records)
  assert f"The checkpoint {ckpt / '8'} does not restore" in warnings
  assert "Deleted the damaged checkpoint of step 8" in warnings
  assert mngr.all_steps() == [2, 6]
  # The best one is damaged too: the next best (here the only other) is used.
  _damage_state(ckpt / "2", how)
  assert checkpointing.restore_best(mngr, like)[0] == 6
  # None restores: one line with the folder and the fix; nothing deleted.
  _damage_state(ckpt / "6", how)
  with pytest.raises(checkpointing.NoRestorableCheckpointError) as info:
    checkpointing.restore_latest(mngr, like)
  message = str(info.value)
  assert "\n" not in message
  assert message.startswith(f"No checkpoint in {ckpt} restores (step 6: ")
  assert f"Delete {ckpt} to train the run again from step 0" in message
  assert "--overwrite" in message
  assert mngr.all_steps() == [6]
  mngr.close()


def test_checkpoints_of_another_model_are_kept_and_named(tmp_path,
                                                         monkeypatch):
  """Checkpoints that are whole but hold other shapes than the model the
  config now gives (config.json edited, dataset rebuilt): the error says
  so and what to restore, and no checkpoint is deleted as damaged."""
  mngr = _tiny_checkpoints(tmp_path, [2, 4, 6], best={2: 0.5, 4: 0.9})
  rows = int(np.random.default_rng().integers(5, 9))
  other = _TinyState(jax.numpy.zeros((rows, 3)), jax.numpy.asarray(0))
  grown = _GrownState(jax.numpy.zeros((4, 3)), jax.numpy.asarray(0),
                      jax.numpy.zeros((rows,)))  # e.g. a class head added
  # Known from the metadata: no array is read (tensorstore's pending reads
  # of a failed restore print tracebacks at exit).
  monkeypatch.setattr(checkpointing, "restore", _must_not_be_called)
  for like, why in ((other, f"w is (4, 3) in the checkpoint, ({rows}, 3) in "
                     "the model"),
                    (grown, f"the model's head ({rows},) is not in the "
                     "checkpoint")):
    for restore, step in ((checkpointing.restore_latest, 6),
                          (checkpointing.restore_best, 2)):
      with pytest.raises(checkpointing.NoRestorableCheckpointError) as info:
        restore(mngr, like)
      message = str(info.value)
      assert message.startswith(
          f"The checkpoints in {tmp_path / 'checkpoints'} are of another "
          f"model than the run's (step {step}: {why}): ")
      assert "Restore the config the run wrote" in message
      assert mngr.all_steps() == [2, 4, 6]
  mngr.close()
  # A checkpoint with an array the model lacks (e.g. a class head removed).
  mngr = checkpointing.manager(tmp_path / "grown", "min")
  checkpointing.save(mngr, 3, grown, {"step": 3})
  mngr.wait_until_finished()
  with pytest.raises(checkpointing.NoRestorableCheckpointError,
                     match=re.escape(f"(step 3: the checkpoint's head ({rows},)"
                                     " is not in the model): ")):
    checkpointing.restore_latest(
        mngr, _TinyState(jax.numpy.zeros((4, 3)), jax.numpy.asarray(0)))
  assert mngr.all_steps() == [3]
  mngr.close()


@flax.struct.dataclass
class _GrownState:
  w: jax.Array
  step: jax.Array
  head: jax.Array


def _must_not_be_called(*args):
  raise AssertionError(f"restore{args} was called")


def test_a_run_resumes_exactly_past_a_damaged_checkpoint(fake, reference,
                                                          tmp_path, caplog):
  """Issue 24 item 4 end to end: an interrupted run whose latest checkpoint
  is damaged goes on from the one before to the uninterrupted results."""
  ref_dir, ref_results, _ = reference
  kept = sorted(int(p.name) for p in (ref_dir / "checkpoints").iterdir())
  assert kept[-2:] == [45, 48]  # the latest and the one before are kept
  # The reference run, interrupted before its final evaluation, with its
  # latest checkpoint damaged.
  workdir = tmp_path / "run"
  shutil.copytree(ref_dir, workdir)
  for path in [workdir / "results.json", *workdir.glob("ced_*"),
               *workdir.glob("predictions_*")]:
    path.unlink()
  _damage_state(workdir / "checkpoints" / "48", "truncated tensors")
  with caplog.at_level("WARNING"):
    got = train.train_and_evaluate(tiny_config.get_config(), workdir)
  warnings = " ".join(r.getMessage() for r in caplog.records)
  assert f"{workdir / 'checkpoints' / '48'} does not restore" in warnings
  assert "goes on from the checkpoint of step 45" in warnings
  assert got["metrics"] == ref_results["metrics"]  # exact: as if undamaged
  assert got["steps"] == 48


def test_log_lines_time_the_eta_after_the_first_step(fake, tmp_path, caplog):
  """Issue 25 item 9: the first step (its compilation) is not in the ETA;
  validation lines say a new best as such."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  config = tiny_config.get_config()
  config.train.max_epochs = 2.0
  config.train.eval_every_epochs = 1.0
  config.train.log_every_steps = 1
  config.train.checkpoint_every_steps = 0
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.INFO)
  try:
    with caplog.at_level("INFO"):
      assert train.train_and_evaluate(config, tmp_path)["status"] == "finished"
  finally:
    logging.set_verbosity(verbosity)
  lines = [r.getMessage() for r in caplog.records]
  steps = [l for l in lines if l.startswith("step ")]
  assert len(steps) == 12
  assert steps[0].startswith("step 1/12 ") and steps[0].endswith("ETA ?")
  assert not any(l.endswith("ETA ?") for l in steps[1:])
  validation = [l for l in lines if l.startswith("validation at step")]
  assert validation[0].startswith("validation at step 6:")
  assert validation[0].endswith("(new best landmark_error)")


def test_sigterm_before_the_training_loop_exits_75(tmp_path):
  """Issue 24 item 9: SIGTERM during start-up (here: once the run holds its
  workdir, while it compiles) stops with 75 at once, not -15."""
  proc = subprocess.Popen(_command(tmp_path), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, cwd=REPO)
  lock = tmp_path / rundir.LOCK
  deadline = time.time() + 240
  while not (lock.exists() and str(proc.pid) in lock.read_text()):
    assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
    time.sleep(0.01)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 75, stderr[-3000:]
  assert ("Stopped by SIGTERM outside the training loop: nothing new to "
          "save. Run the same command again to continue.") in stderr
  assert not list((tmp_path / "checkpoints").glob("[0-9]*"))


def test_logged_averages_are_resume_exact(fake, reference, tmp_path,
                                           monkeypatch):
  """Issue 24 item 9: a run stopped between two log lines (step 17; logs
  every 5 steps) and resumed logs the same training averages as the
  uninterrupted run: the steps since the last log line are checkpointed."""
  ref_dir, ref_results, _ = reference
  config = tiny_config.get_config()
  monkeypatch.setattr(train._Preemption, "requested",
                      lambda self, step: step == 17)
  out = train.train_and_evaluate(config, tmp_path)
  assert out == {"status": "preempted", "step": 17}
  monkeypatch.undo()
  monkeypatch.setattr(train, "input_pipeline", fake_pipeline)
  monkeypatch.setattr(evaluator, "input_pipeline", fake_pipeline)
  results = train.train_and_evaluate(config, tmp_path)
  assert results["metrics"] == ref_results["metrics"]
  got = _without_timing(_events(tmp_path))
  want = _without_timing(_events(ref_dir))
  assert _starts(_events(tmp_path)) == [0, 17]
  assert [e for e in got if e["step"] == 20] == [
      e for e in want if e["step"] == 20]  # steps 16-20: 2 before the stop
  assert got == want


def test_nan_cost_stops_with_step_and_term(fake, tmp_path):
  config = tiny_config.get_config()
  config.data.name = "fake_nan"
  config.costs = "L"
  # Augmentation would mark the NaN landmark invisible (it is "outside").
  config.augment.update(dict(rotation=0.0, scale=0.0, translation=0.0))
  with pytest.raises(train.NonFiniteCostError) as info:
    train.train_and_evaluate(config, tmp_path)
  err = info.value
  # Batch index NAN_BATCH is consumed by update step NAN_BATCH + 1.
  assert err.step == fake_pipeline.NAN_BATCH + 1 and err.term == "landmark"
  assert "step 8: landmark = nan" in str(err)
  assert "last good checkpoint is step 6" in str(err)
  # Before any checkpoint: says so, not "step None".
  early = str(train.NonFiniteCostError(3, "class", float("nan"), None))
  assert "no checkpoint was saved yet" in early and "None" not in early
  mngr = checkpointing.manager(rundir.RunDir(tmp_path).checkpoint_dir, "min",
                                read_only=True)
  assert max(mngr.all_steps()) == 6
  restored = mngr.restore(6)
  mngr.close()
  leaves = jax.tree.leaves(restored["state"])
  assert all(np.all(np.isfinite(np.asarray(x))) for x in leaves)
  assert _events(tmp_path)[-1]["event"] == "error"
  assert not (tmp_path / "results.json").exists()


def test_config_mismatch_is_refused(fake, tmp_path):
  config = tiny_config.get_config()
  config_dict = train.config_to_dict(config)
  train.prepare_workdir(config_dict, tmp_path, overwrite=False, is_main=True)
  other = tiny_config.get_config()
  other.optim.learning_rate = 0.1
  other.model.features = 4
  # Only a config (the run never reached a checkpoint): taken over silently.
  train.prepare_workdir(train.config_to_dict(other), tmp_path, overwrite=False,
                        is_main=True)
  train.prepare_workdir(config_dict, tmp_path, overwrite=False, is_main=True)
  (tmp_path / "results.json").write_text("{}")
  (tmp_path / "checkpoints" / "12").mkdir(parents=True)
  (tmp_path / "notes.txt").write_text("mine")
  with pytest.raises(rundir.ConfigMismatchError) as info:
    train.train_and_evaluate(other, tmp_path)
  message = str(info.value)
  assert "model.features: workdir has 8, given 4" in message
  assert "optim.learning_rate: workdir has 0.01, given 0.1" in message
  assert "--overwrite" in message
  # --overwrite replaces the run's files, and only those.
  train.prepare_workdir(train.config_to_dict(other), tmp_path, overwrite=True,
                        is_main=True)
  assert not (tmp_path / "results.json").exists()
  assert not (tmp_path / "checkpoints").exists()
  assert (tmp_path / "notes.txt").read_text() == "mine"
  stored = json.loads((tmp_path / "config.json").read_text())
  assert stored["optim"]["learning_rate"] == 0.1


def test_files_a_run_did_not_write_are_never_deleted(fake, tmp_path):
  """Issue 24 item 1: a workdir whose run files no run of this program can
  have written is refused, naming them, unless --overwrite."""
  config = tiny_config.get_config()
  # Another program's config.json and a folder of its own under checkpoints/.
  (tmp_path / "checkpoints" / "m").mkdir(parents=True)
  (tmp_path / "checkpoints" / "m" / "w.bin").write_bytes(b"weights")
  (tmp_path / "config.json").write_text('{"a":1}')
  (tmp_path / "metrics.jsonl").write_text("not ours\n")
  with pytest.raises(rundir.ForeignFilesError) as info:
    train.train_and_evaluate(config, tmp_path)
  message = str(info.value)
  assert str(tmp_path / "checkpoints") in message
  assert str(tmp_path / "config.json") in message
  assert str(tmp_path / "metrics.jsonl") in message
  assert "--overwrite" in message and "Nothing was changed" in message
  assert (tmp_path / "checkpoints" / "m" / "w.bin").read_bytes() == b"weights"
  assert (tmp_path / "config.json").read_text() == '{"a":1}'
  assert (tmp_path / "metrics.jsonl").read_text() == "not ours\n"
  # Our own config of another run (no checkpoint yet) beside the foreign
  # folder: still refused, naming the folder only.
  other = tiny_config.get_config()
  other.seed = 5
  (tmp_path / "config.json").write_text(
      json.dumps(train.config_to_dict(other)))
  (tmp_path / "metrics.jsonl").unlink()
  with pytest.raises(rundir.ForeignFilesError,
                     match=f"also {tmp_path / 'checkpoints'}, which"):
    train.prepare_workdir(train.config_to_dict(config), tmp_path,
                          overwrite=False, is_main=True)
  assert (tmp_path / "checkpoints" / "m" / "w.bin").exists()
  # What a run writes before its first checkpoint is taken over: its config,
  # label subset, metrics log, TensorBoard events, an unfinished orbax save.
  shutil.rmtree(tmp_path / "checkpoints")
  (tmp_path / "checkpoints" / "3.orbax-checkpoint-tmp-17").mkdir(parents=True)
  (tmp_path / "tensorboard").mkdir()
  (tmp_path / "tensorboard" / "events.out.tfevents.1.host").write_bytes(b"x")
  (tmp_path / "metrics.jsonl").write_text(
      '{"event": "train", "step": 1, "loss": 1.0}\n{"event": "tr')
  (tmp_path / "label_subset.json").write_text('{"indices": [1, 2]}')
  (tmp_path / "notes.txt").write_text("mine")
  train.prepare_workdir(train.config_to_dict(config), tmp_path,
                        overwrite=False, is_main=True)
  for name in ("checkpoints", "tensorboard", "metrics.jsonl",
               "label_subset.json"):
    assert not (tmp_path / name).exists(), name
  assert (tmp_path / "notes.txt").read_text() == "mine"
  assert json.loads((tmp_path / "config.json").read_text())["seed"] == 0
  # Run files without any config.json: refused; --overwrite deletes them.
  (tmp_path / "config.json").unlink()
  (tmp_path / "tensorboard").mkdir()
  (tmp_path / "tensorboard" / "mine.txt").write_text("x")
  with pytest.raises(rundir.ForeignFilesError,
                     match="holds tensorboard but no config.json"):
    train.prepare_workdir(train.config_to_dict(config), tmp_path,
                          overwrite=False, is_main=True)
  assert (tmp_path / "tensorboard" / "mine.txt").exists()
  train.prepare_workdir(train.config_to_dict(config), tmp_path,
                        overwrite=True, is_main=True)
  assert not (tmp_path / "tensorboard").exists()
  assert (tmp_path / "notes.txt").read_text() == "mine"


def test_one_process_at_a_time_per_workdir(fake, tmp_path, monkeypatch):
  """Issue 24 item 2: a run holds its workdir's lock while it runs; a
  second process on the workdir exits at once (status 4), naming the
  holder's pid and host, and changes nothing."""
  import socket  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / "run"
  with rundir.workdir_lock(workdir):
    lock_text = (workdir / rundir.LOCK).read_text()
    assert json.loads(lock_text)["pid"] == os.getpid()
    with pytest.raises(rundir.WorkdirBusyError) as info:
      train.train_and_evaluate(tiny_config.get_config(), workdir)
    message = str(info.value)
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
    assert str(workdir / rundir.LOCK) in message
    start = time.time()
    other = _run(workdir)
    assert other.returncode == 4, other.stderr[-3000:]
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in other.stderr
    assert "Traceback" not in other.stderr
    assert time.time() - start < 60  # at once: no data, no compilation
    assert sorted(p.name for p in workdir.iterdir()) == [rundir.LOCK]
    assert (workdir / rundir.LOCK).read_text() == lock_text
  # A run holds the lock from before it reads the workdir until it ends,
  # also when it fails; then it is free again.
  held = []

  def dataset_info(data_config):
    try:
      with rundir.workdir_lock(workdir):
        held.append(False)
    except rundir.WorkdirBusyError:
      held.append(True)
    raise FileNotFoundError("no data in this test")

  monkeypatch.setattr(fake_pipeline, "get_dataset_info", dataset_info)
  with pytest.raises(FileNotFoundError, match="no data in this test"):
    train.train_and_evaluate(tiny_config.get_config(), workdir)
  assert held == [True]
  assert not workdir.exists()  # it made the workdir and wrote nothing
  with rundir.workdir_lock(workdir):
    pass


def test_everything_a_run_needs_is_checked_before_it_starts(fake, tmp_path):
  """Issue 24 item 6: bad settings, splits and paths are refused before the
  workdir is written and before the first step, naming each key and the
  fix; a workdir with checkpoints but no config.json is refused."""
  data_file = tmp_path / "tfds_file"
  data_file.write_text("not a directory")
  config = tiny_config.get_config()
  config.optim.learning_rate = -0.01
  config.train.max_epochs = 0.0
  config.seed = -1
  config.data.cache_mib = -1
  config.data.data_dir = str(data_file)
  config.loss.alpha = -1.0
  config.loss.weight_decay = float("nan")
  config.model.beta = 0.0
  config.data.test_splits = ("test,validation",)
  with pytest.raises(ValueError) as info:
    train.train_and_evaluate(config, tmp_path / "a")
  message = str(info.value)
  assert message.startswith("The run cannot start (nothing was trained or "
                            "written):")
  for line in (
      "config.optim.learning_rate=-0.01 must be a finite number > 0; set "
      "--config.optim.learning_rate=...",
      "config.train.max_epochs=0.0 must be > 0 (fractions allowed); set "
      "--config.train.max_epochs=...",
      "config.seed=-1 must be an integer >= 0",
      "config.data.cache_mib=-1 must be a number of MiB >= 0 (0 = read "
      "batches from the files); set --config.data.cache_mib=...",
      f"config.data.data_dir={str(data_file)!r} is a file, not a directory",
      "config.loss.alpha=-1.0 must be a finite weight >= 0",
      "config.loss.weight_decay=nan must be a finite weight >= 0",
      "config.model.beta=0.0 must be a finite number > 0",
      "config.data.test_splits names 'test,validation', one name with "
      "commas; several names are a tuple: --config.data.test_splits="
      "\"('test','validation')\""):
    assert line in message, line
  assert not (tmp_path / "a").exists()
  # A split the dataset lacks: named with the dataset's splits, before the
  # workdir's config or any checkpoint is written.
  config = tiny_config.get_config()
  config.data.test_splits = ("test", "nope")
  with pytest.raises(ValueError) as info:
    train.train_and_evaluate(config, tmp_path / "b")
  assert ("config.data.test_splits names the split 'nope', which dataset "
          "'fake' does not have; its splits are ['test', 'train', "
          "'validation']") in str(info.value)
  assert not (tmp_path / "b").exists()  # made for the run, left empty
  # So the fixed command finds a new workdir, not another config's run.
  assert rundir.inspect_workdir(train.config_to_dict(tiny_config.get_config()),
                               tmp_path / "b", overwrite=False) == []
  # Checkpoints without config.json: refused (no silent resume of settings
  # nobody can check), nothing touched.
  (tmp_path / "c" / "checkpoints" / "12").mkdir(parents=True)
  (tmp_path / "c" / "checkpoints" / "12" / "x").write_text("x")
  with pytest.raises(rundir.ForeignFilesError) as info:
    train.train_and_evaluate(tiny_config.get_config(), tmp_path / "c")
  assert (f"{tmp_path / 'c'} holds checkpoints but no config.json"
          in str(info.value))
  assert "--overwrite" in str(info.value)
  assert (tmp_path / "c" / "checkpoints" / "12" / "x").exists()
  assert not (tmp_path / "c" / "config.json").exists()


@pytest.mark.parametrize("flag, message", [
    ("--seeds=-1,2", "FATAL usage error: --seeds=-1,2: give comma-separated "
     "integers >= 0"),
    ("--local_device_ids=gpu0", "FATAL usage error: --local_device_ids=gpu0: "
     "give device numbers"),
    ("--heartbeat_timeout_s=-5", "flag --heartbeat_timeout_s=-5: -5 is not a "
     "positive integer"),
    ("--multihost", "--multihost: JAX cannot tell this machine's cluster"),
])
def test_bad_flag_values_are_named_before_anything_starts(tmp_path, flag,
                                                          message):
  out = _run(tmp_path / "w", flag)
  assert out.returncode == 2, out.stderr[-3000:]
  assert message in out.stderr
  assert "Traceback" not in out.stderr and "Trains and evaluates" not in (
      out.stderr)
  assert not (tmp_path / "w").exists()


def test_cli_errors_are_clear(tmp_path):
  typo = _run(tmp_path / "a", "--config.optim.learning_rat=0.1")
  assert typo.returncode == 2
  assert "config.optim has no key 'learning_rat'" in typo.stderr
  assert "learning_rate" in typo.stderr
  # The real pipeline's error for an unknown dataset passes through main.
  unknown = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.main",
       f"--config={REPO / 'tests' / 'tiny_config.py'}",
       f"--workdir={tmp_path / 'b'}", "--config.data.name=blokcs",
       f"--config.data.data_dir={tmp_path / 'tfds'}"],
      capture_output=True, text=True, timeout=240, cwd=REPO)
  assert unknown.returncode == 2, unknown.stderr[-3000:]
  assert "Unknown dataset 'blokcs'" in unknown.stderr
  assert "Traceback" not in unknown.stderr
  # Fixing the name in the same workdir is not a config mismatch: that run
  # never reached a checkpoint.
  fixed = _run(tmp_path / "b", "--config.train.max_epochs=0.5")
  assert fixed.returncode == 0, fixed.stderr[-3000:]


def test_a_config_file_with_a_syntax_error_is_named(tmp_path):
  """Issue 24 item 8: the file, line and fix, no traceback (main and the
  experiment loader sweep uses)."""
  bad = tmp_path / "bad_config.py"
  bad.write_text("import ml_collections\ndef get_config(:\n  return 1\n")
  out = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.main", f"--config={bad}",
       f"--workdir={tmp_path / 'run'}"], capture_output=True, text=True,
      timeout=240, cwd=REPO)
  assert out.returncode == 2, out.stderr[-3000:]
  assert f"{bad}, line 2, column 16: invalid syntax" in out.stderr
  assert f"Fix that line of {bad}" in out.stderr
  assert "Traceback" not in out.stderr
  assert not (tmp_path / "run").exists()
  with pytest.raises(ValueError, match=f"{bad}, line 2, column 16"):
    configs.load_experiment(str(bad))


def test_a_config_argument_the_experiment_does_not_offer_is_named(tmp_path):
  """The experiment's own message (the choices), no traceback; nothing
  made."""
  out = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.main",
       f"--config={REPO / 'experiments' / 'blocks.py'}:model=nope",
       f"--workdir={tmp_path / 'run'}"], capture_output=True, text=True,
      timeout=240, cwd=REPO)
  assert out.returncode == 2, out.stderr[-3000:]
  assert ("model='nope' is not available for experiments/blocks.py; choose "
          "one of ['seq_mt', 'comm_mt', 'heatmap_mt']") in out.stderr, (
              out.stderr[-3000:])
  assert "Traceback" not in out.stderr
  assert not (tmp_path / "run").exists()


def test_evaluate_reproduces_results(fake, reference, tmp_path):
  workdir, results, _ = reference
  out = evaluator.evaluate_run(workdir, write=False)
  assert out["step"] == results["best_step"]
  assert out["metrics"]["test"] == results["metrics"]["test"]
  assert out["metrics"]["validation"] == results["metrics"]["validation"]
  with rundir.workdir_lock(workdir):  # a process is training it
    with pytest.raises(rundir.WorkdirBusyError,
                       match=f"pid {os.getpid()} on host .* Evaluate it when"):
      evaluator.evaluate_run(workdir)
    assert not (workdir / rundir.EVALUATION).exists()
    assert evaluator.evaluate_run(workdir, write=False) == out  # reads only
  edited = tmp_path / "edited"  # config.json edited by hand: other shapes
  shutil.copytree(workdir, edited)
  config = json.loads((edited / "config.json").read_text())
  config["model"]["features"] += 1
  (edited / "config.json").write_text(json.dumps(config))
  with pytest.raises(checkpointing.NoRestorableCheckpointError,
                     match=r"are of another model than the run's \(step \d+: "
                     r"params\.landmark_net\.conv0\.(bias|kernel) is \("):
    evaluator.evaluate_run(edited, write=False)
  with pytest.raises(ValueError) as info:  # a typo in --splits
    evaluator.evaluate_run(workdir, ["test", "tset"], write=False)
  assert str(info.value) == (
      "Dataset 'fake' has no split 'tset'; its splits are ['test', 'train', "
      "'validation']. Name those in --splits, or leave it out for the run's "
      "own validation and test splits (validation, test).")
  with pytest.raises(evaluator.NoCheckpointError, match="no config.json"):
    evaluator.evaluate_run(tmp_path)
  (tmp_path / "config.json").write_text((workdir / "config.json").read_text())
  with pytest.raises(evaluator.NoCheckpointError, match="has no checkpoint"):
    evaluator.evaluate_run(tmp_path)


def test_tiny_blocks_run_learns(tmp_path_factory):
  """End to end on the real pipeline (blocks/small, built here), all costs on."""
  from landmark_ssl import input_pipeline, models, steps  # pylint: disable=g-import-not-at-top
  config = tiny_config.get_config("blocks")
  config.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
  config.data.labeled_fraction = 0.5
  config.train.max_epochs = 4.0
  info = input_pipeline.get_dataset_info(config.data)  # builds blocks/small
  # The validation error of the untrained model: what training must beat.
  mesh = steps.make_mesh()
  model = models.create_model(config.model, info.num_landmarks,
                              program_lib.model_heads(config, info))
  settings = steps.StepSettings.from_config(config, model.landmark_cost)
  key = jax.random.fold_in(jax.random.key(config.seed), 0)  # as in train.py
  state = program_lib.create_train_state(model, program_lib.make_optimizer(config.optim, 1),
                                   settings, info.image_shape, key, mesh)
  start, _ = evaluator.split_metrics(
      evaluator.predict_split(program_lib.Program.for_evaluation(mesh), state,
                              config.data, "validation")[0], "pixels", [])
  workdir = tmp_path_factory.mktemp("blocks_run")
  t0 = time.time()
  results = train.train_and_evaluate(config, workdir)
  seconds = time.time() - t0
  print(f"tiny blocks run: {results['steps']} steps in {seconds:.1f}s; "
        f"validation error {start['landmark_error']:.2f} -> "
        f"{results['metrics']['validation']['landmark_error']:.2f} px")
  assert results["status"] == "finished" and results["error_unit"] == "pixels"
  assert results["metrics"]["validation"]["num_images"] == 150
  assert results["label_subset"]["count"] == 75
  # The data it read, by digest: what an independent reading of the built
  # dataset gives (input_pipeline_test checks the digest's definition).
  assert results["data"] == input_pipeline.content_digest(
      config.data, ["train", "validation", "test"])
  assert results["stack"]["cpus"]["count"] == os.cpu_count()
  assert (results["metrics"]["validation"]["landmark_error"]
          < 0.7 * start["landmark_error"])
  assert results["metrics"]["test"]["landmark_error"] < 0.7 * start["landmark_error"]
  pred = np.load(workdir / "predictions_test.npz")
  np.testing.assert_array_equal(np.sort(pred["index"]), np.arange(150))


def test_costs_l_reads_only_labelled_rows_with_the_same_result(
    tmp_path_factory, monkeypatch):
  """Costs L train on the labelled rows of each batch (padded to the 8
  devices): each step's loss is the whole batch's, to float32 rounding, and
  the run ends where whole batches end."""
  from landmark_ssl import input_pipeline  # pylint: disable=g-import-not-at-top
  config = tiny_config.get_config("blocks")
  config.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
  config.costs = "L"
  config.seed = int(np.random.default_rng().integers(1000))
  config.augment.update(dict(rotation=0.0, scale=0.0, translation=0.0))
  config.train.update(dict(max_epochs=1.0, eval_every_epochs=1.0,
                           log_every_steps=1))
  made = []
  real_loader = input_pipeline.TrainLoader

  def loader(*args, force_full=False, **kwargs):
    if force_full:
      kwargs["labeled_only"] = False
    made.append(real_loader(*args, **kwargs))
    return made[-1]

  def step_losses(workdir):
    events = rundir.read_events(workdir / rundir.METRICS)
    return [e["loss"] for e in events if e["event"] == "train"]

  monkeypatch.setattr(input_pipeline, "TrainLoader", loader)
  fast_dir = tmp_path_factory.mktemp("fast")
  fast = train.train_and_evaluate(config, fast_dir)
  assert made[-1].labeled_per_batch == 12  # labeled_share 0.5 of 24 rows
  assert made[-1].global_batch_size == 16  # 12 labelled + 4 masked pads
  monkeypatch.setattr(input_pipeline, "TrainLoader",
                      functools.partial(loader, force_full=True))
  full_dir = tmp_path_factory.mktemp("full")
  full = train.train_and_evaluate(config, full_dir)
  assert made[-1].global_batch_size == 24
  assert fast["steps"] == full["steps"] > 5
  # The first steps' losses: the same rows, masks and updates give the same
  # loss to rounding (measured relative gaps <= 4e-7 over steps 1-5 on eight
  # seeds), while the next seed's rows and weights give a step-1 loss 0.4%
  # to 10% away. Later steps are not compared: Adam turns the rounding in
  # near-zero gradients into whole-size updates, and after 28 steps the test
  # errors of the two runs were 2e-3 apart on one seed of eight (an earlier
  # end-to-end check at rtol 1e-3 failed in CI on such a seed).
  np.testing.assert_allclose(step_losses(fast_dir)[:5],
                             step_losses(full_dir)[:5], rtol=1e-4)


# --------------------------------------------------------------------------
# several seeds in one program (train_and_evaluate_seeds, main --seeds)

# Seed 2 stops early (patience 1: its validation error rises at step 30) and
# seed 4 trains to the end (step 36); checked by the fixture, as is the
# margin between successive validation errors that keeps every
# early-stopping and best-checkpoint decision far from float rounding.
SEEDS = (2, 4)
SEED_OVERRIDES = {"train.max_epochs": 6.0, "train.eval_every_epochs": 1.0,
                  "train.patience": 1, "train.checkpoint_every_steps": 0}
# vmap batches the convolutions differently from the single-run program, so
# the runs agree to float32 rounding, not bit for bit: continuous metrics
# of tiny-config runs differ by a few 1e-6 relative (measured: up to 3.2e-6
# after 48 steps), hence rtol 1e-4, while the two seeds' metrics differ by
# > 10%. Counts (failure rates, accuracy) may move by one image across
# their threshold.
RTOL = 1e-4
COUNT_METRICS = ("failure_rate", "accuracy")


def _seeds_config():
  config = tiny_config.get_config()
  config.update_from_flattened_dict(SEED_OVERRIDES)
  return config


def _seeds_command(*extra):
  return [sys.executable, str(REPO / "tests" / "fake_main.py"),
          f"--config={REPO / 'tests' / 'tiny_config.py'}",
          f"--seeds={','.join(map(str, SEEDS))}",
          *[f"--config.{k}={v}" for k, v in SEED_OVERRIDES.items()], *extra]


def _assert_metrics_close(got, want, what):
  assert got.keys() == want.keys(), what
  for split in want:
    n = want[split]["num_images"]
    assert got[split]["num_images"] == n
    for key, value in want[split].items():
      atol = 1.0 / n if key.startswith(COUNT_METRICS) else 0.0
      np.testing.assert_allclose(got[split][key], value, rtol=RTOL, atol=atol,
                                 err_msg=f"{what} {split} {key}")


def _assert_events_close(got, want, what):
  got, want = _without_timing(got), _without_timing(want)
  assert [(e["event"], e["step"], e.get("split")) for e in got] == [
      (e["event"], e["step"], e.get("split")) for e in want], what
  for a, b in zip(got, want):
    for key, value in b.items():
      if isinstance(value, float):
        atol = (1.0 / b["num_images"] if key.startswith(COUNT_METRICS)
                else 0.0)
        np.testing.assert_allclose(a[key], value, rtol=RTOL, atol=atol,
                                   err_msg=f"{what} {b['event']} {key}")
      else:
        assert a[key] == value, (what, key)


@pytest.fixture(scope="module")
def seeds_reference(tmp_path_factory):
  """SEEDS trained one by one, and together in one program (in-process)."""
  base = tmp_path_factory.mktemp("seeds")
  config = _seeds_config()
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(train, "input_pipeline", fake_pipeline)
    mp.setattr(evaluator, "input_pipeline", fake_pipeline)
    start = time.time()
    alone = [train.train_and_evaluate(c, base / f"alone_s{c.seed}")
             for c in train.seed_configs(config, SEEDS)]
    middle = time.time()
    together = train.train_and_evaluate_seeds(
        config, SEEDS, [base / "together" / f"s{s}" for s in SEEDS])
    end = time.time()
  print(f"seeds {SEEDS}: one by one {middle - start:.1f}s, in one program "
        f"{end - middle:.1f}s (8 simulated devices)")
  # The premises of the comparisons (see SEEDS).
  assert [(r["steps"], r["stopped_early"]) for r in alone] == [
      (30, True), (36, False)]
  for seed in SEEDS:
    errors = [e["landmark_error"] for e in _events(base / f"alone_s{seed}")
              if e["event"] == "eval"]
    gaps = np.abs(np.diff(errors)) / np.asarray(errors[1:])
    assert gaps.min() > 100 * RTOL, (seed, errors)
  return base, alone, together


def test_seeds_in_one_program_match_runs_alone(seeds_reference):
  base, alone, together = seeds_reference
  for seed, a, t in zip(SEEDS, alone, together):
    one, many = base / f"alone_s{seed}", base / "together" / f"s{seed}"
    what = f"seed {seed}"
    assert t["status"] == "finished"
    assert t["config"]["seed"] == seed
    assert t["config"] == a["config"] == json.loads(
        (many / "config.json").read_text())
    for key in ("steps", "epochs", "best_step", "stopped_early", "label_subset",
                "num_devices", "selection"):
      assert t[key] == a[key], (what, key)
    _assert_metrics_close(t["metrics"], a["metrics"], what)
    # Every file of a lone run, with the same content.
    assert (many / "label_subset.json").read_text() == (
        one / "label_subset.json").read_text()
    assert json.loads((many / "results.json").read_text()) == t
    _assert_events_close(_events(many), _events(one), what)
    p = np.load(many / "predictions_test.npz")
    q = np.load(one / "predictions_test.npz")
    assert p.files == q.files
    np.testing.assert_allclose(p["pred_landmarks"], q["pred_landmarks"],
                               rtol=1e-4, atol=1e-4)
    ced = json.loads((many / "ced_test.json").read_text())
    assert ced["step"] == a["best_step"]
    assert (many / "tensorboard").is_dir()
    kept = sorted(int(p.name) for p in (many / "checkpoints").iterdir()
                  if p.name.isdigit())
    assert kept[-1] == a["steps"] and a["best_step"] in kept
  # Seed 2 stopped at step 30 while seed 4 went on to 36: nothing of seed 2
  # was logged or saved after its stop.
  stopped = [e["step"] for e in _events(base / "together" / "s2")
             if e["event"] != "test"]
  assert max(stopped) == 30
  assert max(e["step"] for e in _events(base / "together" / "s4")) == 36
  assert together[0]["metrics"] != together[1]["metrics"]


def test_seeds_sigkill_and_resume_with_a_run_behind(seeds_reference, tmp_path):
  """The --seeds process is killed; one run's workdir is then lost, so on
  resume seed 4 continues from its checkpoint only after seed 2 has caught
  up from step 0 (seed 4 waiting, masked). Both end exactly as in the
  uninterrupted program."""
  base, _, together = seeds_reference
  command = _seeds_command(f"--workdir={tmp_path}")
  # The second process reuses the first one's compiled programs (same HLO,
  # same code), which halves its start-up on this small machine.
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "xla_cache"))
  proc = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
  deadline = time.time() + 240
  while True:
    steps = [e["step"] for e in _events(tmp_path / "s4")
             if e["event"] == "train"]
    if steps and max(steps) >= 13:
      break
    if proc.poll() is not None or time.time() > deadline:
      proc.kill()
      raise AssertionError(f"no step 13 (rc {proc.poll()}): "
                           f"{proc.stderr.read()[-3000:]}")
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=60)
  shutil.rmtree(tmp_path / "s2")
  resumed = subprocess.run(command, capture_output=True, text=True,
                           timeout=400, cwd=REPO, env=env)
  assert resumed.returncode == 0, resumed.stderr[-5000:]
  assert "[s4] Resuming from the checkpoint of step" in resumed.stderr
  assert "[s2] Resuming" not in resumed.stderr
  for seed, want in zip(SEEDS, together):
    got = json.loads((tmp_path / f"s{seed}" / "results.json").read_text())
    assert got["metrics"] == want["metrics"], seed  # exact equality
    assert (got["steps"], got["best_step"]) == (want["steps"], want["best_step"])
    a = np.load(tmp_path / f"s{seed}" / "predictions_test.npz")
    b = np.load(base / "together" / f"s{seed}" / "predictions_test.npz")
    for key in b.files:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert _without_timing(_events(tmp_path / f"s{seed}")) == _without_timing(
        _events(base / "together" / f"s{seed}"))


def test_seeds_take_over_runs_trained_alone(fake, seeds_reference, tmp_path):
  """Workdirs holding runs of the same config trained alone count as those
  runs: a finished one is skipped, an unfinished one resumed (here: only
  its final evaluation was missing); another config is refused."""
  base, alone, _ = seeds_reference
  shutil.copytree(base / "alone_s2", tmp_path / "s2")
  shutil.copytree(base / "alone_s4", tmp_path / "s4")
  for name in ("results.json", "ced_test.json", "predictions_test.npz"):
    (tmp_path / "s4" / name).unlink()
  out = train.train_and_evaluate_seeds(_seeds_config(), SEEDS,
                                       [tmp_path / "s2", tmp_path / "s4"])
  assert out[0] == json.loads((base / "alone_s2" / "results.json").read_text())
  assert out[1]["metrics"] == alone[1]["metrics"]  # one run left: alone
  assert _without_timing(_events(tmp_path / "s4")) == _without_timing(
      _events(base / "alone_s4"))
  with pytest.raises(rundir.ConfigMismatchError,
                     match="seed: workdir has 2, given 4"):
    train.train_and_evaluate_seeds(_seeds_config(), (4,), [tmp_path / "s2"])
  with pytest.raises(ValueError, match="given twice"):
    train.train_and_evaluate_seeds(_seeds_config(), (1, 1),
                                   [tmp_path / "a", tmp_path / "b"])


def test_seeds_nan_in_one_run_lets_the_others_finish(fake, tmp_path):
  config = tiny_config.get_config()
  config.data.name = "fake_nan"  # NaN landmarks for even seeds only
  config.costs = "L"
  config.augment.update(dict(rotation=0.0, scale=0.0, translation=0.0))
  config.train.max_epochs = 2.0
  bad, good = train.train_and_evaluate_seeds(config, (0, 1),
                                             [tmp_path / "s0", tmp_path / "s1"])
  # As alone (test_nan_cost_stops_with_step_and_term): step 8, checkpoint 6.
  assert bad["status"] == "failed"
  assert (bad["step"], bad["term"]) == (fake_pipeline.NAN_BATCH + 1, "landmark")
  assert "last good checkpoint is step 6" in bad["message"]
  assert _events(tmp_path / "s0")[-1]["event"] == "error"
  assert not (tmp_path / "s0" / "results.json").exists()
  kept = [int(p.name) for p in (tmp_path / "s0" / "checkpoints").iterdir()
          if p.name.isdigit()]
  assert max(kept) == 6
  assert good["status"] == "finished" and good["steps"] == 12
  assert np.isfinite(good["metrics"]["test"]["landmark_error"])


def test_seed_flag_errors(tmp_path):
  for extra, message in [
      (("--seeds=1,x", f"--workdir={tmp_path}"), "comma-separated integers"),
      (("--seeds=1,2", f"--workdirs={tmp_path / 'a'}"), "one per seed"),
      ((f"--workdirs={tmp_path / 'a'}",), "goes with --seeds")]:
    args = [a for a in _seeds_command(*extra) if not a.startswith("--seeds=")
            or a in extra]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    assert out.returncode == 2 and message in out.stderr, (extra, out.stderr)
  assert not any(tmp_path.iterdir())


def test_a_run_written_before_a_config_key_existed_still_matches():
  """A stored config without a base_config key equals a given config that
  has the key at its default (the run ran with that default), and differs
  from one that sets it otherwise."""
  given = train.config_to_dict(configs.base_config())
  stored = json.loads(json.dumps(given))
  del stored["loss"]["elt_stop_gradient"]
  assert configs.config_differences(stored, given) == []
  given["loss"]["elt_stop_gradient"] = "original"
  assert configs.config_differences(stored, given) == [
      'loss.elt_stop_gradient: workdir has "none", given "original"']
  # Keys the run has are kept, nested defaults are filled in beside them.
  filled = configs.with_defaults({"loss": {"alpha": 3.0}, "model": {"name": "x"}})
  assert filled["loss"]["alpha"] == 3.0 and filled["loss"]["gamma"] == 1.0
  assert filled["model"] == {"name": "x"} and filled["optim"]["schedule"] == "constant"
