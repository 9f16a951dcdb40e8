"""The sweep runner: its commands parse back into the runs' configs, it skips
finished runs, counts failures, logs, runs N at a time, respects the lock of
a run still in progress, and stops and resumes cleanly."""

import dataclasses
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from landmark_ssl import configs
from landmark_ssl import launcher
from landmark_ssl import report
from landmark_ssl import rundir
from landmark_ssl import sweep
from landmark_ssl import sweep_plan
from landmark_ssl import sweep_progress

import fake_sweep_experiment
import waiting

pytestmark = pytest.mark.filterwarnings("ignore:the load_module")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

# A stand-in for `python -m landmark_ssl.main` (one run, or --seeds with
# --workdirs): records its pid in each run's directory, prints, sleeps
# FAKE_SLEEP seconds, fails (exit 3) for seeds in FAKE_FAIL_SEEDS, and writes
# a finished results.json for the others (with FAKE_SLEEP as its wall time).
FAKE_MAIN = textwrap.dedent(f"""\
    #!{sys.executable}
    import json, os, sys, time
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
    if "seeds" in args:
      runs = list(zip(args["seeds"].split(","), args["workdirs"].split(",")))
    else:
      runs = [(args.get("config.seed", "0"), args["workdir"])]
    for _, wd in runs:
      os.makedirs(wd, exist_ok=True)
      with open(os.path.join(wd, "pids"), "a") as f:
        f.write(f"{{os.getpid()}} {{time.time()}}\\n")
    print("fake training in", *[wd for _, wd in runs], flush=True)
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    failed = False
    for seed, wd in runs:
      if seed in os.environ.get("FAKE_FAIL_SEEDS", "").split(","):
        print("fake failure", seed, flush=True)
        failed = True
        continue
      with open(os.path.join(wd, "results.json"), "w") as f:
        json.dump({{"status": "finished", "end": time.time(),
                    "wall_time_s": float(os.environ.get("FAKE_SLEEP", "0")),
                    "epochs": 1.0, "device_kind": "cpu",
                    "config": {{"seed": int(seed), "model": {{"name": "m"}},
                               "costs": "L"}}}}, f)
    sys.exit(3 if failed else 0)
    """)


@pytest.fixture
def fake_main(tmp_path):
  path = tmp_path / "fake_python"
  path.write_text(FAKE_MAIN)
  path.chmod(0o755)
  return str(path)


def _fake_specs(workdir, seeds):
  runs = [{"name": f"run_s{s}", "config_arg": "", "overrides": {"seed": s}}
          for s in seeds]
  return sweep_plan.make_specs(runs, "fake.py", str(workdir))


def _parse_main_command(argv, seeds=False):
  """Parses a landmark_ssl.main command line as main does (config_flags);
  with ``seeds``, also its ``--seeds`` and ``--workdirs``."""
  assert list(argv[1:3]) == ["-m", "landmark_ssl.main"]
  args = ["main"] + list(argv[3:])
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=fv, sys_argv=args)
  flags.DEFINE_string("workdir", None, "", flag_values=fv)
  flags.DEFINE_list("seeds", None, "", flag_values=fv)
  flags.DEFINE_list("workdirs", None, "", flag_values=fv)
  fv(args)
  if seeds:
    return fv.config, [int(s) for s in fv.seeds], fv.workdirs
  assert fv.seeds is None and fv.workdirs is None
  return fv.config, fv.workdir


def test_select_runs():
  runs = configs.load_experiment(f"{ROOT}/experiments/blocks.py").sweep()
  some = sweep.select_runs(runs, only=r"^seq_mt_L\+T_f0\.(05|1)_")
  assert [r["name"] for r in some] == [
      f"seq_mt_L+T_f{f}_s{s}" for f in ("0.05", "0.1") for s in range(5)]
  quick = sweep.select_runs(some[:1], quick=True)
  assert quick[0]["name"] == "seq_mt_L+T_f0.05_s0_quick"
  assert quick[0]["config_arg"] == "model=seq_mt,costs=L+T,quick"
  assert some[0]["name"] == "seq_mt_L+T_f0.05_s0"  # input untouched
  with pytest.raises(ValueError, match="twice"):
    sweep.select_runs(runs[:1] * 2)


def test_order_runs_by_seed_keeps_the_table_order_within_a_seed():
  runs = configs.load_experiment(f"{ROOT}/experiments/blocks.py").sweep(
      seeds=(3, 1, 4))
  runs = sweep.select_runs(runs, only=r"^seq_mt_L(\+T)?_f0\.05_")
  names = lambda rs: [r["name"] for r in rs]
  assert names(sweep.order_runs(runs)) == names(runs)
  assert names(sweep.order_runs(runs, "seed")) == [
      f"seq_mt_{c}_f0.05_s{s}" for s in (3, 1, 4) for c in ("L", "L+T")]
  extra = {"name": "no_seed", "config_arg": "", "overrides": {}}
  assert names(sweep.order_runs(runs + [extra], "seed"))[0] == "no_seed"
  # A filter that leaves only the later seeds of the first cell: the seeds
  # keep the order given, not the order the filtered runs meet them in.
  some = [r for r in runs if r["name"] != "seq_mt_L_f0.05_s3"]
  assert names(sweep.order_runs(some, "seed", seeds=(3, 1, 4))) == [
      "seq_mt_L+T_f0.05_s3", "seq_mt_L_f0.05_s1", "seq_mt_L+T_f0.05_s1",
      "seq_mt_L_f0.05_s4", "seq_mt_L+T_f0.05_s4"]
  assert names(sweep.order_runs(some, "seed"))[0] == "seq_mt_L_f0.05_s1"
  with pytest.raises(ValueError, match="--order"):
    sweep.order_runs(runs, "random")


def test_dry_run_in_seed_order_and_its_conflict_with_vectorize(tmp_path):
  argv = [sys.executable, "-m", "landmark_ssl.sweep",
          "--config=experiments/blocks.py", f"--workdir={tmp_path}",
          "--dry_run", r"--only=^seq_mt_L(\+C)?_f0\.2_", "--seeds=0,1",
          "--order=seed"]
  out = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True,
                       text=True, check=True)
  got = [os.path.basename(_parse_main_command(shlex.split(line))[1])
         for line in out.stdout.strip().splitlines()]
  assert got == ["seq_mt_L_f0.2_s0", "seq_mt_L+C_f0.2_s0",
                 "seq_mt_L_f0.2_s1", "seq_mt_L+C_f0.2_s1"]
  # --only that keeps the first cell's seed 1 and the second's seed 0:
  # still seed 0 first (the table's seed order, not the filtered runs').
  skew = [a for a in argv if not a.startswith("--only")] + [
      r"--only=^seq_mt_(L_f0\.2_s1|L\+C_f0\.2_s0)$"]
  out = subprocess.run(skew, cwd=ROOT, env=ENV, capture_output=True,
                       text=True, check=True)
  got = [os.path.basename(_parse_main_command(shlex.split(line))[1])
         for line in out.stdout.strip().splitlines()]
  assert got == ["seq_mt_L+C_f0.2_s0", "seq_mt_L_f0.2_s1"]
  bad = subprocess.run(argv + ["--vectorize_seeds"], cwd=ROOT, env=ENV,
                       capture_output=True, text=True)
  assert bad.returncode != 0 and "--order=table" in bad.stderr


