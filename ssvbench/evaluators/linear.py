"""Linear probe: multinomial logistic regression on frozen, view-averaged features.

The number most papers lead with, and the one most often selected on test (CoCLR,
SEVERE, mmaction2 pick the best epoch or learning rate by test accuracy). Here the
learning rate and weight decay come from a small fixed grid, each grid point is trained
on the fitting part of train and scored on validation (given, or carved from train by
group), and the chosen point is refit on the FULL training split and scored once on
test. Refitting on train only (not train + a user-given validation set) keeps the
rule the same whether validation was carved or given.

Choices, each for a reason:
- Features are averaged over views, then standardised with the fitting set's mean and
  standard deviation (as MAE's BatchNorm-without-affine probe) and scaled by 1/sqrt(D)
  so that the mean squared norm is 1. Every step after averaging is affine, so scoring
  the view-averaged test feature equals averaging the per-view logits: the protocol's
  "per-video scores averaged over views".
- The objective is mean cross-entropy + wd/2 ||W||^2 (bias not decayed), optimised by
  heavy-ball SGD (momentum 0.9) with a cosine schedule for a fixed number of epochs,
  batches drawn from a seeded permutation. With unit mean squared norm the loss is
  0.5-smooth (Bohning's bound), so every grid learning rate is below the heavy-ball
  stability limit 2(1+momentum)/0.5 = 7.6.
- SGD from zero keeps W in the row space of the training features, so when there are
  fewer training videos than dimensions the probe trains, exactly, in the N-dim
  coordinates of that row space (an orthonormal basis from a QR): a 2048-d probe on
  1000 videos costs a 1000-d one. All grid points train at once under `jax.vmap`.
"""

from __future__ import annotations

import functools
from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssvbench.evaluators import features as features_lib
from ssvbench.evaluators import knn
from ssvbench.results import stats


class _Preprocess:
  """Standardisation (fit-set statistics), 1/sqrt(D) scaling and row-space projection."""

  def __init__(self, fit_features: np.ndarray):
    mean = fit_features.mean(axis=0, dtype=np.float64)
    std = fit_features.std(axis=0, dtype=np.float64)
    # A constant dimension gets scale 1: its fit values are 0, so SGD never moves its weight.
    std = np.where(std > 1e-8, std, 1.0)
    dim = fit_features.shape[1]
    self.mean = mean.astype(np.float32)
    self.scale = (1.0 / (std * np.sqrt(dim))).astype(np.float32)
    self.basis = None
    if len(fit_features) < dim:
      standardised = (fit_features - self.mean) * self.scale
      # Orthonormal columns spanning the row space ([D, N]); QR is several times faster
      # than an SVD here and any basis of the span gives the same probe.
      basis, _ = np.linalg.qr(standardised.T.astype(np.float64))
      self.basis = basis.astype(np.float32)

  def __call__(self, x: np.ndarray) -> np.ndarray:
    x = (x - self.mean) * self.scale
    return x if self.basis is None else x @ self.basis


