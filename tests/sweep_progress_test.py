"""A sweep's progress line: runs done / running / left and an ETA from the
finished runs' wall times, computed by hand."""

import json
import math

import numpy as np
import pytest

from landmark_ssl import rundir
from landmark_ssl import sweep_progress

A, B, C = ("seq_mt", "L"), ("seq_mt", "L+T"), ("comm_mt", "L")


def test_eta_by_hand():
  timings = {A: [100.0, 200.0], B: [400.0]}
  overall = 700.0 / 3  # C has no finished run: the mean of all
  eta = sweep_progress.eta_seconds(left=[A, B, C], running=[(A, 50.0),
                                                            (B, 500.0)],
                                   timings=timings, slots=2)
  # A running for 50 s has 100 s left; B running past its mean has none.
  assert eta == pytest.approx((150 + 400 + overall + 100 + 0) / 2)
  assert sweep_progress.eta_seconds([], [], {}, 1) == 0.0
  assert math.isnan(sweep_progress.eta_seconds([A], [], {}, 1))
  assert math.isnan(sweep_progress.eta_seconds([], [(A, 1.0)], {}, 1))
  assert sweep_progress.format_eta(3725.4) == "ETA 1:02:05"
  assert sweep_progress.format_eta(math.nan) == "ETA when a run has finished"


def _on_cpu(key, seconds, epochs):
  """The timing of a run trained whole on a CPU."""
  return sweep_progress.Timing(key, [("cpu", seconds, epochs)], "cpu")


def test_idle_slots_do_not_shorten_the_eta():
  """The work is shared by at most as many slots as there are runs, and no
  run finishes sooner than its own time: the last run running alone on a
  --parallel=4 sweep has its whole remaining time left, not a quarter."""
  rng = np.random.default_rng()
  mean = float(rng.uniform(10, 1000))
  elapsed = float(rng.uniform(0, mean))
  timings = {A: [mean]}
  slots = int(rng.integers(2, 9))
  assert sweep_progress.eta_seconds([], [(A, elapsed)], timings, slots) == (
      pytest.approx(mean - elapsed))
  # Two runs on many slots: each on its own, the longer one decides.
  lengths = sorted(rng.uniform(1, 50, 2))
  assert sweep_progress.eta_seconds([A, A], [], timings, slots,
                                    left_lengths=lengths) == pytest.approx(
                                        mean * lengths[1])
  # Many equal runs: shared among the slots.
  n = slots * int(rng.integers(2, 5))
  assert sweep_progress.eta_seconds([A] * n, [], timings, slots) == (
      pytest.approx(mean * n / slots))


def test_the_launchers_slots_count_before_any_run_starts():
  """With the launcher's --parallel known, the first lines of a sweep that
  resumes (finished runs skipped, nothing running yet) already share the
  work among the slots; without it, they count the most runs seen running
  at once (Ray's workers), which is one until runs start."""
  rng = np.random.default_rng()
  per_epoch = float(rng.uniform(1, 10))
  slots = int(rng.integers(2, 6))
  names = [f"r{i}" for i in range(3 * slots)]
  for known, divisor in ((slots, slots), (None, 1)):
    progress = sweep_progress.Progress(
        dict.fromkeys(names, A), clock=lambda: 0.0,
        epochs=dict.fromkeys(names, 40.0), slots=known)
    progress.done(names[0], "skipped", _on_cpu(A, 40 * per_epoch, 40.0))
    left = len(names) - 1
    assert progress.eta() == pytest.approx(
        max(left * 40 * per_epoch / min(divisor, left), 40 * per_epoch))


