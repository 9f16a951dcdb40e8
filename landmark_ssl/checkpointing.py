"""Checkpoints of a run: one orbax ``CheckpointManager`` keeps the latest and
the best.

Each checkpoint (``<workdir>/checkpoints/<step>/``) holds two items:

* ``state``: the :class:`steps.TrainState` arrays (params, optimizer state,
  step), saved with ``StandardSave`` and restored onto the shardings of a
  freshly built state;
* ``progress``: a small JSON dict with everything else the loop needs to
  continue exactly: early-stopping state (``best_value``, ``best_step``,
  ``evals_without_improvement``, ``stopped_early``), ``num_evals``, the
  accumulated ``wall_time_s`` and ``log_window`` (the costs of each step
  since the last log line, so that a resumed run logs the averages of an
  uninterrupted one).

Checkpoints saved at an evaluation carry the validation metrics (orbax
``metrics``, including ``selection``, the value early stopping watches).
Preservation: ``LatestN(2)`` (to resume: the latest, and the one before
in case the latest is damaged) or ``BestN(1)`` by ``selection`` (to
report) -- anything else is deleted. Ties of ``selection`` go to the later
checkpoint (orbax's ``BestN`` order), and the loop's ``best_step`` follows
the same rule, so both always name the same step.

A checkpoint that does not restore (tensor files cut short, ``_METADATA``
missing, an empty step folder) is skipped with a warning naming it: the run
goes on from the newest one that restores (:func:`restore_latest`,
:func:`restore_best`), and the damaged ones are deleted so that their steps
can be saved again. Only if none restores is that an error
(:class:`NoRestorableCheckpointError`, one line, with the fix). A
checkpoint whose arrays have other names or shapes than the model's (read
from its metadata, before any array) is not damaged:
the run's config or dataset changed since it was saved, so that is an error
at once, and nothing is deleted (:func:`restore_whole`).
"""

from __future__ import annotations

import os

from typing import Any

from absl import logging
from etils import epath
import jax
import orbax.checkpoint as ocp

SELECTION_KEY = "selection"


def holds_only_unfinished_saves(directory) -> bool:
  """Whether the checkpoint folder ``directory`` holds nothing but orbax's
  temporary folders of saves that never finished (what a run killed during
  its first save leaves)."""
  return all(p.is_dir() and ocp.path.step.is_tmp_checkpoint(p)
             for p in epath.Path(directory).iterdir())


def initial_progress() -> dict:
  """The ``progress`` item of a run that has not started."""
  return {"best_value": None, "best_step": None, "evals_without_improvement": 0,
          "stopped_early": False, "num_evals": 0, "wall_time_s": 0.0,
          "log_window": []}


