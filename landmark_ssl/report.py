r"""Aggregates a sweep's finished runs into the paper's tables.

  python -m landmark_ssl.report --workdir=DIR [--config=experiments/blocks.py ...] \
      [--by=model.beta ...]

Reads every ``results.json`` under ``DIR`` (written by ``train.py``) and
writes ``DIR/report.md`` and ``DIR/report.csv``:

* one table per experiment, test split and metric: rows are the model and
  costs in the paper's order (then any others found), columns the share of
  training images with landmark labels;
* each cell: ``mean ± std (n=...)`` over the seeds, where ``std`` is the
  *sample* standard deviation (``ddof=1``; none with one seed), then the
  paper's number (``landmark_ssl.paper_results``) where it has one;
* units: landmark errors in pixels where the run measured pixels (Blocks),
  otherwise in percent of the normaliser (``results.json`` stores fractions,
  multiplied by 100 here); accuracies, failure rates and AUCs in percent;
* with ``--config`` (repeatable: e.g. both 300W files), the runs of those
  experiments' sweeps that have no finished result, i.e. the missing cells
  (a run of a ``sweep --grid`` counts for its table run, whatever its
  setting);
* with ``--by=KEY`` (repeatable; e.g. the keys of ``sweep --grid``): one
  row per value of those settings (``Seq-MT (L), model.beta=1.0``; runs
  whose config lacks a key, e.g. baselines beside a Seq-MT beta grid, keep
  their plain row, and a key no run has is an error) and a
  "Selection on validation" section: per cell, each value's mean
  validation result over its seeds, the best marked (the runs' own
  selection metric and direction, e.g. lowest landmark error) among the
  values run on every seed of the cell, with the test result beside it.
  A run whose config differs from what its experiment file gives for it
  (a ``quick`` run, other epochs, a grid value not split with ``--by``)
  goes to "Runs outside the tables' protocol", grouped and named by what
  differs, never beside the paper; runs no experiment file describes are
  still averaged per cell, and a "Mixed settings" section names the keys
  in which they differ;
* a "Paired effects of the costs" section: for each column, the paper's
  claims as paired per-seed differences of the test landmark error, C's
  gain (``L - L+C``, ``L+T - L+T+C``) and T's (``L - L+T``, ``L+C -
  L+T+C``): each seed's difference (positive: the added cost lowers the
  error), their mean, a two-sided sign test and a paired t-test over the
  seeds both rows have, and the paper's difference;
* a "Figures" section linking (relative paths) the PNGs of
  ``python -m landmark_ssl.figures`` found in ``DIR/figures/`` (shown
  inline) and in each run's ``figures/`` folder; ``--figures`` draws the
  sweep's figures first (CED curves, overlay grids, maps: a few seconds
  per experiment; without it the report only reads files).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import math
import os
import sys
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from absl import app
from absl import flags
from absl import logging

from landmark_ssl import configs
from landmark_ssl import paper_results
from landmark_ssl import rundir
from landmark_ssl import sweep as sweep_lib
# The records and aggregation live in landmark_ssl.analysis; these names
# stay importable from here.
from landmark_ssl.analysis import figure_manifest
from landmark_ssl.analysis.effects import Effect, paired_effects
from landmark_ssl.analysis.runs import (
    Cell, CellKey, Run, Stats, aggregate, cell_stats, display, experiment_of,
    load_runs, mixed_settings, row_text, setting_order)

REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
CSV_FIELDS = ("experiment", "split", "metric", "unit", "model", "costs",
              "settings", "fraction", "n", "mean", "std", "paper", "seeds")


def seed_ranges(seeds: Iterable[int]) -> str:
  """``[0, 1, 2, 4]`` -> ``'seeds 0-2, 4'``; one seed -> ``'seed 3'``."""
  seeds = sorted(set(seeds))
  spans = []
  for seed in seeds:
    if spans and seed == spans[-1][1] + 1:
      spans[-1][1] = seed
    else:
      spans.append([seed, seed])
  text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)
  return f"seed {text}" if len(seeds) == 1 else f"seeds {text}"


def render_effects(effects: Sequence[Effect]) -> str:
  """The markdown section of :func:`paired_effects` ('' if none)."""
  if not effects:
    return ""
  out = io.StringIO()
  w = out.write
  w("\n## Paired effects of the costs\n\n"
    "Per column, the test landmark error of the row without a cost minus "
    "the row with it, seed by seed (the seeds both rows have; positive: "
    "the cost helps), their mean, "
    "a two-sided sign test and paired t-test over those seeds, and the "
    "paper's difference.\n")
  groups = collections.defaultdict(list)
  for e in effects:
    groups[(e.experiment, e.split, e.unit, e.model, e.settings)].append(e)
  for (exp, split, unit, model, settings), group in groups.items():
    name = paper_results.MODEL_NAMES.get(model, model)
    extra = f", {settings}" if settings else ""
    w(f"\n### {exp}, {split}: {name}{extra} ({unit})\n\n")
    w("| column | claim | per seed | mean | sign p | t p | paper |\n")
    w("| --- | --- | --- | --- | --- | --- | --- |\n")
    for e in sorted(group, key=lambda e: (e.fraction, e.term, len(e.base))):
      per = " ".join(f"{d:+.2f}" for _, d in e.differences)
      p = lambda x: "–" if math.isnan(x) else f"{x:.2g}"
      paper = "–" if e.paper is None else f"{e.paper:+.2f}"
      w(f"| {_fraction_label(e.fraction)} | {e.term}: {e.base} − {e.added} "
        f"| {per} ({seed_ranges(s for s, _ in e.differences)}) "
        f"| {e.mean:+.2f} | {p(e.p_sign)} "
        f"| {p(e.p_t)} | {paper} |\n")
  return out.getvalue()


@dataclasses.dataclass(frozen=True)
class Choice:
  """One setting's validation and test results in a selection."""
  settings: str
  metric: str
  unit: str
  validation: Stats
  test: Dict[str, Stats]  # test split -> stats of the selection metric
  best: bool
  compared: bool  # ran on every seed of the cell, so its mean is compared


