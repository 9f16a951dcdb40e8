"""Test session setup: 8 simulated CPU devices, so every test that builds a
``('data',)`` mesh exercises the multi-device code path."""

import os

# Must happen before jax is imported anywhere in the test session.
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
