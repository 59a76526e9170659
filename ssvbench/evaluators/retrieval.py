"""Nearest-neighbour video retrieval (the VCOP / IIC / PCL protocol, CoCLR variant optional).

Queries are the test videos and the gallery is the training videos. Each video's view
features are averaged, L2-normalised, and compared by cosine; a query is a hit at k if
ANY of its k most similar training videos shares its class, and R@k is the percentage
of hits. `center=True` reproduces CoCLR's variant, which subtracts each set's own mean
feature (test mean from queries, train mean from the gallery) before normalising.

Unlike the reference loaders, no query is dropped: every test video counts. The search
is the chunked, exact, tie-stable one of `knn.top_k_cosine`, so the same code serves a
Kinetics-sized gallery.
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence

import numpy as np

from ssvbench.evaluators import features as features_lib
from ssvbench.evaluators import knn
from ssvbench.results import stats


def hits_at_k(neighbour_labels: np.ndarray, query_labels: np.ndarray,
              ks: Sequence[int]) -> dict[int, np.ndarray]:
  """Per-query hit at k (bool [Q]) from each query's ranked neighbour labels."""
  matches = neighbour_labels == query_labels[:, None]
  # A query with no match in its list gets an infinite rank, even for k beyond the list.
  first_match = np.where(matches.any(axis=1), matches.argmax(axis=1), np.iinfo(np.int64).max)
  return {k: first_match < k for k in ks}


def recall_at_k(neighbour_labels: np.ndarray, query_labels: np.ndarray,
                ks: Sequence[int]) -> dict[int, float]:
  """R@k in percent from each query's ranked neighbour labels [Q, >= max(ks)]."""
  return {k: 100.0 * float(hits.mean())
          for k, hits in hits_at_k(neighbour_labels, query_labels, ks).items()}


class Evaluator:
  """Retrieval recall R@k (percent) of test queries against the training gallery."""

  def __init__(self, ks: Sequence[int] = (1, 5, 10, 20, 50), center: bool = False,
               query_chunk: int = knn.QUERY_CHUNK, gallery_chunk: int = knn.GALLERY_CHUNK):
    """Configures the retrieval evaluator.

    Args:
      ks: recall cut-offs; each is reported as 'R@k'.
      center: subtract each set's mean feature before normalising (CoCLR).
      query_chunk: queries per search kernel call.
      gallery_chunk: gallery rows per search kernel call.
    """
    self.ks = tuple(int(k) for k in ks)
    if not self.ks or min(self.ks) < 1:
      raise ValueError(f"retrieval: ks must be positive integers, got {ks}.")
    self.center = bool(center)
    self.query_chunk, self.gallery_chunk = int(query_chunk), int(gallery_chunk)
    self.details: dict = {}
    self.skipped: dict[str, str] = {}
    self.predictions: dict[str, dict] = {}

  def run(self, train: features_lib.FeatureSet, test: features_lib.FeatureSet,
          val: features_lib.FeatureSet | None = None) -> Iterator[tuple[str, float]]:
    """Yields ('R@k', %) for each k. `val` is unused: retrieval selects nothing."""
    del val
    depth = min(max(self.ks), train.num_videos)
    if depth < max(self.ks):
      # With fewer gallery videos than k, R@k is R@(gallery size): every video is retrieved.
      logging.warning("retrieval: the gallery has %d videos, fewer than k=%d; R@k for larger k "
                      "equals R@%d.", train.num_videos, max(self.ks), depth)
    _, ids = knn.top_k_cosine(test.video_features(), train.video_features(), depth,
                              center=self.center, query_chunk=self.query_chunk,
                              gallery_chunk=self.gallery_chunk)
    self.details = {"gallery_size": train.num_videos, "num_queries": test.num_videos,
                    "center": self.center}
    hits = hits_at_k(train.labels[ids], test.labels, self.ks)
    self.predictions = {f"R@{k}": stats.outcome(hits[k], labels=test.labels) for k in self.ks}
    for k in self.ks:
      yield f"R@{k}", 100.0 * float(hits[k].mean())
