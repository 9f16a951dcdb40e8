"""Tests of provenance: package versions, CPU model, git commit, the stack."""

import importlib.metadata
import json
import os
import pathlib
import platform
import shutil
import subprocess

import pytest

from landmark_ssl import provenance

needs_git = pytest.mark.skipif(shutil.which("git") is None,
                               reason="git is not installed")


def _git(repo, *args):
  return subprocess.run(
      ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
       *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
  """A git checkout with one commit holding ``pkg/mod.py``."""
  (tmp_path / "pkg").mkdir()
  (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
  _git(tmp_path, "init", "-q")
  _git(tmp_path, "add", "pkg/mod.py")
  _git(tmp_path, "commit", "-q", "-m", "one")
  return tmp_path


def test_package_versions_are_the_installed_ones():
  versions = provenance.package_versions()
  assert set(versions) == set(provenance.PACKAGES)
  for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain",
               "tensorflow-datasets", "numpy"):
    assert versions[name] == importlib.metadata.version(name)
  import numpy  # pylint: disable=g-import-not-at-top
  assert versions["numpy"] == numpy.__version__


def test_a_missing_package_is_none():
  assert provenance.package_versions(("numpy", "no-such-dist-xyz")) == {
      "numpy": importlib.metadata.version("numpy"), "no-such-dist-xyz": None}


def test_cpu_model_reads_the_first_model_name(tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n"
                     "model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\n"
                     "processor\t: 1\nmodel name\t: Other\n")
  assert provenance.cpu_model(cpuinfo) == "Intel(R) Xeon(R) CPU @ 2.20GHz"


def test_cpu_model_falls_back_to_platform(tmp_path, monkeypatch):
  monkeypatch.setattr(platform, "processor", lambda: "arm")
  assert provenance.cpu_model(tmp_path / "absent") == "arm"
  (tmp_path / "no_model").write_text("processor\t: 0\n")
  assert provenance.cpu_model(tmp_path / "no_model") == "arm"
  monkeypatch.setattr(platform, "processor", lambda: "")
  assert provenance.cpu_model(tmp_path / "absent") is None


@needs_git
def test_git_commit_and_dirty(repo):
  head = _git(repo, "rev-parse", "HEAD")
  assert len(head) == 40
  assert provenance.git_commit(repo / "pkg") == {"commit": head,
                                                 "dirty": False}
  (repo / "untracked.txt").write_text("not part of the code\n")
  assert provenance.git_commit(repo / "pkg")["dirty"] is False
  (repo / "pkg" / "mod.py").write_text("x = 2\n")
  assert provenance.git_commit(repo / "pkg") == {"commit": head,
                                                 "dirty": True}


@needs_git
def test_no_checkout_is_none(repo, tmp_path_factory):
  assert provenance.git_commit(tmp_path_factory.mktemp("plain")) is None
  # A copy of the code that git does not track (e.g. installed into a venv
  # that lies inside a checkout) has no commit.
  (repo / "venv" / "site-packages" / "pkg").mkdir(parents=True)
  assert provenance.git_commit(repo / "venv" / "site-packages" / "pkg") is None


@needs_git
def test_missing_git_is_none(repo, monkeypatch):
  monkeypatch.setenv("PATH", "")
  assert provenance.git_commit(repo / "pkg") is None


def test_stack_is_json_and_names_this_checkout():
  stack = json.loads(json.dumps(provenance.stack("TPU v5 lite")))
  assert stack["device_kind"] == "TPU v5 lite"
  assert stack["python"] == platform.python_version()
  assert stack["packages"] == provenance.package_versions()
  assert stack["cpu"] == provenance.cpu_model()
  package_dir = pathlib.Path(provenance.__file__).resolve().parent
  assert stack["code"] == provenance.git_commit(package_dir)
  if shutil.which("git") and (package_dir.parent / ".git").exists():
    assert stack["code"]["commit"] == _git(package_dir, "rev-parse", "HEAD")


def test_stack_default_device_kind_is_jax_s():
  import jax  # pylint: disable=g-import-not-at-top
  assert provenance.stack()["device_kind"] == jax.devices()[0].device_kind


def test_cpu_features_reads_the_first_flags_line(tmp_path):
  info = tmp_path / "cpuinfo"
  info.write_text("processor\t: 0\nflags\t\t: fpu avx2 sse4_2 fma avx512f\n"
                  "processor\t: 1\nflags\t\t: fpu\n")
  assert provenance.cpu_features(info) == ["sse4_2", "avx2", "fma", "avx512f"]
  assert provenance.cpu_features(info, wanted=("fma", "amx_bf16")) == ["fma"]
  info.write_text("processor\t: 0\n")
  assert provenance.cpu_features(info) is None
  assert provenance.cpu_features(tmp_path / "absent") is None


def test_cpus_environment_and_jax_flags(monkeypatch):
  import jax  # pylint: disable=g-import-not-at-top
  cpus = provenance.cpus()
  assert cpus["count"] == os.cpu_count()
  if hasattr(os, "sched_getaffinity"):
    assert cpus["usable"] == len(os.sched_getaffinity(0))
  monkeypatch.setenv("OMP_NUM_THREADS", "3")
  monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
  env = provenance.environment()
  assert env["OMP_NUM_THREADS"] == "3" and "MKL_NUM_THREADS" not in env
  assert env.get("XLA_FLAGS") == os.environ.get("XLA_FLAGS")
  flags = provenance.jax_flags(("jax_enable_x64", "no_such_flag"))
  assert flags == {"jax_enable_x64": bool(jax.config.jax_enable_x64)}
  stack = json.loads(json.dumps(provenance.stack("cpu")))
  assert stack["environment"] == env and stack["cpus"] == cpus
  assert stack["jax_flags"] == provenance.jax_flags()
