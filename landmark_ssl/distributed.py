"""Joining a multi-process JAX run: the coordinator, and CPU collectives.

``main --multihost`` lets JAX detect the cluster (TPU pods, SLURM, Open MPI);
``--coordinator_address``, ``--num_processes`` and ``--process_id`` (and
``--local_device_ids``) give it explicitly, for clusters JAX cannot detect
and for CPU machines. On CPU the processes exchange gradients through gloo
(``jax_cpu_collectives_implementation``), so a CPU cluster and the tests
run the same code path as accelerators.
"""

from __future__ import annotations

from typing import Sequence


class DistributedSettingsError(ValueError):
  """The multi-process flags do not describe one process of a run."""


def check_settings(coordinator_address: str | None, num_processes: int | None,
                   process_id: int | None) -> bool:
  """Whether explicit settings are given; raises if they are incomplete.

  Raises:
    DistributedSettingsError: naming the missing or bad flag.
  """
  given = {"--coordinator_address": coordinator_address,
           "--num_processes": num_processes, "--process_id": process_id}
  if all(v is None for v in given.values()):
    return False
  missing = [k for k, v in given.items() if v is None]
  if missing:
    raise DistributedSettingsError(
        f"{', '.join(missing)} missing: an explicit multi-process run needs "
        "--coordinator_address=HOST:PORT, --num_processes=N and "
        "--process_id=I (0..N-1) on every process (or --multihost alone on "
        "a cluster JAX detects).")
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise DistributedSettingsError(
        f"--process_id={process_id} with --num_processes={num_processes}: "
        "give N >= 1 and a process id in 0..N-1, distinct per process.")
  if ":" not in coordinator_address:
    raise DistributedSettingsError(
        f"--coordinator_address={coordinator_address!r}: give HOST:PORT of "
        "process 0, e.g. 10.0.0.1:1234.")
  return True


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None,
               local_device_ids: Sequence[int] | None = None,
               auto: bool = False, heartbeat_timeout_s: int = 100) -> bool:
  """Joins the run's processes; returns whether it did (nothing to join
  without settings and without ``auto``). A process silent for
  ``heartbeat_timeout_s`` (killed, its host lost) makes the others stop with
  an error instead of hanging.

  Must run before anything touches a JAX device.
  """
  explicit = check_settings(coordinator_address, num_processes, process_id)
  if not explicit and not auto:
    return False
  import jax  # pylint: disable=g-import-not-at-top
  # Only the CPU backend needs a collectives implementation; accelerators
  # bring their own. Setting it is harmless where CPU is not used.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if explicit:
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes,
        process_id=process_id,
        local_device_ids=list(local_device_ids) if local_device_ids else None,
        heartbeat_timeout_seconds=int(heartbeat_timeout_s))
  else:
    try:
      jax.distributed.initialize(
          heartbeat_timeout_seconds=int(heartbeat_timeout_s))
    except ValueError as e:  # JAX found no cluster it can read
      raise DistributedSettingsError(
          f"--multihost: JAX cannot tell this machine's cluster ({e}). "
          "--multihost reads the settings of Cloud TPU, SLURM, Open MPI or "
          "Kubernetes jobs; elsewhere give --coordinator_address=HOST:PORT, "
          "--num_processes and --process_id instead.") from None
  return True
