"""Two processes x 4 CPU devices (gloo collectives, a coordinator on a free
localhost port) train exactly as one process x 8 devices; when one is
killed (``kill -9``) the other stops within the heartbeat timeout instead of
hanging, and the two started again resume from the last checkpoint; the
checkpoint they write restores in a single process.

How a process reads only its own rows of each batch is tested on the input
pipeline itself (input_pipeline_test: the processes' slices concatenate to
the global batch); here the whole program runs as separate processes.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return env


def _argv(data_dir, workdir):
  return [sys.executable, "-m", "landmark_ssl.main",
          "--config=tests/tiny_config.py:blocks",
          f"--config.data.data_dir={data_dir}",
          "--config.train.max_epochs=1", "--config.train.eval_every_epochs=1",
          "--config.train.log_every_steps=1",
          "--config.train.checkpoint_every_steps=2", f"--workdir={workdir}"]


HEARTBEAT_S = 10


def _start_two(data_dir, workdir, port):
  return [subprocess.Popen(
      _argv(data_dir, workdir) + [f"--coordinator_address=127.0.0.1:{port}",
                                  "--num_processes=2", f"--process_id={i}",
                                  f"--heartbeat_timeout_s={HEARTBEAT_S}"],
      cwd=ROOT, env=_env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for i in range(2)]


def _checkpoint_steps(workdir):
  folder = workdir / "checkpoints"
  return sorted(int(p.name) for p in folder.iterdir()
                if p.name.isdigit()) if folder.is_dir() else []


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    events = [json.loads(line) for line in f]
  return {e["step"]: e["loss"] for e in events if e.get("event") == "train"}


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def data_dir(tiny_blocks_run):
  return tiny_blocks_run.data_dir  # blocks/small, built once per session


def test_two_processes_train_as_one_and_their_checkpoint_restores(
    data_dir, tmp_path):
  single = tmp_path / "single"
  proc = subprocess.run(_argv(data_dir, single), cwd=ROOT, env=_env(8),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]

  # Killed mid-run: process 1 dies (kill -9) after the first checkpoint;
  # process 0 stops on its own, within the heartbeat timeout and a margin.
  multi = tmp_path / "multi"
  procs = _start_two(data_dir, multi, _free_port())
  try:
    deadline = time.time() + 600
    while not _checkpoint_steps(multi) and procs[1].poll() is None:
      assert time.time() < deadline, "no checkpoint within 600 s"
      time.sleep(0.02)
    assert procs[1].poll() is None, "the run ended before it could be killed"
    os.kill(procs[1].pid, signal.SIGKILL)
    killed_at = time.time()
    procs[0].communicate(timeout=HEARTBEAT_S + 120)
    waited = time.time() - killed_at
  finally:
    for p in procs:
      p.kill()
      p.communicate()
  assert procs[0].returncode != 0 and waited < HEARTBEAT_S + 120
  stopped_at = _checkpoint_steps(multi)[-1]
  assert stopped_at < 7

  # Both started again: they resume from that checkpoint and finish.
  procs = _start_two(data_dir, multi, _free_port())
  try:
    outs = [p.communicate(timeout=600) for p in procs]
  finally:
    for p in procs:
      p.kill()
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert "2 processes" in outs[0][1] and "8 devices" in outs[0][1]
  assert f"Resuming from the checkpoint of step {stopped_at}" in outs[0][1]

  # The same per-step costs and final metrics, to float tolerance.
  a, b = _losses(single), _losses(multi)
  assert sorted(a) == sorted(b) and len(a) == 7
  np.testing.assert_allclose([b[s] for s in sorted(b)],
                             [a[s] for s in sorted(a)], rtol=1e-4)
  ra, rb = _results(single), _results(multi)
  assert rb["num_processes"] == 2 and ra["num_processes"] == 1
  for split in ("validation", "test"):
    for key, value in ra["metrics"][split].items():
      assert rb["metrics"][split][key] == pytest.approx(value, rel=1e-4), key

  # Written once (process 0), it restores and evaluates in one process.
  proc = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.evaluate", f"--workdir={multi}",
       "--splits=test"], cwd=ROOT, env=_env(1), capture_output=True,
      text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(multi / "evaluation.json") as f:
    evaluated = json.load(f)
  test = evaluated.get("metrics", evaluated).get("test", {})
  assert test["landmark_error"] == pytest.approx(
      rb["metrics"]["test"]["landmark_error"], rel=1e-4)


def test_incomplete_settings_name_the_missing_flags(tmp_path):
  proc = subprocess.run(
      _argv(tmp_path, tmp_path / "w") + ["--coordinator_address=127.0.0.1:1"],
      cwd=ROOT, env=_env(1), capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert "--num_processes, --process_id missing" in proc.stderr
  assert "FATAL usage error: " in proc.stderr
  assert "Trains and evaluates one run" not in proc.stderr  # no help page
  assert not (tmp_path / "w").exists()
