"""The tables of docs/RESULTS.md and its notes are the committed run files.

RESULTS' Table 1 block must equal, line for line, the sections
``python -m landmark_ssl.report --workdir=results/blocks
--config=experiments/blocks.py`` writes for the Blocks test error: the
table and the paired effects of the costs. The other generated blocks (the
schedule table of docs/notes/schedule_2026.md, the active round's table in
RESULTS, the reproducibility table of docs/notes/reproducibility_2026.md)
are computed here from their folders under results/. After committing new
runs, ``python tests/results_doc_test.py`` rewrites every block, and these
tests pass again; the prose around them is the author's to update.
"""

import csv
import json
import pathlib

import numpy as np
import pytest

from landmark_ssl import compare_runs
from landmark_ssl import configs
from landmark_ssl import paper_results
from landmark_ssl import report

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS_DOC = ROOT / "docs" / "RESULTS.md"
NOTES = ROOT / "docs" / "notes"
SCHEDULE_DOC = NOTES / "schedule_2026.md"
REPRODUCIBILITY_DOC = NOTES / "reproducibility_2026.md"
RUNS = ROOT / "results" / "blocks"
BEGIN = "<!-- table1:begin (generated: see tests/results_doc_test.py) -->"
END = "<!-- table1:end -->"
SECTIONS = ("## blocks, test: landmark_error (pixels)",
            "## Paired effects of the costs")


def _sections(markdown: str, headings) -> str:
  """The ``## `` sections of ``markdown`` whose heading is in ``headings``."""
  kept, keep = [], False
  for line in markdown.splitlines():
    if line.startswith("## "):
      keep = line.strip() in headings
    if keep:
      kept.append(line)
  return "\n".join(kept).strip()


def generated_table1() -> str:
  runs, _ = report.load_runs(str(RUNS))
  runs = [r for r in runs if r.experiment == "blocks"]
  text = report.render_markdown(report.aggregate(runs),
                                effects=report.paired_effects(runs))
  return _sections(text, SECTIONS)


def test_committed_runs_are_small_and_complete():
  # `report --workdir=results/blocks` (RESULTS' command) writes its
  # report beside the runs; git ignores it, and so does this test.
  names = sorted(p.name for p in RUNS.iterdir()
                 if p.name not in (report.REPORT_MD, report.REPORT_CSV))
  assert names
  for name in names:
    files = {p.name for p in (RUNS / name).iterdir()}
    assert files == {"config.json", "results.json", "metrics.jsonl"}, name
    assert sum(p.stat().st_size for p in (RUNS / name).iterdir()) < 200_000


# --------------------------------------------------------------------------
# The 20% and 50% columns: their 200-epoch runs beside the 40-epoch ones.

LONG = ROOT / "results"
FORTY = LONG / "blocks_40ep"  # those columns' runs at 40 epochs
UNCLIPPED = LONG / "blocks_200ep"  # 200 epochs without the gradient clip
# 200-epoch probes of the columns that keep 40 epochs (10%, 100%), with
# the 20% and 50% columns' schedule; their 40-epoch twins are in RUNS
PROBES = LONG / "blocks_200ep_probe"
SCHEDULE_BEGIN = ("<!-- schedule:begin (generated: see "
                  "tests/results_doc_test.py) -->")
SCHEDULE_END = "<!-- schedule:end -->"
# What the 40-epoch and unclipped runs differ from the protocol by.
FORTY_DIFFERENCES = {"train.max_epochs=40.0", "train.eval_every_epochs=1.0",
                     "optim.grad_clip_norm=0.0"}
UNCLIPPED_DIFFERENCES = {"optim.grad_clip_norm=0.0"}
PROBE_DIFFERENCES = {"train.max_epochs=200.0", "train.eval_every_epochs=5.0",
                     "optim.grad_clip_norm=200.0"}


def _jumped_at(run: compare_runs.RunFiles) -> str:
  """The first evaluation whose validation error is more than twice the
  best before it (training blew up, for good or for a while), or '–'."""
  best = np.inf
  for event in run.events:
    if event.get("event") == "eval" and event.get("split") == "validation":
      error = event["landmark_error"]
      if error > 2 * best:
        return str(event["step"])
      best = min(best, error)
  return "–"


