"""SimCLR / CVRL: InfoNCE between clips of the same video, negatives from the global batch.

CVRL (Qian et al., 2021) applies SimCLR to video: positives are two clips of one video
sampled at a random temporal interval, each with its own temporally consistent spatial
augmentation. The similarity matrix is computed on the global batch (every clip on every
device), so the loss and its negatives do not depend on the device count. With rho > 2
clips per video, every pair of clips of a video is a positive (the rho-SimCLR variant).
"""

from __future__ import annotations

import jax.numpy as jnp

from ssvbench.methods import base, common, losses


class SimCLR(base.Method):
  """Config: temperature, proj_hidden_dim, proj_dim, proj_depth, num_views (rho)."""

  name = "simclr"

  def build_model(self, backbone, num_classes, rngs):
    del num_classes
    c = self.config
    return common.JointEmbeddingModel(backbone, common.ProjectionHead(
        backbone.feature_dim, self.setting("proj_hidden_dim"), self.setting("proj_dim"),
        self.setting("proj_depth"), rngs=rngs))

  def loss(self, model, batch, rng):
    del rng
    features = base.encode_views(model.backbone, batch["clips"])
    batch_size, views, dim = features.shape
    projections = model.projector(features.reshape(batch_size * views, dim))
    projections = projections.reshape(batch_size, views, -1)
    loss = losses.info_nce(
        projections, self.setting("temperature"),
        debiased_tau_plus=self.config.get("debiased_tau_plus", None),
        hard_negative_beta=self.config.get("hard_negative_beta", None))
    normalized = projections / jnp.linalg.norm(projections, axis=-1, keepdims=True)
    metrics = {
        "loss": loss,
        # Collapse monitor: std of normalised embeddings per dimension (1/sqrt(d) when
        # uniform, 0 when collapsed).
        "embedding_std": jnp.mean(jnp.std(normalized.reshape(batch_size * views, -1), axis=0)),
        "positive_cosine": jnp.mean(jnp.sum(normalized[:, 0] * normalized[:, 1], axis=-1)),
    }
    return loss, metrics
