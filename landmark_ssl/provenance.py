"""The software and hardware a run used: package versions, Python, CPU,
accelerator and the git commit of the code.

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
      "device_kind": device_kind,
      "code": git_commit(pathlib.Path(__file__).resolve().parent),
  }
