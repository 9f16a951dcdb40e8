"""``sweep --launcher=ray`` against a real Ray cluster of this machine
(``ray.init`` with 2 CPUs, started here; each sweep connects to it with
``--ray_address``): a quick 2x2 Blocks sweep reports exactly as the local
launcher's, with the worker of one run killed mid-run (retried, resumed,
identical results); a failing run is reported with its log, not retried;
preempted runs are retried up to --max_retries; Ctrl-C cancels and the next
sweep resumes. The checks that need no cluster (resources, the missing-Ray
and shared-storage messages) run on their own."""

import fcntl
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest
import ray

from landmark_ssl import launcher
from landmark_ssl import ray_launcher
from landmark_ssl import rundir
from landmark_ssl import sweep
from landmark_ssl import sweep_plan

import fake_sweep_experiment
import waiting

pytestmark = pytest.mark.filterwarnings("ignore:the load_module")

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}"
           f"{os.environ.get('PYTHONPATH', '')}")
# 2 table rows x 2 seeds of the quick Blocks variant, shrunk further (3
# epochs of 5 steps, an evaluation and a checkpoint at each epoch).
QUICK = ["--config=experiments/blocks.py", "--quick",
         r"--only=^seq_mt_L(\+T)?_f0\.05_", "--seeds=0,1",
         "--override=train.max_epochs=3", "--override=data.batch_size=32",
         "--override=train.eval_every_epochs=1",
         "--override=model.features=2", "--override=model.kernel_sizes=(3, 1)"]
NAMES = [f"seq_mt_{c}_f0.05_s{s}_quick" for c in ("L", "L+T") for s in (0, 1)]
VICTIM = NAMES[2]  # its Ray worker is killed mid-run


def _sweep(workdir, *flags):
  return [sys.executable, "-m", "landmark_ssl.sweep", f"--workdir={workdir}",
          *flags]



def _alive(pid):
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False


def _parent(pid):
  with open(f"/proc/{pid}/stat") as f:
    return int(f.read().rsplit(")", 1)[1].split()[1])


def _ray_start(args, log, env):
  """``ray start ARGS --block`` (README's procedure), once it is up."""
  ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
  proc = subprocess.Popen([ray_cli, "start", *args, "--block"], cwd=ROOT,
                          env=env, stdout=open(log, "w"),
                          stderr=subprocess.STDOUT, start_new_session=True)
  waiting.wait_for(lambda: "block forever" in log.read_text() or
            proc.poll() is not None, 120, f"ray start {' '.join(args)}")
  assert proc.poll() is None, log.read_text()[-3000:]
  return proc


