"""Few-shot linear classification by closed-form ridge regression (big_vision `fewshot_lsr`).

How much does a representation give with 1, 5, 10 or 25 labelled videos per class?
For each shot count s and seed, s training videos per class are drawn; the few-shot
features are standardised with THEIR OWN mean and standard deviation (nothing is
known about the full training set in the few-shot regime), a constant bias feature of
100 is appended (large, so the ridge barely shrinks the bias), targets are one-hot in
{-1, +1}, and ridge regression is solved in closed form. One eigendecomposition per
(shots, seed) of the smaller Gram matrix (D x D, or N x N when there are fewer samples
than dimensions) serves every ridge lambda of the grid.

Lambda is chosen per shot count on validation (given, or carved from train by group),
by the mean validation accuracy over seeds; the few-shot videos are drawn from the
fitting part of train only, so validation never overlaps them. The same fitted ridge
models are then scored once on test; we report the mean and the sample standard
deviation (ddof=1) over seeds, and (from the registry) `{s}shot_ci95`, a two-way
bootstrap over seeds and test videos (`ssvbench.results.stats`). Samples are nested:
seed s's 5-shot set contains its 1-shot set, so differences between shot counts are not
sampling noise.

A shot count that some class cannot supply (fewer videos than shots in the fitting
part) is skipped with the reason recorded, rather than silently capped, so "25shot"
always means 25 per class.
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence

import numpy as np

from ssvbench.evaluators import features as features_lib
from ssvbench.results import stats

BIAS_FEATURE = 100.0


def sample_shots(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
  """Indices of `shots` videos per class present in `labels`, nested across shot counts.

  Each class's videos are permuted by a generator seeded with (seed, class), and the
  first `shots` are taken, so the sample depends on the seed and the class only.
  """
  picked = []
  for label in np.unique(labels):
    members = np.nonzero(labels == label)[0]
    order = np.random.default_rng([seed, int(label)]).permutation(len(members))
    picked.append(members[order[:shots]])
  return np.sort(np.concatenate(picked))


class RidgeSolver:
  """Closed-form ridge on few-shot data, for many lambdas from one eigendecomposition."""

  def __init__(self, features: np.ndarray, labels: np.ndarray, num_classes: int):
    x = features.astype(np.float64)
    self.mean = x.mean(axis=0)
    std = x.std(axis=0)
    self.std = np.where(std > 1e-8, std, 1.0)
    x = self._design(features)
    targets = 2.0 * np.eye(num_classes)[labels] - 1.0
    num_points, dim = x.shape
    self.primal = num_points >= dim
    if self.primal:
      # W = (X^T X + l I)^-1 X^T Y = Q diag(1 / (e + l)) Q^T X^T Y.
      eigenvalues, eigenvectors = np.linalg.eigh(x.T @ x)
      self.left, self.right = eigenvectors, eigenvectors.T @ (x.T @ targets)
    else:
      # W = X^T (X X^T + l I)^-1 Y = X^T Q diag(1 / (e + l)) Q^T Y.
      eigenvalues, eigenvectors = np.linalg.eigh(x @ x.T)
      self.left, self.right = x.T @ eigenvectors, eigenvectors.T @ targets
    self.eigenvalues = eigenvalues

  def _design(self, features: np.ndarray) -> np.ndarray:
    x = (features.astype(np.float64) - self.mean) / self.std
    return np.concatenate([x, np.full((len(x), 1), BIAS_FEATURE)], axis=1)

  def weights(self, l2: float) -> np.ndarray:
    """[D + 1, C] ridge weights for one lambda."""
    return self.left @ (self.right / (self.eigenvalues + l2)[:, None])

  def predict(self, features: np.ndarray, l2s: Sequence[float],
              chunk: int = 8192) -> np.ndarray:
    """[len(l2s), N] predicted classes (argmax; ties go to the lower class index).

    Rows are processed in chunks so that a Kinetics-sized split stays in bounded memory.
    """
    scaled_right = [self.right / (self.eigenvalues + l2)[:, None] for l2 in l2s]
    predictions = np.zeros((len(l2s), len(features)), np.int64)
    for start in range(0, len(features), chunk):
      projected = self._design(features[start:start + chunk]) @ self.left
      for i, right in enumerate(scaled_right):
        predictions[i, start:start + chunk] = (projected @ right).argmax(axis=1)
    return predictions


def _std(values: Sequence[float]) -> float:
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


class Evaluator:
  """Few-shot ridge accuracy (percent) for each shot count: mean and std over seeds."""

  def __init__(self, shots: Sequence[int] = (1, 5, 10, 25), seeds: Sequence[int] = (0, 1, 2),
               l2_grid: Sequence[float] = tuple(2.0 ** p for p in range(0, 16, 2)),
               selection: str = "validation", val_fraction: float = 0.2, val_seed: int = 0):
    """Configures shots, seeds and the lambda grid.

    Args:
      shots: training videos per class.
      seeds: one few-shot draw per seed.
      l2_grid: ridge lambdas to choose from on validation.
      selection: where lambda is chosen; only 'validation' is accepted.
      val_fraction: fraction of groups carved from train when no validation set is given.
      val_seed: carving seed.
    """
    if selection != "validation":
      raise ValueError(f"fewshot_linear: selection={selection!r} is not allowed; lambda is "
                       "chosen on 'validation' (given or carved from train), never on test.")
    if not shots or min(shots) < 1 or not seeds or not l2_grid or min(l2_grid) <= 0:
      raise ValueError("fewshot_linear: need shots >= 1, at least one seed and positive "
                       f"lambdas, got shots={shots}, seeds={seeds}, l2_grid={l2_grid}.")
    self.shots = tuple(int(s) for s in shots)
    self.seeds = tuple(int(s) for s in seeds)
    self.l2_grid = tuple(float(l) for l in l2_grid)
    self.val_fraction, self.val_seed = float(val_fraction), int(val_seed)
    self.details: dict = {}
    self.skipped: dict[str, str] = {}
    self.predictions: dict[str, dict] = {}

  def run(self, train: features_lib.FeatureSet, test: features_lib.FeatureSet,
          val: features_lib.FeatureSet | None = None) -> Iterator[tuple[str, float]]:
    """Yields ('{s}shot', mean %) and ('{s}shot_std', std %) per shot count."""
    if val is None:
      fit, val = features_lib.carve_split(train, self.val_fraction, self.val_seed)
    else:
      fit = train
    fit_x, val_x, test_x = fit.video_features(), val.video_features(), test.video_features()
    classes, counts = np.unique(fit.labels, return_counts=True)
    self.skipped, self.predictions = {}, {}
    self.details = {"num_classes_sampled": len(classes), "selected_l2": {}}
    for shots in self.shots:
      name = f"{shots}shot"
      if counts.min() < shots:
        short = classes[counts < shots]
        reason = (f"{len(short)} class(es) have fewer than {shots} videos in the fitting part "
                  f"of train (e.g. class {int(short[0])} has {int(counts[classes == short[0]][0])})")
        logging.warning("fewshot_linear: skipping %s: %s.", name, reason)
        self.skipped[name] = self.skipped[name + "_std"] = self.skipped[name + "_ci95"] = reason
        continue
      solvers, val_accuracy = [], np.zeros((len(self.seeds), len(self.l2_grid)))
      for i, seed in enumerate(self.seeds):
        rows = sample_shots(fit.labels, shots, seed)
        solvers.append(RidgeSolver(fit_x[rows], fit.labels[rows], train.num_classes))
        val_accuracy[i] = (solvers[i].predict(val_x, self.l2_grid) == val.labels).mean(axis=1)
      # Best mean validation accuracy; ties go to the first lambda of the grid. Only the
      # chosen lambda ever sees the test set.
      chosen = int(np.argmax(val_accuracy.mean(axis=0)))
      l2 = self.l2_grid[chosen]
      self.details["selected_l2"][name] = l2
      predicted = np.stack([solver.predict(test_x, [l2])[0] for solver in solvers])
      scores = np.array([100.0 * (row == test.labels).mean() for row in predicted])
      # [seeds, videos]: the `_ci95` is a two-way bootstrap over seeds and test videos.
      self.predictions[name] = stats.outcome(predicted == test.labels[None, :],
                                             labels=test.labels, predicted=predicted)
      yield name, float(scores.mean())
      yield name + "_std", _std(scores.tolist())
