"""SimSiam: one network, a predictor, and a stop-gradient; no negatives, no EMA.

SimSiam (Chen & He, 2021) shows that BYOL's momentum encoder is not needed: with a
predictor on one branch and a stop-gradient on the other, the negative cosine
D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2 does not collapse. Its projector is three layers
ending in an affine-free BN; its predictor is a bottleneck MLP (hidden = dim / 4).

With rho views the loss is the mean over ordered pairs of distinct views, which is the
paper's symmetrised loss for rho = 2. The stop-gradient is inside `losses.simsiam_loss`.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from ssvbench.methods import base, common, losses, video_options
from ssvbench.models import input_norm


class SimSiamModel(nnx.Module):
  def __init__(self, backbone, projector, predictor):
    self.backbone = backbone
    self.projector = projector
    self.predictor = predictor


class SimSiam(base.Method):
  """Config: proj_hidden_dim, proj_dim, proj_depth, pred_hidden_dim, num_views, video."""

  name = "simsiam"

  def __init__(self, config):
    super().__init__(config)
    self.video = video_options.VideoOptions.from_config(config, self.num_views)
    video_options.refuse_intra_negatives(self.video, self.name)

  def build_model(self, backbone, num_classes, rngs):
    del num_classes
    c = self.config
    projector = nnx.Sequential(
        common.ProjectionHead(backbone.feature_dim, c.proj_hidden_dim, c.proj_dim,
                            self.setting("proj_depth"), rngs=rngs),
        nnx.BatchNorm(c.proj_dim, use_bias=False, use_scale=False, momentum=0.9, rngs=rngs))
    predictor = common.ProjectionHead(c.proj_dim, c.pred_hidden_dim, c.proj_dim, 2, rngs=rngs)
    return SimSiamModel(backbone, projector, predictor)

  def loss(self, model, batch, rng):
    video = video_options.prepare(batch["clips"], rng, self.video,
                                  input_norm.of(model.backbone))
    features = video_options.encode(model.backbone, video.views)
    batch_size, views, dim = features.shape
    projections = model.projector(features.reshape(batch_size * views, dim))
    predictions = model.predictor(projections).reshape(batch_size, views, -1)
    projections = projections.reshape(batch_size, views, -1)
    pair_losses = [losses.simsiam_loss(predictions[:, a], projections[:, b])
                   for a in range(views) for b in range(views) if a != b]
    loss = sum(pair_losses) / len(pair_losses)
    unit = projections / jnp.linalg.norm(projections, axis=-1, keepdims=True)
    return loss, {
        "loss": loss,
        # SimSiam's own collapse monitor: std of the normalised output, 1/sqrt(d) at best.
        "embedding_std": jnp.mean(jnp.std(unit.reshape(batch_size * views, -1), axis=0)),
    }
