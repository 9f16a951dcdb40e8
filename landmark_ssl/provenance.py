"""The software and hardware a run used: package versions, Python, CPU,
accelerator, thread counts and numerics settings, and the git commit of
the code.

``stack()`` returns a JSON-ready dict that ``train`` stores in
``results.json`` under ``"stack"``, so a number can be traced back to what
produced it. Nothing here may fail a run: a package that is not installed,
a CPU model that cannot be read, code that is not a git checkout or a
missing ``git`` each give ``None``.

The exact versions behind the published results are pinned in the
repository's ``requirements-lock.txt`` (see the README).
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import platform
import subprocess

# The distributions whose versions a run records (as pip names them).
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain",
            "tensorflow-datasets", "numpy")

# Environment variables that change threads or float rounding (recorded
# only where set).
ENVIRONMENT = ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_ENABLE_X64",
               "JAX_DEFAULT_MATMUL_PRECISION", "OMP_NUM_THREADS",
               "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "CUDA_VISIBLE_DEVICES", "TPU_VISIBLE_CHIPS")

# CPU vector extensions that XLA's CPU code generation uses (they can change
# the rounding of the same program between machines).
CPU_FEATURES = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16",
                "avx512_vnni", "amx_bf16")

# jax flags that change a run's numbers.
JAX_FLAGS = ("jax_enable_x64", "jax_default_matmul_precision",
             "jax_default_prng_impl", "jax_threefry_partitionable")

_GIT_TIMEOUT_S = 10


def package_versions(packages=PACKAGES) -> dict[str, str | None]:
  """``{distribution: version}``; ``None`` for one that is not installed."""
  out = {}
  for name in packages:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  return out


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str | None:
  """The CPU's model name: the first ``model name`` line of ``cpuinfo``
  (Linux), else ``platform.processor()``; ``None`` if neither says."""
  try:
    with open(cpuinfo, encoding="utf-8", errors="replace") as f:
      for line in f:
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name" and value.strip():
          return value.strip()
  except OSError:
    pass
  return platform.processor() or None


def cpu_features(cpuinfo: str | os.PathLike = "/proc/cpuinfo",
                 wanted=CPU_FEATURES) -> list[str] | None:
  """Which of ``wanted`` the first ``flags`` line of ``cpuinfo`` (Linux)
  lists, in ``wanted``'s order; ``None`` where there is no such line."""
  try:
    with open(cpuinfo, encoding="utf-8", errors="replace") as f:
      for line in f:
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
          have = set(value.split())
          return [name for name in wanted if name in have]
  except OSError:
    pass
  return None


def cpus() -> dict[str, int | None]:
  """``{"count": os.cpu_count(), "usable": CPUs this process may run on}``
  (``usable`` from the scheduler's affinity mask; ``None`` where the
  platform does not say). XLA's CPU thread pool is sized from these."""
  try:
    usable = len(os.sched_getaffinity(0))
  except (AttributeError, OSError):
    usable = None
  return {"count": os.cpu_count(), "usable": usable}


def environment(names=ENVIRONMENT) -> dict[str, str]:
  """The variables of ``names`` that are set, with their values."""
  return {name: os.environ[name] for name in names if name in os.environ}


def jax_flags(names=JAX_FLAGS) -> dict:
  """The values of jax's flags ``names`` (a flag this jax lacks is left
  out; values that are not JSON types are given as strings)."""
  import jax  # pylint: disable=g-import-not-at-top
  out = {}
  for name in names:
    try:
      value = getattr(jax.config, name)
    except AttributeError:
      continue
    plain = value is None or isinstance(value, (bool, int, float, str))
    out[name] = value if plain else str(value)
  return out


def code() -> dict | None:
  """:func:`git_commit` of this package's checkout: the code running now."""
  return git_commit(pathlib.Path(__file__).resolve().parent)


def git_commit(directory: str | os.PathLike) -> dict | None:
  """``{"commit": sha, "dirty": bool}`` of the git checkout whose tracked
  files include ``directory``; ``None`` if there is none (e.g. an installed
  copy, even one that lies inside some other checkout) or git cannot be run.

  ``dirty`` is true when tracked files differ from the commit (untracked
  files do not count).
  """
  def git(*args):
    return subprocess.run(
        ["git", "-C", str(directory), *args], capture_output=True, text=True,
        timeout=_GIT_TIMEOUT_S, check=True).stdout.strip()
  try:
    if not git("ls-files", "--", "."):  # not part of the checkout
      return None
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
  except (OSError, subprocess.SubprocessError):
    return None
  return {"commit": commit, "dirty": bool(status)}


def stack(device_kind: str | None = None) -> dict:
  """Everything above, as stored in ``results.json``.

  Args:
    device_kind: the accelerator's kind; by default
      ``jax.devices()[0].device_kind`` (e.g. ``'cpu'``, ``'NVIDIA H100'``).
  """
  if device_kind is None:
    import jax  # pylint: disable=g-import-not-at-top
    device_kind = jax.devices()[0].device_kind
  return {
      "packages": package_versions(),
      "python": platform.python_version(),
      "python_implementation": platform.python_implementation(),
      "platform": platform.platform(),
      "cpu": cpu_model(),
      "cpu_features": cpu_features(),
      "device_kind": device_kind,
      "cpus": cpus(),
      "environment": environment(),
      "jax_flags": jax_flags(),
      "code": code(),
  }
