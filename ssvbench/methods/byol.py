"""BYOL: predict an EMA target's projection of another view; no negatives.

BYOL (Grill et al., 2020) trains an online network (backbone, projector, predictor) to
regress, with the normalised error 2 - 2 cos, the projection of another view computed by
a target network whose weights are an exponential moving average of the online ones,
with a momentum that rises from its base value to 1 along a cosine. The asymmetry
(predictor on one side, EMA and stop-gradient on the other) is what keeps it from
collapsing; the embedding-std metric watches that it does.

The rho-BYOL of the large-scale video study regresses every clip of a video onto every
other: the loss is twice the mean over ordered pairs of distinct views, which for rho = 2
is exactly BYOL's symmetrised loss (the sum of both directions). The EMA target and its
update are MoCo's (`common.momentum_target`, `common.MomentumMethod`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ssvbench.methods import common, losses, video_options
from ssvbench.models import input_norm


class BYOLModel(nnx.Module):
  """Online backbone, projector and predictor, and the EMA target (backbone, projector)."""

  def __init__(self, backbone, projector, predictor):
    self.backbone = backbone
    self.projector = projector
    self.predictor = predictor
    self.target = common.momentum_target(backbone, projector)


class BYOL(common.MomentumMethod):
  """Config: momentum (+schedule, steps), proj_hidden_dim, proj_dim, proj_depth,
  pred_hidden_dim, num_views, video."""

  name = "byol"

  def __init__(self, config):
    super().__init__(config)
    video_options.refuse_intra_negatives(self.video, self.name)

  def build_model(self, backbone, num_classes, rngs):
    del num_classes
    c = self.config
    projector = common.ProjectionHead(backbone.feature_dim, c.proj_hidden_dim, c.proj_dim,
                                    self.setting("proj_depth"), rngs=rngs)
    predictor = common.ProjectionHead(c.proj_dim, c.pred_hidden_dim, c.proj_dim, 2, rngs=rngs)
    return BYOLModel(backbone, projector, predictor)

  def loss(self, model, batch, rng):
    video = video_options.prepare(batch["clips"], rng, self.video,
                                  input_norm.of(model.backbone))
    features = video_options.encode(model.backbone, video.views)
    batch_size, views, dim = features.shape
    projections = model.projector(features.reshape(batch_size * views, dim))
    predictions = model.predictor(projections).reshape(batch_size, views, -1)
    target_features = video_options.encode(model.target.backbone, video.views)
    targets = model.target.projector(target_features.reshape(batch_size * views, dim))
    targets = jax.lax.stop_gradient(targets.reshape(batch_size, views, -1))
    pair_losses = [losses.byol_loss(predictions[:, a], targets[:, b])
                   for a in range(views) for b in range(views) if a != b]
    loss = 2.0 * sum(pair_losses) / len(pair_losses)
    unit = projections / jnp.linalg.norm(projections, axis=-1, keepdims=True)
    return loss, {
        "loss": loss,
        "embedding_std": jnp.mean(jnp.std(unit, axis=0)),
        "prediction_cosine": 1.0 - jnp.mean(jnp.stack(pair_losses)) / 2.0,
    }
