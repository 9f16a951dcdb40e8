"""A sweep's progress and its estimates of the time left, from the wall
times of finished runs.

:class:`Progress` counts a sweep's runs as they are started and end (any
launcher) and gives the line logged at each such event::

  [3/8 done, 2 running, 3 left; ETA 0:14:10] seq_mt_L_f0.05_s1: finished in 412 s

The ETA counts, for each run left, the mean wall time per epoch of the
finished runs of its model and costs (or of all finished runs:
:func:`estimate_seconds`) times its epochs, for each running run what
remains of that (times the epochs it had left when it resumed:
:func:`read_epochs_done`), and shares that work among the launcher's slots
(:func:`eta_seconds`); the times are those of the kind of device this
sweep's runs finish on (:class:`Progress`), from every finished run of the
sweep's directories (:func:`read_history`), not only the runs it trains.
``sweep --dry_run`` estimates the compute left the same way, per device
kind (:func:`read_epoch_timings`).
"""

from __future__ import annotations

import collections
import datetime
import math
import os
from typing import Dict, Iterable, List, Mapping, NamedTuple, Sequence, Tuple

from landmark_ssl import configs
from landmark_ssl import rundir

# The ends of a run in a sweep: trained to the end now, failed, finished
# before (skipped), locked by another process, holding another config.
DONE_KINDS = ("finished", "failed", "skipped", "busy", "changed")


def wall_seconds(results: Mapping) -> tuple | None:
  """``((row model, costs), wall seconds)`` of a finished run's
  ``results.json`` object, or ``None`` for any other object."""
  try:
    if results.get("status") != "finished":
      return None
    key = (configs.row_model(results["config"]["model"]),
           results["config"]["costs"])
    return key, float(results["wall_time_s"])
  except (KeyError, TypeError, ValueError, AttributeError):
    return None


def device_segments(results: Mapping) -> List[Tuple[str, float, float]]:
  """``[(device kind, wall seconds, epochs), ...]`` of a finished run's
  ``results.json`` object: what it trained on each kind of device.

  A run resumed on another machine has one start per (re)start under
  ``stack.starts``, each with its device kind and the wall time before it
  (``metrics_log.START_KEYS``); each start's share runs to the next start
  or the end. A start that does not record its device or wall time (from
  older code) is left out if any start records one; if none does, the
  whole run counts on the run's own ``device_kind`` (older runs, which
  cannot tell). ``[]`` for anything but a finished run.
  """
  try:
    if results.get("status") != "finished":
      return []
    wall = float(results["wall_time_s"])
    epochs = float(results["epochs"])
    steps = int(results["steps"]) if "steps" in results else None
    starts = list((results.get("stack") or {}).get("starts") or [])
  except (KeyError, TypeError, ValueError, AttributeError):
    return []
  if epochs <= 0:
    return []
  if steps is None or not any("device_kind" in s for s in starts):
    return [(str(results.get("device_kind") or "unknown"), wall, epochs)]
  out = []
  ends = [(s.get("step"), s.get("wall_time_s")) for s in starts[1:]]
  for start, (end_step, end_wall) in zip(starts, ends + [(steps, wall)]):
    try:
      kind = start["device_kind"]
      seconds = float(end_wall) - float(start["wall_time_s"])
      seg_epochs = epochs * (int(end_step) - int(start["step"])) / steps
    except (KeyError, TypeError, ValueError):
      continue
    if seg_epochs > 0 and seconds > 0:
      out.append((str(kind), seconds, seg_epochs))
  return out


class Timing(NamedTuple):
  """How long a finished run trained, and where (:func:`run_timing`)."""
  key: tuple  # (row model, costs)
  segments: List[Tuple[str, float, float]]  # :func:`device_segments`
  device: str  # the kind of device it finished on


def run_timing(results: Mapping) -> Timing | None:
  """The :class:`Timing` of a finished run's ``results.json`` object, or
  ``None`` for any other object."""
  found = wall_seconds(results)
  segments = device_segments(results) if found else []
  if not segments:
    return None
  return Timing(found[0], segments,
                str(results.get("device_kind") or segments[-1][0]))


def read_timing(run_dir: str) -> Timing | None:
  """:func:`run_timing` of ``run_dir/results.json``; ``None`` if it is
  missing, unreadable or not finished."""
  try:
    results = rundir.RunDir(run_dir).read_results()
  except (OSError, rundir.CorruptFileError):
    return None
  return None if results is None else run_timing(results)