@pytest.mark.parametrize("name,stride", [
    ("shapes", 1), ("blocks", 7), ("hgr1", 11), ("multipie", 13),
    ("the300w", 3), ("the300w_rcn", 1)])
def test_commands_parse_back_into_the_runs_configs(name, stride, tmp_path):
  path = f"{ROOT}/experiments/{name}.py"
  exp = configs.load_experiment(path)
  runs = exp.sweep()[::stride]
  specs = sweep_plan.make_specs(
      runs, path, str(tmp_path),
      {"data.data_dir": "/data/tfds", "train.max_epochs": "7"},
      fixed={"data.labeled_fraction", "seed"})  # as sweep.main passes it
  assert len(specs) == len(runs)
  for run, spec in zip(runs, specs):
    config, workdir = _parse_main_command(sweep_plan.command([spec], "py"))
    want = exp.get_config(run["config_arg"])
    want.update_from_flattened_dict(run["overrides"])
    want.data.data_dir, want.train.max_epochs = "/data/tfds", 7
    assert config.to_dict() == want.to_dict()
    assert workdir == str(tmp_path / run["name"]) == spec.run_dir


def test_overrides_may_not_clash_with_the_sweep(tmp_path):
  runs = [{"name": "a", "config_arg": "", "overrides": {"seed": 0}}]
  with pytest.raises(ValueError, match="seed"):
    sweep_plan.make_specs(runs, "x.py", str(tmp_path), {"seed": "1"})
  # A column's own setting gives way to --override; the fixed keys do not.
  runs = [{"name": "a", "config_arg": "",
           "overrides": {"seed": 0, "train.max_epochs": 200.0, "x": 1}}]
  (spec,) = sweep_plan.make_specs(runs, "x.py", str(tmp_path),
                                  {"train.max_epochs": "40"}, fixed={"seed"})
  assert spec.overrides == (("seed", "0"), ("x", "1"),
                            ("train.max_epochs", "40"))
  with pytest.raises(ValueError, match="seed"):
    sweep_plan.make_specs(runs, "x.py", str(tmp_path), {"seed": "1"},
                          fixed={"seed"})
  with pytest.raises(ValueError, match="max_epochs"):  # fixed=None: all
    sweep_plan.make_specs(runs, "x.py", str(tmp_path),
                          {"train.max_epochs": "40"})
  assert sweep.parse_overrides(["config.seed=1", "data.data_dir=/a=b"]) == {
      "seed": "1", "data.data_dir": "/a=b"}
  with pytest.raises(ValueError, match="key=value"):
    sweep.parse_overrides(["data.data_dir"])
  assert sweep.parse_seeds("3,1") == (3, 1) and sweep.parse_seeds("") is None
  with pytest.raises(ValueError, match="integers"):
    sweep.parse_seeds("a")
  with pytest.raises(ValueError, match="names seed 1 twice"):
    sweep.parse_seeds("1,2,1")
  with pytest.raises(ValueError, match="non-negative"):
    sweep.parse_seeds("0,-1")


def test_blocks_long_columns_get_their_schedule_unless_overridden(tmp_path):
  def epochs(*extra):
    out = subprocess.run(
        [sys.executable, "-m", "landmark_ssl.sweep",
         "--config=experiments/blocks.py", f"--workdir={tmp_path}",
         "--dry_run", r"--only=^seq_mt_L_f0\.(1|2|5)_", "--seeds=3", *extra],
        cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
    got = {}
    for line in out.stdout.strip().splitlines():
      config, workdir = _parse_main_command(shlex.split(line))
      got[os.path.basename(workdir)] = (config.train.max_epochs,
                                        config.optim.grad_clip_norm)
    return got
  assert epochs() == {"seq_mt_L_f0.1_s3": (40, 0), "seq_mt_L_f0.2_s3": (200, 200),
                      "seq_mt_L_f0.5_s3": (200, 200)}
  assert epochs("--override=train.max_epochs=40") == {
      "seq_mt_L_f0.1_s3": (40, 0), "seq_mt_L_f0.2_s3": (40, 200),
      "seq_mt_L_f0.5_s3": (40, 200)}
  bad = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.sweep",
       "--config=experiments/blocks.py", f"--workdir={tmp_path}", "--dry_run",
       "--override=data.labeled_fraction=0.3"], cwd=ROOT, env=ENV,
      capture_output=True, text=True)
  assert bad.returncode != 0 and "labeled_fraction" in bad.stderr


def test_dry_run_prints_runnable_commands_for_unfinished_runs(tmp_path):
  done = tmp_path / "seq_mt_L_f0.05_s1"
  done.mkdir()
  (done / "results.json").write_text(json.dumps({"status": "finished"}))
  out = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.sweep",
       "--config=experiments/blocks.py", f"--workdir={tmp_path}", "--dry_run",
       r"--only=^seq_mt_L_f0\.05_", "--seeds=0,1,2",
       "--override=data.data_dir=/data/tfds"],
      cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
  lines = out.stdout.strip().splitlines()
  assert len(lines) == 2  # s1 is finished
  for line, seed in zip(lines, (0, 2)):
    argv = shlex.split(line)
    assert argv[0] == sys.executable
    config, workdir = _parse_main_command(argv)
    assert (config.seed, config.data.labeled_fraction) == (seed, 0.05)
    assert (config.model.name, config.costs) == ("seq_mt", "L")
    assert config.data.data_dir == "/data/tfds"
    assert workdir == str(tmp_path / f"seq_mt_L_f0.05_s{seed}")
  assert not any(tmp_path.glob("seq_mt_L_f0.05_s0"))  # dry: nothing made


def test_vectorize_seeds_makes_one_command_per_cell(tmp_path):
  path = f"{ROOT}/experiments/blocks.py"
  exp = configs.load_experiment(path)
  runs = sweep.select_runs(exp.sweep(seeds=(0, 1, 2)),
                           only=r"^(seq_mt_L\+T\+C|comm_mt_L)_f0\.(05|1)_")
  specs = sweep_plan.make_specs(runs, path, str(tmp_path / "a,b"),
                                {"data.data_dir": "/data/tfds"})
  cells = sweep_plan.group_seeds(specs)
  assert len(specs) == 12 and len(cells) == 4
  assert [r for c in cells for r in c.runs] == specs
  for cell in cells:
    config, seeds, workdirs = _parse_main_command(
        sweep_plan.command(cell.runs, "py"), seeds=True)
    assert seeds == [0, 1, 2]
    assert workdirs == [r.run_dir for r in cell.runs]  # a comma survives
    assert cell.run_dir == cell.runs[0].run_dir
    for seed, member in zip(seeds, cell.runs):
      want, want_dir = _parse_main_command(sweep_plan.command([member], "py"))
      config.seed = seed
      assert config.to_dict() == want.to_dict() and want_dir == member.run_dir
  # Two members left: their vectorised command; one: its own command.
  two = sweep_plan.command(cells[0].runs[1:], "py")
  assert _parse_main_command(two, seeds=True)[1:] == (
      [1, 2], [r.run_dir for r in cells[0].runs[1:]])
  assert sweep_plan.command(cells[0].runs[:1], "py") == sweep_plan.command(
      [specs[0]], "py")
  # Runs that differ in more than the seed are never merged.
  with pytest.raises(ValueError, match="differ in their seed alone"):
    sweep_plan.command([cells[0].runs[0], cells[1].runs[0]], "py")
  lone = sweep_plan.RunSpec("x.py", "", (), "x", "x")
  assert sweep_plan.group_seeds([lone] + specs[:2]) == [
      sweep_plan.Job((lone,)), sweep_plan.Job(tuple(specs[:2]))]


