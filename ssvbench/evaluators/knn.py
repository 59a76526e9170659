"""Weighted k-nearest-neighbour classification on frozen features (DINO protocol).

Each test video's view-averaged feature is L2-normalised and compared by cosine with
every training video's; its k most similar training videos vote for their classes with
weight exp(similarity / T) (k=20, T=0.07 by default). Views are averaged BEFORE
normalising, matching how retrieval and the published UCF101 protocols pool clips.

The neighbour search is exact and runs in bounded memory at Kinetics scale
(240k x 2048 gallery, 20k queries): queries and gallery are both cut into fixed-size
chunks, padded so that one jit-compiled kernel serves every chunk, and a running top-k
per query is merged chunk by chunk. Ties are broken towards the lower gallery index,
both inside a chunk (`lax.top_k` is documented to prefer the lower index) and across
chunks (the running list, holding earlier chunks, comes first in the merge), so the
result is the same for every chunk size and equal to a stable sort of the full
similarity matrix.

Class-score ties go to the lower class index; a class with no neighbour among the k
never counts as a top-5 hit (so "top-5" cannot be won by sort order alone when fewer
than five classes received votes).
"""

from __future__ import annotations

import functools
import logging
from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ssvbench.evaluators import features as features_lib
from ssvbench.results import stats

# Default chunk sizes: a [1024, 16384] float32 similarity block is 64 MB.
QUERY_CHUNK = 1024
GALLERY_CHUNK = 16384
_MIN_CHUNK = 8


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
  """Returns rows scaled to unit L2 norm, as float32 (a zero row stays zero)."""
  return features_lib.unit_rows(x, eps).astype(np.float32)


def _chunk_size(count: int, limit: int) -> int:
  # Power-of-two buckets keep the number of distinct compiled shapes small.
  return int(min(limit, max(_MIN_CHUNK, 1 << max(0, count - 1).bit_length())))


@functools.partial(jax.jit, static_argnames=("k",))
def _merge_chunk(queries, gallery_chunk, gallery_mean, num_valid, offset, best_sims, best_ids,
                 *, k):
  """Folds one gallery chunk into the running top-k of one query chunk."""
  centred = gallery_chunk - gallery_mean
  norms = jnp.sqrt(jnp.sum(centred * centred, axis=-1, keepdims=True))
  gallery = centred / jnp.maximum(norms, 1e-12)
  sims = queries @ gallery.T
  column = jnp.arange(gallery_chunk.shape[0])
  sims = jnp.where(column[None, :] < num_valid, sims, -jnp.inf)
  chunk_sims, chunk_ids = jax.lax.top_k(sims, min(k, gallery_chunk.shape[0]))
  all_sims = jnp.concatenate([best_sims, chunk_sims], axis=1)
  all_ids = jnp.concatenate([best_ids, chunk_ids + offset], axis=1)
  top_sims, position = jax.lax.top_k(all_sims, k)
  return top_sims, jnp.take_along_axis(all_ids, position, axis=1)


