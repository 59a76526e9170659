"""VICReg: invariance, variance and covariance terms over the global batch.

VICReg (Bardes et al., 2022) keeps two views' embeddings close (mean squared error),
keeps every dimension's batch std above 1 (a hinge: no collapse to a point) and drives
the off-diagonal covariances to zero (no collapse into a subspace), with weights 25, 25
and 1 in the paper. Like Barlow Twins its batch statistics must be global, which
`losses.vicreg_terms` gets by seeing the whole jit-ed batch. The three unweighted terms
are logged: the variance term rising back towards its maximum is collapse.

With rho views the loss is the mean over unordered pairs of distinct views.
"""

from __future__ import annotations

from ssvbench.methods import base, common, losses, video_options
from ssvbench.models import input_norm


class VICReg(base.Method):
  """Config: sim_coeff, std_coeff, cov_coeff, proj_hidden_dim, proj_dim, proj_depth,
  num_views, video."""

  name = "vicreg"

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
    c = self.config
    embeddings = common.project_views(
        model, video_options.prepare(batch["clips"], rng, self.video,
                                  input_norm.of(model.backbone)))
    views = embeddings.shape[1]
    pairs = [(a, b) for a in range(views) for b in range(a + 1, views)]
    terms = {"invariance": 0.0, "variance": 0.0, "covariance": 0.0}
    for a, b in pairs:
      for name, value in losses.vicreg_terms(embeddings[:, a], embeddings[:, b]).items():
        terms[name] += value / len(pairs)
    loss = (c.sim_coeff * terms["invariance"] + c.std_coeff * terms["variance"]
            + c.cov_coeff * terms["covariance"])
    metrics = {"loss": loss, "embedding_std": common.unit_embedding_std(embeddings)}
    metrics.update({f"vicreg_{name}": value for name, value in terms.items()})
    return loss, metrics