def test_grid_multiplies_runs_into_parseable_commands(tmp_path):
  path = f"{ROOT}/experiments/blocks.py"
  exp = configs.load_experiment(path)
  runs = sweep.select_runs(exp.sweep(seeds=(4, 2)), only=r"^seq_mt_L_f0\.05_")
  grid = sweep.parse_grid(["config.model.beta=3,0.1", "loss.alpha=0.5"])
  assert grid == [("model.beta", ("3", "0.1")), ("loss.alpha", ("0.5",))]
  sweep.check_keys([k for k, _ in grid], exp.get_config(runs[0]["config_arg"]))
  grown = sweep.expand_grid(runs, grid)
  assert [r["name"] for r in grown] == [
      f"seq_mt_L_f0.05_s{s}_model.beta={b}_loss.alpha=0.5"
      for s in (4, 2) for b in ("3", "0.1")]
  assert runs[0]["name"] == "seq_mt_L_f0.05_s4"  # input untouched
  specs = sweep_plan.make_specs(grown, path, str(tmp_path),
                                {"data.data_dir": "/d"})
  for run, spec in zip(grown, specs):
    config, workdir = _parse_main_command(sweep_plan.command([spec], "py"))
    want = exp.get_config(run["config_arg"])
    want.update_from_flattened_dict(
        {"data.labeled_fraction": 0.05, "seed": run["overrides"]["seed"],
         "data.data_dir": "/d", "loss.alpha": 0.5,
         "model.beta": float(run["name"].split("beta=")[1].split("_")[0])})
    assert config.to_dict() == want.to_dict()
    assert workdir == str(tmp_path / run["name"])
  # A grid's values are separate cells: seeds group within one value only.
  cells = sweep_plan.group_seeds(specs)
  assert [[r.name for r in c.runs] for c in cells] == [
      [grown[0]["name"], grown[2]["name"]], [grown[1]["name"], grown[3]["name"]]]
  # Commas inside brackets stay in the value.
  assert sweep.parse_grid(["model.kernel_sizes=(9, 9),(7,7)"]) == [
      ("model.kernel_sizes", ("(9, 9)", "(7,7)"))]
  for bad, match in ((["model.beta"], "key=value"), (["model.beta="], "key=value"),
                     (["model.beta=1,"], "key=value"),
                     (["model.beta=1", "model.beta=2"], "twice"),
                     (["model.beta=1,1"], "repeats")):
    with pytest.raises(ValueError, match=match):
      sweep.parse_grid(bad)
  with pytest.raises(ValueError, match="did you mean model.beta"):
    sweep.check_keys(["model.betta"], exp.get_config())
  with pytest.raises(ValueError, match="--grid sets .'seed'."):
    sweep.expand_grid(runs, [("seed", ("1",))])
  assert sweep.expand_grid(runs, []) == runs


@pytest.mark.parametrize("flag, message", [
    ("--override=trian.max_epochs=3", "--override key 'trian.max_epochs' is "
     "not a setting of the experiment's config; did you mean train.max_epochs"),
    ("--override=config.data.data_dir=/d", None),  # a placeholder: a key
    ("--override=train.max_epochs=abc", "train.max_epochs='abc' (--grid or "
     "--override) is not of type float (could not convert string to float: "
     "'abc'); in --config=experiments/blocks.py:model="),
    ("--grid=optim.learning_rate=0.01,fast", "optim.learning_rate='fast'"),
    ("--override=data.test_splits=test,validation", None),  # a tuple
    ("--override=data.cache_mib=2.5", "data.cache_mib='2.5' (--grid or "
     "--override) is not of type int"),
    ("--only=(", "--only='(' is not a regular expression (missing ), "
     "unterminated subpattern at position 0); it is searched in the run "
     "names")])
def test_a_mistyped_override_or_only_is_a_usage_error(tmp_path, flag, message):
  """Before any run starts, not in each of them."""
  out = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.sweep",
       "--config=experiments/blocks.py", f"--workdir={tmp_path}", "--dry_run",
       r"--seeds=0", flag], cwd=ROOT, env=ENV, capture_output=True, text=True,
      timeout=120)
  if message is None:
    assert out.returncode == 0, out.stderr[-2000:]
    return
  assert out.returncode == sweep.EXIT_USAGE and not out.stdout
  assert message in out.stderr, out.stderr[-2000:]
  assert "Traceback" not in out.stderr


def test_dry_run_with_a_grid(tmp_path):
  done = tmp_path / "seq_mt_L_f0.05_s1_model.beta=1"
  done.mkdir()
  (done / "results.json").write_text(json.dumps({"status": "finished"}))
  argv = [sys.executable, "-m", "landmark_ssl.sweep",
          "--config=experiments/blocks.py", f"--workdir={tmp_path}",
          "--dry_run", r"--only=^seq_mt_L_f0\.05_", "--seeds=0,1",
          "--grid=model.beta=0.1,1"]
  out = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True,
                       text=True, check=True)
  got = [_parse_main_command(shlex.split(line))
         for line in out.stdout.strip().splitlines()]
  assert [(c.seed, c.model.beta, os.path.basename(w)) for c, w in got] == [
      (0, 0.1, "seq_mt_L_f0.05_s0_model.beta=0.1"),
      (0, 1.0, "seq_mt_L_f0.05_s0_model.beta=1"),
      (1, 0.1, "seq_mt_L_f0.05_s1_model.beta=0.1")]  # s1 beta 1 finished
  bad = subprocess.run(argv[:-1] + ["--grid=model.betta=1"], cwd=ROOT,
                       env=ENV, capture_output=True, text=True)
  assert bad.returncode == sweep.EXIT_USAGE
  assert "did you mean model.beta" in bad.stderr
  assert "FATAL usage error: --grid key 'model.betta'" in bad.stderr
  assert "Runs the sweep of an experiment file" not in bad.stderr  # no help
  # Comm-MT has no beta: a grid over both models names the one lacking it.
  bad = subprocess.run(argv[:6] + [r"--only=^(seq|comm)_mt_L_f0\.05_",
                                   "--grid=model.beta=1"], cwd=ROOT, env=ENV,
                       capture_output=True, text=True)
  assert bad.returncode != 0 and "model=comm_mt,costs=L" in bad.stderr