def read_history(roots: Iterable[str], exclude: Iterable[str] = ()
                 ) -> List[Tuple[Timing, float]]:
  """``[(timing, planned epochs), ...]`` of the finished runs under
  ``roots`` but the run directories in ``exclude`` (:class:`Progress`'s
  ``history``); a run whose config does not say its epochs counts those it
  trained."""
  excluded = {os.path.realpath(d) for d in exclude}
  out = []
  for root in sorted(set(roots)):
    for run_dir, results, _ in rundir.find_results(root):
      if results is None or os.path.realpath(run_dir) in excluded:
        continue
      timing = run_timing(results)
      if timing is not None:
        out.append((timing, _planned_or_trained(results, timing)))
  return out


def read_epochs_done(run_dir: str) -> float:
  """The epochs a run trained before it (re)starts: those of the last
  training or evaluation event of its ``metrics.jsonl`` (it resumes from its
  latest checkpoint, at most a checkpoint interval before); 0 without any,
  or if the file cannot be read (it only informs the progress line)."""
  try:
    events = rundir.RunDir(run_dir).read_events(warn=False)
  except Exception:  # pylint: disable=broad-except
    return 0.0
  done = 0.0
  for event in events:
    if event.get("event") not in ("train", "eval"):
      continue
    try:
      epoch = float(event.get("epoch"))
    except (TypeError, ValueError):
      continue
    if math.isfinite(epoch):
      done = max(done, epoch)
  return done


def pace(timing: Timing, planned: float) -> Dict[str, float]:
  """``{device kind: wall seconds per planned epoch}`` of a finished run:
  each device's pace over the whole run, spread over the ``planned`` epochs
  it was to train, so that a run that stopped early, or a seed of a
  vectorised group (which counts the group's wall time), is counted as the
  runs left are, at their planned length."""
  per_kind: Dict[str, List[float]] = collections.defaultdict(lambda: [0., 0.])
  for kind, seconds, epochs in timing.segments:
    per_kind[kind][0] += seconds
    per_kind[kind][1] += epochs
  trained = sum(epochs for _, _, epochs in timing.segments)
  return {kind: seconds / epochs * trained / planned
          for kind, (seconds, epochs) in per_kind.items()}


def planned_epochs(results: Mapping) -> float | None:
  """The epochs a run was to train (its config's ``train.max_epochs``);
  ``None`` if the object does not say."""
  try:
    planned = float(results["config"]["train"]["max_epochs"])
  except (KeyError, TypeError, ValueError):
    return None
  return planned if math.isfinite(planned) and planned > 0 else None


def epoch_seconds(results: Mapping) -> List[Tuple[str, tuple, float]]:
  """``[(device kind, (row model, costs), wall seconds per epoch), ...]``
  of a finished run's ``results.json`` object, one per kind of device it
  trained on: :func:`pace`, per epoch of :func:`planned_epochs` (or of
  those it trained, if its config does not say); ``[]`` for any other
  object."""
  timing = run_timing(results)
  if timing is None:
    return []
  return [(kind, timing.key, seconds) for kind, seconds in
          pace(timing, _planned_or_trained(results, timing)).items()]


def _planned_or_trained(results: Mapping, timing: Timing) -> float:
  """:func:`planned_epochs`, or the epochs the run trained if its config
  does not say."""
  return planned_epochs(results) or sum(e for _, _, e in timing.segments)


def read_epoch_timings(workdir: str
                       ) -> Dict[str, Dict[tuple, List[float]]]:
  """``{device kind: {(row model, costs): [seconds per epoch, ...]}}`` of
  the finished runs under ``workdir``: a run's time per epoch on each
  device it ran on (a GPU's runs say nothing of a CPU's)."""
  out: Dict[str, Dict[tuple, List[float]]] = collections.defaultdict(
      lambda: collections.defaultdict(list))
  for _, results, _ in rundir.find_results(workdir):
    for kind, key, seconds in ([] if results is None
                               else epoch_seconds(results)):
      out[kind][key].append(seconds)
  return {kind: dict(t) for kind, t in out.items()}


def mean_seconds(key: tuple, timings: Mapping[tuple, Sequence[float]]
                 ) -> float:
  """The mean wall time of the finished runs of ``key``, else of all
  finished runs; ``nan`` without any."""
  times = timings.get(key) or [t for ts in timings.values() for t in ts]
  return sum(times) / len(times) if times else math.nan


