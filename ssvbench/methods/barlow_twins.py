"""Barlow Twins: the cross-correlation of two views' embeddings pushed to the identity.

Barlow Twins (Zbontar et al., 2021) standardises each embedding dimension over the batch,
computes the D x D cross-correlation between two views, and penalises its distance to
the identity: the diagonal makes the views agree, the off-diagonal (weight lambda)
decorrelates dimensions, so information cannot collapse into a few directions. The
statistics are over the GLOBAL batch (`losses.barlow_twins_loss` sees the whole jit-ed
array), which the reference obtains with an all-reduce; a per-device batch would change
the loss with the device count. The projector is wide (8192 in the paper) and ends in a
plain linear layer; lambda scales roughly as 1/D.

With rho views the loss is the mean over unordered pairs of distinct views.
"""

from __future__ import annotations

from ssvbench.methods import base, common, losses, video_options
from ssvbench.models import input_norm


class BarlowTwins(base.Method):
  """Config: lambd, proj_hidden_dim, proj_dim, proj_depth, num_views, video."""

  name = "barlow_twins"

  def __init__(self, config):
    super().__init__(config)
    self.video = video_options.VideoOptions.from_config(config, self.num_views)
    video_options.refuse_intra_negatives(self.video, self.name)

  def build_model(self, backbone, num_classes, rngs):
    del num_classes
    c = self.config
    return common.JointEmbeddingModel(backbone, common.ProjectionHead(
        backbone.feature_dim, c.proj_hidden_dim, c.proj_dim, self.setting("proj_depth"), rngs=rngs))

  def loss(self, model, batch, rng):
    embeddings = common.project_views(model, video_options.prepare(batch["clips"], rng, self.video,
                                  input_norm.of(model.backbone)))
    views = embeddings.shape[1]
    pair_losses = [losses.barlow_twins_loss(embeddings[:, a], embeddings[:, b], self.config.lambd)
                   for a in range(views) for b in range(a + 1, views)]
    loss = sum(pair_losses) / len(pair_losses)
    return loss, {"loss": loss, "embedding_std": common.unit_embedding_std(embeddings)}
