"""Supervised contrastive learning (SupCon): the labelled upper bound of the contrastive family.

SupCon (Khosla et al., 2020) is InfoNCE where every clip with the anchor's label is a
positive. Under the same backbone, views and budget as the self-supervised methods it
shows how much of the gap to cross-entropy is the objective's form and how much the
missing labels. Positives and negatives come from the global batch.
"""

from __future__ import annotations

from ssvbench.methods import base, common, losses, video_options
from ssvbench.models import input_norm


class SupCon(base.Method):
  """Config: temperature, proj_hidden_dim, proj_dim, proj_depth, num_views, video."""

  name = "supcon"
  uses_labels = True

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
    embeddings = common.project_views(
        model, video_options.prepare(batch["clips"], rng, self.video,
                                  input_norm.of(model.backbone)))
    loss = losses.supcon_loss(embeddings, batch["label"], self.config.temperature)
    return loss, {"loss": loss, "embedding_std": common.unit_embedding_std(embeddings)}