def top_k_cosine(queries: np.ndarray, gallery: np.ndarray, k: int, *, center: bool = False,
                 query_chunk: int = QUERY_CHUNK,
                 gallery_chunk: int = GALLERY_CHUNK) -> tuple[np.ndarray, np.ndarray]:
  """Exact top-k gallery neighbours of each query by cosine similarity, in bounded memory.

  Args:
    queries: [Q, D] features (not necessarily normalised).
    gallery: [G, D] features; read chunk by chunk, never copied whole.
    k: neighbours per query; must be <= G.
    center: subtract each set's own mean before normalising (CoCLR retrieval variant).
    query_chunk: queries per kernel call (upper bound; small inputs use less).
    gallery_chunk: gallery rows per kernel call (upper bound).

  Returns:
    (similarities [Q, k] float32, descending; indices [Q, k] int64 into the gallery).
    Equal similarities are ordered by ascending gallery index.
  """
  num_queries, num_gallery = len(queries), len(gallery)
  if not 1 <= k <= num_gallery:
    raise ValueError(f"top_k_cosine: k={k} must be in [1, {num_gallery}] (the gallery size).")
  if queries.shape[1] != gallery.shape[1]:
    raise ValueError(f"top_k_cosine: query dim {queries.shape[1]} != gallery dim "
                     f"{gallery.shape[1]}.")
  queries = np.asarray(queries, np.float32)
  if center:
    queries = queries - queries.mean(axis=0, dtype=np.float64).astype(np.float32)
    # Mean in float64 by chunks: a [240k, 2048] float32 copy would double the memory.
    gallery_mean = sum(gallery[s:s + gallery_chunk].sum(axis=0, dtype=np.float64)
                       for s in range(0, num_gallery, gallery_chunk)) / num_gallery
  else:
    gallery_mean = np.zeros(gallery.shape[1])
  gallery_mean = jnp.asarray(gallery_mean, jnp.float32)
  queries = l2_normalise(queries)
  query_step = _chunk_size(num_queries, query_chunk)
  gallery_step = _chunk_size(num_gallery, gallery_chunk)
  query_starts = range(0, num_queries, query_step)
  query_blocks = []
  for start in query_starts:
    block = np.zeros((query_step, queries.shape[1]), np.float32)
    part = queries[start:start + query_step]
    block[:len(part)] = part
    query_blocks.append(jax.device_put(block))
  best = [(jnp.full((query_step, k), -jnp.inf, jnp.float32),
           jnp.full((query_step, k), -1, jnp.int32)) for _ in query_starts]
  for offset in range(0, num_gallery, gallery_step):
    part = np.asarray(gallery[offset:offset + gallery_step], np.float32)
    if len(part) < gallery_step:
      part = np.concatenate([part, np.zeros((gallery_step - len(part), part.shape[1]),
                                            np.float32)])
    device_block = jax.device_put(part)
    num_valid = min(gallery_step, num_gallery - offset)
    for i, query_block in enumerate(query_blocks):
      best[i] = _merge_chunk(query_block, device_block, gallery_mean, num_valid, offset,
                             *best[i], k=k)
    # Wait before loading the next chunk, so at most one gallery chunk is resident.
    jax.block_until_ready(best)
  sims = np.concatenate([np.asarray(s) for s, _ in best])[:num_queries]
  ids = np.concatenate([np.asarray(i) for _, i in best])[:num_queries].astype(np.int64)
  return sims, ids


def class_scores(neighbour_sims: np.ndarray, neighbour_labels: np.ndarray, num_classes: int,
                 temperature: float) -> np.ndarray:
  """Sums exp(sim / T) of each query's neighbours per class: [Q, num_classes] float64."""
  weights = np.exp(neighbour_sims.astype(np.float64) / temperature)
  scores = np.zeros((len(neighbour_sims), num_classes))
  np.add.at(scores, (np.arange(len(scores))[:, None], neighbour_labels), weights)
  return scores


def topk_hits(scores: np.ndarray, labels: np.ndarray, top: int,
              positive_only: bool = True) -> np.ndarray:
  """True where the label is among the `top` best classes (ties: lower class first).

  Args:
    scores: [Q, C] class scores.
    labels: [Q] true classes.
    top: how many best classes count.
    positive_only: a class scoring <= 0 (for k-NN: no neighbour voted for it) is never a
      hit. Set False for scores such as logits, whose sign means nothing.

  Returns:
    [Q] booleans.
  """
  true_score = scores[np.arange(len(labels)), labels]
  class_ids = np.arange(scores.shape[1])[None, :]
  better = (scores > true_score[:, None]) | (
      (scores == true_score[:, None]) & (class_ids < labels[:, None]))
  hits = better.sum(axis=1) < top
  return hits & (true_score > 0) if positive_only else hits


def _neighbours(train: features_lib.FeatureSet, test: features_lib.FeatureSet, k: int,
                query_chunk: int, gallery_chunk: int):
  k_used = min(k, train.num_videos)
  if k_used < k:
    logging.warning("k-NN: k=%d exceeds the %d training videos; using k=%d.", k,
                    train.num_videos, k_used)
  sims, ids = top_k_cosine(test.video_features(), train.video_features(), k_used,
                           query_chunk=query_chunk, gallery_chunk=gallery_chunk)
  return sims, train.labels[ids], k_used


