"""Frozen-feature evaluators against independent brute-force computations.

Every evaluator is checked against a plain-numpy (mostly loop-based) reimplementation
of its definition on small features, including the edge cases that quietly break
benchmarks: tied similarities, a class missing from the test set, a test set or gallery
smaller than k, chunk boundaries, shots larger than a class. Misuse must fail with a
clear error, and two runs on the same inputs must give bit-identical metrics.
"""

import argparse
import json
import pathlib

import numpy as np
import pytest

from ssvbench.data import splits as splits_lib
from ssvbench.evaluators import diagnostics
from ssvbench.evaluators import evaluate_features as evaluate_lib
from ssvbench.evaluators import features as features_lib
from ssvbench.evaluators import fewshot_episodic
from ssvbench.evaluators import fewshot_linear
from ssvbench.evaluators import knn
from ssvbench.evaluators import linear
from ssvbench.evaluators import protocol as protocol_lib
from ssvbench.evaluators import registry
from ssvbench.evaluators import retrieval

FeatureSet = features_lib.FeatureSet


def _normalise(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _brute_neighbours(queries, gallery, k, center=False):
  """Reference search: full similarity matrix, stable sort by (-sim, gallery index)."""
  queries, gallery = np.asarray(queries, np.float64), np.asarray(gallery, np.float64)
  if center:
    queries, gallery = queries - queries.mean(0), gallery - gallery.mean(0)
  sims = _normalise(queries) @ _normalise(gallery).T
  order = [sorted(range(len(gallery)), key=lambda j: (-sims[q, j], j))[:k]
           for q in range(len(queries))]
  return sims, np.array(order)


def _exact_unit_vectors(rng, count, dim):
  """Unit vectors with entries in {0, +-1} (one-hot) or {+-0.5} on four axes.

  Every dot product between them is exact in float32, so ties are real ties whatever
  the summation order.
  """
  rows = []
  for _ in range(count):
    row = np.zeros(dim, np.float32)
    if rng.random() < 0.5:
      row[rng.integers(dim)] = rng.choice([-1.0, 1.0])
    else:
      row[rng.choice(dim, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    rows.append(row)
  return np.stack(rows)


def _clustered(rng, num_classes, per_class, dim, views=1, noise=0.3, offset=0):
  centres = np.random.default_rng(1234).standard_normal((num_classes, dim)).astype(np.float32)
  labels = np.repeat(np.arange(num_classes), per_class)
  feats = centres[labels][:, None, :] + noise * rng.standard_normal(
      (len(labels), views, dim)).astype(np.float32)
  groups = np.array([f"c{l}g{offset + i // 2}" for i, l in enumerate(labels)])
  return (feats[:, 0] if views == 1 else feats), labels, groups


# ----------------------------------------------------------------------------- features


def test_feature_set_rejects_bad_input():
  good = np.zeros((4, 3), np.float32)
  with pytest.raises(features_lib.FeatureError, match=r"NaN.*rows \[2\]"):
    bad = good.copy()
    bad[2, 1] = np.nan
    FeatureSet(bad, np.zeros(4, int), 3, source="x.npz")
  with pytest.raises(features_lib.FeatureError, match=r"x.npz.*outside the class list \[0, 3\)"):
    FeatureSet(good, np.array([0, 1, 3, 0]), 3, source="x.npz")
  with pytest.raises(features_lib.FeatureError, match="outside the class list"):
    FeatureSet(good, np.array([0, -1, 1, 0]), 3)
  with pytest.raises(features_lib.FeatureError, match=r"shape \[N, D\] or \[N, V, D\]"):
    FeatureSet(np.zeros(4, np.float32), np.zeros(4, int), 3)
  with pytest.raises(features_lib.FeatureError, match="must be integers"):
    FeatureSet(good, np.zeros(4), 3)
  with pytest.raises(features_lib.FeatureError, match=r"'labels' must have shape \[4\]"):
    FeatureSet(good, np.zeros(3, int), 3)
  with pytest.raises(features_lib.FeatureError, match="unique"):
    FeatureSet(good, np.zeros(4, int), 3, video_ids=np.array(["a", "b", "a", "c"]))


def test_check_compatible_catches_mismatches():
  train = FeatureSet(np.zeros((4, 3), np.float32), np.zeros(4, int), 2,
                     video_ids=np.array(["a", "b", "c", "d"]), source="train.npz")
  with pytest.raises(features_lib.FeatureError, match="dimension mismatch.*D=3.*D=5"):
    features_lib.check_compatible(train, FeatureSet(np.zeros((2, 5), np.float32),
                                                    np.zeros(2, int), 2))
  with pytest.raises(features_lib.FeatureError, match="both train.*and test"):
    features_lib.check_compatible(train, FeatureSet(np.ones((2, 3), np.float32),
                                                    np.zeros(2, int), 2,
                                                    video_ids=np.array(["d", "e"])))
  test = FeatureSet(np.ones((2, 3), np.float32), np.zeros(2, int), 2)
  with pytest.raises(features_lib.FeatureError, match="identical to the test"):
    features_lib.check_compatible(train, test, FeatureSet(test.features.copy(),
                                                          np.zeros(2, int), 2))


def test_npz_round_trip_and_errors(tmp_path):
  rng = np.random.default_rng(0)
  original = FeatureSet(rng.standard_normal((5, 2, 3)).astype(np.float32),
                        np.array([0, 1, 2, 1, 0]), 3, video_ids=np.array(list("abcde")),
                        groups=np.array(list("xxyyz")))
  path = tmp_path / "f.npz"
  features_lib.save_npz(path, original)
  loaded = features_lib.load_npz(path, 3)
  np.testing.assert_array_equal(loaded.features, original.features)
  np.testing.assert_array_equal(loaded.groups, original.groups)
  assert loaded.num_views == 2 and loaded.dim == 3
  np.savez(tmp_path / "nolabels.npz", features=np.zeros((2, 3)))
  with pytest.raises(features_lib.FeatureError, match=r"nolabels.npz: missing key\(s\) \['labels'\]"):
    features_lib.load_npz(tmp_path / "nolabels.npz", 3)
  with pytest.raises(features_lib.FeatureError, match="not found"):
    features_lib.load_npz(tmp_path / "absent.npz", 3)


def test_carve_split_is_by_group_and_disjoint():
  rng = np.random.default_rng(0)
  x, y, groups = _clustered(rng, 3, 10, 4)
  fit, val = features_lib.carve_split(FeatureSet(x, y, 3, groups=groups), 0.2, 0)
  assert fit.num_videos + val.num_videos == 30 and val.num_videos > 0
  assert not set(fit.groups) & set(val.groups)


# ------------------------------------------------------------------------ neighbour search


@pytest.mark.parametrize("query_chunk,gallery_chunk", [(8, 8), (16, 32), (1024, 16384)])
def test_top_k_cosine_matches_stable_brute_force_with_ties(query_chunk, gallery_chunk):
  rng = np.random.default_rng(0)
  gallery = _exact_unit_vectors(rng, 37, 8)  # 37: chunk boundaries fall mid-gallery.
  queries = _exact_unit_vectors(rng, 13, 8)
  sims, ids = knn.top_k_cosine(queries, gallery, 9, query_chunk=query_chunk,
                               gallery_chunk=gallery_chunk)
  reference_sims, reference_ids = _brute_neighbours(queries, gallery, 9)
  assert len(np.unique(reference_sims)) < reference_sims.size / 10  # Many ties indeed.
  np.testing.assert_array_equal(ids, reference_ids)
  np.testing.assert_allclose(sims, np.take_along_axis(reference_sims, ids, 1), atol=1e-6)


def test_search_kernel_compiles_once_for_every_chunk():
  rng = np.random.default_rng(2)
  knn.top_k_cosine(rng.standard_normal((20, 6)), rng.standard_normal((100, 6)), 5,
                   query_chunk=8, gallery_chunk=16)  # 3 x 7 chunks, partial last ones.
  compiled = knn._merge_chunk._cache_size()
  knn.top_k_cosine(rng.standard_normal((19, 6)), rng.standard_normal((90, 6)), 5,
                   query_chunk=8, gallery_chunk=16)
  assert knn._merge_chunk._cache_size() == compiled


def test_top_k_cosine_centered_and_k_equal_to_gallery():
  rng = np.random.default_rng(1)
  queries, gallery = rng.standard_normal((5, 6)) + 3, rng.standard_normal((11, 6)) - 2
  _, ids = knn.top_k_cosine(queries, gallery, 11, center=True, query_chunk=8, gallery_chunk=8)
  np.testing.assert_array_equal(ids, _brute_neighbours(queries, gallery, 11, center=True)[1])
  with pytest.raises(ValueError, match="k=12 must be in"):
    knn.top_k_cosine(queries, gallery, 12)


# ----------------------------------------------------------------------------------- k-NN


def _brute_knn(train_x, train_y, test_x, test_y, k, temperature, num_classes):
  """Loop reference for weighted k-NN top-1 / top-5 (ties: lower class; zero votes miss)."""
  k = min(k, len(train_x))
  sims, order = _brute_neighbours(test_x, train_x, k)
  top1 = top5 = 0
  for q in range(len(test_x)):
    votes = [0.0] * num_classes
    for j in order[q]:
      votes[train_y[j]] += np.exp(sims[q, j] / temperature)
    ranking = sorted(range(num_classes), key=lambda c: (-votes[c], c))
    top1 += ranking[0] == test_y[q]
    top5 += test_y[q] in ranking[:5] and votes[test_y[q]] > 0
  return 100.0 * top1 / len(test_x), 100.0 * top5 / len(test_x)


@pytest.mark.parametrize("num_train,num_test,k", [(60, 25, 20), (60, 3, 20), (7, 9, 20)])
def test_knn_matches_brute_force(num_train, num_test, k):
  rng = np.random.default_rng(num_train + num_test)
  num_classes = 8
  train_x = rng.standard_normal((num_train, 2, 5)).astype(np.float32)  # Two views.
  test_x = rng.standard_normal((num_test, 5)).astype(np.float32)
  train_y = rng.integers(0, num_classes, num_train)
  test_y = rng.integers(0, num_classes - 1, num_test)  # The last class is missing from test.
  train = FeatureSet(train_x, train_y, num_classes)
  test = FeatureSet(test_x, test_y, num_classes)
  evaluator = knn.Evaluator(k=k, temperature=0.07, query_chunk=8, gallery_chunk=8)
  metrics = dict(evaluator.run(train, test))
  expected = _brute_knn(train_x.mean(1), train_y, test_x, test_y, k, 0.07, num_classes)
  assert (metrics["top1"], metrics["top5"]) == pytest.approx(expected, abs=1e-9)
  assert evaluator.details["k_used"] == min(k, num_train)


def test_knn_vote_tie_goes_to_lower_class():
  # The query is equally similar to one video of class 2 and one of class 1.
  train = FeatureSet(np.array([[1, 1, 0], [1, -1, 0], [-1, 0, 0]], np.float32),
                     np.array([2, 1, 0]), 3)
  test = FeatureSet(np.array([[1, 0, 0]], np.float32), np.array([1]), 3)
  assert dict(knn.Evaluator(k=2).run(train, test))["top1"] == 100.0
  test_2 = FeatureSet(np.array([[1, 0, 0]], np.float32), np.array([2]), 3)
  metrics = dict(knn.Evaluator(k=2).run(train, test_2))
  assert metrics["top1"] == 0.0 and metrics["top5"] == 100.0


def test_knn_sweep_cells_equal_single_runs():
  rng = np.random.default_rng(3)
  train = FeatureSet(rng.standard_normal((40, 6)).astype(np.float32), rng.integers(0, 4, 40), 4)
  test = FeatureSet(rng.standard_normal((10, 6)).astype(np.float32), rng.integers(0, 4, 10), 4)
  sweep = dict(knn.SweepEvaluator(ks=(5, 20), temperatures=(0.07, 0.5)).run(train, test))
  for k in (5, 20):
    for t in (0.07, 0.5):
      single = dict(knn.Evaluator(k=k, temperature=t).run(train, test))["top1"]
      assert sweep[f"k{k}_T{t:g}/top1"] == single


# ------------------------------------------------------------------------------ retrieval


@pytest.mark.parametrize("center", [False, True])
def test_retrieval_matches_brute_force(center):
  rng = np.random.default_rng(4)
  train_x = rng.standard_normal((30, 3, 6)).astype(np.float32) + 1.0
  test_x = rng.standard_normal((12, 3, 6)).astype(np.float32)
  train_y, test_y = rng.integers(0, 5, 30), rng.integers(0, 5, 12)
  metrics = dict(retrieval.Evaluator(ks=(1, 5, 10, 20, 50), center=center, query_chunk=8,
                                     gallery_chunk=8).run(FeatureSet(train_x, train_y, 5),
                                                          FeatureSet(test_x, test_y, 5)))
  _, order = _brute_neighbours(test_x.mean(1), train_x.mean(1), 30, center=center)
  for k in (1, 5, 10, 20, 50):  # k=50 exceeds the 30-video gallery: R@50 = R@30.
    hits = [any(train_y[j] == test_y[q] for j in order[q][:k]) for q in range(12)]
    assert metrics[f"R@{k}"] == pytest.approx(100.0 * np.mean(hits), abs=1e-9)


def test_retrieval_no_match_is_never_a_hit():
  train = FeatureSet(np.eye(3, dtype=np.float32), np.array([0, 0, 1]), 3)
  test = FeatureSet(np.eye(3, dtype=np.float32)[:1], np.array([2]), 3)
  assert dict(retrieval.Evaluator(ks=(1, 50)).run(train, test)) == {"R@1": 0.0, "R@50": 0.0}


# --------------------------------------------------------------------------------- linear


def _numpy_probe(x, y, num_classes, learning_rate, weight_decay, epochs, momentum=0.9):
  """Full-batch heavy-ball SGD in the ORIGINAL feature space (no row-space projection)."""
  mean, std = x.mean(0), x.std(0)
  std = np.where(std > 1e-8, std, 1.0)
  scale = 1.0 / (std * np.sqrt(x.shape[1]))
  z = (x - mean) * scale
  weights, bias = np.zeros((x.shape[1], num_classes)), np.zeros(num_classes)
  velocity_w, velocity_b = np.zeros_like(weights), np.zeros_like(bias)
  onehot = np.eye(num_classes)[y]
  for step in range(epochs):
    logits = z @ weights + bias
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    grad_w = z.T @ (probs - onehot) / len(z) + weight_decay * weights
    grad_b = (probs - onehot).mean(0)
    velocity_w, velocity_b = momentum * velocity_w + grad_w, momentum * velocity_b + grad_b
    rate = learning_rate * 0.5 * (1 + np.cos(np.pi * step / epochs))
    weights, bias = weights - rate * velocity_w, bias - rate * velocity_b
  return lambda t: ((t - mean) * scale) @ weights + bias


def test_linear_probe_training_matches_numpy_reference():
  # N=30 < D=48, so the probe trains in the row-space projection; the reference does not.
  rng = np.random.default_rng(5)
  x, y, _ = _clustered(rng, 3, 10, 48, noise=2.0)
  test_x = rng.standard_normal((7, 48)).astype(np.float32)
  evaluator = linear.Evaluator(learning_rates=(3.0,), weight_decays=(1e-3,), epochs=40)
  preprocess, weights, biases = evaluator._fit(x, y, 3, [(3.0, 1e-3)])
  ours = preprocess(test_x) @ weights[0] + biases[0]
  reference = _numpy_probe(x.astype(np.float64), y, 3, 3.0, 1e-3, 40)(test_x)
  np.testing.assert_allclose(ours, reference, atol=2e-4, rtol=2e-4)
  # Through run() with a given validation set (the selection fit is the final model).
  test_y = reference.argmax(1)
  test_y[:2] = (test_y[:2] + 1) % 3
  val = FeatureSet(x[:6] + 1, y[:6], 3)
  metrics = dict(evaluator.run(FeatureSet(x, y, 3), FeatureSet(test_x, test_y, 3), val))
  assert metrics["top1"] == pytest.approx(100 * 5 / 7)


def test_linear_probe_metrics_and_selection_ignore_test():
  rng = np.random.default_rng(6)
  train_x, train_y, train_groups = _clustered(rng, 4, 12, 16, noise=1.5)
  test_x, test_y, _ = _clustered(rng, 4, 6, 16, views=3, noise=1.5)
  keep = test_y != 2  # Class 2 is missing from the test set.
  train = FeatureSet(train_x, train_y, 4, groups=train_groups)
  test = FeatureSet(test_x[keep], test_y[keep], 4)
  evaluator = linear.Evaluator(epochs=30)
  metrics = dict(evaluator.run(train, test))
  # Reference metrics from the refit model's per-view logits, averaged over views.
  refit = linear.Evaluator(learning_rates=(evaluator.details["selected_learning_rate"],),
                           weight_decays=(evaluator.details["selected_weight_decay"],), epochs=30)
  preprocess, weights, biases = refit._fit(train_x, train_y, 4, refit.grid)
  logits = np.mean([preprocess(test_x[keep][:, v]) @ weights[0] + biases[0] for v in range(3)],
                   axis=0)
  predictions, labels = logits.argmax(1), test_y[keep]
  per_class = [np.mean(predictions[labels == c] == c) for c in (0, 1, 3)]
  top5 = [sum(logits[i] > logits[i, labels[i]]) < 5 for i in range(len(labels))]
  assert metrics["top1"] == pytest.approx(100 * np.mean(predictions == labels), abs=1e-9)
  assert metrics["mean_class_acc"] == pytest.approx(100 * np.mean(per_class), abs=1e-9)
  assert metrics["top5"] == pytest.approx(100 * np.mean(top5), abs=1e-9) == 100.0
  # The hyper-parameters do not depend on the test labels.
  shuffled = FeatureSet(test.features, rng.permutation(test.labels), 4)
  other = linear.Evaluator(epochs=30)
  list(other.run(train, shuffled))
  assert other.details["selected_learning_rate"] == evaluator.details["selected_learning_rate"]
  assert other.details["selected_weight_decay"] == evaluator.details["selected_weight_decay"]


def test_linear_probe_refuses_selection_on_test():
  with pytest.raises(ValueError, match="never on test"):
    linear.Evaluator(selection="test")


# ------------------------------------------------------------------------ few-shot linear


def test_ridge_solver_matches_direct_solve_primal_and_dual():
  rng = np.random.default_rng(7)
  for num_points, dim in ((40, 6), (9, 30)):  # Primal, then dual.
    x = rng.standard_normal((num_points, dim))
    y = rng.integers(0, 3, num_points)
    solver = fewshot_linear.RidgeSolver(x, y, 3)
    assert solver.primal == (num_points >= dim + 1)
    design = np.concatenate([(x - x.mean(0)) / x.std(0), np.full((num_points, 1), 100.0)], 1)
    targets = 2 * np.eye(3)[y] - 1
    direct = np.linalg.solve(design.T @ design + 16.0 * np.eye(dim + 1), design.T @ targets)
    np.testing.assert_allclose(solver.weights(16.0), direct, atol=1e-8)
    queries = rng.standard_normal((5, dim))
    query_design = np.concatenate([(queries - x.mean(0)) / x.std(0), np.full((5, 1), 100.0)], 1)
    np.testing.assert_array_equal(solver.predict(queries, [16.0])[0],
                                  (query_design @ direct).argmax(1))


def test_sample_shots_is_nested_and_per_class():
  labels = np.repeat(np.arange(4), 7)
  one, five = (fewshot_linear.sample_shots(labels, s, seed=3) for s in (1, 5))
  assert set(one) <= set(five)
  assert np.bincount(labels[five]).tolist() == [5, 5, 5, 5]
  assert not np.array_equal(five, fewshot_linear.sample_shots(labels, 5, seed=4))


def _brute_fewshot(train_x, train_y, val_x, val_y, test_x, test_y, shots, seeds, l2_grid, C):
  """Reference: direct ridge solves per (seed, lambda); lambda by mean validation accuracy."""
  def fit(rows, l2):
    x = train_x[rows].astype(np.float64)
    mean, std = x.mean(0), x.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    design = lambda f: np.concatenate([(f - mean) / std, np.full((len(f), 1), 100.0)], 1)
    d = design(x)
    w = np.linalg.solve(d.T @ d + l2 * np.eye(d.shape[1]), d.T @ (2 * np.eye(C)[train_y[rows]] - 1))
    return lambda f: (design(f) @ w).argmax(1)
  samples = [fewshot_linear.sample_shots(train_y, shots, s) for s in seeds]
  val_means = [np.mean([np.mean(fit(r, l2)(val_x) == val_y) for r in samples]) for l2 in l2_grid]
  l2 = l2_grid[int(np.argmax(val_means))]
  scores = [100 * np.mean(fit(r, l2)(test_x) == test_y) for r in samples]
  return np.mean(scores), np.std(scores, ddof=1)


def test_fewshot_linear_matches_brute_force_and_skips_large_shots():
  rng = np.random.default_rng(8)
  train_x, train_y, _ = _clustered(rng, 5, 6, 12, noise=2.0)
  val_x, val_y, _ = _clustered(rng, 5, 4, 12, noise=2.0)
  test_x, test_y, _ = _clustered(rng, 5, 5, 12, noise=2.0)
  grid = (1.0, 64.0, 4096.0)
  evaluator = fewshot_linear.Evaluator(shots=(1, 5, 10), seeds=(0, 1, 2), l2_grid=grid)
  metrics = dict(evaluator.run(FeatureSet(train_x, train_y, 5), FeatureSet(test_x, test_y, 5),
                               FeatureSet(val_x, val_y, 5)))
  for shots in (1, 5):
    mean, std = _brute_fewshot(train_x, train_y, val_x, val_y, test_x, test_y, shots, (0, 1, 2),
                               grid, 5)
    assert metrics[f"{shots}shot"] == pytest.approx(mean, abs=1e-9)
    assert metrics[f"{shots}shot_std"] == pytest.approx(std, abs=1e-9)
  assert "10shot" not in metrics and "fewer than 10 videos" in evaluator.skipped["10shot"]


# ---------------------------------------------------------------------- few-shot episodic


def test_sample_episodes_structure():
  members = [np.arange(100 * c, 100 * c + n) for c, n in enumerate((6, 9, 7, 12, 6, 8))]
  episodes = fewshot_episodic.sample_episodes(members, ways=5, shots=5, queries=1,
                                              num_episodes=1500, seed=0)
  assert episodes.shape == (1500, 5, 6)
  classes = episodes[:, :, 0] // 100
  assert all(len(set(row)) == 5 for row in classes)  # Distinct classes per episode.
  assert (episodes // 100 == classes[:, :, None]).all()  # Videos from their class.
  assert all(len(set(cell)) == 6 for cell in episodes.reshape(-1, 6))  # No repeats.
  assert set(np.unique(episodes)) <= set(np.concatenate(members))
  again = fewshot_episodic.sample_episodes(members, 5, 5, 1, 1500, seed=0)
  np.testing.assert_array_equal(episodes, again)


def test_episodic_accuracy_matches_loop_reference():
  rng = np.random.default_rng(9)
  x, y, _ = _clustered(rng, 7, 8, 10, noise=1.5)
  test = FeatureSet(x, y, 9)  # Classes 7 and 8 have no videos: not novel here.
  train = FeatureSet(rng.standard_normal((3, 10)).astype(np.float32), np.zeros(3, int), 9)
  evaluator = fewshot_episodic.Evaluator(novel_classes=(0, 2, 3, 4, 5, 6), shots=(1, 5),
                                         num_episodes=300, chunk=64)
  metrics = dict(evaluator.run(train, test))
  members = [np.nonzero(y == c)[0] for c in (0, 2, 3, 4, 5, 6)]
  unit = _normalise(x.astype(np.float64))
  for shots in (1, 5):
    episodes = fewshot_episodic.sample_episodes(members, 5, shots, 1, 300, seed=0)
    accuracies = []
    for episode in episodes:
      prototypes = [_normalise(unit[way[:shots]].mean(0)) for way in episode]
      correct = [int(np.argmax([unit[q] @ p for p in prototypes]) == w)
                 for w, way in enumerate(episode) for q in way[shots:]]
      accuracies.append(100 * np.mean(correct))
    assert metrics[f"5way_{shots}shot"] == pytest.approx(np.mean(accuracies), abs=1e-9)
    assert metrics[f"5way_{shots}shot_ci95"] == pytest.approx(
        1.96 * np.std(accuracies, ddof=1) / np.sqrt(300), abs=1e-9)


def test_episodic_skips_when_a_class_is_too_small():
  x = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
  y = np.array([0] * 5 + [1] * 5 + [2] * 5 + [3] * 3 + [4] * 2)
  test = FeatureSet(x, y, 5)
  evaluator = fewshot_episodic.Evaluator(shots=(1, 5), num_episodes=10)
  metrics = dict(evaluator.run(test, test))
  assert set(metrics) == {"5way_1shot", "5way_1shot_ci95"}
  assert "fewer" in evaluator.skipped["5way_5shot"]


# ---------------------------------------------------------------------------- diagnostics


def test_diagnostics_match_brute_force():
  rng = np.random.default_rng(10)
  x = rng.standard_normal((9, 3, 5)).astype(np.float32)
  unit = _normalise(x.astype(np.float64))
  pairs = [np.sum((unit[n, i] - unit[n, j]) ** 2) for n in range(9) for i in range(3)
           for j in range(i + 1, 3)]
  assert diagnostics.alignment(x) == pytest.approx(np.mean(pairs), rel=1e-9)
  video = _normalise(x.mean(1).astype(np.float64))
  terms = [np.exp(-2 * np.sum((video[i] - video[j]) ** 2)) for i in range(9)
           for j in range(i + 1, 9)]
  assert diagnostics.uniformity(x.mean(1), block=4) == pytest.approx(np.log(np.mean(terms)),
                                                                     rel=1e-9)
  assert diagnostics.effective_rank(np.eye(6)) == pytest.approx(6.0)
  assert diagnostics.effective_rank(np.outer(np.arange(1, 5), np.ones(3))) == pytest.approx(1.0)
  single = diagnostics.Evaluator()
  metrics = dict(single.run(FeatureSet(x[:, 0], np.zeros(9, int), 2),
                            FeatureSet(x[:, 0], np.zeros(9, int), 2)))
  assert "alignment" not in metrics and "two views" in single.skipped["alignment"]


# ------------------------------------------------------------------- protocols, registry


def test_every_protocol_loads_in_both_variants():
  for name in ("synthactions", "ucf101", "hmdb51", "kinetics400", "kinetics600", "kinetics700"):
    for arg in (None, "runlocal"):
      spec = protocol_lib.load_protocol(name, arg)
      assert spec.name == name and len(protocol_lib.fingerprint(spec)) == 64
  with pytest.raises(protocol_lib.ProtocolError, match="unknown protocol 'ucf102'"):
    protocol_lib.load_protocol("ucf102")


def test_fingerprint_tracks_settings_not_chunk_sizes():
  spec = protocol_lib.load_protocol("synthactions")
  base = protocol_lib.fingerprint(spec)
  assert protocol_lib.fingerprint(protocol_lib.load_protocol("synthactions")) == base
  chunked = protocol_lib.resolve(spec)
  chunked["evals"]["knn"]["gallery_chunk"] = 64
  assert protocol_lib.fingerprint(chunked) == base
  changed = protocol_lib.resolve(spec)
  changed["evals"]["knn"]["k"] = 21
  assert protocol_lib.fingerprint(changed) != base


def test_protocol_guard_and_unknown_settings():
  spec = protocol_lib.resolve(protocol_lib.load_protocol("synthactions"))
  for section, key, value, message in (
      ("linear", "selection", "test", "selection='test'"),
      ("fewshot_linear", "selection", "test", "selection='test'"),
      ("knn", "val_split", "test", "val_split='test' would select on the test split")):
    bad = json.loads(json.dumps(spec))
    bad["evals"][section][key] = value
    with pytest.raises(protocol_lib.ProtocolError, match=message):
      protocol_lib.validate(bad)
  bad = json.loads(json.dumps(spec))
  bad["evals"]["knn"]["kk"] = 3
  with pytest.raises(protocol_lib.ProtocolError, match=r"unknown setting\(s\) \['kk'\]"):
    protocol_lib.validate(bad)
  bad = json.loads(json.dumps(spec))
  bad["num_classes"] = 8
  with pytest.raises(protocol_lib.ProtocolError, match="novel_classes must lie in"):
    protocol_lib.validate(bad)
  with pytest.raises(ValueError, match="unknown evaluator type 'svm'"):
    registry.evaluator_class("svm")


def test_fewshot_class_splits_match_the_shipped_lists():
  ucf_classes = [line.split()[1] for line in
                 (splits_lib.SPLITS_ROOT / "ucf101" / "classInd.txt").read_text().splitlines()
                 if line.strip()]
  hmdb_classes = sorted({p.name.rsplit("_test_split", 1)[0]
                         for p in (splits_lib.SPLITS_ROOT / "hmdb51").glob("*_test_split*.txt")})
  for name, split, classes in (("ucf101", "ucf_ARN", ucf_classes),
                               ("hmdb51", "hmdb_ARN", hmdb_classes),
                               ("kinetics400", "kinetics_CMN", None)):
    spec = protocol_lib.load_protocol(name)
    novel_names = list(spec.class_splits.novel_names)
    assert sorted(novel_names) == sorted(splits_lib.fewshot_class_split(split)["test"])
    if classes is not None:
      assert [classes.index(n) for n in novel_names] == list(spec.class_splits.novel)
    else:  # Kinetics class indices follow sorted class names.
      assert novel_names == sorted(novel_names)
      assert list(spec.class_splits.novel) == sorted(spec.class_splits.novel)
    assert list(spec.evals.fewshot_episodic.novel_classes) == list(spec.class_splits.novel)


# --------------------------------------------------------------- evaluate-features, end to end


@pytest.fixture(scope="module")
def synth_npz(tmp_path_factory):
  """SynthActions-shaped features: 12 classes, 4 views, 7 train / 3 test groups of 5."""
  folder = tmp_path_factory.mktemp("features")
  rng = np.random.default_rng(11)
  paths = {}
  for split, groups_per_class, offset in (("train", 7, 0), ("test", 3, 100)):
    x, y, groups = _clustered(rng, 12, groups_per_class * 5, 24, views=4, noise=1.2,
                              offset=offset)
    ids = np.array([f"{split}{i}" for i in range(len(y))])
    paths[split] = folder / f"{split}.npz"
    np.savez(paths[split], features=x, labels=y, groups=groups, video_ids=ids)
  return paths


def test_evaluate_features_end_to_end_and_deterministic(synth_npz, tmp_path):
  first = evaluate_lib.evaluate_features("synthactions", synth_npz["train"], synth_npz["test"])
  accuracies = {"knn/top1", "knn/top5", "linear/top1", "linear/top5", "linear/mean_class_acc",
                *(f"retrieval/R@{k}" for k in (1, 5, 10, 20, 50)),
                *(f"fewshot_linear/{s}shot" for s in (1, 5, 10, 25)),
                *(f"fewshot_episodic/5way_{s}shot" for s in (1, 5))}
  # Every accuracy-like metric carries its 95% half-width.
  expected = {*accuracies, *(f"{m}_ci95" for m in accuracies),
              *(f"fewshot_linear/{s}shot_std" for s in (1, 5, 10, 25)),
              "diagnostics/alignment", "diagnostics/uniformity", "diagnostics/effective_rank"}
  assert set(first["metrics"]) == expected and not first["skipped"]
  assert all(0 <= first["metrics"][f"{m}_ci95"] < 25 for m in accuracies)
  assert set(first["details"]["fewshot_episodic"]["ci95_over_query_videos"]) == {
      "5way_1shot", "5way_5shot"}
  assert first["protocol"]["fingerprint"] == protocol_lib.fingerprint(
      protocol_lib.load_protocol("synthactions"))
  assert first["validation"]["source"] == "carved from train"
  assert first["validation"]["grouped_by"] == "groups"
  assert all(0 <= v <= 100 for k, v in first["metrics"].items() if "diagnostics" not in k)
  # The CLI path, with a second run: bit-identical metrics.
  out = tmp_path / "result.json"
  args = argparse.Namespace(protocol="synthactions", train=str(synth_npz["train"]),
                            test=str(synth_npz["test"]), val=None, out=str(out), sweeps=False)
  assert evaluate_lib.run_cli(args) == 0
  second = json.loads(out.read_text())
  assert second["metrics"] == first["metrics"]  # JSON floats round-trip exactly.
  # The per-video sidecar sits beside the JSON, named relatively, its hash in the result.
  from ssvbench.results import predictions as predictions_lib
  from ssvbench.results import stats
  sidecar = second["predictions"]
  assert "/" not in sidecar["file"] and (tmp_path / sidecar["file"]).is_file()
  assert predictions_lib.file_sha256(tmp_path / sidecar["file"]) == sidecar["sha256"]
  video_ids, packs = predictions_lib.load_sidecar(tmp_path / sidecar["file"], sidecar["sha256"])
  with np.load(synth_npz["test"]) as data:
    assert video_ids.tolist() == data["video_ids"].tolist()
  assert set(packs) == accuracies
  for metric, packed in packs.items():  # The outcomes give back the metric itself.
    assert abs(stats.value(packed) - first["metrics"][metric]) < 1e-9, metric
  assert packs["knn/top1"]["predicted"].shape == (1, len(video_ids))


def test_evaluate_features_misuse_errors(synth_npz, tmp_path, capsys):
  with np.load(synth_npz["test"]) as data:
    test = dict(data)
  wide = tmp_path / "wide.npz"
  np.savez(wide, **{**test, "features": np.zeros((len(test["labels"]), 4, 25), np.float32)})
  with pytest.raises(features_lib.FeatureError, match="dimension mismatch.*D=24.*D=25"):
    evaluate_lib.evaluate_features("ucf101", synth_npz["train"], wide)
  labels = tmp_path / "labels.npz"
  np.savez(labels, **{**test, "labels": test["labels"] + 95})
  with pytest.raises(features_lib.FeatureError, match=r"labels.npz: .* outside the class list"):
    evaluate_lib.evaluate_features("ucf101", synth_npz["train"], labels)
  nan = tmp_path / "nan.npz"
  broken = test["features"].copy()
  broken[3, 1, 0] = np.nan
  np.savez(nan, **{**test, "features": broken})
  args = argparse.Namespace(protocol="synthactions", train=str(synth_npz["train"]), test=str(nan),
                            val=None, out=None, sweeps=False)
  assert evaluate_lib.run_cli(args) == 2
  assert "nan.npz" in capsys.readouterr().err
  spec = protocol_lib.resolve(protocol_lib.load_protocol("synthactions"))
  spec["evals"]["linear"]["selection"] = "test"
  with pytest.raises(protocol_lib.ProtocolError, match="selection='test'"):
    evaluate_lib.evaluate_features(spec, synth_npz["train"], synth_npz["test"])
  with pytest.raises(features_lib.FeatureError, match="appear in both test .* and val"):
    evaluate_lib.evaluate_features("synthactions", synth_npz["train"], synth_npz["test"],
                                   val=synth_npz["test"], only=("knn",))