def _long_runs() -> list:
  """``(run, clipped)`` of every committed 200-epoch run: the protocol's
  (results/blocks, 20% and 50%), the unclipped ones and the probes of the
  other columns."""
  at_protocol, _ = report.load_runs(str(RUNS))
  unclipped, _ = report.load_runs(str(UNCLIPPED))
  probes, _ = report.load_runs(str(PROBES))
  return ([(r, True) for r in at_protocol if r.fraction in (0.2, 0.5)] +
          [(r, False) for r in unclipped] + [(r, True) for r in probes])


def _forty_epoch_twin(run_dir: str) -> pathlib.Path:
  """The 40-epoch run of a 200-epoch run: in results/blocks_40ep for the
  20% and 50% columns, the protocol's own run for a probe of the others."""
  run_dir = pathlib.Path(run_dir)
  return (RUNS if run_dir.parent == PROBES else FORTY) / run_dir.name


def generated_schedule_table() -> str:
  """Per 200-epoch run (:func:`_long_runs`), with its 40-epoch twin of the
  same name where there is one: both runs' (clipped, unclipped) best step,
  the step where validation jumped (:func:`_jumped_at`), validation and
  test errors, and the paper's."""
  lines = ["| run | epochs | gradient clip | best step | validation jumped "
           "at step | validation | test | paper |", "| --- " * 8 + "|"]
  long_runs = _long_runs()
  key = lambda rc: (rc[0].fraction, rc[0].seed, len(rc[0].costs),
                    rc[0].costs, not rc[1])
  shown = set()  # the 40-epoch twins already in the table
  for run, clipped in sorted(long_runs, key=key):
    name = pathlib.Path(run.run_dir).name
    paper = paper_results.value("blocks", "landmark_error", "test",
                                run.model, run.costs, run.fraction)
    label = (f"{paper_results.row_label(run.model, run.costs)}, "
             f"{run.fraction:.0%}, seed {run.seed}")
    rows = [(_forty_epoch_twin(run.run_dir), "–")] if name not in shown else []
    rows.append((pathlib.Path(run.run_dir), "200" if clipped else "–"))
    shown.add(name)
    for files, clip in rows:
      if not files.is_dir():
        continue
      f = compare_runs.RunFiles.read(files)
      m = f.results["metrics"]
      lines.append(
          f"| {label} | {f.results['epochs']:.0f} | {clip} | "
          f"{f.results['best_step']} | {_jumped_at(f)} | "
          f"{m['validation']['landmark_error']:.2f} | "
          f"{m['test']['landmark_error']:.2f} | {paper:.2f} |")
  return "\n".join(lines)


def test_every_committed_table1_run_is_at_the_protocol():
  runs, unfinished = report.load_runs(str(RUNS))
  assert runs and not unfinished
  assert [r.run_dir for r in runs if r.protocol] == []
  long = [r for r in runs if r.fraction in (0.2, 0.5)]
  assert long  # the columns with the 200-epoch schedule
  for run in long:
    config = json.loads((pathlib.Path(run.run_dir) / "config.json").read_text())
    assert config["train"]["max_epochs"] == 200, run.run_dir


def test_schedule_runs_are_small_complete_and_differ_only_as_named():
  for folder, differences, fractions in (
      (FORTY, FORTY_DIFFERENCES, (0.2, 0.5)),
      (UNCLIPPED, UNCLIPPED_DIFFERENCES, (0.2, 0.5)),
      (PROBES, PROBE_DIFFERENCES, (0.1, 1.0))):
    runs, unfinished = report.load_runs(str(folder))  # a missing folder fails
    assert runs and not unfinished, folder
    for run in runs:
      files = {p.name for p in pathlib.Path(run.run_dir).iterdir()}
      assert files == {"config.json", "results.json", "metrics.jsonl"}
      assert set(run.protocol) == differences, (run.run_dir, run.protocol)
      assert run.fraction in fractions, run.run_dir


