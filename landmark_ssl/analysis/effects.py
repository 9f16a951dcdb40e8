"""The paper's claims as paired per-seed differences between table rows.

JAX-free; ``report`` renders :func:`paired_effects` as a markdown section.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, List, Sequence, Tuple

from scipy import stats as scipy_stats

from landmark_ssl import paper_results
from landmark_ssl.analysis.runs import Run, display

# The paper's claims as paired comparisons of two rows of one table:
# (added cost, the row without it, the row with it).
CLAIMS = (("C", "L", "L+C"), ("C", "L+T", "L+T+C"),
          ("T", "L", "L+T"), ("T", "L+C", "L+T+C"))


@dataclasses.dataclass(frozen=True)
class Effect:
  """One claim in one column: ``base`` minus ``added`` per paired seed.

  Attributes:
    experiment, split, unit, model, settings, fraction: the cell.
    term: the added cost (``'C'`` or ``'T'``).
    base, added: the two rows' costs (e.g. ``'L'`` and ``'L+C'``).
    differences: ``((seed, base - added), ...)`` over the seeds both rows
      have, in display units; positive: adding the cost lowers the error.
    mean: their mean.
    p_sign: two-sided sign test (``nan`` without a non-zero difference).
    p_t: two-sided paired t-test (``nan`` below two pairs).
    paper: the paper's ``base - added``, or None.
  """
  experiment: str
  split: str
  unit: str
  model: str
  settings: str
  fraction: float
  term: str
  base: str
  added: str
  differences: Tuple[Tuple[int, float], ...]
  mean: float
  p_sign: float
  p_t: float
  paper: float | None


def _paired_test(diffs: Sequence[float]) -> Tuple[float, float]:
  """(two-sided sign-test p, two-sided paired t-test p) of differences."""
  nonzero = [d for d in diffs if d != 0]
  p_sign = (scipy_stats.binomtest(sum(d > 0 for d in nonzero), len(nonzero),
                                  0.5).pvalue if nonzero else math.nan)
  p_t = math.nan
  if len(diffs) >= 2:
    sd = math.sqrt(sum((d - sum(diffs) / len(diffs)) ** 2 for d in diffs)
                   / (len(diffs) - 1))
    if sd > 0:
      p_t = float(scipy_stats.ttest_1samp(diffs, 0.0).pvalue)
  return float(p_sign), p_t


def paired_effects(runs: Iterable[Run], metric: str = "landmark_error"
                   ) -> List[Effect]:
  """The claims of :data:`CLAIMS` in every cell where both rows have runs
  of common seeds, per test split (module docstring)."""
  values = {}
  for r in runs:
    for split, metrics in r.metrics.items():
      if split == "validation" or metric not in metrics:
        continue
      shown, unit = display(metric, metrics[metric], r.error_unit)
      key = (r.experiment, split, unit, r.model, r.settings, r.fraction)
      values.setdefault(key, {}).setdefault(r.costs, {})[r.seed] = shown
  out = []
  for key in sorted(values, key=lambda k: (k[0], k[1], k[3], k[4], k[5])):
    exp, split, unit, model, settings, fraction = key
    rows = values[key]
    for term, base, added in CLAIMS:
      if base not in rows or added not in rows:
        continue
      seeds = sorted(set(rows[base]) & set(rows[added]))
      if not seeds:
        continue
      diffs = [rows[base][s] - rows[added][s] for s in seeds]
      p_sign, p_t = _paired_test(diffs)
      pb = paper_results.value(exp, metric, split, model, base, fraction)
      pa = paper_results.value(exp, metric, split, model, added, fraction)
      out.append(Effect(exp, split, unit, model, settings, fraction, term,
                        base, added, tuple(zip(seeds, diffs)),
                        sum(diffs) / len(diffs), p_sign, p_t,
                        None if pb is None or pa is None else pb - pa))
  return out