def test_eta_counts_the_pace_of_the_device_the_sweep_runs_on():
  """Runs a GPU finished before (skipped) do not speed up the ETA of a CPU
  sweep once one of its runs has finished: only each run's CPU share
  counts, including that of a run the GPU began. Before, every kind
  pools."""
  rng = np.random.default_rng()
  gpu, cpu = sorted(rng.uniform(0.5, 30.0, 2))  # seconds per epoch
  now = [0.0]
  names = ["g1", "g2", "mixed", "c1", "left"]
  progress = sweep_progress.Progress(dict.fromkeys(names, A),
                                     clock=lambda: now[0],
                                     epochs=dict.fromkeys(names, 40.0))
  on_gpu = sweep_progress.Timing(A, [("gpu", 40 * gpu, 40.0)], "gpu")
  progress.done("g1", "skipped", on_gpu)
  # Before a run finishes here, whole runs wherever they ran: a run that
  # the GPU began and the CPU finished counts once, at its mean pace.
  mixed = sweep_progress.Timing(
      A, [("gpu", 15 * gpu, 15.0), ("cpu", 25 * cpu, 25.0)], "cpu")
  progress.done("g2", "skipped", mixed)
  assert progress.timings() == {
      A: [pytest.approx(gpu), pytest.approx((15 * gpu + 25 * cpu) / 40)]}
  progress.started("mixed")
  progress.started("c1")
  now[0] = 10.0 * cpu
  # 'mixed' finishes here: from now on only CPU shares count, g2's too.
  progress.done("mixed", "finished", mixed)
  assert progress.timings() == {A: [pytest.approx(cpu)] * 2}
  # 'left' at the CPU pace; 'c1' has run 10 of its 40 epochs; 2 at a time,
  # but no sooner than 'left' alone takes.
  assert progress.eta() == pytest.approx(max((40 * cpu + 30 * cpu) / 2,
                                             40 * cpu))
  now[0] = 35.0 * cpu  # 'c1' has 5 epochs left: (40 + 5) / 2 < 40
  assert progress.eta() == pytest.approx(40 * cpu)


def test_the_sweeps_device_is_where_a_run_finished():
  """A run preempted after its last step and finished (its evaluation)
  elsewhere trained no step there: its device is still where it finished,
  so the ETA counts that device's pace (none yet: every run's)."""
  now = [0.0]
  progress = sweep_progress.Progress({"a": A, "b": A}, clock=lambda: now[0],
                                     epochs={"a": 40.0, "b": 40.0})
  progress.done("a", "finished",
                sweep_progress.Timing(A, [("gpu", 80.0, 40.0)], "cpu"))
  assert progress.timings() == {A: [2.0]}  # no CPU share: pooled
  assert progress.eta() == pytest.approx(80.0)
  results = {"status": "finished", "steps": 100, "epochs": 40.0,
             "wall_time_s": 80.0, "device_kind": "cpu",
             "config": {"model": {"name": "seq_mt"}, "costs": "L"},
             "stack": {"starts": [
                 {"step": 0, "device_kind": "gpu", "wall_time_s": 0.0},
                 {"step": 100, "device_kind": "cpu", "wall_time_s": 80.0}]}}
  assert sweep_progress.run_timing(results) == sweep_progress.Timing(
      A, [("gpu", 80.0, 40.0)], "cpu")


def test_a_run_that_stopped_early_counts_per_planned_epoch():
  """A run planned for 40 epochs that stopped after e counts its wall time
  over 40 (the runs left are counted at their planned length), as does a
  seed of a vectorised group, whose wall time is the group's."""
  rng = np.random.default_rng()
  wall, stopped = float(rng.uniform(10, 1000)), float(rng.integers(1, 40))
  progress = sweep_progress.Progress({"early": A, "left": A}, clock=lambda: 0.0,
                                     epochs={"early": 40.0, "left": 40.0})
  progress.done("early", "finished", _on_cpu(A, wall, stopped))
  assert progress.eta() == pytest.approx(wall)
  results = {"status": "finished", "steps": 10, "epochs": stopped,
             "wall_time_s": wall, "device_kind": "cpu",
             "config": {"model": {"name": "seq_mt"}, "costs": "L",
                        "train": {"max_epochs": 40.0}}}
  assert sweep_progress.epoch_seconds(results) == [
      ("cpu", A, pytest.approx(wall / 40))]