def test_dry_run_prints_vectorized_commands(tmp_path):
  done = tmp_path / "seq_mt_L_f0.05_s1"
  done.mkdir()
  (done / "results.json").write_text(json.dumps({"status": "finished"}))
  for name in ("seq_mt_L_f0.1_s0", "seq_mt_L_f0.1_s2"):
    (tmp_path / name).mkdir()
    (tmp_path / name / "results.json").write_text('{"status": "finished"}')
  out = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.sweep",
       "--config=experiments/blocks.py", f"--workdir={tmp_path}", "--dry_run",
       r"--only=^seq_mt_L_f0\.(05|1)_", "--seeds=0,1,2", "--vectorize_seeds"],
      cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
  first, second = out.stdout.strip().splitlines()
  config, seeds, workdirs = _parse_main_command(shlex.split(first), seeds=True)
  assert (config.model.name, config.costs, config.data.labeled_fraction) == (
      "seq_mt", "L", 0.05)
  assert seeds == [0, 2]  # s1 is finished
  assert workdirs == [str(tmp_path / f"seq_mt_L_f0.05_s{s}") for s in (0, 2)]
  config, workdir = _parse_main_command(shlex.split(second))  # one seed left
  assert (config.seed, config.data.labeled_fraction) == (1, 0.1)
  assert workdir == str(tmp_path / "seq_mt_L_f0.1_s1")
  assert "6 runs, 3 finished already" in out.stderr


def test_execute_vectorized_cell(fake_main, tmp_path, monkeypatch):
  """One process for a cell's unfinished, unlocked seeds; its output in the
  first one's log; finished and failed counted per run."""
  jobs = _fake_specs(tmp_path, (0, 1, 2, 3))
  (cell,) = sweep_plan.group_seeds(jobs)
  os.makedirs(jobs[0].run_dir)
  with open(os.path.join(jobs[0].run_dir, "results.json"), "w") as f:
    json.dump({"status": "finished"}, f)
  os.makedirs(jobs[3].run_dir)
  fd = os.open(os.path.join(jobs[3].run_dir, rundir.SWEEP_LOCK),
               os.O_RDWR | os.O_CREAT)
  fcntl.flock(fd, fcntl.LOCK_EX)
  monkeypatch.setenv("FAKE_FAIL_SEEDS", "2")
  try:
    out = launcher.execute([cell], fake_main, poll_s=0.05)
  finally:
    os.close(fd)
  assert out == {"finished": ["run_s1"], "failed": ["run_s2"],
                 "skipped": ["run_s0"], "busy": ["run_s3"], "changed": []}
  pids = [open(os.path.join(j.run_dir, "pids")).read().split()[0]
          for j in jobs[1:3]]
  assert pids[0] == pids[1]  # one process trained s1 and s2
  for job in (jobs[0], jobs[3]):
    assert not os.path.exists(os.path.join(job.run_dir, "pids"))
  log1 = open(os.path.join(jobs[1].run_dir, "log.txt")).read()
  log2 = open(os.path.join(jobs[2].run_dir, "log.txt")).read()
  assert "--seeds=1,2" in log1 and "fake failure 2" in log1
  assert "output in " + os.path.join(jobs[1].run_dir, "log.txt") in log2
  # Again: only the failed seed is left, and runs with its own command.
  monkeypatch.setenv("FAKE_FAIL_SEEDS", "")
  out = launcher.execute([cell], fake_main, poll_s=0.05)
  assert out["finished"] == ["run_s2", "run_s3"]
  assert out["skipped"] == ["run_s0", "run_s1"]
  log2 = open(os.path.join(jobs[2].run_dir, "log.txt")).read()
  assert log2.count("sweep starts: ") == 1 and "--seeds=2,3" in log2


# The commands `sweep --dry_run` printed before run specs (issue 23): the
# specs render them unchanged, order of the overrides and quoting included.
GOLDEN_DRY_RUN = {
    (r"--only=^seq_mt_L\+T\+C_f0.05_", "--seeds=0,1", "--quick",
     "--override=train.max_epochs=200",
     "--override=data.data_dir=/data/tfds"): 2,
    ("--only=^seq_mt_L_f0.05_", "--seeds=0", "--grid=model.beta=0.1,1",
     "--grid=model.kernel_sizes=(9,9),(7,7)"): 4,
    ("--only=^(seq|comm)_mt_L_f0.(05|1)_", "--seeds=3,1", "--vectorize_seeds",
     "--override=data.data_dir=/d"): 4,
}
GOLDEN_LINES = """\
python -m landmark_ssl.main --config=experiments/blocks.py:model=seq_mt,costs=L+T+C,quick --config.data.labeled_fraction=0.05 --config.seed=0 --config.train.max_epochs=200 --config.data.data_dir=/data/tfds --workdir={w}/seq_mt_L+T+C_f0.05_s0_quick
python -m landmark_ssl.main --config=experiments/blocks.py:model=seq_mt,costs=L+T+C,quick --config.data.labeled_fraction=0.05 --config.seed=1 --config.train.max_epochs=200 --config.data.data_dir=/data/tfds --workdir={w}/seq_mt_L+T+C_f0.05_s1_quick
python -m landmark_ssl.main --config=experiments/blocks.py:model=seq_mt,costs=L --config.data.labeled_fraction=0.05 --config.seed=0 --config.model.beta=0.1 '--config.model.kernel_sizes=(9,9)' '--workdir={w}/seq_mt_L_f0.05_s0_model.beta=0.1_model.kernel_sizes=(9,9)'
python -m landmark_ssl.main --config=experiments/blocks.py:model=seq_mt,costs=L --config.data.labeled_fraction=0.05 --config.seed=0 --config.model.beta=0.1 '--config.model.kernel_sizes=(7,7)' '--workdir={w}/seq_mt_L_f0.05_s0_model.beta=0.1_model.kernel_sizes=(7,7)'
python -m landmark_ssl.main --config=experiments/blocks.py:model=seq_mt,costs=L --config.data.labeled_fraction=0.05 --config.seed=0 --config.model.beta=1 '--config.model.kernel_sizes=(9,9)' '--workdir={w}/seq_mt_L_f0.05_s0_model.beta=1_model.kernel_sizes=(9,9)'
python -m landmark_ssl.main --config=experiments/blocks.py:model=seq_mt,costs=L --config.data.labeled_fraction=0.05 --config.seed=0 --config.model.beta=1 '--config.model.kernel_sizes=(7,7)' '--workdir={w}/seq_mt_L_f0.05_s0_model.beta=1_model.kernel_sizes=(7,7)'
python -m landmark_ssl.main --config=experiments/blocks.py:model=seq_mt,costs=L --config.data.labeled_fraction=0.05 --config.data.data_dir=/d --seeds=3,1 --workdirs={w}/seq_mt_L_f0.05_s3,{w}/seq_mt_L_f0.05_s1
python -m landmark_ssl.main --config=experiments/blocks.py:model=seq_mt,costs=L --config.data.labeled_fraction=0.1 --config.data.data_dir=/d --seeds=3,1 --workdirs={w}/seq_mt_L_f0.1_s3,{w}/seq_mt_L_f0.1_s1
python -m landmark_ssl.main --config=experiments/blocks.py:model=comm_mt,costs=L --config.data.labeled_fraction=0.05 --config.data.data_dir=/d --seeds=3,1 --workdirs={w}/comm_mt_L_f0.05_s3,{w}/comm_mt_L_f0.05_s1
python -m landmark_ssl.main --config=experiments/blocks.py:model=comm_mt,costs=L --config.data.labeled_fraction=0.1 --config.data.data_dir=/d --seeds=3,1 --workdirs={w}/comm_mt_L_f0.1_s3,{w}/comm_mt_L_f0.1_s1
"""