def selections(runs: Iterable[Run]) -> Dict[Tuple[str, str, str, float],
                                             List[Choice]]:
  """``{(experiment, model, costs, fraction): [Choice per setting]}`` for
  the cells with more than one ``--by`` setting: each setting's mean
  validation result over its seeds (the runs' selection metric, in display
  units) and its test results; ``best`` marks the best mean in the
  selection's direction (``min`` or ``max``; ties: the first in order)
  among the settings that ran on every seed of the cell (``compared``):
  means over different seeds, i.e. different label subsets, are not
  comparable. No setting complete: none is marked."""
  groups = collections.defaultdict(lambda: collections.defaultdict(list))
  for r in runs:
    groups[(r.experiment, r.model, r.costs, r.fraction)][r.settings].append(r)
  out = {}
  for cell, by_setting in groups.items():
    if len(by_setting) < 2:
      continue
    metric, mode = next(iter(by_setting.values()))[0].selection
    choices = []
    for setting in sorted(by_setting, key=setting_order):
      members = by_setting[setting]
      val = [(r.seed, display(metric, r.metrics["validation"][metric],
                              r.error_unit)[0])
             for r in members if metric in r.metrics.get("validation", {})]
      if not val:
        continue
      unit = display(metric, 0.0, members[0].error_unit)[1]
      test = collections.defaultdict(list)
      for r in members:
        for split, m in r.metrics.items():
          if split != "validation" and metric in m:
            test[split].append((r.seed, display(metric, m[metric],
                                                r.error_unit)[0]))
      choices.append(Choice(setting, metric, unit, cell_stats(val),
                            {k: cell_stats(v) for k, v in sorted(test.items())},
                            False, False))
    if len(choices) < 2:
      continue
    seeds = set().union(*(c.validation.seeds for c in choices))
    choices = [dataclasses.replace(c, compared=set(c.validation.seeds) == seeds)
               for c in choices]
    sign = -1.0 if mode == "max" else 1.0
    ranked = [i for i, c in enumerate(choices) if c.compared]
    best = min(ranked, key=lambda i: sign * choices[i].validation.mean,
               default=None)
    out[cell] = [dataclasses.replace(c, best=(i == best))
                 for i, c in enumerate(choices)]
  return out


def expected_runs(experiment_files: Sequence[str], seeds=None,
                  quick: bool = False, only: str | None = None
                  ) -> List[Tuple[Dict, Tuple]]:
  """``[(run, (experiment, model, costs, fraction, seed)), ...]`` of the
  experiment files' sweeps, as ``sweep --seeds --quick --only`` selects
  them."""
  out = []
  for path in experiment_files:
    module = configs.load_experiment(path)
    runs = module.sweep() if seeds is None else module.sweep(seeds=seeds)
    for run in sweep_lib.select_runs(runs, only=only, quick=quick):
      config = module.get_config(run["config_arg"])
      config.update_from_flattened_dict(run["overrides"])
      out.append((run, (experiment_of(config.data.name),
                        configs.row_model(config.model),
                        config.costs, float(config.data.labeled_fraction),
                        int(config.seed))))
  return out


