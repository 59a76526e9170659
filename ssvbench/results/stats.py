"""Uncertainty of benchmark numbers: bootstrap intervals, paired tests, seeds, ties.

A leaderboard ranks methods; a rank is only worth something if the gap between two
rows is larger than what re-drawing the test set (or the pre-training seed) would move.
This module holds every statistic ssvbench attaches to a number, in one place.

Outcomes. An evaluator describes each accuracy-like metric by its per-unit outcomes:
  * `outcomes`: float [R, N] in [0, 1]: R repeats (few-shot seeds; 1 otherwise) of N
    units. A unit is a test VIDEO for k-NN, linear, retrieval, few-shot linear and
    fine-tuning (evaluators score view-averaged features, so the views of a video are
    one unit and are resampled together), and an EPISODE for episodic few-shot.
  * `statistic`: 'mean' (metric = 100 * mean of outcomes) or 'mean_class' (metric =
    100 * mean over the classes present of the per-class mean; needs `labels` [N]).
  * optional `labels` [N] (true classes) and `predicted` [R, N] (predicted classes, top-1
    metrics only): saved in the predictions sidecar, used by McNemar's test.

Intervals (`<metric>_ci95` = HALF-WIDTH of the 95% interval, in the metric's units,
i.e. percentage points for accuracies):
  * one repeat (k-NN, linear, retrieval, fine-tune, class subsets): percentile bootstrap
    over test videos, `NUM_RESAMPLES` resamples, seeded (`BOOTSTRAP_SEED`), half-width =
    (q97.5 - q2.5) / 2. For a plain accuracy this agrees with the Wilson interval
    (tested within 20% at n = 5000); it is 0 when every outcome is the same (0% or
    100%), where it says nothing: read such an interval as unknown, not as exact.
  * few-shot linear (R seeds of few-shot training draws, each scored on the same test
    videos): a two-way bootstrap: each resample draws the test videos AND the seeds
    with replacement, so the interval holds both the test-set sampling and the
    variability of the few-shot draw. With 3 seeds the seed part is coarse; it is still
    honest about both sources, unlike a std over seeds on one fixed test set.
  * episodic few-shot keeps its closed form 1.96 * std / sqrt(episodes) over episodes
    (exactly the percentile bootstrap over episodes in the large-sample limit; kept so
    that recorded values do not change). It is conditional on the test videos the
    episodes are drawn from: many thousand episodes re-use a few hundred videos, so it
    understates the test-set sampling error. The evaluator therefore also reports, in
    its details (`ci95_over_query_videos`), a cluster bootstrap of the same mean over
    the videos that served as queries (`ratio_bootstrap_ci95`), which holds the
    query-side test sampling too (support-side sampling is still not in it).

Paired comparisons (`paired_bootstrap`, `mcnemar`): two records scored on the same units
(same protocol fingerprint and manifest: same test videos, same episodes, same few-shot
draws) are compared by resampling the SAME units for both, so the shared difficulty of
a video cancels. The p-value is the two-sided bootstrap p of the difference being 0
(the fraction of resampled differences at least as far from the observed one as 0 is,
shift method), and McNemar's exact binomial test on the discordant videos for top-1.

Seeds and ties (`aggregate_seeds`, `tied_with_best`): see their docstrings.

Metric directions (`direction`): whether higher or lower is better, declared here for
every metric that is not higher-is-better; the evaluators that define such metrics
(diagnostics) point to this registry, and tables read it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

NUM_RESAMPLES = 1000
PAIRED_RESAMPLES = 10000
BOOTSTRAP_SEED = 0
STATISTICS = ("mean", "mean_class")

HIGHER, LOWER = "higher", "lower"
# Metric leaf name -> direction, for metrics where LOWER is better. Everything else
# (accuracies, recalls, effective rank) is higher-is-better. Leaves ending in `loss` or
# `error` are lower-is-better too.
LOWER_IS_BETTER = {
    "alignment": "diagnostics: mean squared distance between views of a video",
    "uniformity": "diagnostics: log mean Gaussian potential, more negative = more uniform",
    "loss": "cross-entropy",
    "test_loss": "cross-entropy",
}


def direction(metric: str) -> str:
  """'higher' or 'lower': which way a metric (full name, e.g. 'diagnostics/alignment',
  or a `_ci95`/`_std` sibling's base) is better."""
  leaf = metric.rsplit("/", 1)[-1]
  for suffix in ("_ci95", "_std"):
    if leaf.endswith(suffix):
      leaf = leaf[:-len(suffix)]
  if leaf in LOWER_IS_BETTER or leaf.endswith("loss") or leaf.endswith("error"):
    return LOWER
  return HIGHER


# --------------------------------------------------------------------------- outcomes


def outcome(correct: np.ndarray, *, statistic: str = "mean", labels: np.ndarray | None = None,
            predicted: np.ndarray | None = None, unit: str = "video") -> dict[str, Any]:
  """Packs per-unit outcomes of one metric (see the module docstring)."""
  correct = np.asarray(correct, np.float64)
  if correct.ndim == 1:
    correct = correct[None, :]
  if statistic not in STATISTICS:
    raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}.")
  if statistic == "mean_class" and labels is None:
    raise ValueError("statistic 'mean_class' needs labels.")
  packed: dict[str, Any] = {"outcomes": correct, "statistic": statistic, "unit": unit}
  if labels is not None:
    packed["labels"] = np.asarray(labels, np.int64)
  if predicted is not None:
    predicted = np.asarray(predicted, np.int64)
    packed["predicted"] = predicted[None, :] if predicted.ndim == 1 else predicted
  return packed


