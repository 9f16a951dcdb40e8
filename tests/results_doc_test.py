"""docs/RESULTS.md's Table 1 is the report of the runs committed in results/.

The block between the markers must equal, line for line, the sections
``python -m landmark_ssl.report --workdir=results/blocks
--config=experiments/blocks.py`` writes for the Blocks test error: the
table and the paired effects of the costs. Commit new runs, rerun the
report, paste those two sections, and this test passes again.
"""

import pathlib

from landmark_ssl import report

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS_DOC = ROOT / "docs" / "RESULTS.md"
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


def test_results_doc_table1_is_the_report_of_the_committed_runs():
  doc = RESULTS_DOC.read_text()
  assert BEGIN in doc and END in doc, f"{RESULTS_DOC} lacks the markers"
  block = doc.split(BEGIN, 1)[1].split(END, 1)[0].strip()
  assert block == generated_table1(), (
      "docs/RESULTS.md's Table 1 differs from the report of results/blocks; "
      "regenerate it:\n\n" + generated_table1())


def test_committed_runs_are_small_and_complete():
  names = sorted(p.name for p in RUNS.iterdir())
  assert names
  for name in names:
    files = {p.name for p in (RUNS / name).iterdir()}
    assert files == {"config.json", "results.json", "metrics.jsonl"}, name
    assert sum(p.stat().st_size for p in (RUNS / name).iterdir()) < 200_000