def missing_runs(expected, runs: Sequence[Run], workdir: str,
                 outside: Sequence[Run] = ()) -> List[Tuple]:
  """``[((experiment, model, costs, fraction), run name, state), ...]`` of
  the expected runs with no finished result at the protocol, in sweep
  order; state is ``'not started'``, ``'started, not finished'`` or
  ``'finished outside the protocol'`` (a run of that name in ``outside``,
  e.g. one trained before the protocol changed)."""
  have = {(r.experiment, r.model, r.costs, r.fraction, r.seed) for r in runs}
  elsewhere = {os.path.basename(os.path.normpath(r.run_dir)) for r in outside}
  out = []
  for run, cell in expected:
    if cell in have:
      continue
    if run["name"] in elsewhere:
      state = "finished outside the protocol"
    elif os.path.isdir(os.path.join(workdir, run["name"])):
      state = "started, not finished"
    else:
      state = "not started"
    out.append((cell[:4], run["name"], state))
  return out


def _fmt(x: float) -> str:
  return f"{x:.2f}"


def _cell_text(stats: Stats | None, paper: float | None) -> str:
  parts = []
  if stats is not None:
    std = "" if math.isnan(stats.std) else f" ± {_fmt(stats.std)}"
    parts.append(f"{_fmt(stats.mean)}{std} (n={stats.n})")
  elif paper is not None:
    parts.append("–")
  if paper is not None:
    parts.append(f"paper {_fmt(paper)}")
  return " · ".join(parts)


_METRIC_ORDER = ("landmark_error", "accuracy/", "failure_rate@", "auc@")


def _metric_rank(metric: str):
  for i, prefix in enumerate(_METRIC_ORDER):
    if metric.startswith(prefix):
      return (i, metric)
  return (len(_METRIC_ORDER), metric)


def _fraction_label(f: float) -> str:
  return f"{100 * f:g}%"


def tables(stats: Mapping[CellKey, Stats], with_paper: bool = True):
  """Yields ``(experiment, split, metric, unit, rows, fractions, cells)``:
  every table of the report, in a stable order; rows are ``(model, costs,
  settings)`` (one per ``--by`` setting of a model and costs, in the
  paper's row order), ``cells[(model, costs, settings, fraction)] = (Stats
  or None, paper number or None)``; ``with_paper=False``: no paper numbers
  (runs outside the paper's protocol)."""
  groups = collections.defaultdict(dict)
  for k, s in stats.items():
    c = k.cell
    groups[(c.experiment, k.split, k.metric, k.unit)][c] = s
  order = list(paper_results.FRACTIONS)

  def table_order(table):
    exp, split, metric, unit = table
    return (order.index(exp) if exp in order else len(order), exp, split,
            _metric_rank(metric), unit)

  for exp, split, metric, unit in sorted(groups, key=table_order):
    found = groups[(exp, split, metric, unit)]
    paper = {(m, c, f): v for (e, met, sp, m, c, f), v in
             paper_results.RESULTS.items()
             if with_paper and e == exp and met == metric and sp == split}
    found_rows = {(c.model, c.costs) for c in found}
    paper_rows = {(m, c) for m, c, _ in paper}
    pairs = [rc for rc in paper_results.ROWS.get(exp, [])
             if rc in found_rows | paper_rows]
    pairs += sorted(found_rows - set(pairs))
    rows = []
    for pair in pairs:
      settings = sorted({c.settings for c in found
                         if (c.model, c.costs) == pair},
                        key=setting_order) or [""]
      rows += [pair + (setting,) for setting in settings]
    fractions = sorted({c.fraction for c in found} | {f for _, _, f in paper})
    cells = {}
    for model, costs, setting in rows:
      for f in fractions:
        s = found.get(Cell(exp, model, costs, setting, f))
        p = paper.get((model, costs, f))
        if s is not None or p is not None:
          cells[(model, costs, setting, f)] = (s, p)
    yield exp, split, metric, unit, rows, fractions, cells


FigureLink = Tuple[str, str]  # (caption, path relative to the report)


