"""SwAV: swapped prediction of Sinkhorn cluster codes over the global batch.

SwAV (Caron et al., 2020) maps each view's normalised embedding to scores against K
learnable unit-norm prototypes, turns the scores of the assigning views into soft codes
with a few Sinkhorn-Knopp iterations (equal mass per prototype, so no collapse onto
one cluster), and trains every other view to predict those codes. Equipartition is
enforced over whatever batch Sinkhorn sees, so it must see the GLOBAL batch: here it does
(the scores are one jit-ed array sharded over devices), not a per-device slice.

Details that follow the reference:
- prototypes are kept unit-norm: the reference renormalises the weight before every
  step; the trainer only updates non-Param state outside the gradient, so the scores use
  w / |w| directly (identical scores; the gradient is the reference's projected onto
  the sphere's tangent, i.e. a weight-normalised layer);
- prototypes are frozen for the first `freeze_prototypes_steps` steps;
- an optional queue of past embeddings of the assigning views (newest first, shifted by
  the batch as in the reference) is prepended to Sinkhorn's input once it is full
  (counted from `queue_start_step`); it only makes the codes better balanced when the
  batch is small next to K.
With rho views all are assigning views unless `num_assign_views` says otherwise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ssvbench.methods import base, common, losses, video_options
from ssvbench.models import input_norm


class StepCount(nnx.Variable):
  """Optimiser steps taken so far (the loss needs it for the freeze and queue start)."""


class SwAVModel(nnx.Module):
  def __init__(self, backbone, projector, num_prototypes: int, proj_dim: int,
               queue_size: int, num_assign_views: int, rngs: nnx.Rngs):
    self.backbone = backbone
    self.projector = projector
    self.prototypes = nnx.Linear(proj_dim, num_prototypes, use_bias=False, rngs=rngs)
    self.step_count = StepCount(jnp.zeros((), jnp.int32))
    if queue_size:
      self.queue = common.Queue(jnp.zeros((num_assign_views, queue_size, proj_dim), jnp.float32))
      self.queue_fill = common.QueueFill(jnp.zeros((), jnp.int32))
    else:
      self.queue = None
      self.queue_fill = None


class SwAV(base.Method):
  """Config: num_prototypes, temperature, sinkhorn_epsilon, sinkhorn_iterations,
  freeze_prototypes_steps, queue_size, queue_start_step, num_assign_views, proj_*,
  num_views, video."""

  name = "swav"

  def __init__(self, config):
    super().__init__(config)
    self.video = video_options.VideoOptions.from_config(config, self.num_views)
    video_options.refuse_intra_negatives(self.video, self.name)
    self.num_assign_views = int(config.get("num_assign_views", None) or self.num_views)
    if not 1 <= self.num_assign_views <= self.num_views:
      raise ValueError(f"config.method.num_assign_views={self.num_assign_views} must be in "
                       f"[1, num_views={self.num_views}].")

  def build_model(self, backbone, num_classes, rngs):
    del num_classes
    c = self.config
    projector = common.ProjectionHead(backbone.feature_dim, c.proj_hidden_dim, c.proj_dim,
                                    self.setting("proj_depth"), rngs=rngs)
    return SwAVModel(backbone, projector, c.num_prototypes, c.proj_dim,
                     self.setting("queue_size"), self.num_assign_views, rngs)

  def loss(self, model, batch, rng):
    c = self.config
    video = video_options.prepare(batch["clips"], rng, self.video,
                                  input_norm.of(model.backbone))
    features = video_options.encode(model.backbone, video.views)
    batch_size, views, dim = features.shape
    embeddings = model.projector(features.reshape(batch_size * views, dim))
    embeddings = embeddings / jnp.linalg.norm(embeddings, axis=-1, keepdims=True)
    embeddings = embeddings.reshape(batch_size, views, -1)
    kernel = model.prototypes.kernel.get_value()
    prototypes = kernel / jnp.linalg.norm(kernel, axis=0, keepdims=True)
    step = model.step_count.get_value()
    frozen = step < self.setting("freeze_prototypes_steps")
    prototypes = jnp.where(frozen, jax.lax.stop_gradient(prototypes), prototypes)
    scores = jnp.einsum("bvd,dk->vbk", embeddings, prototypes,
                        precision=jax.lax.Precision.HIGHEST)
    swav = lambda queue_scores: losses.swav_loss(
        scores, c.temperature, c.sinkhorn_epsilon, c.sinkhorn_iterations,
        num_assign_views=self.num_assign_views, queue_scores=queue_scores)
    metrics = {}
    if model.queue is None:
      loss = swav(None)
    else:
      queue = model.queue.get_value()
      queue_scores = jnp.einsum("vqd,dk->vqk", queue, prototypes,
                                precision=jax.lax.Precision.HIGHEST)
      in_use = model.queue_fill.get_value() >= queue.shape[1]
      loss = jax.lax.cond(in_use, lambda: swav(queue_scores), lambda: swav(None))
      assign = jnp.swapaxes(embeddings[:, :self.num_assign_views], 0, 1)
      model.queue.set_value(common.enqueue(queue, jax.lax.stop_gradient(assign), axis=1))
      started = step >= self.setting("queue_start_step")
      filled = jnp.minimum(model.queue_fill.get_value() + batch_size, queue.shape[1])
      model.queue_fill.set_value(jnp.where(started, filled, 0).astype(jnp.int32))
      metrics["queue_in_use"] = in_use.astype(jnp.float32)
    metrics.update({
        "loss": loss,
        "embedding_std": jnp.mean(jnp.std(embeddings.reshape(batch_size * views, -1), axis=0)),
        # Prototypes that are some sample's best match: 1/K means collapse onto one.
        "prototype_usage": jnp.mean(jnp.any(
            jax.nn.one_hot(jnp.argmax(scores, -1), scores.shape[-1]) > 0, axis=(0, 1))),
    })
    return loss, metrics

  def after_update(self, params, rest, step):
    del params
    return nnx.merge_state(rest, nnx.State({"step_count": StepCount(
        (step + 1).astype(jnp.int32))}))