def estimate_seconds(keys: Sequence[tuple], timings: Mapping[tuple, Sequence[float]],
                     lengths: Sequence[float] | None = None
                     ) -> Tuple[float, int]:
  """Estimated wall seconds of runs with these ``(model, costs)`` keys.

  Each run counts the mean wall time of the finished runs of its key, or,
  without any, of all finished runs; with ``lengths`` (e.g. each run's
  epochs, with ``timings`` per epoch: :func:`read_epoch_timings`), that
  mean times the run's length. Returns ``(seconds, number of runs
  estimated from their own key)``; ``(nan, 0)`` without any finished run.
  """
  if not any(timings.values()):
    return math.nan, 0
  lengths = [1.0] * len(keys) if lengths is None else list(lengths)
  total = sum(mean_seconds(key, timings) * n
              for key, n in zip(keys, lengths, strict=True))
  return total, sum(1 for key in keys if timings.get(key))


def eta_seconds(left: Sequence[tuple], running: Sequence[Tuple[tuple, float]],
                timings: Mapping[tuple, Sequence[float]], slots: int,
                left_lengths: Sequence[float] | None = None,
                running_lengths: Sequence[float] | None = None) -> float:
  """Seconds until the runs ``left`` (their keys) and ``running`` (``(key,
  seconds since it started)``) are done, ``slots`` runs at a time; ``nan``
  without a finished run to estimate from. With lengths (e.g. epochs, and
  ``timings`` per epoch), each run counts its key's mean times its length.

  The work is shared by no more slots than there are runs to do, and the
  sweep takes at least as long as its longest run: the last run running
  alone, or one long run beside short ones, is not sped up by slots that
  stand idle.
  """
  if not left and not running:
    return 0.0
  if not any(timings.values()):
    return math.nan
  left_lengths = [1.0] * len(left) if left_lengths is None else left_lengths
  running_lengths = ([1.0] * len(running) if running_lengths is None
                     else running_lengths)
  work = [mean_seconds(key, timings) * n
          for key, n in zip(left, left_lengths, strict=True)]
  work += [max(mean_seconds(key, timings) * n - elapsed, 0.0)
           for (key, elapsed), n in zip(running, running_lengths, strict=True)]
  shared = sum(work) / max(min(slots, len(work)), 1)
  return max(shared, max(work))


def format_eta(seconds: float) -> str:
  if math.isnan(seconds):
    return "ETA when a run has finished"
  return f"ETA {datetime.timedelta(seconds=round(seconds))}"