def _ray_stop(proc):
  proc.send_signal(signal.SIGINT)  # it stops the node's processes
  try:
    proc.wait(60)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_the_readme_procedure_ray_start_then_ray_address_auto(fake, tmp_path):
  """README's commands on one machine: `ray start --head`, a second node
  with `ray start --address=HEAD:PORT`, then `sweep --launcher=ray
  --ray_address=auto`. The head has no CPU, so the run can only train on
  the node that joined. (First in this file: before its own cluster.)"""
  port = _free_port()
  # README: RAY_AUTH_MODE=token everywhere and one token (here in the
  # environment rather than in ~/.ray/auth_token, which stays untouched).
  # The nodes' files go to a directory of this test's, not /tmp/ray: a node
  # stopped as here (not by `ray stop`) leaves its address on record there,
  # where a later ray.init() of this machine would look for a cluster.
  # (Short: Ray's sockets live under it.)
  ray_tmp = tempfile.mkdtemp(prefix="ray")
  env = dict(ENV, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
             RAY_TMPDIR=ray_tmp)
  head = _ray_start(["--head", f"--port={port}", "--num-cpus=0",
                     "--include-dashboard=false"], tmp_path / "head.log", env)
  try:
    node = _ray_start([f"--address=127.0.0.1:{port}", "--num-cpus=1"],
                      tmp_path / "node.log", env)
    try:
      out = subprocess.run(
          _sweep(tmp_path / "sweep", *fake, "--seeds=3", "--launcher=ray",
                 "--ray_address=auto", "--resources_per_run=CPU:1"),
          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    finally:
      _ray_stop(node)
  finally:
    _ray_stop(head)
    shutil.rmtree(ray_tmp, ignore_errors=True)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "no node of the Ray cluster has" not in out.stderr
  assert launcher.run_status(str(tmp_path / "sweep" / "run_s3")) == "finished"
  assert "finished now: 1, finished before: 0, failed: 0" in out.stderr


@pytest.fixture(scope="module")
def cluster():
  """A Ray cluster of this machine with 2 CPUs: its address. The sweeps get
  the environment of this process after ``ray.init`` (which sets the
  cluster's authentication mode, ``RAY_AUTH_MODE``)."""
  before = dict(os.environ)
  ray.init(address="local", num_cpus=2, include_dashboard=False,
           log_to_driver=False)
  ENV.update({k: v for k, v in os.environ.items() if k.startswith("RAY_")})
  try:
    yield ray.get_runtime_context().gcs_address
  finally:
    ray.shutdown()
    os.environ.clear()  # what ray.init set is for this module's sweeps only
    os.environ.update(before)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("tfds")
  subprocess.run([sys.executable, "-m", "landmark_ssl.build_data",
                  "--dataset=blocks/small", f"--data_dir={path}"], cwd=ROOT,
                 env=ENV, check=True, capture_output=True, timeout=300)
  return path


@pytest.fixture(scope="module")
def local_sweep(data_dir, tmp_path_factory):
  """The 2x2 sweep by the local launcher, 2 at a time."""
  workdir = tmp_path_factory.mktemp("local") / "sweep"
  out = subprocess.run(_sweep(workdir, *QUICK, "--parallel=2",
                              f"--override=data.data_dir={data_dir}"),
                       cwd=ROOT, env=ENV, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


@pytest.fixture(scope="module")
def ray_sweep(cluster, data_dir, tmp_path_factory):
  """The same sweep on the Ray cluster; once VICTIM has its first
  checkpoint, its Ray worker is killed (SIGKILL).

  Returns ``(workdir, the sweep's exit status, its stderr, the training
  process's pid, whether that process outlived its worker)``.
  """
  workdir = tmp_path_factory.mktemp("ray") / "sweep"
  stderr = workdir.parent / "stderr.txt"
  victim = workdir / VICTIM
  with open(stderr, "w") as err:
    proc = subprocess.Popen(
        _sweep(workdir, *QUICK, "--launcher=ray", f"--ray_address={cluster}",
               "--resources_per_run=CPU:1", "--max_retries=2",
               f"--override=data.data_dir={data_dir}"),
        cwd=ROOT, env=ENV, stdout=err, stderr=subprocess.STDOUT)
    try:
      def checkpointed():
        assert proc.poll() is None, stderr.read_text()[-3000:]
        ckpts = victim / "checkpoints"
        return ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())
      waiting.wait_for(checkpointed, 300, f"{VICTIM}'s first checkpoint")
      pid = json.loads((victim / "run.lock").read_text())["pid"]
      worker = _parent(pid)
      with open(f"/proc/{worker}/cmdline", "rb") as f:
        assert b"ray::" in f.read()  # the Ray worker running its task
      os.kill(worker, signal.SIGKILL)
      deadline = time.time() + 10
      while _alive(pid) and time.time() < deadline:
        time.sleep(0.05)
      orphan = _alive(pid)
      code = proc.wait(600)
    finally:
      if proc.poll() is None:
        proc.kill()
  return workdir, code, stderr.read_text(), pid, orphan


def _results(run_dir):
  """A run's results.json without what differs between equal runs."""
  results = json.loads((run_dir / "results.json").read_text())
  return {k: v for k, v in results.items() if k not in ("wall_time_s", "stack")}


def test_ray_sweep_reports_exactly_as_the_local_one(local_sweep, ray_sweep,
                                                   cluster, data_dir):
  workdir, code, stderr, _, _ = ray_sweep
  assert code == 0, stderr[-3000:]
  assert "finished now: 4, finished before: 0, failed: 0" in stderr
  assert re.search(r"\[4/4 done, 0 running, 0 left; ETA 0:00:00\] "
                   r"seq_mt_\S+: finished in \d+ s", stderr)
  for name in NAMES:
    assert _results(workdir / name) == _results(local_sweep / name), name
  texts = []
  for w in (local_sweep, workdir):
    subprocess.run([sys.executable, "-m", "landmark_ssl.report",
                    f"--workdir={w}", "--config=experiments/blocks.py",
                    "--seeds=0,1", "--quick"], cwd=ROOT, env=ENV, check=True,
                   capture_output=True, timeout=300)
    texts.append([(w / f).read_text().replace(str(w), "WORKDIR")
                  for f in ("report.md", "report.csv")])
  assert texts[0] == texts[1]
  assert "(n=2)" in texts[0][0]  # the runs are there
  # Again: every run is finished, no task is started.
  again = subprocess.run(
      _sweep(workdir, *QUICK, "--launcher=ray", f"--ray_address={cluster}",
             f"--override=data.data_dir={data_dir}"),
      cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "finished now: 0, finished before: 4" in again.stderr


def test_a_killed_worker_is_retried_and_resumes(local_sweep, ray_sweep):
  workdir, code, stderr, pid, orphan = ray_sweep
  assert code == 0, stderr[-3000:]
  assert not orphan  # the training process died with its worker
  log = (workdir / VICTIM / "log.txt").read_text()
  assert log.count("sweep starts: ") == 2
  second = log.split("sweep starts: ")[2]
  assert "Resuming from the checkpoint of step" in second
  assert re.search(rf"{re.escape(VICTIM)}: started on \S+ \(pid \d+\) "
                   r"\(again\)", stderr)
  assert _results(workdir / VICTIM) == _results(local_sweep / VICTIM)


def test_a_failing_run_is_reported_with_its_log_not_retried(cluster, data_dir,
                                                            tmp_path):
  workdir = tmp_path / "sweep"
  out = subprocess.run(
      _sweep(workdir, "--config=experiments/blocks.py", "--quick",
             r"--only=^seq_mt_L_f0\.05_", "--seeds=0", "--launcher=ray",
             f"--ray_address={cluster}", "--max_retries=2",
             f"--override=data.data_dir={data_dir}",
             "--override=train.max_epochs=-1"),
      cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
  assert out.returncode == 1, out.stderr[-3000:]
  log = (workdir / "seq_mt_L_f0.05_s0_quick" / "log.txt").read_text()
  assert log.count("sweep starts: ") == 1  # not retried
  assert re.search(r"seq_mt_L_f0.05_s0_quick: FAILED \(exit status 2 after "
                   r"\d+ s\); see \S+log.txt. Its last lines:", out.stderr)
  last = [l for l in log.splitlines() if l.strip()][-1]
  assert last.strip() in out.stderr  # the log's last line is quoted
  assert "max_epochs" in out.stderr
  assert "finished now: 0, finished before: 0, failed: 1" in out.stderr


# A stand-in for `python -m landmark_ssl.main`: counts its attempts in the
# run directory (its pid per line); run_s0 is killed (SIGKILL) on its first
# attempt, run_s1 is always preempted (exit 75), run_s2 waits for SIGTERM on
# its first attempt (noting it, then exit 75); otherwise it finishes. With
# --seeds (a cell), it finishes each run.
FAKE_MAIN = textwrap.dedent(f"""\
    #!{sys.executable}
    import json, os, signal, sys, time
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if "=" in a)
    if "seeds" in args:
      for wd in args["workdirs"].split(","):
        with open(os.path.join(wd, "attempts"), "a") as f:
          f.write(f"{{os.getpid()}}\\n")
        with open(os.path.join(wd, "results.json"), "w") as f:
          json.dump({{"status": "finished"}}, f)
      sys.exit(0)
    wd, seed = args["workdir"], args["config.seed"]
    os.makedirs(wd, exist_ok=True)
    with open(os.path.join(wd, "attempts"), "a") as f:
      f.write(f"{{os.getpid()}}\\n")
    attempt = len(open(os.path.join(wd, "attempts")).read().split())
    print("fake attempt", attempt, flush=True)
    if seed == "0" and attempt == 1:
      os.kill(os.getpid(), signal.SIGKILL)
    if seed == "1":
      sys.exit(75)
    if seed == "2" and attempt == 1:
      def stop(*_):
        open(os.path.join(wd, "sigterm"), "w").close()
        sys.exit(75)
      signal.signal(signal.SIGTERM, stop)
      time.sleep(120)
      sys.exit(1)
    with open(os.path.join(wd, "results.json"), "w") as f:
      json.dump({{"status": "finished"}}, f)
    """)



@pytest.fixture
def fake(tmp_path):
  main = tmp_path / "fake_main"
  main.write_text(FAKE_MAIN)
  main.chmod(0o755)
  experiment = tmp_path / "fake_experiment.py"
  experiment.write_text(fake_sweep_experiment.SOURCE)
  return [f"--config={experiment}", f"--python={main}"]


def _attempts(run_dir):
  return len((run_dir / "attempts").read_text().split())


def test_killed_and_preempted_runs_are_retried_up_to_max_retries(
    cluster, fake, tmp_path):
  workdir = tmp_path / "sweep"
  out = subprocess.run(
      _sweep(workdir, *fake, "--seeds=0,1", "--launcher=ray",
             f"--ray_address={cluster}", "--max_retries=1"),
      cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
  assert out.returncode == 1, out.stderr[-3000:]
  assert _attempts(workdir / "run_s0") == 2
  assert launcher.run_status(str(workdir / "run_s0")) == "finished"
  assert "run_s0: killed by SIGKILL on " in out.stderr
  assert _attempts(workdir / "run_s1") == 2  # 1 + --max_retries
  assert re.search(r"run_s1: FAILED \(its process was stopped 2 times "
                   r"\(--max_retries=1\), the last: exit status 75 on \S+\); "
                   r"see \S+. Its last lines:\n\s+=== ", out.stderr)
  assert "fake attempt 2" in out.stderr
  assert "finished now: 1, finished before: 0, failed: 1" in out.stderr


def test_vectorize_seeds_makes_one_task_per_cell(cluster, fake, tmp_path):
  workdir = tmp_path / "sweep"
  (workdir / "run_s5").mkdir(parents=True)
  (workdir / "run_s5" / "results.json").write_text('{"status": "finished"}')
  out = subprocess.run(
      _sweep(workdir, *fake, "--seeds=3,4,5", "--vectorize_seeds",
             "--launcher=ray", f"--ray_address={cluster}"),
      cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "3 runs of" in out.stderr and "(1 tasks)" in out.stderr
  pids = [(workdir / f"run_s{s}" / "attempts").read_text() for s in (3, 4)]
  assert pids[0] == pids[1] and len(pids[0].split()) == 1  # one process
  log = (workdir / "run_s3" / "log.txt").read_text()
  assert f"--seeds=3,4 --workdirs={workdir}/run_s3,{workdir}/run_s4" in log
  assert "finished now: 2, finished before: 1, failed: 0" in out.stderr


def test_a_run_locked_elsewhere_is_left_alone(cluster, fake, tmp_path):
  """As with the local launcher, a run whose sweep.lock another process
  holds is busy: not trained (ray_launcher.execute in this process, which
  is connected to the cluster)."""
  del cluster
  python = fake[1].split("=", 1)[1]
  runs = [{"name": f"run_s{s}", "config_arg": "", "overrides": {"seed": s}}
          for s in (3, 4)]
  specs = sweep_plan.make_specs(runs, "x.py", str(tmp_path / "sweep"))
  os.makedirs(specs[0].run_dir)
  fd = os.open(os.path.join(specs[0].run_dir, rundir.SWEEP_LOCK),
               os.O_RDWR | os.O_CREAT)
  fcntl.flock(fd, fcntl.LOCK_EX)  # as if another sweep trained it
  try:
    out = ray_launcher.execute(sweep_plan.single_jobs(specs), python,
                               str(tmp_path / "sweep"), lock_wait_s=0.5)
  finally:
    os.close(fd)
  assert out["busy"] == ["run_s3"] and out["finished"] == ["run_s4"]
  assert not (tmp_path / "sweep" / "run_s3" / "attempts").exists()
  assert not list((tmp_path / "sweep").glob(".ray_sweep_*"))  # cleaned up


def test_interrupting_the_driver_cancels_and_the_next_sweep_resumes(
    cluster, fake, tmp_path):
  workdir = tmp_path / "sweep"
  cmd = _sweep(workdir, *fake, "--seeds=2", "--launcher=ray",
               f"--ray_address={cluster}")
  proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  try:
    attempts = workdir / "run_s2" / "attempts"
    waiting.wait_for(lambda: attempts.exists() or proc.poll() is not None, 120,
              "the run to start")
    time.sleep(0.5)  # its SIGTERM handler is set
    proc.send_signal(signal.SIGINT)
    assert proc.wait(120) == 128 + signal.SIGINT, proc.stdout.read()
  finally:
    if proc.poll() is None:
      proc.kill()
  pid = int(attempts.read_text().split()[0])
  waiting.wait_for(lambda: not _alive(pid), 30, "the cancelled run to stop")
  assert (workdir / "run_s2" / "sigterm").exists(), (  # it could checkpoint
      proc.stdout.read()[-3000:], (workdir / "run_s2" / "log.txt").read_text())
  assert not (workdir / "run_s2" / "results.json").exists()
  out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert _attempts(workdir / "run_s2") == 2
  assert launcher.run_status(str(workdir / "run_s2")) == "finished"


def test_a_killed_driver_leaves_no_run_behind_and_the_next_sweep_resumes(
    cluster, fake, tmp_path):
  """kill -9 of the sweep: Ray ends its tasks' workers, their runs die with
  them (none keeps training, or its lock); the same command resumes."""
  workdir = tmp_path / "sweep"
  cmd = _sweep(workdir, *fake, "--seeds=2", "--launcher=ray",
               f"--ray_address={cluster}")
  proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  try:
    attempts = workdir / "run_s2" / "attempts"
    waiting.wait_for(lambda: attempts.exists() or proc.poll() is not None, 120,
              "the run to start")
    proc.kill()
    proc.wait(30)
  finally:
    if proc.poll() is None:
      proc.kill()
  pid = int(attempts.read_text().split()[0])
  waiting.wait_for(lambda: not _alive(pid), 60, "the killed sweep's run to stop")
  out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert _attempts(workdir / "run_s2") == 2
  assert launcher.run_status(str(workdir / "run_s2")) == "finished"


# --------------------------------------------------------------------------
# without a cluster


def test_resources_per_run():
  parse = ray_launcher.parse_resources
  assert parse("GPU:1") == {"num_gpus": 1, "num_cpus": 0}
  assert parse("CPU:2") == {"num_cpus": 2}
  assert parse("TPU:4") == {"resources": {"TPU": 4}, "num_cpus": 0}
  assert parse("CPU:2,GPU:0.5") == {"num_cpus": 2, "num_gpus": 0.5}
  for bad in ("GPU", "GPU:x", "GPU:-1", ":1", ""):
    with pytest.raises(ValueError, match="--resources_per_run"):
      parse(bad)
  nodes = [{"Alive": True, "Resources": {"CPU": 16.0, "GPU": 2.0}},
           {"Alive": False, "Resources": {"CPU": 8.0, "TPU": 4.0}}]
  assert ray_launcher.unmet_resources(parse("GPU:2"), nodes) is None
  why = ray_launcher.unmet_resources(parse("TPU:4"), nodes)
  assert "--resources_per_run=TPU:4" in why and "CPU:16, GPU:2" in why
  assert ray_launcher.unmet_resources(parse("GPU:4"), nodes)


# Runs the sweep tool in an interpreter where `import ray` fails.
_WITHOUT_RAY = ("import runpy, sys; sys.modules['ray'] = None; "
                "sys.argv[0] = 'sweep'; "
                "runpy.run_module('landmark_ssl.sweep', run_name='__main__')")


def test_without_ray_only_the_ray_launcher_is_missing(tmp_path):
  base = [sys.executable, "-c", _WITHOUT_RAY, "--config=experiments/blocks.py",
          f"--workdir={tmp_path / 'sweep'}", r"--only=^seq_mt_L_f0\.05_s0$"]
  dry = subprocess.run(base + ["--dry_run"], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=120)
  assert dry.returncode == 0 and "landmark_ssl.main" in dry.stdout, dry.stderr
  out = subprocess.run(base + ["--launcher=ray"], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 255  # a usage error: nothing ran
  assert ('--launcher=ray needs Ray, which ' in out.stderr and
          'pip install -e ".[cluster]"' in out.stderr), out.stderr[-2000:]
  assert not (tmp_path / "sweep").exists()
  # Only ray_launcher imports ray, and only when it runs.
  for path in (ROOT / "landmark_ssl").rglob("*.py"):
    text = path.read_text()
    if path.name != "ray_launcher.py":
      assert not re.search(r"^\s*(import ray|from ray)\b", text, re.M), path
    else:
      assert not re.search(r"^(import ray|from ray)\b", text, re.M)


def test_a_node_that_does_not_see_the_workdir_is_named(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # run_job works in the driver's directory
  spec = sweep_plan.RunSpec("x.py", "", (("seed", "0"),), "run_s0",
                            str(tmp_path / "sweep" / "run_s0"))
  ends = ray_launcher.run_job(
      sweep_plan.Job((spec,)), "python", str(tmp_path),
      str(tmp_path / "sweep" / ".ray_sweep_0"), False, None, False)
  (end,) = ends
  assert end.kind == "failed" and "does not see the sweep's --workdir" in end.text
  assert "mounts at the same path" in end.text
  assert not (tmp_path / "sweep").exists()  # nothing written there
  (tmp_path / "sweep").mkdir()
  (tmp_path / "sweep" / ".ray_sweep_0").touch()
  (end,) = ray_launcher.run_job(
      sweep_plan.Job((spec,)), "python", str(tmp_path / "elsewhere"),
      str(tmp_path / "sweep" / ".ray_sweep_0"), False, None, False)
  assert "working directory" in end.text and "absolute paths" in end.text


def _one_run_here(fake, tmp_path, monkeypatch):
  """For run_job called in this process: the fake experiment's interpreter,
  one run's spec, the driver's marker and the run's attempts file."""
  monkeypatch.chdir(tmp_path)
  python = fake[1].split("=", 1)[1]
  (spec,) = sweep_plan.make_specs(
      [{"name": "run_s2", "config_arg": "", "overrides": {"seed": 2}}],
      "x.py", str(tmp_path / "sweep"))
  marker = tmp_path / "sweep" / ".ray_sweep_0"
  marker.parent.mkdir()
  marker.touch()
  return python, spec, marker, pathlib.Path(spec.run_dir) / "attempts"


def _kill_attempts(attempts):
  if attempts.exists():
    for pid in attempts.read_text().split():
      if _alive(int(pid)):
        os.kill(int(pid), signal.SIGKILL)


def test_a_cancel_while_the_start_is_posted_still_stops_the_run_gently(
    fake, tmp_path, monkeypatch):
  """ray.cancel raises KeyboardInterrupt wherever the task is; when it lands
  while the task posts the run's start to the driver (a remote call, slow on
  a busy cluster), the run still gets SIGTERM (it checkpoints and exits 75)
  rather than being killed with its worker later. run_job runs here, with a
  queue whose put is where the cancel lands."""
  python, spec, marker, attempts = _one_run_here(fake, tmp_path, monkeypatch)

  class CancelledWhilePosting:

    def put(self, event):
      del event
      waiting.wait_for(attempts.exists, 60, "the run to start")
      time.sleep(0.5)  # its SIGTERM handler is set
      raise KeyboardInterrupt  # as ray.cancel does

  try:
    with pytest.raises(KeyboardInterrupt):
      ray_launcher.run_job(sweep_plan.single_jobs([spec])[0], python,
                           str(tmp_path), str(marker), False,
                           CancelledWhilePosting(), False, lock_wait_s=0.5,
                           grace_s=30, poll_s=0.05)
    pid = int(attempts.read_text().split()[0])
    assert not _alive(pid)
    assert (pathlib.Path(spec.run_dir) / "sigterm").exists()
    assert launcher.run_status(spec.run_dir) != "running"  # lock released
  finally:
    _kill_attempts(attempts)


def test_the_drivers_stop_file_stops_a_run_ray_did_not_interrupt(
    fake, tmp_path, monkeypatch):
  """Ray delivers a non-force cancel only on a best effort: an interrupted
  driver also writes a stop file next to its marker. A task that sees it
  gives its run SIGTERM (it checkpoints), and returns its run as stopped
  rather than raising: a raise would have Ray start the run again. run_job
  runs here; the driver's stop file appears once the run has started."""
  python, spec, marker, attempts = _one_run_here(fake, tmp_path, monkeypatch)

  def interrupt_the_driver():
    waiting.wait_for(attempts.exists, 60, "the run to start")
    time.sleep(0.5)  # its SIGTERM handler is set
    pathlib.Path(ray_launcher.stop_file(str(marker))).touch()

  class Queue:

    def put(self, event):
      del event

  thread = threading.Thread(target=interrupt_the_driver, daemon=True)
  thread.start()
  try:
    ends = ray_launcher.run_job(sweep_plan.single_jobs([spec])[0], python,
                                str(tmp_path), str(marker), False, Queue(),
                                False, lock_wait_s=0.5, grace_s=30,
                                poll_s=0.05)
    assert [(e.run, e.kind) for e in ends] == [("run_s2", "stopped")], ends
    assert "interrupted" in ends[0].text and "resumes" in ends[0].text
    pid = int(attempts.read_text().split()[0])
    assert not _alive(pid)
    assert (pathlib.Path(spec.run_dir) / "sigterm").exists()  # checkpointed
    assert not (pathlib.Path(spec.run_dir) / "results.json").exists()
    assert launcher.run_status(spec.run_dir) != "running"  # lock released
  finally:
    thread.join(60)
    _kill_attempts(attempts)


def test_without_an_address_a_sweep_starts_a_cluster_of_its_own(
    monkeypatch):
  """``ray.init(address=None)`` joins the cluster that ``ray start`` left on
  record on this machine (stopped or not); the sweep's documented default
  is a new cluster of this machine, unless RAY_ADDRESS says otherwise."""
  calls = []

  class FakeRay:

    @staticmethod
    def is_initialized():
      return False

    @staticmethod
    def init(**kwargs):
      calls.append(kwargs)

  monkeypatch.delenv("RAY_ADDRESS", raising=False)
  monkeypatch.setattr(ray_launcher, "_check_port", lambda address: None)
  assert ray_launcher._connect(FakeRay, None)  # pylint: disable=protected-access
  assert calls[-1]["address"] == "local"
  ray_launcher._connect(FakeRay, "10.0.0.1:6379")  # pylint: disable=protected-access
  assert calls[-1]["address"] == "10.0.0.1:6379"
  monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")
  ray_launcher._connect(FakeRay, None)  # pylint: disable=protected-access
  assert calls[-1]["address"] is None  # Ray reads RAY_ADDRESS


def test_an_address_where_nothing_listens_fails_at_once():
  """ray.init retries an unanswered host:port for minutes; the sweep says
  at once that nothing answers there, and never calls it."""
  class NoInit:

    @staticmethod
    def is_initialized():
      return False

    @staticmethod
    def init(**kwargs):
      raise AssertionError(f"ray.init called: {kwargs}")

  with socket.socket() as listening:
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
  start = time.time()
  for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
    with pytest.raises(ray_launcher.ClusterError, match=re.escape(
        f"Cannot reach a Ray cluster at --ray_address={address}: nothing "
        f"answers at 127.0.0.1:{port}")):
      ray_launcher._connect(NoInit, address)  # pylint: disable=protected-access
  assert time.time() - start < 20
  with socket.socket() as listening:  # something answers: Ray's turn
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    ray_launcher._check_port(f"127.0.0.1:{listening.getsockname()[1]}")  # pylint: disable=protected-access
  ray_launcher._check_port("auto")  # pylint: disable=protected-access


def test_launcher_flags_and_workdir_checks():
  with pytest.raises(ValueError, match="--parallel is for --launcher=local"):
    sweep.check_launcher_flags("ray", ["parallel", "config"])
  with pytest.raises(ValueError, match="--ray_address, --max_retries go with "
                     "--launcher=ray"):
    sweep.check_launcher_flags("local", ["ray_address", "max_retries"])
  sweep.check_launcher_flags("ray", ["ray_address", "resources_per_run"])
  with pytest.raises(ValueError, match="flock"):
    sweep.check_workdir_launchable("gs://bucket/table1")