def test_dry_run_prints_the_same_commands_as_before_run_specs():
  lines = GOLDEN_LINES.format(w="/W/table").splitlines()
  for flags_, count in GOLDEN_DRY_RUN.items():
    out = subprocess.run(
        [sys.executable, "-m", "landmark_ssl.sweep",
         "--config=experiments/blocks.py", "--workdir=/W/table", "--dry_run",
         "--python=python", *flags_], cwd=ROOT, env=ENV, capture_output=True,
        text=True, check=True)
    assert out.stdout.splitlines() == lines[:count], flags_
    lines = lines[count:]
  assert not lines


def test_dry_run_rejects_bad_flags(tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.sweep",
       "--config=experiments/blocks.py", f"--workdir={tmp_path}", "--dry_run",
       "--only=nothing_matches"], cwd=ROOT, env=ENV, capture_output=True,
      text=True)
  assert out.returncode == sweep.EXIT_USAGE and "No run of" in out.stderr
  assert "Its runs are named like seq_mt_L_f0.01_s0, " in out.stderr
  # A + unescaped: the message gives the escaped expression, which matches.
  message = sweep.no_match_message("x.py", "L+T_f0", None,
                                   ["seq_mt_L+T_f0.05_s0"])
  assert r"escape it, --only='L\+T_f0'." in message
  assert "escape" not in sweep.no_match_message("x.py", "Q+", None, ["a"])
  # A --workdir that is a file (or under one): a usage error, dry run too.
  afile = tmp_path / "afile"
  afile.write_text("")
  for workdir in (afile, afile / "sub"):
    out = subprocess.run(
        [sys.executable, "-m", "landmark_ssl.sweep",
         "--config=experiments/blocks.py", f"--workdir={workdir}",
         "--dry_run"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert out.returncode == sweep.EXIT_USAGE
    assert f"{afile} is a file, not a directory" in out.stderr


def test_execute_skips_finished_counts_failures_and_logs(fake_main, tmp_path,
                                                         monkeypatch):
  monkeypatch.setenv("FAKE_FAIL_SEEDS", "2")
  jobs = sweep_plan.single_jobs(_fake_specs(tmp_path, (0, 1, 2)))
  os.makedirs(jobs[0].run_dir)
  with open(os.path.join(jobs[0].run_dir, "results.json"), "w") as f:
    json.dump({"status": "finished"}, f)
  out = launcher.execute(jobs, fake_main, parallel=2, poll_s=0.05)
  assert out == {"finished": ["run_s1"], "failed": ["run_s2"],
                 "skipped": ["run_s0"], "busy": [], "changed": []}
  assert not os.path.exists(os.path.join(jobs[0].run_dir, "pids"))
  log = open(os.path.join(jobs[2].run_dir, "log.txt")).read()
  assert "sweep starts: " + shlex.join(
      sweep_plan.command(jobs[2].runs, fake_main)) in log
  assert "fake training in" in log and "fake failure" in log
  # Run again: the failed run is retried, its log keeps both attempts.
  monkeypatch.setenv("FAKE_FAIL_SEEDS", "")
  out = launcher.execute(jobs, fake_main, parallel=1, poll_s=0.05)
  assert out["finished"] == ["run_s2"] and out["skipped"] == ["run_s0", "run_s1"]
  log = open(os.path.join(jobs[2].run_dir, "log.txt")).read()
  assert log.count("sweep starts: ") == 2


def test_execute_logs_a_progress_line_per_event(fake_main, tmp_path,
                                                 monkeypatch, caplog):
  """Issue 25 item 7: each start and end says runs done / running / left
  and an ETA from the finished runs' wall times. Runs that finished before
  are counted before the first start, wherever they are in the sweep."""
  monkeypatch.setenv("FAKE_SLEEP", "0.5")
  jobs = sweep_plan.single_jobs(_fake_specs(tmp_path, (0, 1, 2, 3)))
  os.makedirs(jobs[2].run_dir)  # finished before, in 600 s
  with open(os.path.join(jobs[2].run_dir, "results.json"), "w") as f:
    json.dump({"status": "finished", "wall_time_s": 600.0, "epochs": 1.0,
               "device_kind": "cpu", "config": {"model": {"name": "m"}, "costs": "L"}}, f)
  caplog.set_level("INFO")
  out = launcher.execute(jobs, fake_main, parallel=2, poll_s=0.05)
  assert sorted(out["finished"]) == ["run_s0", "run_s1", "run_s3"]
  lines = [r.getMessage() for r in caplog.records
           if r.getMessage().startswith("[")]
  assert lines[:3] == [
      "[1/4 done, 0 running, 3 left; ETA 0:15:00] run_s2: finished before, "
      "skipped",  # 3 x 600 s, two at a time (--parallel) from the start
      lines[1], lines[2]]
  assert re.fullmatch(r"\[1/4 done, 1 running, 2 left; ETA 0:(14|15):\d\d\] "
                      r"run_s0: started \(pid \d+\)", lines[1])
  # Two at a time: (600 + 600 + what is left of run_s0's 600) / 2.
  assert re.fullmatch(r"\[1/4 done, 2 running, 1 left; ETA 0:(14|15):\d\d\] "
                      r"run_s1: started \(pid \d+\)", lines[2])
  assert len(lines) == 1 + 2 * 3
  assert re.fullmatch(r"\[4/4 done, 0 running, 0 left; ETA 0:00:00\] run_s\d: "
                      r"finished in \d+ s", lines[-1])
  # A run that finished now (in 0.5 s) pulls the ETA down: the mean is
  # (600 + 0.5) / 2 s for one run left and one running, two at a time.
  finished = [l for l in lines if ": finished in" in l]
  assert re.search(r"ETA 0:0[45]:\d\d", finished[0]), finished


def test_a_resumed_run_says_where_it_resumes(fake_main, tmp_path, caplog):
  """The start of a run that trained before names the epoch it resumes
  after (from its metrics.jsonl); a new run's does not."""
  jobs = sweep_plan.single_jobs(_fake_specs(tmp_path, (0, 1)))
  os.makedirs(jobs[1].run_dir)
  with open(os.path.join(jobs[1].run_dir, rundir.METRICS), "w") as f:
    f.write(json.dumps({"event": "train", "step": 30, "epoch": 12.5}) + "\n")
  caplog.set_level("INFO")
  launcher.execute(jobs, fake_main, parallel=1, poll_s=0.05)
  started = [r.getMessage() for r in caplog.records
             if ": started (pid" in r.getMessage()]
  assert len(started) == 2
  assert re.search(r"run_s0: started \(pid \d+\)$", started[0]), started
  assert re.search(r"run_s1: started \(pid \d+\), resuming after epoch "
                   r"12\.5$", started[1]), started


def _spans(job):
  start = float(open(os.path.join(job.run_dir, "pids")).read().split()[1])
  end = json.load(open(os.path.join(job.run_dir, "results.json")))["end"]
  return start, end


def test_execute_runs_n_at_a_time(fake_main, tmp_path, monkeypatch):
  monkeypatch.setenv("FAKE_SLEEP", "1.0")
  jobs = sweep_plan.single_jobs(_fake_specs(tmp_path, (0, 1, 2)))
  out = launcher.execute(jobs, fake_main, parallel=2, poll_s=0.05)
  assert sorted(out["finished"]) == ["run_s0", "run_s1", "run_s2"]
  (s0, e0), (s1, e1), (s2, e2) = (_spans(j) for j in jobs)
  assert s1 < e0 and s0 < e1  # the first two overlap
  assert s2 >= min(e0, e1)  # the third waits for a free slot
  with pytest.raises(ValueError, match="at least 1"):
    launcher.execute(jobs, fake_main, parallel=0)


def test_a_locked_run_is_left_alone(fake_main, tmp_path):
  jobs = sweep_plan.single_jobs(_fake_specs(tmp_path, (0, 1)))
  os.makedirs(jobs[0].run_dir)
  fd = os.open(os.path.join(jobs[0].run_dir, rundir.SWEEP_LOCK), os.O_RDWR | os.O_CREAT)
  fcntl.flock(fd, fcntl.LOCK_EX)  # as if an orphaned run still trained
  try:
    out = launcher.execute(jobs, fake_main, poll_s=0.05)
  finally:
    os.close(fd)
  assert out["busy"] == ["run_s0"] and out["finished"] == ["run_s1"]
  assert not os.path.exists(os.path.join(jobs[0].run_dir, "pids"))


# A stand-in for `python -m landmark_ssl.main` that parses its command as
# main does (config_flags), records it, and writes the run's config.json and
# a finished results.json.
FAKE_CONFIG_MAIN = textwrap.dedent(f"""\
    #!{sys.executable}
    import json, os, sys
    from absl import flags
    from ml_collections import config_flags
    args = ["main"] + sys.argv[3:]  # after -m landmark_ssl.main
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=fv, sys_argv=args,
                                    lock_config=True)
    flags.DEFINE_string("workdir", None, "", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "", flag_values=fv)
    fv(args)
    os.makedirs(fv.workdir, exist_ok=True)
    with open(os.path.join(fv.workdir, "commands"), "a") as f:
      f.write(" ".join(sys.argv[3:]) + "\\n")
    config = json.loads(fv.config.to_json(sort_keys=True))
    for name, value in (("config.json", config),
                        ("results.json", {{"status": "finished",
                                          "config": config}})):
      with open(os.path.join(fv.workdir, name), "w") as f:
        json.dump(value, f)
    """)

CONFIG_EXPERIMENT = textwrap.dedent("""\
    import ml_collections

    def get_config(arg=None):
      return ml_collections.ConfigDict(
          {"seed": 0, "data": {"name": "blocks"}, "train": {"max_epochs": 1.0}})

    def sweep(seeds=(0, 1)):
      return [{"name": f"run_s{s}", "config_arg": "", "overrides": {"seed": s}}
              for s in seeds]
    """)


def test_parallel_below_one_is_refused_naming_the_flag(tmp_path):
  """Issue 24 item 6: --parallel=0 is a flag error, before anything runs."""
  out = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.sweep",
       "--config=experiments/blocks.py", f"--workdir={tmp_path / 's'}",
       "--parallel=0"], cwd=ROOT, env=ENV, capture_output=True, text=True,
      timeout=120)
  # 255, not 1: 1 would read as one failed run.
  assert out.returncode == sweep.EXIT_USAGE == 255
  assert "flag --parallel=0: 0 is not a positive integer" in out.stderr
  assert not (tmp_path / "s").exists()