class Progress:
  """Counts a sweep's runs as they start and end, and says where it stands.

  The ETA counts the pace of one kind of device: that of the run that last
  finished in this sweep (the sweep's workers), from every finished run's
  share on that kind (:func:`device_segments`), so the runs a GPU finished
  before do not speed up the ETA of a CPU sweep resuming them. Until a run
  finishes in this sweep, it pools every kind.

  Args:
    runs: ``{run name: (model, costs)}`` of every run of the sweep.
    clock: seconds, monotonic.
    epochs: ``{run name: epochs it trains}``; with it, a finished run
      counts its wall time per epoch and a run left that mean times its
      own epochs (e.g. Blocks' 200-epoch columns beside 40-epoch ones).
      Without it every run counts as one unit.
    slots: how many runs the launcher runs at once, if it knows (the local
      launcher's ``--parallel``); the ETA divides the work by it, or by
      the most runs seen running at once if that is more (a Ray cluster's
      workers, which only show as runs start).
    epochs_done: ``{run name: epochs}`` the runs not finished trained
      before this sweep (:func:`read_epochs_done`); a run left counts only
      the epochs it has still to train.
    history: ``[(timing, planned epochs), ...]`` of finished runs that are
      not the sweep's (other runs of its workdir, when ``--only`` or
      ``--seeds`` keeps some): their pace counts as that of the sweep's
      finished runs, from the first line. Used only with ``epochs``.
  """

  def __init__(self, runs: Mapping[str, tuple], clock,
               epochs: Mapping[str, float] | None = None,
               slots: int | None = None,
               epochs_done: Mapping[str, float] | None = None,
               history: Sequence[Tuple[Timing, float]] = ()):
    self._keys = dict(runs)
    self._slots = int(slots or 0)
    self._epochs = dict(epochs or {})
    self._clock = clock
    self._running: Dict[str, float] = {}  # name -> start time
    # name -> epochs done before it (re)started, or before the sweep
    self._resumed_at: Dict[str, float] = {
        name: float(done) for name, done in (epochs_done or {}).items()}
    self._done: Dict[str, str] = {}  # name -> kind
    # {device kind: {(model, costs): [seconds per planned epoch, ...]}}, each
    # run's share on that kind (per run where its length is unknown); and
    # {(model, costs): [...]} of whole runs, wherever they ran
    self._timings: Dict[str, Dict[tuple, List[float]]] = (
        collections.defaultdict(lambda: collections.defaultdict(list)))
    self._pooled: Dict[tuple, List[float]] = collections.defaultdict(list)
    self._device: str | None = None  # where this sweep's runs finish
    self._peak = 0
    if self._epochs:
      for timing, planned in history:
        self._record(timing, planned)

  @property
  def total(self) -> int:
    return len(self._keys)

  def counts(self) -> Dict[str, int]:
    """``{kind: runs}`` of the runs done so far (:data:`DONE_KINDS`)."""
    out = dict.fromkeys(DONE_KINDS, 0)
    for kind in self._done.values():
      out[kind] += 1
    return out

  def started(self, name: str, epochs_done: float = 0.0) -> bool:
    """Notes that run ``name`` started, resuming after ``epochs_done``
    epochs (:func:`read_epochs_done`); ``False`` if it was already running
    (started again after its process or worker was lost)."""
    again = name in self._running
    self._running[name] = self._clock()
    self._resumed_at[name] = float(epochs_done)
    self._peak = max(self._peak, len(self._running))
    return not again

  def stopped(self, name: str) -> None:
    """Notes that run ``name`` stopped without an end (it is started again)."""
    self._running.pop(name, None)

  def done(self, name: str, kind: str, timing: Timing | None = None) -> None:
    """Notes that run ``name`` ended as ``kind``; ``timing`` is its
    :func:`run_timing` if it is finished."""
    if kind not in DONE_KINDS:
      raise ValueError(f"Unknown end of a run: {kind!r}.")
    self._running.pop(name, None)
    self._done[name] = kind
    if not timing:
      return
    # Per planned epoch (:func:`pace`); a run whose length the sweep does
    # not know counts whole, as the runs left of unknown length do.
    self._record(timing, self._length(name))
    if kind == "finished":
      self._device = timing.device

  def _record(self, timing: Timing, length: float) -> None:
    """Counts a finished run's pace, per device kind and pooled."""
    for device, seconds in pace(timing, length).items():
      self._timings[device][timing.key].append(seconds)
    self._pooled[timing.key].append(
        sum(seconds for _, seconds, _ in timing.segments) / length)

  def _length(self, name: str, default: float | None = 1.0) -> float | None:
    """The epochs run ``name`` trains; ``default`` if unknown."""
    length = self._epochs.get(name)
    return float(length) if length and math.isfinite(length) else default

  def _left(self, name: str) -> float:
    """What a run has left to train when it (re)starts, or now if it has
    not: its epochs less those done before (one unit if its length is
    unknown)."""
    length = self._length(name, None)
    if length is None:
      return 1.0
    return max(length - self._resumed_at.get(name, 0.0), 0.0)

  def timings(self) -> Dict[tuple, List[float]]:
    """``{(model, costs): [seconds per planned epoch (per run where its
    length is unknown), ...]}`` the ETA counts: at the pace of this sweep's
    device, else of whole runs wherever they ran."""
    if self._device in self._timings:
      return dict(self._timings[self._device])
    return dict(self._pooled)

  def eta(self) -> float:
    now = self._clock()
    left = [name for name in self._keys
            if name not in self._done and name not in self._running]
    return eta_seconds(
        [self._keys[n] for n in left],
        [(self._keys.get(n), now - start) for n, start in self._running.items()],
        self.timings(), max(self._peak, self._slots),
        left_lengths=[self._left(n) for n in left],
        running_lengths=[self._left(n) for n in self._running])

  def line(self, name: str, text: str) -> str:
    """The progress line of an event of run ``name``."""
    done, running = len(self._done), len(self._running)
    left = self.total - done - running
    return (f"[{done}/{self.total} done, {running} running, {left} left; "
            f"{format_eta(self.eta())}] {name}: {text}")