def figure_links(workdir: str, runs: Sequence[Run] = ()
                 ) -> Tuple[List[FigureLink], List[Tuple[str, List[FigureLink]]]]:
  """The PNG figures of ``workdir/figures/`` and of each run's
  ``figures/`` folder, as links relative to ``workdir``.

  Returns:
    ``(sweep figures, [(run path, its figures), ...])``.
  """
  def pngs(folder):
    if not os.path.isdir(folder):
      return []
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if n.endswith((".png", ".svg")))  # shown inline
  def links(paths, sweep):
    # Captions as figures recorded them; runs' figures by their file name.
    captions = figure_manifest.read(os.path.dirname(paths[0])) if paths else {}
    return [((captions.get(os.path.basename(p)) if sweep else None)
             or os.path.splitext(os.path.basename(p))[0],
             os.path.relpath(p, workdir).replace(os.sep, "/")) for p in paths]
  own = pngs(os.fspath(rundir.RunDir(workdir).figures_dir))
  is_run = rundir.RunDir(workdir).is_run()
  sweep_links = links(own, not is_run) if own else []
  run_links = []
  for run in sorted(runs, key=lambda r: r.run_dir):
    if os.path.abspath(run.run_dir) == os.path.abspath(workdir):
      continue  # a single run's report: its figures are the ones above
    found = pngs(os.fspath(rundir.RunDir(run.run_dir).figures_dir))
    if found:
      run_links.append((os.path.relpath(run.run_dir, workdir),
                        links(found, False)))
  return sweep_links, run_links


def _render_figures(w, sweep_links: Sequence[FigureLink],
                    run_links: Sequence[Tuple[str, Sequence[FigureLink]]]):
  w("\n## Figures\n\n")
  if not sweep_links and not run_links:
    w("None yet: draw them with `python -m landmark_ssl.figures "
      "--workdir=<this folder>` (or `python -m landmark_ssl.report "
      "--figures`).\n")
    return
  for caption, path in sweep_links:
    w(f"### {caption}\n\n![{caption}]({path})\n\n")
  if run_links:
    w("Figures of single runs:\n\n")
    for run, links in run_links:
      w(f"- {run}: " + " · ".join(f"[{c}]({p})" for c, p in links) + "\n")


def _render_tables(w, stats: Mapping[CellKey, Stats], level: str,
                   with_paper: bool) -> None:
  """Every table of ``stats`` under ``level`` headings."""
  for exp, split, metric, unit, rows, fractions, cells in tables(
      stats, with_paper):
    w(f"\n{level} {exp}, {split}: {metric} ({unit})\n\n")
    if exp == "shapes":
      w("Shapes trains on class labels only (costs C): no landmark labels "
        "are used whatever the fraction.\n\n")
    w("| model | " + " | ".join(_fraction_label(f) for f in fractions) + " |\n")
    w("| --- |" + " --- |" * len(fractions) + "\n")
    for model, costs, setting in rows:
      texts = [_cell_text(*cells.get((model, costs, setting, f), (None, None)))
               for f in fractions]
      w(f"| {row_text(model, costs, setting)} | " + " | ".join(texts) + " |\n")


def split_by_protocol(runs: Sequence[Run]
                      ) -> Tuple[List[Run], Dict[Tuple[str, ...], List[Run]]]:
  """``(runs at the tables' protocol, {differences: runs outside it})``."""
  inside, outside = [], collections.defaultdict(list)
  for r in runs:
    if r.protocol:
      outside[r.protocol].append(r)
    else:
      inside.append(r)
  return inside, dict(outside)


