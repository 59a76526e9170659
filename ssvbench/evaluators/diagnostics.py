"""Label-free representation diagnostics: alignment, uniformity, effective rank.

Accuracy says how good a representation is for one label set; these say what shape it
has, and catch collapse early (a collapsed encoder has tiny alignment AND uniformity
near 0 AND an effective rank near 1).

- alignment (Wang & Isola 2020, alpha=2): mean squared distance between L2-normalised
  features of two views of the same video, averaged over all view pairs of each video
  (sum_{i<j} ||x_i - x_j||^2 = V sum ||x_i||^2 - ||sum x_i||^2, so no pair is
  materialised). Lower is better. It needs positive pairs: with a single view per video
  it is skipped, with the reason recorded.
- uniformity (Wang & Isola, t=2): log of the mean of exp(-t ||x - y||^2) over pairs of
  distinct videos (view-averaged, L2-normalised), on a seeded subsample of at most
  `max_samples` videos. Lower is more uniform; the minimum on the sphere is about -4.
- effective rank (Roy & Vetterli 2007): exp of the entropy of the L1-normalised singular
  values of the view-averaged, raw (not centred, not normalised, as in RankMe) feature
  matrix of the same subsample.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ssvbench.evaluators import features as features_lib

SPLITS = ("train", "test")


def _unit(x: np.ndarray) -> np.ndarray:
  """L2-normalised rows in float64 (a zero row stays zero)."""
  return features_lib.unit_rows(np.asarray(x, np.float64), 1e-12)


def alignment(view_features: np.ndarray) -> float:
  """Mean over videos of the mean squared distance between pairs of its normalised views.

  Args:
    view_features: [N, V, D] with V >= 2.
  """
  num_views = view_features.shape[1]
  if num_views < 2:
    raise ValueError(f"alignment needs at least 2 views per video, got {num_views}.")
  x = _unit(view_features)
  pair_sums = num_views * np.sum(x * x, axis=(1, 2)) - np.sum(x.sum(axis=1) ** 2, axis=1)
  return float(np.mean(pair_sums / (num_views * (num_views - 1) / 2)))


def uniformity(features: np.ndarray, t: float = 2.0, block: int = 1024) -> float:
  """log mean_{i<j} exp(-t ||x_i - x_j||^2) over L2-normalised rows of [N, D] features."""
  if len(features) < 2:
    raise ValueError("uniformity needs at least 2 videos.")
  x = _unit(features)
  squared_norms = np.sum(x * x, axis=1)
  total = 0.0
  for start in range(0, len(x), block):
    rows = slice(start, start + block)
    distances = squared_norms[rows, None] + squared_norms[None, :] - 2.0 * x[rows] @ x.T
    # Keep only pairs i < j.
    upper = np.arange(len(x))[None, :] > np.arange(start, start + len(x[rows]))[:, None]
    total += float(np.exp(-t * np.maximum(distances, 0.0))[upper].sum())
  num_pairs = len(x) * (len(x) - 1) / 2
  return float(np.log(total / num_pairs))


def effective_rank(features: np.ndarray) -> float:
  """exp(entropy of the L1-normalised singular values) of an [N, D] matrix."""
  singular_values = np.linalg.svd(features.astype(np.float64), compute_uv=False)
  if singular_values.sum() <= 0:
    return 0.0
  p = singular_values / singular_values.sum()
  p = p[p > 0]
  return float(np.exp(-np.sum(p * np.log(p))))


def subsample_rows(num_rows: int, max_samples: int, seed: int) -> np.ndarray:
  """Sorted indices of a seeded subsample (all rows when there are at most max_samples)."""
  if num_rows <= max_samples:
    return np.arange(num_rows)
  return np.sort(np.random.default_rng(seed).choice(num_rows, max_samples, replace=False))


class Evaluator:
  """Alignment, uniformity and effective rank of one split's features."""

  # Lower is better for these (declared in `ssvbench.results.stats.LOWER_IS_BETTER`,
  # the registry tables read; a test keeps the two in agreement).
  LOWER_IS_BETTER = ("alignment", "uniformity")

  def __init__(self, split: str = "test", max_samples: int = 4096, seed: int = 0,
               uniformity_t: float = 2.0):
    """Configures which split is described and how.

    Args:
      split: which split's features to describe ('train' or 'test').
      max_samples: videos used for uniformity and effective rank (seeded subsample).
      seed: subsampling seed.
      uniformity_t: t in exp(-t ||x - y||^2).
    """
    if split not in SPLITS:
      raise ValueError(f"diagnostics: split must be one of {SPLITS}, got {split!r}.")
    if max_samples < 2:
      raise ValueError(f"diagnostics: max_samples must be >= 2, got {max_samples}.")
    self.split, self.max_samples, self.seed = split, int(max_samples), int(seed)
    self.uniformity_t = float(uniformity_t)
    self.details: dict = {}
    self.skipped: dict[str, str] = {}

  def run(self, train: features_lib.FeatureSet, test: features_lib.FeatureSet,
          val: features_lib.FeatureSet | None = None) -> Iterator[tuple[str, float]]:
    """Yields ('alignment', .) when V >= 2, ('uniformity', .), ('effective_rank', .)."""
    del val
    self.skipped = {}
    feature_set = train if self.split == "train" else test
    if feature_set.num_views >= 2:
      yield "alignment", alignment(feature_set.view_features())
    else:
      self.skipped["alignment"] = (f"needs two views per video as positive pairs; the {self.split} "
                                   f"features ({feature_set.source}) have one")
    rows = subsample_rows(feature_set.num_videos, self.max_samples, self.seed)
    video_features = feature_set.video_features()[rows]
    self.details = {"split": self.split, "num_videos": len(rows),
                    "num_views": feature_set.num_views}
    if len(rows) >= 2:
      yield "uniformity", uniformity(video_features, self.uniformity_t)
    else:
      self.skipped["uniformity"] = "needs at least two videos"
    yield "effective_rank", effective_rank(video_features)