def test_a_resumed_run_counts_only_the_epochs_it_has_left(tmp_path):
  """A run that resumes after e of its 40 epochs has 40 - e left, read from
  the last training or evaluation event of its metrics.jsonl."""
  rng = np.random.default_rng()
  per_epoch = float(rng.uniform(1, 10))
  done = float(rng.integers(1, 39))
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  events = [{"event": "start", "step": 0},
            {"event": "train", "step": 10, "epoch": done - 0.5},
            {"event": "eval", "split": "validation", "step": 20, "epoch": done},
            {"event": "start", "step": 20}]
  (run_dir / rundir.METRICS).write_text(
      "".join(json.dumps(e) + "\n" for e in events) + '{"event": "tr')
  assert sweep_progress.read_epochs_done(str(run_dir)) == done
  assert sweep_progress.read_epochs_done(str(tmp_path / "new")) == 0.0
  now = [0.0]
  progress = sweep_progress.Progress({"old": A, "resumed": A}, lambda: now[0],
                                     epochs={"old": 40.0, "resumed": 40.0})
  progress.done("old", "finished", _on_cpu(A, 40 * per_epoch, 40.0))
  progress.started("resumed", sweep_progress.read_epochs_done(str(run_dir)))
  now[0] = per_epoch
  assert progress.eta() == pytest.approx((40 - done - 1) * per_epoch)


def test_wall_seconds_of_results():
  results = {"status": "finished", "wall_time_s": 12.5,
             "config": {"model": {"name": "rcn", "soft_argmax": True},
                        "costs": "L"}}
  assert sweep_progress.wall_seconds(results) == (("rcn_plus", "L"), 12.5)
  for bad in ({**results, "status": "preempted"}, {"status": "finished"},
              [], {**results, "wall_time_s": "x"}):
    assert sweep_progress.wall_seconds(bad) is None


def test_progress_lines_of_a_sweep():
  now = [0.0]
  progress = sweep_progress.Progress({"r1": A, "r2": A, "r3": B, "r4": A},
                                     clock=lambda: now[0])
  assert progress.started("r1") and progress.started("r2")
  assert progress.line("r2", "started") == (
      "[0/4 done, 2 running, 2 left; ETA when a run has finished] r2: "
      "started")
  now[0] = 100.0
  progress.done("r1", "finished", _on_cpu(A, 90.0, 40.0))
  # Left: r3 (B: no own run, the mean of all, 90 s) and r4 (A, 90 s);
  # r2 has run 100 s of its 90: none left; 2 at a time.
  assert progress.line("r1", "finished") == (
      "[1/4 done, 1 running, 2 left; ETA 0:01:30] r1: finished")
  progress.done("r3", "skipped", _on_cpu(B, 30.0, 5.0))
  progress.stopped("r2")  # preempted: it starts again
  assert progress.line("r3", "x").startswith(
      "[2/4 done, 0 running, 2 left; ETA 0:01:30]")  # (90 + 90) / 2
  assert progress.started("r2")
  assert not progress.started("r2")  # again, without a stop (a lost worker)
  progress.done("r2", "failed")
  progress.done("r4", "busy")
  assert progress.counts() == {"finished": 1, "failed": 1, "skipped": 1,
                               "busy": 1, "changed": 0}
  assert progress.line("r4", "y").startswith("[4/4 done, 0 running, 0 left; "
                                             "ETA 0:00:00]")
  with pytest.raises(ValueError, match="Unknown end"):
    progress.done("r4", "lost")


def test_progress_scales_by_each_runs_epochs():
  """A finished run counts its time per epoch; a run left, that mean times
  its own epochs (a 200-epoch run five times a 40-epoch one)."""
  rng = np.random.default_rng()
  per_epoch = float(rng.uniform(1, 10))
  now = [0.0]
  progress = sweep_progress.Progress(
      {"short": A, "long": A, "other": B, "unknown": A},
      clock=lambda: now[0],
      epochs={"short": 40.0, "long": 200.0, "other": 40.0,
              "unknown": None})
  progress.started("short")
  now[0] = 40 * per_epoch
  progress.done("short", "finished", _on_cpu(A, 40 * per_epoch, 40.0))
  # long: 200 epochs; other (B: the mean of all): 40; unknown: one unit.
  expected = (200 + 40 + 1) * per_epoch
  assert progress.eta() == pytest.approx(expected)
  progress.started("long")
  now[0] += 50 * per_epoch
  assert progress.eta() == pytest.approx(expected - 50 * per_epoch)


