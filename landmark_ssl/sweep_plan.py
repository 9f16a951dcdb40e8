"""What a sweep trains: one :class:`RunSpec` per run, grouped into
:class:`Job` s (one process each), and the ``landmark_ssl.main`` command
rendered from a job.

Pure: no files are read or written. ``sweep`` builds the specs from an
experiment's ``sweep()``; the launchers (``launcher``, ``ray_launcher``) and
``sweep --dry_run`` render the commands at the end.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from typing import Collection, Dict, List, Mapping, Sequence, Tuple

MAIN_MODULE = "landmark_ssl.main"
SEED_KEY = "seed"
OVERWRITE_ARG = "--overwrite"


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One run of a sweep.

  Attributes:
    experiment: the experiment file given to ``--config``.
    config_arg: its config argument (``'model=seq_mt,costs=L,quick'``;
      ``''`` for none).
    overrides: ``(key, value text)`` pairs, one ``--config.<key>=<value>``
      each, in the command's order: the run's own (its seed among them), its
      grid values, then the sweep's ``--override`` s.
    name: the run's name (its directory's name).
    run_dir: where it trains.
    epochs: the epochs it trains (``sweep`` sets it from the experiment's
      config and the overrides; None where unknown), for the estimates of
      the time left.
  """
  experiment: str
  config_arg: str
  overrides: Tuple[Tuple[str, str], ...]
  name: str
  run_dir: str
  epochs: float | None = None

  @property
  def seed(self) -> str | None:
    """The run's ``seed`` override (as text), or ``None``."""
    return dict(self.overrides).get(SEED_KEY)

  @property
  def cell(self) -> tuple | None:
    """What the run trains but for its seed (``None`` without a seed):
    runs with equal cells are seeds of one table cell and may train in one
    program."""
    if self.seed is None:
      return None
    return (self.experiment, self.config_arg,
            tuple(o for o in self.overrides if o[0] != SEED_KEY))

  @property
  def key(self) -> tuple:
    """``(model, costs)`` of its config argument (its table row)."""
    items = dict(item.split("=", 1) for item in self.config_arg.split(",")
                 if "=" in item)
    return items.get("model"), items.get("costs")


def format_value(value) -> str:
  """A config value as ``--config.key=`` text that config_flags parses back."""
  if isinstance(value, (list, tuple)):
    return str(tuple(value))
  return str(value)


def make_specs(runs: Sequence[Mapping], experiment_file: str, workdir: str,
               overrides: Mapping[str, str] | None = None,
               fixed: Collection[str] | None = None) -> List[RunSpec]:
  """The spec of each run.

  Args:
    runs: ``{"name", "config_arg", "overrides"}`` dicts (``sweep()``).
    experiment_file: the path given to ``--config``.
    workdir: the sweep's directory; run ``r`` trains in ``workdir/r.name``.
    overrides: extra ``--config.<key>=<value>`` for every run (e.g. the data
      directory); they replace a run's own value of the same key (e.g. a
      column's longer schedule, ``configs.table_runs``) unless the key is
      ``fixed``.
    fixed: the run keys an override may not set: those that tell the runs
      apart (label fraction, seed, grid keys). None: all of a run's keys.

  Raises:
    ValueError: ``overrides`` sets a fixed key of a run.
  """
  overrides = dict(overrides or {})
  specs = []
  for r in runs:
    own = r["overrides"]
    clash = sorted(set(overrides) & set(own) & (
        set(own) if fixed is None else set(fixed)))
    if clash:
      raise ValueError(
          f"--override sets {clash}, which the sweep sets per run (run "
          f"{r['name']}); select runs with --only / --seeds instead.")
    pairs = [(k, v) for k, v in own.items() if k not in overrides]
    pairs += list(overrides.items())
    specs.append(RunSpec(
        experiment=experiment_file, config_arg=r["config_arg"],
        overrides=tuple((k, format_value(v)) for k, v in pairs),
        name=r["name"], run_dir=os.path.join(workdir, r["name"])))
  return specs


@dataclasses.dataclass(frozen=True)
class Job:
  """One process of a sweep: one run, or the seeds of a table cell trained
  together (``main --seeds``)."""
  runs: Tuple[RunSpec, ...]

  def __post_init__(self):
    if not self.runs:
      raise ValueError("A job trains at least one run.")
    cells = {r.cell for r in self.runs}
    if len(self.runs) > 1 and (len(cells) != 1 or None in cells):
      raise ValueError("Only runs that differ in their seed alone can share "
                       f"a process: {[r.name for r in self.runs]}.")

  @property
  def name(self) -> str:
    return ",".join(r.name for r in self.runs)

  @property
  def run_dir(self) -> str:
    """Where its output goes: its first run's directory."""
    return self.runs[0].run_dir


def single_jobs(specs: Sequence[RunSpec]) -> List[Job]:
  """One job per run."""
  return [Job((s,)) for s in specs]


def group_seeds(specs: Sequence[RunSpec]) -> List[Job]:
  """One job per table cell (:attr:`RunSpec.cell`), holding its seeds in
  their order, in the order of each cell's first run; a run without a seed
  is a job of its own."""
  cells: Dict[tuple, List[RunSpec]] = {}
  order: List = []
  for spec in specs:
    if spec.cell is None:
      order.append(spec)
      continue
    if spec.cell not in cells:
      cells[spec.cell] = []
      order.append(spec.cell)
    cells[spec.cell].append(spec)
  return [Job(tuple(cells[k])) if isinstance(k, tuple) else Job((k,))
          for k in order]


def _csv(items: Sequence[str]) -> str:
  """A list flag value (absl parses list flags as one CSV row)."""
  out = io.StringIO()
  csv.writer(out, lineterminator="").writerow(items)
  return out.getvalue()


def command(runs: Sequence[RunSpec], python: str,
            overwrite: bool = False) -> Tuple[str, ...]:
  """The ``landmark_ssl.main`` command training ``runs``, program first.

  One run: ``--config=<file>[:<arg>] --config.<key>=<value> ...
  --workdir=<run_dir>``. Several (seeds of one cell): the cell's command
  without the seed, then ``--seeds=...`` and ``--workdirs=...`` (one
  program trains them all). ``overwrite`` appends ``--overwrite`` (main then
  replaces a stored run of another config).
  """
  job = Job(tuple(runs))  # checks that the runs may share a process
  first = job.runs[0]
  argv = [python, "-m", MAIN_MODULE, f"--config={first.experiment}" + (
      f":{first.config_arg}" if first.config_arg else "")]
  if len(job.runs) == 1:
    argv += [f"--config.{k}={v}" for k, v in first.overrides]
    argv.append(f"--workdir={first.run_dir}")
  else:
    argv += [f"--config.{k}={v}" for k, v in first.overrides if k != SEED_KEY]
    argv += [f"--seeds={_csv([r.seed for r in job.runs])}",
             f"--workdirs={_csv([r.run_dir for r in job.runs])}"]
  if overwrite:
    argv.append(OVERWRITE_ARG)
  return tuple(argv)