def render_markdown(stats: Mapping[CellKey, Stats],
                    missing: Sequence[Tuple[str, str]] | None = None,
                    unfinished: Sequence[Tuple[str, str]] = (),
                    workdir: str = "",
                    figures: Tuple[Sequence[FigureLink],
                                   Sequence[Tuple[str, Sequence[FigureLink]]]]
                    | None = None,
                    choices: Mapping | None = None,
                    mixed: Mapping | None = None,
                    effects: Sequence[Effect] = (),
                    outside: Mapping[Tuple[str, ...],
                                     Mapping[CellKey, Stats]] | None = None
                    ) -> str:
  """The report's markdown; ``choices``: :func:`selections`, ``mixed``:
  :func:`mixed_settings`, ``effects``: :func:`paired_effects`, ``outside``:
  ``{protocol differences: aggregate}`` of the runs outside the tables'
  protocol (:func:`split_by_protocol`)."""
  out = io.StringIO()
  w = out.write
  w(f"# Results{f' of {workdir}' if workdir else ''}\n\n")
  w("Each cell: mean ± sample standard deviation (ddof=1) over seeds, with "
    "the number of seeds n, then the paper's number (– where no run "
    "finished). Columns: share of "
    "training images with landmark labels. Landmark errors in pixels "
    "(Blocks) or percent of the normaliser; accuracies, failure rates and "
    "AUCs in percent.\n")
  if not stats:
    w("\nNo finished runs yet.\n")
  _render_tables(w, stats, "##", with_paper=True)
  w(render_effects(effects))
  if outside:
    w("\n## Runs outside the tables' protocol\n\n"
      "These runs differ from the config their experiment file gives for "
      "their model, costs, label fraction and seed (what `sweep` trains), "
      "e.g. `quick` runs on a small dataset or other epochs: they are not "
      "averaged with the tables' runs and not set beside the paper's "
      "numbers. Each group names its differences.\n")
    for differ, group in outside.items():
      w(f"\n### Differs in: {', '.join(differ)}\n")
      _render_tables(w, group, "####", with_paper=False)
  if choices:
    w("\n## Selection on validation\n\n"
      "Per cell, each setting's validation result (mean ± std over seeds, "
      "the runs' selection metric), best in bold, and its test results; "
      "choose on validation, report the chosen setting's test number. Only "
      "settings run on every seed of the cell are compared (the others are "
      "marked: their seeds, hence label subsets, differ).\n")
    for (exp, model, costs, frac), options in choices.items():
      w(f"\n### {exp}, {paper_results.row_label(model, costs)}, "
        f"{_fraction_label(frac)}: {options[0].metric} ({options[0].unit})\n\n")
      splits = sorted({k for c in options for k in c.test})
      w("| setting | validation | " + " | ".join(splits) + " |\n")
      w("| --- | --- |" + " --- |" * len(splits) + "\n")
      for c in options:
        val = _cell_text(c.validation, None)
        if c.best:
          val = f"**{val}**"
        elif not c.compared:
          val += f", not compared: seeds {' '.join(map(str, c.validation.seeds))}"
        tests = [_cell_text(c.test.get(sp), None) for sp in splits]
        w(f"| {c.settings} | {val} | " + " | ".join(tests) + " |\n")
  if mixed:
    w(f"\n## Mixed settings ({len(mixed)} cells)\n\n"
      "These cells average runs whose configs differ in more than the seed; "
      "separate them with `--by=<key>` (repeatable):\n\n")
    for cell, differ in mixed.items():
      keys = "; ".join(f"{k} ({', '.join(v)})" for k, v in differ.items())
      w(f"- {cell.experiment}, {row_text(*cell.row)}, "
        f"{_fraction_label(cell.fraction)}: {keys}\n")
  if missing is not None:
    w(f"\n## Missing runs ({len(missing)})\n\n")
    if missing:
      w(f"Runs of the sweep with no finished {rundir.RESULTS}, by cell (rerun the "
        "sweep command to train them; started runs resume):\n\n")
      by_cell = collections.defaultdict(list)
      for cell, name, state in missing:
        by_cell[cell].append(f"{name} ({state})")
      for (exp, model, costs, frac), names in by_cell.items():
        w(f"- {exp}, {paper_results.row_label(model, costs)}, "
          f"{_fraction_label(frac)}: {', '.join(names)}\n")
    else:
      w("None: every run of the sweep has finished.\n")
  if unfinished:
    w(f"\n## Unfinished {rundir.RESULTS} ({len(unfinished)})\n\n")
    for run_dir, status in unfinished:
      w(f"- {run_dir}: status {status}\n")
  if figures is not None:
    _render_figures(w, *figures)
  return out.getvalue()


def csv_rows(stats: Mapping[CellKey, Stats], outside: str = "") -> List[Dict]:
  """One row per table cell, in the order of the markdown tables; cells the
  paper has but no run reached have ``n = 0``. ``outside``: the runs are
  outside the tables' protocol; this text (their differences) goes into
  ``settings`` and no paper number is given."""
  out = []
  for exp, split, metric, unit, rows, fractions, cells in tables(
      stats, with_paper=not outside):
    for model, costs, setting in rows:
      for f in fractions:
        if (model, costs, setting, f) not in cells:
          continue
        s, p = cells[(model, costs, setting, f)]
        out.append(dict(
            experiment=exp, split=split, metric=metric, unit=unit,
            model=model, costs=costs,
            settings="; ".join(t for t in (outside, setting) if t),
            fraction=f,
            n=s.n if s else 0,
            mean="" if s is None else s.mean,
            std="" if s is None or math.isnan(s.std) else s.std,
            paper="" if p is None else p,
            seeds="" if s is None else " ".join(map(str, s.seeds))))
  return out