def test_a_finished_run_of_another_config_is_reported_not_skipped(tmp_path):
  """Issue 24 item 5: the same sweep with another --override does not call
  the runs "finished before": it names them and the differing key, runs
  nothing, and exits non-zero; --rerun_changed replaces them."""
  fake = tmp_path / "fake_main"
  fake.write_text(FAKE_CONFIG_MAIN)
  fake.chmod(0o755)
  experiment = tmp_path / "experiment.py"
  experiment.write_text(CONFIG_EXPERIMENT)
  workdir = tmp_path / "sweep"
  cmd = [sys.executable, "-m", "landmark_ssl.sweep", f"--config={experiment}",
         f"--workdir={workdir}", f"--python={fake}"]
  run = lambda *extra: subprocess.run(cmd + list(extra), cwd=ROOT, env=ENV,
                                      capture_output=True, text=True,
                                      timeout=120)
  first = run("--override=train.max_epochs=2")
  assert first.returncode == 0, first.stderr
  stored = {s: (workdir / f"run_s{s}" / "results.json").read_text()
            for s in (0, 1)}
  changed = run("--override=train.max_epochs=3")
  assert changed.returncode == 2, changed.stderr
  assert "finished before, skipped" not in changed.stderr
  for s in (0, 1):
    run_dir = workdir / f"run_s{s}"
    assert (f"run_s{s}: {run_dir / 'config.json'} holds a run of another "
            "config than requested (train.max_epochs: workdir has 2.0, given "
            "3.0); not run. Pass --rerun_changed") in changed.stderr
    assert len((run_dir / "commands").read_text().splitlines()) == 1
    assert (run_dir / "results.json").read_text() == stored[s]
  assert "config changed (not run): 2" in changed.stderr
  # The same command as the first: finished before, skipped.
  same = run("--override=train.max_epochs=2")
  assert same.returncode == 0 and "finished before: 2" in same.stderr
  # --rerun_changed: both run again, replaced (main --overwrite), from the
  # start: the replaced run's epochs are not where the new one resumes.
  (workdir / "run_s0" / "metrics.jsonl").write_text(
      json.dumps({"event": "train", "step": 4, "epoch": 1.5}) + "\n")
  rerun = run("--override=train.max_epochs=3", "--rerun_changed")
  assert rerun.returncode == 0, rerun.stderr
  assert "run_s0: started (pid" in rerun.stderr
  assert "resuming after epoch" not in rerun.stderr
  for s in (0, 1):
    run_dir = workdir / f"run_s{s}"
    last = (run_dir / "commands").read_text().splitlines()[-1].split()
    assert last[-1] == "--overwrite" and "--config.train.max_epochs=3" in last
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["max_epochs"] == 3.0
  again = run("--override=train.max_epochs=3")
  assert again.returncode == 0 and "finished before: 2" in again.stderr




def _pid_alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  # A zombie is dead too.
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().split(")")[-1].split()[0] != "Z"
  except OSError:
    return False


