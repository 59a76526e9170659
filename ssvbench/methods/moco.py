"""MoCo v2 and v3, and the momentum-encoder and queue state MoCo introduced.

MoCo (He et al., 2020; Chen et al., 2020, 2021) matches queries from the online encoder
with keys from a momentum (EMA) copy of it. v2 takes its negatives from a FIFO queue of
past keys; v3 drops the queue for the other keys of the (large) batch and adds a
predictor. BYOL reuses the EMA target and SwAV the queue, so that state lives in
methods/common.py.

How the state fits the one trainer:
- The EMA target is a copy of (backbone, projector) whose weights are `common.EMATarget`
  variables, not `nnx.Param`: the trainer's `nnx.split(model, nnx.Param, ...)` puts them
  in `rest`, so the optimiser never sees them and no gradient is taken with respect to
  them; `after_update` moves them towards the new online weights with one `jax.tree.map`.
  They are checkpointed with the rest of the train state.
- The queue is a `Queue` variable (also in `rest`), replicated on every device. The loss
  reads it, then writes it back with the keys of the GLOBAL batch in front (under jit XLA
  gathers the sharded keys), so its content does not depend on the device count.
- Without a shuffling BN, the key encoder's batch statistics come from the same global
  batch as the queries' (as in MoCo v3, which uses synchronised BN).

With rho > 2 views per video every ordered pair of distinct views (a, b) is a
(query, key) pair, and keys of all views enter the queue (SlowFast's rho-MoCo).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ssvbench.methods import common, losses, video_options
from ssvbench.models import input_norm

def moco_pair_loss(q, k, temperature, *, queue=None, in_batch_negatives=False,
                   intra_keys=None, debiased_tau_plus=None, hard_negative_beta=None):
  """MoCo's query-key InfoNCE, with optional per-video intra negatives.

  Without `intra_keys` this is `losses.moco_info_nce`. With them ([N, E, D] keys of the
  IIC negatives of query i's own video) they join query i's negatives only; the debiased
  and hard-negative estimators are not defined for them here and are refused.
  """
  if intra_keys is None:
    return losses.moco_info_nce(q, k, temperature, queue=queue,
                                in_batch_negatives=in_batch_negatives,
                                debiased_tau_plus=debiased_tau_plus,
                                hard_negative_beta=hard_negative_beta)
  if debiased_tau_plus is not None or hard_negative_beta is not None:
    raise ValueError("MoCo with intra-video negatives supports the plain InfoNCE only; "
                     "unset debiased_tau_plus / hard_negative_beta.")
  q = losses.l2_normalize(q.astype(jnp.float32))
  k = jax.lax.stop_gradient(losses.l2_normalize(k.astype(jnp.float32)))
  highest = jax.lax.Precision.HIGHEST
  logits = [jnp.sum(q * k, axis=-1, keepdims=True)]
  if in_batch_negatives:
    others = jnp.matmul(q, k.T, precision=highest)
    logits.append(jnp.where(jnp.eye(q.shape[0], dtype=bool), -jnp.inf, others))
  if queue is not None:
    queue = jax.lax.stop_gradient(losses.l2_normalize(queue.astype(jnp.float32)))
    logits.append(jnp.matmul(q, queue.T, precision=highest))
  intra = jax.lax.stop_gradient(losses.l2_normalize(intra_keys.astype(jnp.float32)))
  logits.append(jnp.einsum("nd,ned->ne", q, intra, precision=highest))
  logits = jnp.concatenate(logits, axis=1) / temperature
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[:, 0])


class MoCoModel(nnx.Module):
  """Online backbone + projector (+ predictor for v3), EMA target, optional key queue."""

  def __init__(self, backbone, projector, predictor, queue_size: int, key_dim: int,
               rngs: nnx.Rngs):
    self.backbone = backbone
    self.projector = projector
    self.predictor = predictor
    self.target = common.momentum_target(backbone, projector)
    if queue_size:
      # Random unit keys until real ones replace them, as in the reference.
      initial = jax.random.normal(rngs.params(), (queue_size, key_dim), jnp.float32)
      self.queue = common.Queue(initial / jnp.linalg.norm(initial, axis=-1, keepdims=True))
    else:
      self.queue = None


def _projection_head(config, in_dim, rngs, prefix="proj", output_norm=False):
  head = common.ProjectionHead(in_dim, config.get(f"{prefix}_hidden_dim"),
                             config.get(f"{prefix}_dim"), config.get(f"{prefix}_depth"), rngs=rngs)
  if not output_norm:
    return head
  # MoCo v3 / SimSiam end the projector with an affine-free BN.
  return nnx.Sequential(head, nnx.BatchNorm(config.get(f"{prefix}_dim"), use_bias=False,
                                            use_scale=False, momentum=0.9, rngs=rngs))


class _MoCo(common.MomentumMethod):
  version = 0

  def __init__(self, config):
    super().__init__(config)
    if self.version == 2 and not self.setting("queue_size"):
      raise ValueError("config.method.queue_size must be > 0 for moco_v2 (its negatives).")
    if self.version == 3 and self.setting("queue_size"):
      raise ValueError("config.method.queue_size must be 0 for moco_v3 (in-batch negatives).")

  def build_model(self, backbone, num_classes, rngs):
    del num_classes
    c = self.config
    projector = _projection_head(c, backbone.feature_dim, rngs, output_norm=self.version == 3)
    predictor = None
    if self.version == 3:
      predictor = common.ProjectionHead(c.proj_dim, c.pred_hidden_dim, c.proj_dim, 2, rngs=rngs)
    return MoCoModel(backbone, projector, predictor, self.setting("queue_size"), c.proj_dim, rngs)

  def loss(self, model, batch, rng):
    c = self.config
    video = video_options.prepare(batch["clips"], rng, self.video,
                                  input_norm.of(model.backbone))
    # Intra-video negatives are keys only: the online encoder sees the views alone.
    features = video_options.encode(model.backbone, video.views)
    batch_size, views, dim = features.shape
    queries = model.projector(features.reshape(batch_size * views, dim))
    if model.predictor is not None:
      queries = model.predictor(queries)
    queries = queries.reshape(batch_size, views, -1)
    key_features, intra_features = video_options.encode_batch(model.target.backbone, video)
    keys = model.target.projector(key_features.reshape(batch_size * views, dim))
    keys = jax.lax.stop_gradient(keys.reshape(batch_size, views, -1))
    intra_keys = None
    if intra_features is not None:
      num_negatives = intra_features.shape[1]
      intra_keys = model.target.projector(intra_features.reshape(batch_size * num_negatives, dim))
      intra_keys = jax.lax.stop_gradient(intra_keys.reshape(batch_size, num_negatives, -1))
    queue = None if model.queue is None else model.queue.get_value()
    pair_losses = [
        moco_pair_loss(queries[:, a], keys[:, b], c.temperature, queue=queue,
                       in_batch_negatives=self.version == 3, intra_keys=intra_keys,
                       debiased_tau_plus=c.get("debiased_tau_plus", None),
                       hard_negative_beta=c.get("hard_negative_beta", None))
        for a in range(views) for b in range(views) if a != b]
    loss = sum(pair_losses) / len(pair_losses)
    if self.version == 3:
      # v3 sums its two directions, each scaled by 2 * tau: x2 keeps rho = 2 identical.
      loss = 2.0 * (2.0 * c.temperature) * loss
    if model.queue is not None:
      flat_keys = keys.reshape(batch_size * views, -1)
      flat_keys = flat_keys / jnp.linalg.norm(flat_keys, axis=-1, keepdims=True)
      model.queue.set_value(common.enqueue(model.queue.get_value(), flat_keys))
    unit_queries = queries / jnp.linalg.norm(queries, axis=-1, keepdims=True)
    unit_keys = keys / jnp.linalg.norm(keys, axis=-1, keepdims=True)
    metrics = {
        "loss": loss,
        "embedding_std": jnp.mean(jnp.std(unit_queries.reshape(batch_size * views, -1), axis=0)),
        "positive_cosine": jnp.mean(jnp.sum(unit_queries[:, 0] * unit_keys[:, 1], axis=-1)),
    }
    return loss, metrics


class MoCoV2(_MoCo):
  """Config: temperature, queue_size, momentum (+schedule), proj_*, num_views, video,
  debiased_tau_plus, hard_negative_beta."""

  name = "moco_v2"
  version = 2


class MoCoV3(_MoCo):
  """Config: temperature, momentum (+schedule), proj_*, pred_hidden_dim, num_views, video,
  debiased_tau_plus, hard_negative_beta."""

  name = "moco_v3"
  version = 3
