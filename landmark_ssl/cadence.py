"""The step counts of a run, and when it logs, evaluates and checkpoints.

Steps count from 1: "step ``s``" is the state after ``s`` updates, as
``metrics.jsonl`` and the checkpoints number them.
"""

from __future__ import annotations

import dataclasses

from landmark_ssl import configs


def itstime(step: int, every: int, total: int, last: bool = True) -> bool:
  """Whether something done every ``every`` steps is due after ``step``
  (big_vision's ``itstime``): at each multiple of ``every`` (never for
  ``every <= 0``), and with ``last`` at the final step ``total`` too."""
  return (every > 0 and step % every == 0) or (last and step == total)


@dataclasses.dataclass(frozen=True)
class Due:
  """What is due after a step."""
  log: bool
  eval: bool
  checkpoint: bool


@dataclasses.dataclass(frozen=True)
class Schedule:
  """The step counts of a run, derived from its config and data."""
  steps_per_epoch: int
  total_steps: int
  eval_every: int
  ckpt_every: int  # 0: only at evaluations
  log_every: int
  patience: int
  selection_name: str
  selection_mode: str

  @classmethod
  def of(cls, config, steps_per_epoch: int) -> "Schedule":
    t = config.train
    name, mode = configs.selection_rule(configs.cost_terms(config.costs))
    return cls(
        steps_per_epoch=steps_per_epoch,
        total_steps=max(1, int(round(t.max_epochs * steps_per_epoch))),
        eval_every=max(1, int(round(t.eval_every_epochs * steps_per_epoch))),
        ckpt_every=int(t.checkpoint_every_steps),
        log_every=max(1, int(t.log_every_steps)), patience=int(t.patience),
        selection_name=name, selection_mode=mode)

  def due(self, step: int) -> Due:
    """What is due after ``step``: an evaluation every ``eval_every`` steps
    and at the end; a checkpoint at each evaluation and every
    ``ckpt_every`` steps; a log line at each evaluation and every
    ``log_every`` steps."""
    is_eval = itstime(step, self.eval_every, self.total_steps)
    return Due(
        log=is_eval or itstime(step, self.log_every, self.total_steps, False),
        eval=is_eval,
        checkpoint=is_eval or itstime(step, self.ckpt_every, self.total_steps,
                                      False))

  def epoch(self, step: int) -> float:
    return step / self.steps_per_epoch