# --------------------------------------------------------------------------
# The simulated active-labelling round (suggest on Blocks at 5%).

ACTIVE = ROOT / "results" / "active" / "blocks_f0.05"
ACTIVE_BEGIN = "<!-- active:begin (generated: see tests/results_doc_test.py) -->"
ACTIVE_END = "<!-- active:end -->"
# The round-1 runs a seed may have: (folder, suggestion list, column title).
ROUND1 = (("round1_elt", "suggestions_elt.csv", "+ 50 suggested (ELT)"),
          ("round1_elt_in_frame", "suggestions_elt_in_frame.csv",
           "+ 50 suggested (ELT in frame)"),
          ("round1_random", "suggestions_random.csv", "+ 50 random"))


def _test_error(run: pathlib.Path) -> float:
  results = json.loads((run / "results.json").read_text())
  return results["metrics"]["test"]["landmark_error"]


def generated_active_round() -> str:
  """The round's table: per seed, the test error of round 0 (the Table 1
  run) and of the round-1 runs, from the committed files."""
  seeds = sorted(ACTIVE.iterdir())
  columns = [c for c in ROUND1 if any((d / c[0]).is_dir() for d in seeds)]
  lines = ["| seed | round 0: 5% labelled | " + " | ".join(
      c[2] for c in columns) + " | ELT − random |",
           "| --- " * (len(columns) + 3) + "|"]
  gains = []
  for seed_dir in seeds:
    seed = int(seed_dir.name.removeprefix("s"))
    round0 = _test_error(RUNS / f"seq_mt_L+T+C_f0.05_s{seed}")
    errors = {c[0]: _test_error(seed_dir / c[0])
              for c in columns if (seed_dir / c[0]).is_dir()}
    gain = errors["round1_elt"] - errors["round1_random"]
    gains.append(gain)
    cells = [f"{errors[c[0]]:.2f}" if c[0] in errors else "–"
             for c in columns]
    lines.append(f"| {seed} | {round0:.2f} | " + " | ".join(cells) +
                 f" | {gain:+.2f} |")
  if len(gains) > 1:
    lines.append("| mean | " + "| " * (len(columns) + 1) +
                 f"{np.mean(gains):+.2f} |")
  return "\n".join(lines)


def test_the_round_one_runs_add_their_suggestions_to_round_zero():
  """Each round-1 run trained on round 0's labelled images plus the 50
  images of its suggestion list, with round 0's config and seed."""
  for seed_dir in sorted(ACTIVE.iterdir()):
    seed = int(seed_dir.name.removeprefix("s"))
    round0 = RUNS / f"seq_mt_L+T+C_f0.05_s{seed}"
    config0 = json.loads((round0 / "config.json").read_text())
    labelled0 = json.loads((round0 / "results.json").read_text())[
        "label_subset"]["count"]
    for name, listed, _ in ROUND1:
      run = seed_dir / name
      if not run.is_dir():
        continue
      files = {p.name for p in run.iterdir()}
      assert files == {"config.json", "results.json", "metrics.jsonl",
                       "label_subset.json"}, run
      subset = json.loads((run / "label_subset.json").read_text())
      with open(seed_dir / listed) as f:
        suggested = [int(row["index"]) for row in csv.DictReader(f)]
      assert sorted(subset["suggested"]) == sorted(suggested)
      assert len(suggested) == 50
      assert set(suggested) <= set(subset["indices"])
      assert len(subset["indices"]) == labelled0 + 50
      assert json.loads((run / "config.json").read_text()) == config0
      results = json.loads((run / "results.json").read_text())
      assert results["label_subset"]["count"] == labelled0 + 50


# --------------------------------------------------------------------------
# Reproducibility: one Table 1 run again, with XLA's CPU code limited to
# older vector instructions (as another machine would round).

ISA = ROOT / "results" / "reproducibility" / "blocks_isa"
ISA_BEGIN = "<!-- isa:begin (generated: see tests/results_doc_test.py) -->"
ISA_END = "<!-- isa:end -->"
ISA_RUN = "seq_mt_L_f0.05_s0"
ISA_NAMES = {"default": "all of this CPU's (AVX2, FMA)",
             "AVX": "up to AVX (no AVX2, no FMA)",
             "SSE4_2": "up to SSE4.2 (no AVX)"}


