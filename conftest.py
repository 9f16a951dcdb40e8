"""Test session setup: 8 simulated CPU devices, so every test that builds a
``('data',)`` mesh exercises the multi-device code path."""

import os

# Must happen before jax is imported anywhere in the test session.
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One persistent XLA compilation cache for the whole session, inherited by
# the processes tests start (main, sweep, multi-host): the suite compiles the
# same tiny programs many times over, in and out of process.
import atexit
import shutil
import tempfile

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache_dir = tempfile.mkdtemp(prefix="landmark_ssl_test_xla_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache_dir
  atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

# The suite needs the project's dependencies in the interpreter that runs
# pytest; a pytest from another environment fails on the first import with a
# bare ModuleNotFoundError. Say which interpreter and how to fix it instead.
import importlib.util
import sys

_REQUIRED = ("jax", "flax", "optax", "orbax.checkpoint", "ml_collections",
             "tensorflow_datasets", "grain", "array_record", "matplotlib",
             "ray")


def _missing_modules() -> list[str]:
  missing = []
  for name in _REQUIRED:
    try:
      if importlib.util.find_spec(name) is None:
        missing.append(name)
    except ModuleNotFoundError:  # parent package absent (orbax.checkpoint)
      missing.append(name)
  return missing


# Checked on import: tests/conftest.py imports project modules before any
# pytest hook runs.
_missing = _missing_modules()
if _missing:
  import pytest
  pytest.exit(
      f"pytest runs on {sys.executable}, which lacks {', '.join(_missing)}: "
      f"the project is not installed in this interpreter. Install it there "
      f"with `{sys.executable} -m pip install -e \".[test,cluster]\"`, or "
      f"run the suite with the interpreter you installed into: `python -m "
      f"pytest`.",
      returncode=4)