class Evaluator:
  """k-NN top-1/top-5 (percent) of test videos against the training gallery."""

  def __init__(self, k: int = 20, temperature: float = 0.07, query_chunk: int = QUERY_CHUNK,
               gallery_chunk: int = GALLERY_CHUNK):
    """Configures the k-NN evaluator.

    Args:
      k: neighbours per query (capped at the gallery size, with a warning).
      temperature: T in the exp(sim / T) vote weight.
      query_chunk: queries per search kernel call.
      gallery_chunk: gallery rows per search kernel call.
    """
    if k < 1 or temperature <= 0:
      raise ValueError(f"knn: need k >= 1 and temperature > 0, got k={k}, T={temperature}.")
    self.k, self.temperature = int(k), float(temperature)
    self.query_chunk, self.gallery_chunk = int(query_chunk), int(gallery_chunk)
    self.details: dict = {}
    self.skipped: dict[str, str] = {}
    self.predictions: dict[str, dict] = {}

  def run(self, train: features_lib.FeatureSet, test: features_lib.FeatureSet,
          val: features_lib.FeatureSet | None = None) -> Iterator[tuple[str, float]]:
    """Yields ('top1', %) and ('top5', %). `val` is unused: k-NN selects nothing.

    Per-video hits (and top-1 predicted classes) are left in `self.predictions`."""
    del val
    sims, labels, k_used = _neighbours(train, test, self.k, self.query_chunk,
                                       self.gallery_chunk)
    self.details = {"k_used": k_used}
    scores = class_scores(sims, labels, train.num_classes, self.temperature)
    top1, top5 = topk_hits(scores, test.labels, 1), topk_hits(scores, test.labels, 5)
    self.predictions = {
        "top1": stats.outcome(top1, labels=test.labels, predicted=scores.argmax(axis=1)),
        "top5": stats.outcome(top5, labels=test.labels)}
    yield "top1", 100.0 * float(top1.mean())
    yield "top5", 100.0 * float(top5.mean())


class SweepEvaluator:
  """Diagnostic table of k-NN top-1 over a k x T grid, computed on test.

  It reports, it does not select: the headline k-NN number stays at the protocol's fixed
  (k, T). One neighbour search with the largest k serves every cell.
  """

  def __init__(self, ks: Sequence[int] = (10, 20, 50, 100, 200),
               temperatures: Sequence[float] = (0.02, 0.07, 0.1, 0.5),
               query_chunk: int = QUERY_CHUNK, gallery_chunk: int = GALLERY_CHUNK):
    """Configures the grid.

    Args:
      ks: neighbour counts of the table's rows.
      temperatures: vote temperatures of its columns.
      query_chunk: queries per search kernel call.
      gallery_chunk: gallery rows per search kernel call.
    """
    self.ks = tuple(int(k) for k in ks)
    self.temperatures = tuple(float(t) for t in temperatures)
    if not self.ks or min(self.ks) < 1 or not self.temperatures or min(self.temperatures) <= 0:
      raise ValueError(f"knn_sweep: need ks >= 1 and temperatures > 0, got {self.ks}, "
                       f"{self.temperatures}.")
    self.query_chunk, self.gallery_chunk = int(query_chunk), int(gallery_chunk)
    self.details: dict = {}
    self.skipped: dict[str, str] = {}
    self.predictions: dict[str, dict] = {}

  def run(self, train, test, val=None) -> Iterator[tuple[str, float]]:
    """Yields ('k{k}_T{T}/top1', %) for every cell of the grid."""
    del val
    self.skipped, self.predictions = {}, {}
    sims, labels, k_used = _neighbours(train, test, max(self.ks), self.query_chunk,
                                       self.gallery_chunk)
    for k in self.ks:
      for temperature in self.temperatures:
        name = f"k{k}_T{temperature:g}/top1"
        if k > k_used:
          self.skipped[name] = f"k={k} exceeds the {train.num_videos} training videos"
          continue
        scores = class_scores(sims[:, :k], labels[:, :k], train.num_classes, temperature)
        hits = topk_hits(scores, test.labels, 1)
        self.predictions[name] = stats.outcome(hits, labels=test.labels,
                                               predicted=scores.argmax(axis=1))
        yield name, 100.0 * float(hits.mean())