def generated_isa_table() -> str:
  """Per rerun of ``ISA_RUN``: the instructions XLA could use, how many of
  the Table 1 run's logged training steps it matched exactly, and its
  errors, from the committed files."""
  base = compare_runs.RunFiles.read(RUNS / ISA_RUN)
  lines = ["| run | XLA's CPU instructions | training values equal to "
           "Table 1's run | best step | validation | test |",
           "| --- " * 6 + "|"]
  def row(name, isa, run, equal):
    m = run.results["metrics"]
    lines.append(f"| {name} | {isa} | {equal} | {run.results['best_step']} "
                 f"| {m['validation']['landmark_error']:.2f} "
                 f"| {m['test']['landmark_error']:.2f} |")
  row(f"Table 1 (`results/blocks/{ISA_RUN}`)", ISA_NAMES["default"], base, "–")
  for isa in ISA_NAMES:
    run = compare_runs.RunFiles.read(ISA / f"{ISA_RUN}_isa_{isa}")
    # The same run (keys added since count as their defaults) but for XLA_FLAGS.
    assert not configs.config_differences(base.config, run.config), isa
    divergence, common = compare_runs.first_divergence(base.events, run.events)
    equal = (f"all {common} logged steps" if divergence is None else
             f"{divergence.steps_equal} of {common} logged steps (apart from "
             f"step {divergence.step} on)")
    row(f"`--xla_cpu_max_isa={isa}`" if isa != "default" else "again, as is",
        ISA_NAMES[isa], run, equal)
  return "\n".join(lines)


