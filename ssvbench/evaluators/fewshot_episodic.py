"""Episodic few-shot recognition with a nearest-prototype classifier on frozen features.

The few-shot action recognition literature (ARN, CMN, TRX) reports N-way K-shot
accuracy over thousands of random episodes drawn from held-out "novel" classes. With
frozen self-supervised features nothing is trained on base classes, so the protocol
reduces to: per episode pick N novel classes, K support and Q query videos of each;
classify every query by cosine similarity to the class prototypes (the mean of the
L2-normalised support features, re-normalised). We report mean accuracy and the 95%
interval 1.96 * std / sqrt(episodes) (std with ddof=1). That interval covers the
sampling of episodes only, conditional on the videos they are drawn from (see
`ssvbench.results.stats`); per-episode accuracies are kept for paired comparisons.
`details['ci95_over_query_videos']` gives a second interval of the same mean, from a
bootstrap over the videos that served as queries (each video's correct and total query
appearances resampled together): it also holds the sampling of the test videos on the
query side (not on the support side), and is the one to read before trusting a gap.

Videos of the novel classes come from the test split, or from train and test pooled
(the ARN/CMN lists use every video of a novel class, whichever standard split it is
in); views are averaged per video before normalising. Episodes are sampled with one
seeded generator per (ways, shots) and evaluated in vectorised chunks, so 10,000
episodes take seconds and the draw does not depend on the chunk size.
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence

import numpy as np

from ssvbench.evaluators import features as features_lib
from ssvbench.evaluators import knn
from ssvbench.results import stats

SOURCES = ("test", "train+test")
_SAMPLING_BLOCK = 1000


def sample_episodes(class_members: list[np.ndarray], ways: int, shots: int, queries: int,
                    num_episodes: int, seed: int) -> np.ndarray:
  """Draws episodes: [episodes, ways, shots + queries] video indices, supports first.

  Classes are drawn without replacement per episode, and videos without replacement per
  class. Every class must have at least shots + queries members.
  """
  rng = np.random.default_rng([seed, ways, shots, queries])
  counts = np.array([len(m) for m in class_members])
  padded = np.full((len(class_members), counts.max()), -1, np.int64)
  for row, members in enumerate(class_members):
    padded[row, :len(members)] = members
  blocks = []
  # Fixed-size blocks bound the memory of the sort keys; the draw depends on the seed only.
  for start in range(0, num_episodes, _SAMPLING_BLOCK):
    size = min(_SAMPLING_BLOCK, num_episodes - start)
    classes = np.argsort(rng.random((size, len(class_members))), axis=1)[:, :ways]
    keys = rng.random((size, ways, counts.max()))
    # Padding slots sort last, so the first shots + queries picks are real members.
    keys[np.arange(counts.max())[None, None, :] >= counts[classes][:, :, None]] = np.inf
    picks = np.argsort(keys, axis=2)[:, :, :shots + queries]
    blocks.append(padded[classes[:, :, None], picks])
  return np.concatenate(blocks)


def episode_accuracies(features: np.ndarray, episodes: np.ndarray, shots: int,
                       chunk: int = 256, correct_out: np.ndarray | None = None) -> np.ndarray:
  """Per-episode nearest-prototype accuracy in [0, 1].

  Args:
    features: [N, D] L2-normalised video features.
    episodes: [E, ways, shots + queries] indices into `features`, supports first.
    shots: supports per class.
    chunk: episodes per vectorised step (bounds memory: chunk * ways * (shots + queries) * D).
    correct_out: optional bool [E, ways * queries], filled with each query's correctness
      (in the order of `episodes[:, :, shots:]` flattened).

  Returns:
    [E] float64 accuracies. A query equally close to two prototypes is assigned to the
    one listed first in the episode.
  """
  accuracies = np.zeros(len(episodes))
  ways = episodes.shape[1]
  for start in range(0, len(episodes), chunk):
    block = features[episodes[start:start + chunk]]  # [e, ways, shots + queries, D]
    prototypes = knn.l2_normalise(block[:, :, :shots].mean(axis=2))  # [e, ways, D]
    similarities = np.einsum("ewqd,evd->ewqv", block[:, :, shots:], prototypes)
    correct = similarities.argmax(axis=-1) == np.arange(ways)[None, :, None]
    accuracies[start:start + chunk] = correct.reshape(len(block), -1).mean(axis=1)
    if correct_out is not None:
      correct_out[start:start + chunk] = correct.reshape(len(block), -1)
  return accuracies


class Evaluator:
  """N-way K-shot episodic accuracy (percent) with 95% intervals on the novel classes."""

  def __init__(self, novel_classes: Sequence[int] | str = "all", ways: int = 5,
               shots: Sequence[int] = (1, 5), queries: int = 1, num_episodes: int = 10_000,
               seed: int = 0, source: str = "test", chunk: int = 256):
    """Configures the episodes.

    Args:
      novel_classes: class indices episodes are drawn from, or 'all' for every class.
      ways: classes per episode.
      shots: support videos per class; one metric per entry.
      queries: query videos per class per episode.
      num_episodes: episodes per shot count.
      seed: sampling seed.
      source: 'test', or 'train+test' to pool both splits' videos of the novel classes.
      chunk: episodes per vectorised step.
    """
    if source not in SOURCES:
      raise ValueError(f"fewshot_episodic: source must be one of {SOURCES}, got {source!r}.")
    if ways < 2 or queries < 1 or num_episodes < 2 or not shots or min(shots) < 1:
      raise ValueError("fewshot_episodic: need ways >= 2, queries >= 1, num_episodes >= 2 and "
                       f"shots >= 1, got {ways}, {queries}, {num_episodes}, {shots}.")
    if isinstance(novel_classes, str):
      if novel_classes != "all":
        raise ValueError(f"fewshot_episodic: novel_classes must be a list of class indices or "
                         f"'all', got {novel_classes!r}.")
      self.novel_classes = "all"
    else:
      self.novel_classes = tuple(int(c) for c in novel_classes)
      if not self.novel_classes:
        raise ValueError("fewshot_episodic: novel_classes is empty.")
      if len(set(self.novel_classes)) != len(self.novel_classes):
        raise ValueError(f"fewshot_episodic: novel_classes has duplicates: {novel_classes}.")
    self.ways, self.queries, self.num_episodes = int(ways), int(queries), int(num_episodes)
    self.shots = tuple(int(s) for s in shots)
    self.seed, self.source, self.chunk = int(seed), source, int(chunk)
    self.details: dict = {}
    self.skipped: dict[str, str] = {}
    self.predictions: dict[str, dict] = {}

  def _pool(self, train, test):
    if self.source == "test":
      return test.video_features(), test.labels
    return (np.concatenate([train.video_features(), test.video_features()]),
            np.concatenate([train.labels, test.labels]))

  def run(self, train: features_lib.FeatureSet, test: features_lib.FeatureSet,
          val: features_lib.FeatureSet | None = None) -> Iterator[tuple[str, float]]:
    """Yields ('{ways}way_{shots}shot', %) and its '_ci95' per shot count."""
    del val  # Nothing is selected.
    self.skipped, self.predictions = {}, {}
    features, labels = self._pool(train, test)
    if self.novel_classes == "all":
      novel = np.unique(labels)
    else:
      novel = np.array(self.novel_classes)
      outside = novel[(novel < 0) | (novel >= train.num_classes)]
      if len(outside):
        # Protocols with a fixed class count are checked at load time (protocol.validate);
        # this only happens when the class count comes from the data.
        reason = (f"novel classes {outside.tolist()} are outside this data's class list "
                  f"[0, {train.num_classes})")
        logging.warning("fewshot_episodic: skipping: %s.", reason)
        for shots in self.shots:
          name = f"{self.ways}way_{shots}shot"
          self.skipped[name] = self.skipped[name + "_ci95"] = reason
        return
    members = [np.nonzero(labels == c)[0] for c in novel]
    counts = np.array([len(m) for m in members])
    self.details = {"num_novel_classes": len(novel), "videos_per_class_min": int(counts.min()),
                    "source": self.source, "num_episodes": self.num_episodes}
    normalised = knn.l2_normalise(features)
    for shots in self.shots:
      name = f"{self.ways}way_{shots}shot"
      needed = shots + self.queries
      if len(novel) < self.ways or counts.min() < needed:
        short = novel[counts < needed]
        reason = (f"needs {self.ways} novel classes with >= {needed} videos each in "
                  f"'{self.source}'; {len(novel)} novel classes, of which {len(short)} have "
                  f"fewer (e.g. {short[:5].tolist()})")
        logging.warning("fewshot_episodic: skipping %s: %s.", name, reason)
        self.skipped[name] = self.skipped[name + "_ci95"] = reason
        continue
      episodes = sample_episodes(members, self.ways, shots, self.queries, self.num_episodes,
                                 self.seed)
      correct = np.zeros((len(episodes), self.ways * self.queries), bool)
      fractions = episode_accuracies(normalised, episodes, shots, self.chunk, correct)
      # Per EPISODE: a paired comparison of two records re-uses the same episodes.
      self.predictions[name] = stats.outcome(fractions, unit="episode")
      # The same mean, resampled by query VIDEO: also holds which test videos there are.
      queries = episodes[:, :, shots:].reshape(len(episodes), -1).ravel()
      self.details.setdefault("ci95_over_query_videos", {})[name] = stats.ratio_bootstrap_ci95(
          np.bincount(queries, weights=correct.ravel(), minlength=len(labels)),
          np.bincount(queries, minlength=len(labels)))
      accuracies = 100.0 * fractions
      yield name, float(accuracies.mean())
      yield name + "_ci95", float(1.96 * accuracies.std(ddof=1) / np.sqrt(len(accuracies)))