def test_a_run_resumed_on_another_device_counts_each_share_there():
  """A run's time per epoch is split at its (re)starts, each share going to
  the device it ran on; a start from older code (no device, no wall time)
  is left out once any start records one; a run none of whose starts
  records one counts whole on its own device_kind."""
  rng = np.random.default_rng()
  steps, epochs = 10000, 200.0
  cut1, cut2 = sorted(rng.choice(np.arange(1, steps), 2, replace=False))
  gpu_s, cpu_a, cpu_b = rng.uniform(100, 1000, 3)
  config = {"model": {"name": "seq_mt"}, "costs": "L+T+C"}
  results = {
      "status": "finished", "steps": steps, "epochs": epochs,
      "wall_time_s": gpu_s + cpu_a + cpu_b, "device_kind": "cpu",
      "config": config,
      "stack": {"starts": [
          {"step": 0, "device_kind": "NVIDIA H200", "wall_time_s": 0.0},
          {"step": int(cut1), "device_kind": "cpu", "wall_time_s": gpu_s},
          {"step": int(cut2), "device_kind": "cpu",
           "wall_time_s": gpu_s + cpu_a}]}}
  per_epoch = dict((k, v) for k, _, v in sweep_progress.epoch_seconds(results))
  gpu_epochs = epochs * cut1 / steps
  assert per_epoch == {
      "NVIDIA H200": pytest.approx(gpu_s / gpu_epochs),
      "cpu": pytest.approx((cpu_a + cpu_b) / (epochs - gpu_epochs))}
  # Its first start from older code: that share is unknown, left out.
  del results["stack"]["starts"][0]["device_kind"]
  assert dict((k, v) for k, _, v in sweep_progress.epoch_seconds(results)) == {
      "cpu": pytest.approx((cpu_a + cpu_b) / (epochs - gpu_epochs))}
  # No start says where it ran: the whole run on its device_kind.
  for start in results["stack"]["starts"]:
    start.pop("device_kind", None)
  assert sweep_progress.epoch_seconds(results) == [
      ("cpu", ("seq_mt", "L+T+C"), pytest.approx(results["wall_time_s"] / epochs))]
  assert sweep_progress.epoch_seconds({**results, "status": "preempted"}) == []


def test_runs_left_count_what_they_trained_and_other_runs_pace():
  """From the first line: a run not started yet that trained before counts
  only the epochs it has left, and finished runs that are not the sweep's
  (``history``: others of its workdir) give the pace."""
  rng = np.random.default_rng()
  per_epoch = float(rng.uniform(1, 10))
  done_before = float(rng.integers(1, 200))
  runs = {"partly": A, "fresh": B}
  epochs = {"partly": 200.0, "fresh": 40.0}
  history = [(_on_cpu(A, 40 * per_epoch, 40.0), 40.0)]
  progress = sweep_progress.Progress(
      runs, lambda: 0.0, epochs=epochs, slots=1,
      epochs_done={"partly": done_before}, history=history)
  # B has no run of its own: the mean of all (A's pace).
  assert progress.eta() == pytest.approx((200 - done_before + 40) * per_epoch)
  assert math.isnan(sweep_progress.Progress(runs, lambda: 0.0,
                                            epochs=epochs).eta())
  # Without the runs' lengths the history (per epoch) is not mixed in.
  assert math.isnan(sweep_progress.Progress(runs, lambda: 0.0,
                                            history=history).eta())


def test_history_is_the_finished_runs_outside_the_sweep(tmp_path):
  rng = np.random.default_rng()
  walls = rng.uniform(10, 100, 3)
  for i, wall in enumerate(walls):
    run_dir = tmp_path / f"r{i}"
    run_dir.mkdir()
    (run_dir / rundir.RESULTS).write_text(json.dumps({
        "status": "finished", "wall_time_s": float(wall), "epochs": 40.0,
        "device_kind": "cpu",
        "config": {"model": {"name": "seq_mt"}, "costs": "L",
                   "train": {"max_epochs": 50}}}))
  (tmp_path / "unfinished").mkdir()
  (tmp_path / "unfinished" / rundir.RESULTS).write_text(
      json.dumps({"status": "preempted"}))
  history = sweep_progress.read_history([str(tmp_path)],
                                        exclude=[str(tmp_path / "r1")])
  assert [(t.key, t.segments[0][1], planned) for t, planned in history] == [
      (A, pytest.approx(walls[0]), 50.0), (A, pytest.approx(walls[2]), 50.0)]