def _statistic(outcomes: np.ndarray, rows: np.ndarray, statistic: str,
               labels: np.ndarray | None) -> np.ndarray:
  """Statistic (in %) of [R, N] outcomes on resampled units `rows` [B, M] -> [B, R]."""
  picked = outcomes[:, rows]  # [R, B, M]
  if statistic == "mean":
    return 100.0 * picked.mean(axis=2).T
  classes, label_index = np.unique(labels, return_inverse=True)
  num_classes, num_resamples = len(classes), len(rows)
  # One bincount over (resample, class) pairs: class ids offset by C per resample.
  flat = (label_index[rows] + num_classes * np.arange(num_resamples)[:, None]).ravel()
  counts = np.bincount(flat, minlength=num_resamples * num_classes).reshape(
      num_resamples, num_classes)
  present = counts > 0
  result = np.zeros((num_resamples, len(outcomes)))
  for r in range(len(outcomes)):
    sums = np.bincount(flat, weights=picked[r].ravel(),
                       minlength=num_resamples * num_classes).reshape(counts.shape)
    per_class = np.where(present, sums / np.maximum(counts, 1), 0.0)
    result[:, r] = 100.0 * per_class.sum(axis=1) / present.sum(axis=1)
  return result


def value(packed: Mapping[str, Any]) -> float:
  """The metric (in %) that the outcomes give, averaged over repeats."""
  outcomes = np.asarray(packed["outcomes"], np.float64)
  rows = np.arange(outcomes.shape[1])[None, :]
  return float(_statistic(outcomes, rows, packed["statistic"], packed.get("labels")).mean())