def test_cli_interrupt_then_resume(fake_main, tmp_path):
  experiment = tmp_path / "fake_experiment.py"
  experiment.write_text(fake_sweep_experiment.SOURCE)
  workdir = tmp_path / "sweep"
  cmd = [sys.executable, "-m", "landmark_ssl.sweep", f"--config={experiment}",
         f"--workdir={workdir}", f"--python={fake_main}"]
  proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(ENV, FAKE_SLEEP="30"),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  pids = workdir / "run_s0" / "pids"
  deadline = time.time() + 60
  while not pids.exists() and time.time() < deadline:
    time.sleep(0.1)
  assert pids.exists(), proc.stdout.read() if proc.poll() is not None else ""
  child = int(pids.read_text().split()[0])
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(60) == 128 + signal.SIGTERM
  deadline = time.time() + 10
  while _pid_alive(child) and time.time() < deadline:
    time.sleep(0.1)
  assert not _pid_alive(child)  # the sweep stopped its run
  assert not (workdir / "run_s0" / "results.json").exists()
  assert not (workdir / "run_s1").exists()
  # Resume: every run trains; one fails, which the exit status counts.
  out = subprocess.run(cmd, cwd=ROOT, env=dict(ENV, FAKE_FAIL_SEEDS="2"),
                       capture_output=True, text=True)
  assert out.returncode == 1, out.stderr
  assert "run_s2: FAILED" in out.stderr
  assert len(pids.read_text().splitlines()) == 2  # run_s0 started twice
  for s in (0, 1):
    assert launcher.run_status(str(workdir / f"run_s{s}")) == "finished"
  # Once more: nothing left but the failed run, which now succeeds.
  out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  assert len((workdir / "run_s0" / "pids").read_text().splitlines()) == 2
  assert launcher.run_status(str(workdir / "run_s2")) == "finished"



def test_real_quick_blocks_sweep_interrupt_resume_report(tmp_path):
  """2 configs x 2 seeds of the quick Blocks variant, shrunk further, for
  real (landmark_ssl.main on blocks/small): interrupted while its second run
  trains, resumed, then reported."""
  workdir = tmp_path / "sweep"
  cmd = [sys.executable, "-m", "landmark_ssl.sweep",
         "--config=experiments/blocks.py", f"--workdir={workdir}", "--quick",
         r"--only=^seq_mt_L(\+T)?_f0\.05_", "--seeds=0,1",
         f"--override=data.data_dir={tmp_path / 'tfds'}",
         "--override=train.max_epochs=2", "--override=model.features=2",
         "--override=model.kernel_sizes=(3, 1)"]
  names = [f"seq_mt_{c}_f0.05_s{s}_quick" for c in ("L", "L+T") for s in (0, 1)]
  proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  try:
    second = workdir / names[1]
    waiting.wait_for(lambda: (second / "log.txt").exists() or proc.poll() is not None,
              240, "the second run to start")
    assert proc.poll() is None, proc.stdout.read()
    assert launcher.run_status(str(workdir / names[0])) == "finished"
    time.sleep(2.0)  # let it get going
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 128 + signal.SIGTERM
  finally:
    if proc.poll() is None:
      proc.kill()
  assert launcher.run_status(str(second)) != "finished"
  assert not (workdir / names[2]).exists()

  out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True,
                       timeout=400)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f"{names[0]}: finished before, skipped" in out.stderr
  for name in names:
    assert launcher.run_status(str(workdir / name)) == "finished", name
  assert (second / "log.txt").read_text().count("sweep starts: ") == 2

  text = report.write_report(str(workdir), [f"{ROOT}/experiments/blocks.py"],
                             seeds=(0, 1), quick=True)
  # Quick runs are not the table's protocol: they get their own group,
  # named by what differs, and are never set beside the paper's numbers.
  main, outside = text.split("## Runs outside the tables' protocol")
  assert "(n=2)" not in main
  group = outside.split("### Differs in: ")[1]
  assert 'data.name="blocks/small"' in group.splitlines()[0]
  table = group.split("#### blocks, test: landmark_error (pixels)")[1].split(
      "##")[0]
  for row in ("Seq-MT (L)", "Seq-MT (L+T)"):
    (line,) = [l for l in table.splitlines() if l.startswith(f"| {row} |")]
    cells = [c.strip() for c in line.split("|")[2:-1]]
    assert cells == [cells[0]] and cells[0].endswith("(n=2)"), line
  runs, _ = report.load_runs(str(workdir))
  assert sorted(os.path.basename(r.run_dir) for r in runs) == sorted(names)
  missing = text.split("## Missing runs (")[1]
  assert missing.startswith(f"{46 * 2 - 4})")
  assert "seq_mt_L_f0.05_s0_quick" not in missing


def test_estimate_of_the_remaining_compute_by_hand(tmp_path):
  """Each unfinished run counts the mean wall time of the finished runs of
  its model and costs, else the mean of all finished runs."""
  rng = np.random.default_rng()
  walls = {("seq_mt", "L"): rng.uniform(100, 900, 3),
           ("seq_mt", "L+T"): rng.uniform(100, 900, 2)}
  i = 0
  for (model, costs), ts in walls.items():
    for t in ts:
      run_dir = tmp_path / f"r{i}"
      i += 1
      run_dir.mkdir()
      (run_dir / rundir.RESULTS).write_text(json.dumps({
          "status": "finished", "wall_time_s": float(t), "epochs": 1.0,
          "config": {"model": {"name": model}, "costs": costs}}))
  (tmp_path / "broken").mkdir()
  (tmp_path / "broken" / rundir.RESULTS).write_text("{trunc")
  (timings,) = sweep_progress.read_epoch_timings(str(tmp_path)).values()
  assert {k: sorted(v) for k, v in timings.items()} == {
      k: sorted(v.tolist()) for k, v in walls.items()}
  keys = [("seq_mt", "L"), ("seq_mt", "L+T"), ("comm_mt", "L")]
  seconds, own = sweep_progress.estimate_seconds(keys, timings)
  everything = np.concatenate(list(walls.values()))
  expected = (walls[keys[0]].mean() + walls[keys[1]].mean()
              + everything.mean())
  assert own == 2 and seconds == pytest.approx(expected)
  assert sweep_plan.RunSpec("x.py", "model=seq_mt,costs=L+T+C,quick", (), "x",
                           "x").key == ("seq_mt", "L+T+C")
  assert np.isnan(sweep_progress.estimate_seconds(keys, {})[0])


