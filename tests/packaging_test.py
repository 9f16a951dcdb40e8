"""Tests of the packaging: pyproject.toml keeps ranges, requirements-lock.txt
pins an installable set that satisfies them."""

import pathlib
import re

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = pathlib.Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements-lock.txt"


def _pyproject():
  return tomllib.loads((REPO / "pyproject.toml").read_text())


def _lock() -> dict[str, str]:
  """``{canonical name: version}`` of the lock file's ``name==version``
  lines; any other requirement line fails."""
  pins = {}
  for line in LOCK.read_text().splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
      continue
    match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)",
                         line)
    assert match, f"requirements-lock.txt: not a plain 'name==version': {line}"
    pins[canonicalize_name(match[1])] = match[2]
  return pins


def test_pyproject_keeps_ranges():
  for dep in _pyproject()["project"]["dependencies"]:
    req = Requirement(dep)
    assert all(s.operator != "==" for s in req.specifier), (
        f"pyproject.toml pins {dep}: pins belong in requirements-lock.txt")


def test_lock_pins_every_dependency_within_its_range():
  """The dependencies and the extras the README installs with the lock
  (`test`, `cluster`)."""
  pins = _lock()
  project = _pyproject()["project"]
  extras = project["optional-dependencies"]
  for dep in (project["dependencies"] + extras["test"] + extras["cluster"]):
    req = Requirement(dep)
    name = canonicalize_name(req.name)
    assert name in pins, f"requirements-lock.txt lacks {req.name}"
    assert req.specifier.contains(pins[name], prereleases=True), (
        f"requirements-lock.txt pins {req.name}=={pins[name]}, outside "
        f"pyproject.toml's {req.specifier}")


def test_lock_holds_no_project_and_no_local_path():
  pins = _lock()  # only name==version lines: no '-e', 'file:', '@ /path'
  assert canonicalize_name(_pyproject()["project"]["name"]) not in pins


def test_tensorboard_is_its_own_extra_not_the_tests():
  """CI installs `.[test,cluster]`: the viewer stays out of it."""
  extras = _pyproject()["project"]["optional-dependencies"]
  assert [Requirement(r).name for r in extras["tensorboard"]] == ["tensorboard"]
  assert "tensorboard" not in {Requirement(r).name for r in extras["test"]}


def test_ci_installs_as_the_readme_quick_start_says():
  """.ci/run installs the extras the README's quick start names (the
  suite's Ray tests need `cluster`)."""
  readme = (REPO / "README.md").read_text()
  quick_start = readme.split("## Quick start", 1)[1].split("```bash", 1)[1]
  install = re.search(r'python -m pip install -e "\.\[([\w,]+)\]"', quick_start)
  ci = re.search(r'python -m pip install -e "\.\[([\w,]+)\]"',
                 (REPO / ".ci" / "run").read_text())
  assert install and ci and install[1] == ci[1]
  assert {"test", "cluster"} <= set(install[1].split(","))
  (ray,) = [Requirement(r) for r in
            _pyproject()["project"]["optional-dependencies"]["cluster"]]
  assert ray.name == "ray" and any(s.operator == ">=" for s in ray.specifier)