def _batch_indices(num_examples: int, batch_size: int, epochs: int, seed: int) -> np.ndarray:
  """[steps, batch] example indices: seeded epoch permutations, cut into full batches."""
  if num_examples <= batch_size:
    return np.tile(np.arange(num_examples, dtype=np.int32), (epochs, 1))
  rng = np.random.default_rng(seed)
  steps = epochs * -(-num_examples // batch_size)
  order = np.concatenate([rng.permutation(num_examples)
                          for _ in range(-(-steps * batch_size // num_examples))])
  return order[:steps * batch_size].reshape(steps, batch_size).astype(np.int32)


@functools.partial(jax.jit, static_argnames=("num_classes", "momentum"))
def _train_grid(x, y, batch_indices, learning_rates, weight_decays, *, num_classes, momentum):
  """Trains one linear classifier per (lr, wd) pair; returns weights [G, D, C], biases [G, C]."""
  total_steps = batch_indices.shape[0]

  def loss_fn(params, x_batch, y_batch, weight_decay):
    weights, bias = params
    logits = x_batch @ weights + bias
    cross_entropy = optax.softmax_cross_entropy_with_integer_labels(logits, y_batch).mean()
    return cross_entropy + 0.5 * weight_decay * jnp.sum(weights * weights)

  def train_one(learning_rate, weight_decay):
    params = (jnp.zeros((x.shape[1], num_classes), jnp.float32),
              jnp.zeros((num_classes,), jnp.float32))
    velocity = jax.tree.map(jnp.zeros_like, params)

    def step(carry, inputs):
      params, velocity = carry
      step_index, indices = inputs
      grads = jax.grad(loss_fn)(params, x[indices], y[indices], weight_decay)
      velocity = jax.tree.map(lambda v, g: momentum * v + g, velocity, grads)
      rate = learning_rate * 0.5 * (1.0 + jnp.cos(jnp.pi * step_index / total_steps))
      params = jax.tree.map(lambda p, v: p - rate * v, params, velocity)
      return (params, velocity), None

    (params, _), _ = jax.lax.scan(step, (params, velocity),
                                  (jnp.arange(total_steps), batch_indices))
    return params

  return jax.vmap(train_one)(learning_rates, weight_decays)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def mean_class_accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
  """Mean over the classes present in `labels` of their top-1 accuracy, in percent."""
  present = np.unique(labels)
  return 100.0 * float(np.mean([(predictions[labels == c] == c).mean() for c in present]))


class Evaluator:
  """Linear probe top-1 / top-5 / mean per-class accuracy (percent) on test."""

  def __init__(self, learning_rates: Sequence[float] = (1.0, 3.0, 6.0),
               weight_decays: Sequence[float] = (0.0, 1e-4, 1e-3), epochs: int = 100,
               batch_size: int = 1024, momentum: float = 0.9, seed: int = 0,
               selection: str = "validation", val_fraction: float = 0.2, val_seed: int = 0):
    """Configures the probe and its hyper-parameter grid.

    Args:
      learning_rates: grid of peak learning rates (cosine-decayed to 0).
      weight_decays: grid of L2 coefficients.
      epochs: passes over the training set.
      batch_size: examples per step; a set no larger than this trains full-batch.
      momentum: heavy-ball momentum.
      seed: seed of the batch order.
      selection: where hyper-parameters are chosen; only 'validation' is accepted.
      val_fraction: fraction of groups carved from train when no validation set is given.
      val_seed: carving seed.
    """
    if selection != "validation":
      raise ValueError(f"linear: selection={selection!r} is not allowed; hyper-parameters are "
                       "chosen on 'validation' (given or carved from train), never on test.")
    if not learning_rates or not weight_decays or min(learning_rates) <= 0 or min(
        weight_decays) < 0:
      raise ValueError("linear: need non-empty grids with learning_rates > 0 and "
                       f"weight_decays >= 0, got {learning_rates}, {weight_decays}.")
    if epochs < 1 or batch_size < 1:
      raise ValueError(f"linear: epochs and batch_size must be >= 1, got {epochs}, {batch_size}.")
    grid = [(float(lr), float(wd)) for lr in learning_rates for wd in weight_decays]
    self.grid = grid
    self.epochs, self.batch_size, self.momentum, self.seed = (
        int(epochs), int(batch_size), float(momentum), int(seed))
    self.val_fraction, self.val_seed = float(val_fraction), int(val_seed)
    self.details: dict = {}
    self.skipped: dict[str, str] = {}
    self.predictions: dict[str, dict] = {}

  def _fit(self, features: np.ndarray, labels: np.ndarray, num_classes: int,
           grid: list[tuple[float, float]]):
    preprocess = _Preprocess(features)
    batches = _batch_indices(len(features), self.batch_size, self.epochs, self.seed)
    weights, biases = _train_grid(
        jnp.asarray(preprocess(features)), jnp.asarray(labels, jnp.int32), jnp.asarray(batches),
        jnp.asarray([lr for lr, _ in grid], jnp.float32),
        jnp.asarray([wd for _, wd in grid], jnp.float32),
        num_classes=num_classes, momentum=self.momentum)
    return preprocess, np.asarray(weights), np.asarray(biases)

  def run(self, train: features_lib.FeatureSet, test: features_lib.FeatureSet,
          val: features_lib.FeatureSet | None = None) -> Iterator[tuple[str, float]]:
    """Yields ('top1', %), ('top5', %), ('mean_class_acc', %)."""
    if val is None:
      fit, val = features_lib.carve_split(train, self.val_fraction, self.val_seed)
    else:
      fit = train
    num_classes = train.num_classes
    preprocess, weights, biases = self._fit(fit.video_features(), fit.labels, num_classes,
                                            self.grid)
    val_x = preprocess(val.video_features())
    rows = np.arange(val.num_videos)
    candidates = []
    for index in range(len(self.grid)):
      logits = val_x @ weights[index] + biases[index]
      if not np.isfinite(logits).all():
        continue  # Diverged: never selectable.
      accuracy = float((logits.argmax(axis=1) == val.labels).mean())
      cross_entropy = float(-_log_softmax(logits.astype(np.float64))[rows, val.labels].mean())
      # Best validation accuracy; ties go to the lower validation loss, then grid order.
      candidates.append((-accuracy, cross_entropy, index))
    if not candidates:
      raise RuntimeError(f"linear: every grid point diverged on {fit.source}; lower the "
                         "learning rates.")
    _, _, chosen = min(candidates)
    learning_rate, weight_decay = self.grid[chosen]
    if fit is train:
      # Validation was given separately: the selection run already fit all of train.
      weights, biases = weights[chosen:chosen + 1], biases[chosen:chosen + 1]
    else:
      preprocess, weights, biases = self._fit(train.video_features(), train.labels,
                                              num_classes, [self.grid[chosen]])
    logits = preprocess(test.video_features()) @ weights[0] + biases[0]
    if not np.isfinite(logits).all():
      raise RuntimeError(f"linear: the refit with lr={learning_rate}, wd={weight_decay} "
                         "diverged.")
    self.details = {
        "selected_learning_rate": learning_rate, "selected_weight_decay": weight_decay,
        "validation_top1": {f"lr={lr:g},wd={wd:g}": 100.0 * -acc for acc, _, i in candidates
                            for lr, wd in [self.grid[i]]},
        "num_fit": fit.num_videos, "num_val": val.num_videos, "num_refit": train.num_videos}
    top1 = knn.topk_hits(logits, test.labels, 1, positive_only=False)
    top5 = knn.topk_hits(logits, test.labels, 5, positive_only=False)
    predicted = logits.argmax(axis=1)
    self.predictions = {
        "top1": stats.outcome(top1, labels=test.labels, predicted=predicted),
        "top5": stats.outcome(top5, labels=test.labels),
        "mean_class_acc": stats.outcome(predicted == test.labels, statistic="mean_class",
                                        labels=test.labels, predicted=predicted)}
    yield "top1", 100.0 * float(top1.mean())
    yield "top5", 100.0 * float(top5.mean())
    yield "mean_class_acc", mean_class_accuracy(predicted, test.labels)
