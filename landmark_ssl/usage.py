"""How the command-line programs report a usage error: the message alone.

absl's ``app.run`` prints a program's whole help page (module docstring and
flags) before the message of an ``app.UsageError``; :func:`message_alone`
wraps a program's ``main`` so that only the message is printed, with a
pointer to ``--helpshort``. absl exits 1 on a flag it cannot parse;
:func:`flags_parser` gives ``app.run`` a parser that exits with the
program's own usage status instead.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable

from absl import app
from absl import flags


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


def flags_parser(exit_status: int) -> Callable[[list[str]], list[str]]:
  """A ``flags_parser`` for ``app.run``: absl's parsing, whose errors print
  as absl's do but exit with ``exit_status``."""
  def parse(argv: list[str]) -> list[str]:
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      print(f"FATAL Flags parsing error: {e}\nPass --helpshort or --helpfull "
            "to see help on flags.", file=sys.stderr)
      sys.exit(exit_status)
  return parse