def write_report(workdir: str, experiment_files: Sequence[str] = (),
                 seeds=None, quick: bool = False, figures: bool = False,
                 figure_options: Mapping | None = None,
                 by: Sequence[str] = (), only: str | None = None) -> str:
  """Writes ``report.md`` and ``report.csv`` in ``workdir``; returns the
  markdown. ``figures``: first draw the sweep's figures
  (``figures.sweep_figures(workdir, **figure_options)``); ``by``: config
  keys that split rows (and give the selection on validation); ``seeds``,
  ``quick``, ``only``: the sweep's, which select the runs expected."""
  everything, unfinished = load_runs(workdir, by,
                                     list(experiment_files) or None)
  if not (everything or unfinished or experiment_files or
          rundir.holds_runs(workdir)):
    raise ValueError(
        f"--workdir={workdir} holds no runs (no directory under it has a "
        f"{rundir.CONFIG}); pass the --workdir the sweep or main wrote to, "
        "or add --config=<experiment file> to list the runs it still lacks.")
  runs, outside = split_by_protocol(everything)
  stats = aggregate(runs)
  outside_stats = {k: aggregate(v) for k, v in outside.items()}
  missing = None
  if experiment_files:
    missing = missing_runs(
        expected_runs(experiment_files, seeds, quick, only),
        everything if quick else runs, workdir,
        outside=() if quick else [r for group in outside.values()
                                  for r in group])
  if figures:
    from landmark_ssl import figures as figures_lib  # pylint: disable=g-import-not-at-top
    figures_lib.sweep_figures(workdir, **{"by": by, **(figure_options or {})})
  text = render_markdown(stats, missing, unfinished, workdir,
                         figure_links(workdir, everything), selections(runs),
                         mixed_settings(runs), paired_effects(runs),
                         outside_stats)
  with open(os.path.join(workdir, REPORT_MD), "w") as f:
    f.write(text)
  with open(os.path.join(workdir, REPORT_CSV), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows(csv_rows(stats))
    for differ, group in outside_stats.items():
      writer.writerows(csv_rows(group, "outside the protocol: "
                                + ", ".join(differ)))
  return text


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_string("workdir", None, "The sweep's directory.",
                      flag_values=flag_values)
  flags.DEFINE_multi_string("config", [], "Experiment file(s) whose sweep "
                            "defines the expected runs; lists missing ones.",
                            flag_values=flag_values)
  flags.DEFINE_string("seeds", None, "Comma-separated seeds the sweep used, "
                      "if not its own.", flag_values=flag_values)
  flags.DEFINE_bool("quick", False, "The sweep ran with --quick.",
                    flag_values=flag_values)
  flags.DEFINE_string("only", None, "The sweep ran with --only=REGEX: only "
                      "its runs are listed as missing (the tables show every "
                      "finished run).", flag_values=flag_values)
  flags.DEFINE_bool("figures", False, "Draw the sweep's figures (CED curves, "
                    "overlay grids; python -m landmark_ssl.figures) before "
                    "writing the report, which links them.",
                    flag_values=flag_values)
  flags.DEFINE_multi_string("by", [], "Config key (dotted, e.g. model.beta; "
                            "repeatable) whose values split the rows, with a "
                            "selection on validation: the keys of sweep "
                            "--grid.", flag_values=flag_values)
  flags.mark_flag_as_required("workdir", flag_values=flag_values)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  FLAGS = flags.FLAGS
  try:
    text = write_report(FLAGS.workdir, FLAGS.config,
                        sweep_lib.parse_seeds(FLAGS.seeds), FLAGS.quick,
                        FLAGS.figures, by=FLAGS.by, only=FLAGS.only)
  except (ValueError, FileNotFoundError) as e:  # a wrong path or file: named
    logging.error("%s", e)
    sys.exit(2)
  print(text)
  print(f"Wrote {os.path.join(FLAGS.workdir, REPORT_MD)} and "
        f"{os.path.join(FLAGS.workdir, REPORT_CSV)}.")


if __name__ == "__main__":
  define_flags()
  app.run(main)