def test_estimate_per_epoch_and_device_kind(tmp_path):
  """The dry run's estimate: per device kind, the mean time per epoch of
  that kind's finished runs of the same model and costs, times each
  unfinished run's epochs (Blocks: 40, or 200 at 20% and 50%)."""
  rng = np.random.default_rng()
  done = tmp_path / "done"
  per_epoch = {"cpu": rng.uniform(20, 60, 2), "NVIDIA H200": rng.uniform(1, 3, 3)}
  for kind, values in per_epoch.items():
    for i, v in enumerate(values):
      epochs = float(rng.choice([40, 200]))
      run_dir = done / f"{kind}_{i}"
      run_dir.mkdir(parents=True)
      (run_dir / rundir.RESULTS).write_text(json.dumps({
          "status": "finished", "wall_time_s": float(v * epochs),
          "epochs": epochs, "device_kind": kind,
          "config": {"model": {"name": "seq_mt"}, "costs": "L"}}))
  timings = sweep_progress.read_epoch_timings(str(done))
  assert {k: sorted(t[("seq_mt", "L")]) for k, t in timings.items()} == {
      k: pytest.approx(sorted(v)) for k, v in per_epoch.items()}
  out = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.sweep",
       "--config=experiments/blocks.py", f"--workdir={tmp_path / 'new'}",
       "--dry_run", r"--only=^seq_mt_L_f0\.(1|2)_", "--seeds=0",
       f"--timings_from={done}", "--parallel=2"],
      cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
  for kind, values in per_epoch.items():
    hours = values.mean() * (40 + 200) / 3600
    (line,) = [l for l in out.stderr.splitlines()
               if f"(240 epochs left) on {kind}:" in l]
    assert f"{hours:.1f} h of one process ({hours / 2:.1f} h at " in line


def test_the_eta_counts_other_runs_of_the_workdir_and_what_runs_trained(
    tmp_path):
  """The launcher's first progress line under --only: the pace of the
  workdir's finished runs that the filter leaves out, and for a run left
  only the epochs it has still to train."""
  rng = np.random.default_rng()
  per_epoch = float(rng.uniform(1, 10))
  trained = float(rng.integers(1, 199))
  other = tmp_path / "seq_mt_L_f0.1_s0"  # finished, not in this sweep
  other.mkdir()
  (other / rundir.RESULTS).write_text(json.dumps({
      "status": "finished", "wall_time_s": 40 * per_epoch, "epochs": 40.0,
      "device_kind": "cpu", "config": {"model": {"name": "seq_mt"},
                                      "costs": "L",
                                      "train": {"max_epochs": 40}}}))
  runs = [{"name": name, "config_arg": "model=seq_mt,costs=L",
           "overrides": {"seed": seed}}
          for seed, name in enumerate(("partly", "fresh"))]
  specs = [dataclasses.replace(spec, epochs=200.0) for spec in
           sweep_plan.make_specs(runs, "experiments/blocks.py", str(tmp_path))]
  (tmp_path / "partly").mkdir()
  (tmp_path / "partly" / rundir.METRICS).write_text(json.dumps(
      {"event": "eval", "split": "validation", "step": 1, "epoch": trained}))
  tally = launcher.Tally([sweep_plan.Job((spec,)) for spec in specs],
                         clock=lambda: 0.0, parallel=1)
  assert tally.progress.eta() == pytest.approx(
      (200 - trained + 200) * per_epoch)


def test_dry_run_counts_what_the_sweep_would_train(tmp_path):
  """The dry run triages as the sweep does: a run trained partly counts the
  epochs it has left; one holding another config is not printed, or, with
  --rerun_changed, printed with --overwrite and counted whole."""
  rng = np.random.default_rng()
  per_epoch = float(rng.uniform(20, 60))
  done = tmp_path / "done" / "r0"
  done.mkdir(parents=True)
  (done / rundir.RESULTS).write_text(json.dumps({
      "status": "finished", "wall_time_s": per_epoch * 40, "epochs": 40.0,
      "device_kind": "cpu",
      "config": {"model": {"name": "seq_mt"}, "costs": "L"}}))
  work = tmp_path / "new"
  argv = [sys.executable, "-m", "landmark_ssl.sweep",
          "--config=experiments/blocks.py", f"--workdir={work}", "--dry_run",
          r"--only=^seq_mt_L_f0\.(1|2|5)_", "--seeds=0",
          f"--timings_from={done.parent}"]
  def dry_run(*extra):
    out = subprocess.run(argv + list(extra), cwd=ROOT, env=ENV,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines(), out.stderr
  commands, _ = dry_run()
  by_run = {os.path.basename(_parse_main_command(shlex.split(c))[1]): c
            for c in commands}
  assert sorted(by_run) == [f"seq_mt_L_f{f}_s0" for f in ("0.1", "0.2", "0.5")]
  # 0.2 (200 epochs) trained some; 0.5 holds a 40-epoch run's config.
  trained = float(rng.integers(1, 199))
  for name, epoch in (("seq_mt_L_f0.2_s0", trained), ("seq_mt_L_f0.5_s0", 30)):
    (work / name).mkdir(parents=True)
    (work / name / rundir.METRICS).write_text(json.dumps(
        {"event": "eval", "split": "validation", "step": 1, "epoch": epoch}))
  config, _ = _parse_main_command(shlex.split(by_run["seq_mt_L_f0.5_s0"]))
  stored = json.loads(config.to_json())
  stored["train"]["max_epochs"] = 40
  (work / "seq_mt_L_f0.5_s0" / rundir.CONFIG).write_text(json.dumps(stored))
  for extra, printed, epochs in (
      ((), ["seq_mt_L_f0.1_s0", "seq_mt_L_f0.2_s0"], 40 + 200 - trained),
      (("--rerun_changed",), list(by_run), 40 + 200 - trained + 200)):
    commands, log = dry_run(*extra)
    assert [os.path.basename(_parse_main_command(
        [a for a in shlex.split(c) if a != "--overwrite"])[1])
            for c in commands] == printed
    assert [c.endswith(" --overwrite") for c in commands] == [
        n == "seq_mt_L_f0.5_s0" for n in printed]
    hours = per_epoch * epochs / 3600
    assert (f"({epochs:.0f} epochs left) on cpu: {hours:.1f} h of one "
            "process") in log
    assert ("1 runs hold a run of another config" in log) == (not extra)


def test_slurm_array_template_runs_the_line_of_its_task(tmp_path):
  """cluster/slurm_array.sh, run as SLURM would (array task id set), runs
  exactly its line of a sweep --dry_run file, quoting intact; a task past
  the end is one error naming the file and the --array to submit."""
  script = os.path.join(ROOT, "cluster", "slurm_array.sh")
  outs = [tmp_path / f"out {i}.txt" for i in range(3)]
  lines = [shlex.join([sys.executable, "-c",
                       "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
                       str(out), f"task's arg {i}"]) for i, out in enumerate(outs)]
  runs = tmp_path / "runs.txt"
  runs.write_text("\n".join(lines) + "\n")
  env = dict(os.environ, SLURM_ARRAY_TASK_ID="1")
  proc = subprocess.run(["bash", script, str(runs)], env=env,
                        capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stderr
  assert outs[1].read_text() == "task's arg 1"
  assert not outs[0].exists() and not outs[2].exists()
  env["SLURM_ARRAY_TASK_ID"] = "3"
  proc = subprocess.run(["bash", script, str(runs)], env=env,
                        capture_output=True, text=True, timeout=60)
  assert proc.returncode == 2 and "--array=0-2" in proc.stderr
  assert str(runs) in proc.stderr
