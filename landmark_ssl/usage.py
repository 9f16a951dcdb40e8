"""How the command-line programs report a usage error: the message alone.

absl's ``app.run`` prints a program's whole help page (module docstring and
flags) before the message of an ``app.UsageError``; :func:`message_alone`
wraps a program's ``main`` so that only the message is printed, with a
pointer to ``--helpshort``.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable

from absl import app


def message_alone(main: Callable, exit_status: int | None = None
                  ) -> Callable:
  """``main`` with its usage errors printed alone; the exit status is
  ``exit_status``, or the error's own (absl's default: 1)."""
  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except app.UsageError as e:
      print(f"FATAL usage error: {e}\nPass --helpshort to see the flags.",
            file=sys.stderr)
      sys.exit(e.exitcode if exit_status is None else exit_status)
  return wrapped