def test_another_cpu_changes_a_run_and_xla_isa_does_not_undo_it():
  """The reproducibility note's claims on results/reproducibility/machines: the 2-epoch run of
  results/reproducibility/threads/quick_default, again on another machine
  (a CPU with AVX-512): with the same code, packages and data it parts from
  step 5; so does the current code, and limiting XLA to AVX2 there changes
  nothing (all three runs on that machine agree to the last bit)."""
  old = compare_runs.RunFiles.read(
      ROOT / "results" / "reproducibility" / "threads" / "quick_default")
  machines = ROOT / "results" / "reproducibility" / "machines"
  runs = {name: compare_runs.RunFiles.read(machines / name)
          for name in ("quick_as_is", "quick_xla_avx2", "quick_code_086e836")}
  same_code = runs["quick_code_086e836"].results["stack"]
  assert same_code["code"] == old.results["stack"]["code"]
  assert same_code["packages"] == old.results["stack"]["packages"]
  assert "avx512f" in runs["quick_as_is"].results["stack"]["cpu_features"]
  assert runs["quick_xla_avx2"].results["stack"]["environment"] == {
      "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}
  # The data: the digests a run on the earlier machine recorded (its
  # 2-epoch runs predate them; the dataset is built the same way).
  earlier = json.loads((RUNS / "seq_mt_L_f0.05_s1" / "results.json"
                        ).read_text())
  assert "avx512f" not in earlier["stack"]["cpu_features"]
  assert earlier["stack"]["platform"] == same_code["platform"]
  for name in ("quick_as_is", "quick_xla_avx2"):
    assert runs[name].results["data"]["splits"] == earlier["data"]["splits"]
  for name, run in runs.items():
    assert not configs.config_differences(old.config, run.config), name
    divergence, common = compare_runs.first_divergence(old.events, run.events)
    assert common == 20 and divergence.step == 5, name
    assert 1e-4 < divergence.relative < 1e-2, name
    assert compare_runs.first_divergence(
        runs["quick_as_is"].events, run.events) == (None, 20), name
    assert run.results["metrics"] == runs["quick_as_is"].results["metrics"]


def test_the_table1_run_on_the_avx512_machine_is_the_reported_one():
  """The reproducibility note's claim: seq_mt_L_f0.05_s0 trained again on the AVX-512 machine
  ends where a new user's run on another machine did (test 3.03 px,
  validation 3.01, best step 1850), apart from the committed run (2.00) from
  its first logged step, with the same config and data."""
  base = compare_runs.RunFiles.read(RUNS / ISA_RUN)
  run = compare_runs.RunFiles.read(
      ROOT / "results" / "reproducibility" / "machines" / ISA_RUN)
  assert not configs.config_differences(base.config, run.config)
  assert "avx512f" in run.results["stack"]["cpu_features"]
  earlier = json.loads((RUNS / "seq_mt_L_f0.05_s1" / "results.json"
                        ).read_text())
  assert run.results["data"]["splits"] == earlier["data"]["splits"]
  divergence, common = compare_runs.first_divergence(base.events, run.events)
  assert common == 40 and divergence.step == 50
  m = run.results["metrics"]
  assert (round(m["test"]["landmark_error"], 2),
          round(m["validation"]["landmark_error"], 2),
          run.results["best_step"]) == (3.03, 3.01, 1850)
  assert round(base.results["metrics"]["test"]["landmark_error"], 2) == 2.00


def test_threads_do_not_change_a_run_and_rounding_does():
  """The reproducibility note's claims on the 2-epoch runs in results/reproducibility/threads:
  again and on one thread every logged value equals the first run's; with
  XLA limited to SSE4.2 the first logged step already differs."""
  threads = ROOT / "results" / "reproducibility" / "threads"
  base = compare_runs.RunFiles.read(threads / "quick_default")
  for name in ("quick_default2", "quick_onethread"):
    run = compare_runs.RunFiles.read(threads / name)
    assert compare_runs.first_divergence(base.events, run.events) == (None, 20)
    assert run.results["metrics"] == base.results["metrics"]
  sse = compare_runs.RunFiles.read(threads / "quick_sse42")
  divergence, _ = compare_runs.first_divergence(base.events, sse.events)
  assert divergence.step == 5 and 0 < divergence.relative < 1e-2
  loss = [[e["loss"] for e in run.events if e["event"] == "train"][0]
          for run in (base, sse)]
  assert 1e-6 < abs(loss[0] - loss[1]) / loss[0] < 1e-4  # "about 1e-5"


# --------------------------------------------------------------------------
# Every generated block is its generator's output; the main rewrites them
# after new runs are committed.

def _blocks():
  """``(doc, begin, end, generator)`` of every generated block."""
  return ((RESULTS_DOC, BEGIN, END, generated_table1),
          (SCHEDULE_DOC, SCHEDULE_BEGIN, SCHEDULE_END,
           generated_schedule_table),
          (RESULTS_DOC, ACTIVE_BEGIN, ACTIVE_END, generated_active_round),
          (REPRODUCIBILITY_DOC, ISA_BEGIN, ISA_END, generated_isa_table))


@pytest.mark.parametrize("doc_path,begin,end,generate", _blocks(),
                         ids=[block[-1].__name__ for block in _blocks()])
def test_generated_block_is_the_committed_runs(doc_path, begin, end,
                                               generate):
  """The text between the markers is what ``generate`` makes of the
  committed run files (Table 1 is the report of results/blocks)."""
  doc = doc_path.read_text()
  assert begin in doc and end in doc, f"{doc_path} lacks {begin!r}"
  block = doc.split(begin, 1)[1].split(end, 1)[0].strip()
  generated = generate()
  assert block == generated, (
      f"{doc_path.relative_to(ROOT)}'s block {begin} differs from the "
      "committed run files; `python tests/results_doc_test.py` rewrites it "
      "as:\n\n" + generated)


def rewrite_generated_blocks() -> list:
  """Rewrites each generated block from the committed runs; returns the
  documents that changed."""
  changed = []
  for doc_path, begin, end, generate in _blocks():
    doc = doc_path.read_text()
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{begin}\n\n{generate()}\n\n{end}{tail}"
    if new != doc:
      doc_path.write_text(new)
      changed.append(doc_path.relative_to(ROOT))
  return sorted(set(changed))


if __name__ == "__main__":
  changed = rewrite_generated_blocks()
  print("\n".join(f"rewrote {path}" for path in changed) or
        "every generated block is current")