def manager(directory, selection_mode: str, read_only: bool = False
            ) -> ocp.CheckpointManager:
  """The run's checkpoint manager.

  Args:
    directory: the run's checkpoint folder (``rundir.RunDir.checkpoint_dir``).
    selection_mode: ``'min'`` (landmark error) or ``'max'`` (accuracy): how
      the ``selection`` metric ranks checkpoints.
    read_only: for re-evaluation: never writes or deletes.
  """
  if selection_mode not in ("min", "max"):
    raise ValueError(f"selection_mode must be 'min' or 'max', got {selection_mode!r}.")
  get_metric = lambda metrics: metrics[SELECTION_KEY]
  policy = ocp.checkpoint_managers.AnyPreservationPolicy([
      ocp.checkpoint_managers.LatestN(n=2),
      ocp.checkpoint_managers.BestN(
          get_metric_fn=get_metric, reverse=selection_mode == "min", n=1,
          keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(
      best_fn=get_metric, best_mode=selection_mode,
      preservation_policy=None if read_only else policy,
      create=not read_only, read_only=read_only)
  directory = epath.Path(directory)
  if "://" not in str(directory):  # orbax wants absolute local paths
    directory = epath.Path(os.path.abspath(directory))
  return ocp.CheckpointManager(
      directory, options=options,
      item_handlers={"state": ocp.StandardCheckpointHandler(),
                     "progress": ocp.JsonCheckpointHandler()})


def save(mngr: ocp.CheckpointManager, step: int, state, progress: dict,
         metrics: dict | None = None) -> None:
  """Saves ``state`` and ``progress`` at ``step`` (``metrics`` at evaluations).

  All processes must call it. Asynchronous: call ``mngr.wait_until_finished()``
  before exiting.
  """
  mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      progress=ocp.args.JsonSave(progress)), metrics=metrics, force=True)


def abstract_like(state) -> Any:
  """Shapes, dtypes and shardings of ``state``: the restore target."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


def restore(mngr: ocp.CheckpointManager, step: int, state) -> tuple[Any, dict]:
  """Restores ``(state, progress)`` of ``step`` onto the layout of ``state``.

  ``state`` is a freshly built state of the same run (its arrays give shapes
  and shardings; its static fields are kept).
  """
  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_like(state)),
      progress=ocp.args.JsonRestore()))
  return restored["state"], dict(restored["progress"])


class NoRestorableCheckpointError(ValueError):
  """None of a run's checkpoints restores."""


def _reason(error: Exception) -> str:
  """The first line of ``error``, shortened: why a checkpoint failed."""
  lines = str(error).strip().splitlines() or [""]
  text = f"{type(error).__name__}: {lines[0]}"
  return text if len(text) <= 200 else text[:197] + "..."


def _restore_first(mngr: ocp.CheckpointManager, candidate, state, what: str
                   ) -> tuple[int, Any, dict]:
  """Restores the first step ``candidate(failed)`` gives (``failed``: the
  steps tried so far; ``None``: no step left) that restores, then deletes the
  ones that did not (an older one restored, so they, not the code, are
  broken; their steps can then be saved again). A checkpoint of arrays of
  other shapes stops the search at once (:func:`restore_whole`)."""
  directory = epath.Path(mngr.directory)
  failed = {}
  while (step := candidate(set(failed))) is not None:
    try:
      restored_state, progress = restore_whole(mngr, step, state)
    except NoRestorableCheckpointError:
      raise  # another model's: so are all the others; keep them all
    except Exception as e:  # pylint: disable=broad-except
      # Whatever orbax or tensorstore raise (ValueError, FileNotFoundError,
      # KeyError, ...), the step is unusable: say which and go on.
      logging.warning("The checkpoint %s does not restore (%s); trying the "
                      "%s.", directory / str(step), _reason(e), what)
      failed[step] = _reason(e)
      continue
    for bad in failed:
      if bad in mngr.all_steps():
        mngr.delete(bad)
      logging.warning("Deleted the damaged checkpoint of step %d; the run "
                      "goes on from the checkpoint of step %d.", bad, step)
    return step, restored_state, progress
  raise NoRestorableCheckpointError(
      f"No checkpoint in {directory} restores ({_reasons(failed)}). Delete "
      f"{directory} to train the run again from step 0 (its config stays), "
      "or pass --overwrite to replace the whole run.")


def _reasons(failed: dict) -> str:
  return "; ".join(f"step {s}: {r}" for s, r in failed.items())


def restore_whole(mngr: ocp.CheckpointManager, step: int, state
                  ) -> tuple[Any, dict]:
  """:func:`restore`, except that a checkpoint whose arrays have other names
  or shapes than ``state``'s (read from its metadata) is a
  :class:`NoRestorableCheckpointError` saying so: it
  is whole, but of another model (the run's config was edited, or its
  dataset rebuilt, since it was saved), so the fix is to restore those, not
  to delete the weights. Other failures are raised as they are."""
  why = _other_model(mngr, step, state)  # from the metadata, before reading
  if why is None:
    return restore(mngr, step, state)
  directory = epath.Path(mngr.directory)
  raise NoRestorableCheckpointError(
      f"The checkpoints in {directory} are of another model than the run's "
      f"(step {step}: {why}): the run's config was edited, or "
      "its dataset was rebuilt with other classes or landmarks, since they "
      "were saved. Restore the config the run wrote (a finished run's "
      'results hold a copy under "config") or the dataset it trained on; '
      f"only to train again from step 0, delete {directory}.") from None


def _dotted(path) -> str:
  """A pytree key path as orbax names the array: ``opt_state.1.0.count``."""
  return ".".join(str(getattr(k, "name", getattr(k, "key", getattr(
      k, "idx", k)))) for k in path)


def _other_model(mngr: ocp.CheckpointManager, step: int, state) -> str | None:
  """Why checkpoint ``step`` holds another model than ``state`` (an array
  missing, extra or of another shape, from the checkpoint's metadata), or
  ``None``: same arrays, or metadata that does not read (a damaged
  checkpoint, which the restore itself then reports). Checked before the
  restore, which would read the arrays that do match and leave tensorstore's
  pending reads printing tracebacks at exit."""
  try:
    stored = {_dotted(p): tuple(m.shape) for p, m in
              jax.tree_util.tree_leaves_with_path(
                  mngr.item_metadata(step)["state"])}
  except Exception:  # pylint: disable=broad-except
    return None
  if not stored:  # no metadata (orbax gives None without _METADATA)
    return None
  wanted = {_dotted(p): tuple(x.shape)
            for p, x in jax.tree_util.tree_leaves_with_path(state)}
  by_depth = lambda names: sorted(names, key=lambda n: (n.count("."), n))
  for name in by_depth(wanted.keys() & stored.keys()):
    if wanted[name] != stored[name]:
      return (f"{name} is {stored[name]} in the checkpoint, {wanted[name]} "
              "in the model")
  for name in by_depth(wanted.keys() - stored.keys()):
    return f"the model's {name} {wanted[name]} is not in the checkpoint"
  for name in by_depth(stored.keys() - wanted.keys()):
    return f"the checkpoint's {name} {stored[name]} is not in the model"
  return None


def restore_latest(mngr: ocp.CheckpointManager, state
                   ) -> tuple[int, Any, dict] | None:
  """``(step, state, progress)`` of the newest checkpoint that restores
  (see the module docstring); ``None`` if there is no checkpoint.

  Raises:
    NoRestorableCheckpointError: there are checkpoints, none restores.
  """
  if not mngr.all_steps():
    return None
  def newest(failed):
    steps = [s for s in mngr.all_steps() if s not in failed]
    return max(steps) if steps else None
  return _restore_first(mngr, newest, state, "one before")


def restore_best(mngr: ocp.CheckpointManager, state
                 ) -> tuple[int, Any, dict]:
  """``(step, state, progress)`` of the best checkpoint that restores (see
  the module docstring), for a run whose state has restored before (so a
  best that fails is damaged: it is deleted, and orbax names the next
  best).

  Raises:
    NoRestorableCheckpointError: no evaluated checkpoint restores.
  """
  def best(failed):
    for step in failed:
      if step in mngr.all_steps():
        mngr.delete(step)
    return mngr.best_step()
  return _restore_first(mngr, best, state, "next best")