def _resampled(outcome_sets: Sequence[Mapping[str, Any]], num_resamples: int,
               seed: int) -> np.ndarray:
  """[B, len(outcome_sets)] statistics under the SAME unit and repeat resamples."""
  first = np.asarray(outcome_sets[0]["outcomes"])
  num_repeats, num_units = first.shape
  rng = np.random.default_rng(seed)
  arrays = [np.asarray(packed["outcomes"], np.float64) for packed in outcome_sets]
  # Bounded memory: about 4M resampled units per chunk.
  chunk_size = max(1, min(num_resamples, (1 << 22) // max(num_units * num_repeats, 1)))
  results = []
  for start in range(0, num_resamples, chunk_size):
    size = min(chunk_size, num_resamples - start)
    rows = rng.integers(0, num_units, size=(size, num_units))  # With replacement.
    repeats = (rng.integers(0, num_repeats, size=(size, num_repeats)) if num_repeats > 1
               else np.zeros((size, 1), np.int64))
    chunk = []
    for packed, outcomes in zip(outcome_sets, arrays):
      per_repeat = _statistic(outcomes, rows, packed["statistic"], packed.get("labels"))
      chunk.append(np.take_along_axis(per_repeat, repeats, axis=1).mean(axis=1))
    results.append(np.stack(chunk, axis=1))
  return np.concatenate(results)


def bootstrap_ci95(packed: Mapping[str, Any], *, num_resamples: int = NUM_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> float:
  """Half-width (in %) of the percentile-bootstrap 95% interval of one metric.

  Units (videos or episodes) are drawn with replacement; with R > 1 repeats the
  repeats are drawn with replacement too (two-way bootstrap). Deterministic for a seed.
  """
  outcomes = np.asarray(packed["outcomes"])
  if outcomes.shape[1] < 2:
    return 0.0
  draws = _resampled([packed], num_resamples, seed)[:, 0]
  low, high = np.percentile(draws, [2.5, 97.5])
  return float((high - low) / 2.0)


def ratio_bootstrap_ci95(sums: np.ndarray, counts: np.ndarray, *,
                         num_resamples: int = NUM_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> float:
  """Half-width (in %) of the bootstrap interval of sum(sums) / sum(counts) over clusters.

  Each cluster (e.g. a test video with `counts` query appearances, `sums` of them
  correct) is drawn with replacement; clusters with count 0 are left out.
  """
  sums, counts = np.asarray(sums, np.float64), np.asarray(counts, np.float64)
  used = counts > 0
  sums, counts = sums[used], counts[used]
  if len(sums) < 2:
    return 0.0
  rng = np.random.default_rng(seed)
  chunk_size = max(1, (1 << 22) // len(sums))
  draws = []
  for start in range(0, num_resamples, chunk_size):
    rows = rng.integers(0, len(sums), size=(min(chunk_size, num_resamples - start), len(sums)))
    draws.append(100.0 * sums[rows].sum(axis=1) / counts[rows].sum(axis=1))
  low, high = np.percentile(np.concatenate(draws), [2.5, 97.5])
  return float((high - low) / 2.0)


def wilson_ci95(accuracy: float, num: int) -> float:
  """Half-width (in %) of the Wilson 95% interval of a proportion `accuracy` in [0, 1]."""
  z = 1.959963984540054
  denominator = 1.0 + z * z / num
  return 100.0 * z * math.sqrt(accuracy * (1 - accuracy) / num + z * z / (4 * num * num)) / (
      denominator)


# --------------------------------------------------------------------------- paired tests


class MismatchError(ValueError):
  """Two records (or outcome sets) that cannot be compared unit by unit."""


def paired_bootstrap(a: Mapping[str, Any], b: Mapping[str, Any], *,
                     num_resamples: int = PAIRED_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> dict[str, float]:
  """Paired bootstrap of the difference a - b (in points) over shared units.

  Returns:
    {'difference', 'ci95' (half-width), 'low', 'high', 'p_value', 'num_units'}.
  """
  shape_a, shape_b = np.shape(a["outcomes"]), np.shape(b["outcomes"])
  if shape_a != shape_b:
    raise MismatchError(f"outcomes of shape {shape_a} and {shape_b} are not paired.")
  if a["statistic"] != b["statistic"]:
    raise MismatchError(f"statistics {a['statistic']!r} and {b['statistic']!r} differ.")
  difference = value(a) - value(b)
  draws = _resampled([a, b], num_resamples, seed)
  deltas = draws[:, 0] - draws[:, 1]
  low, high = np.percentile(deltas, [2.5, 97.5])
  # Shift method: under the null the resampled differences are centred on 0.
  extreme = np.sum(np.abs(deltas - difference) >= abs(difference) - 1e-12)
  p_value = float(min(1.0, (extreme + 1) / (num_resamples + 1)))
  return {"difference": float(difference), "ci95": float((high - low) / 2.0),
          "low": float(low), "high": float(high), "p_value": p_value,
          "num_units": int(shape_a[1])}


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float]:
  """McNemar's exact (binomial) two-sided test on paired correct/incorrect outcomes.

  Returns:
    {'a_only': videos A gets right and B wrong, 'b_only': the reverse, 'p_value'}.
  """
  correct_a = np.asarray(correct_a).astype(bool).ravel()
  correct_b = np.asarray(correct_b).astype(bool).ravel()
  if correct_a.shape != correct_b.shape:
    raise MismatchError(f"{correct_a.shape} and {correct_b.shape} outcomes are not paired.")
  a_only = int(np.sum(correct_a & ~correct_b))
  b_only = int(np.sum(~correct_a & correct_b))
  total, smaller = a_only + b_only, min(a_only, b_only)
  if total == 0:
    return {"a_only": 0, "b_only": 0, "p_value": 1.0}
  tail = sum(math.comb(total, k) for k in range(smaller + 1))
  # Exact integer arithmetic, then one division: no underflow for thousands of videos.
  p_value = min(1.0, float(2 * tail / (2 ** total)))
  return {"a_only": a_only, "b_only": b_only, "p_value": p_value}


# --------------------------------------------------------------------------- seeds, ties

# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(degrees_of_freedom: int) -> float:
  """The 97.5% quantile of Student's t (1.96 beyond 30 degrees of freedom)."""
  if degrees_of_freedom < 1:
    raise ValueError("t975 needs at least one degree of freedom.")
  return _T975[degrees_of_freedom - 1] if degrees_of_freedom <= 30 else 1.959963984540054


def aggregate_seeds(values: Sequence[float]) -> tuple[float, float | None, int]:
  """(mean, sample std with ddof=1 or None when n = 1, n) of one metric over seeds."""
  values = [float(v) for v in values]
  if not values:
    raise ValueError("aggregate_seeds: no values.")
  n = len(values)
  mean = float(np.mean(values))
  return mean, (float(np.std(values, ddof=1)) if n > 1 else None), n


def row_interval(mean: float, std: float | None, n: int,
                 ci95s: Sequence[float] = ()) -> float | None:
  """Half-width of the 95% interval of a row's value, used for ties.

  Seeds share the test videos, so the test-sampling half-width (the mean of the
  per-seed `_ci95`) does not shrink with n, while the seed part does:
  sqrt(ci_test^2 + (t975(n-1) std / sqrt(n))^2). Either part may be absent; None when
  both are.
  """
  parts = []
  if ci95s:
    parts.append(float(np.mean(ci95s)))
  if std is not None and n > 1:
    parts.append(t975(n - 1) * std / math.sqrt(n))
  if not parts:
    return None
  return float(math.sqrt(sum(p * p for p in parts)))


def tied_with_best(values: Sequence[float | None], intervals: Sequence[float | None], *,
                   better: str = HIGHER, p_values: Sequence[float | None] | None = None,
                   alpha: float = 0.05) -> tuple[int | None, set[int]]:
  """The best row and the rows statistically indistinguishable from it.

  Args:
    values: one value per row (None: missing).
    intervals: 95% half-widths per row (None: unknown).
    better: 'higher' or 'lower'.
    p_values: optional p-value of a paired test of each row against the best (None
      where no paired test was possible); when given for a row it decides: tied iff
      p >= alpha.
    alpha: the test's level.

  Returns:
    (index of the best row or None, indices tied with it, the best excluded). Without a
    paired p-value, a row is tied when its interval overlaps the best row's; a row
    without an interval is tied only when its value equals the best.
  """
  present = [i for i, v in enumerate(values) if v is not None]
  if not present:
    return None, set()
  pick = max if better == HIGHER else min
  best = pick(present, key=lambda i: values[i])
  tied = set()
  for i in present:
    if i == best:
      continue
    p_value = None if p_values is None else p_values[i]
    if p_value is not None:
      if p_value >= alpha:
        tied.add(i)
      continue
    if values[i] == values[best]:
      tied.add(i)
      continue
    if intervals[i] is None or intervals[best] is None:
      continue
    if abs(values[i] - values[best]) <= intervals[i] + intervals[best]:
      tied.add(i)
  return best, tied
