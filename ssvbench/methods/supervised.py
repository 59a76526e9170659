"""Baselines that bracket self-supervised results under the same backbone and budget.

- `supervised`: cross-entropy on the labels of the pre-training split, an upper bound.
- `random_init`: the backbone as initialised, never trained, the lower bound. A method
  that does not beat it has learned nothing the architecture did not give for free.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ssvbench.methods import base


class ClassifierModel(nnx.Module):
  def __init__(self, backbone: nnx.Module, num_classes: int, rngs: nnx.Rngs):
    self.backbone = backbone
    self.classifier = nnx.Linear(backbone.feature_dim, num_classes, rngs=rngs)


class Supervised(base.Method):
  """Cross-entropy on every clip of the batch (views share their video's label)."""

  name = "supervised"
  uses_labels = True

  def build_model(self, backbone, num_classes, rngs):
    return ClassifierModel(backbone, num_classes, rngs)

  def loss(self, model, batch, rng):
    del rng
    features = base.encode_views(model.backbone, batch["clips"])
    batch_size, views, dim = features.shape
    logits = model.classifier(features.reshape(batch_size * views, dim))
    labels = jnp.repeat(batch["label"], views)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    return loss, {"loss": loss, "train_accuracy": accuracy * 100.0}


class RandomInit(base.Method):
  """No training: the lower bound."""

  name = "random_init"

  @property
  def trains(self) -> bool:
    return False

  def build_model(self, backbone, num_classes, rngs):
    del num_classes, rngs
    return RandomModel(backbone)

  def loss(self, model, batch, rng):
    raise RuntimeError("random_init is never trained; set config.train.num_steps=0.")


class RandomModel(nnx.Module):
  def __init__(self, backbone: nnx.Module):
    self.backbone = backbone
