"""Polling a condition in tests that drive other processes."""

import time


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.05):
  """Returns once ``predicate()`` is true; fails naming ``what`` after
  ``timeout_s`` seconds."""
  deadline = time.time() + timeout_s
  while not predicate():
    if time.time() > deadline:
      raise AssertionError(f"timed out waiting for {what}")
    time.sleep(poll_s)
