"""Loss functions of the method zoo, as pure jax.numpy functions of the global batch.

Every loss here sees the *global* batch: under `jax.jit` with sharded inputs, the
similarity matrices, batch statistics and Sinkhorn marginals below are computed over
all devices by the compiler, so a loss and its negatives do not depend on the device
count (unlike per-GPU losses that only see local negatives). The method modules own the
models, EMA targets and queues; these functions only map embeddings to a scalar.

Conventions shared by all losses:
  * Embeddings are cast to float32 and, where the paper uses cosine similarity,
    L2-normalised here; similarity matmuls use HIGHEST precision, because a
    bf16-rounded similarity divided by a temperature of 0.1 is a visibly different
    loss, and these matmuls are cheap next to the backbone.
  * Targets that the paper computes under `no_grad`/`detach` (BYOL/SimSiam targets,
    MoCo keys and queues, Sinkhorn codes) are wrapped in `jax.lax.stop_gradient` here,
    so a method cannot forget it.
  * Hyper-parameters have no defaults: they come from the method's config.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_HIGHEST = jax.lax.Precision.HIGHEST


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """Rows scaled to unit L2 norm, on device (the one helper the losses and methods use)."""
  # rsqrt of a clamped squared norm: unlike `x / norm(x)`, finite gradient at x = 0.
  squared = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(squared, eps * eps))


def _masked_max(x: jax.Array, mask: jax.Array) -> jax.Array:
  return jnp.max(jnp.where(mask, x, -jnp.inf), axis=-1, keepdims=True)


def _check_positive(name: str, value) -> None:
  if isinstance(value, (int, float)) and not value > 0:
    raise ValueError(f"{name} must be > 0, got {value}.")


def _check_variants(debiased_tau_plus, hard_negative_beta) -> None:
  if debiased_tau_plus is not None and not 0.0 <= debiased_tau_plus < 1.0:
    raise ValueError(f"debiased_tau_plus must be in [0, 1), got {debiased_tau_plus}.")
  if hard_negative_beta is not None and not hard_negative_beta >= 0.0:
    raise ValueError(f"hard_negative_beta must be >= 0, got {hard_negative_beta}.")


def _contrastive_pairs(positive_logits, positive_mask, negative_logits, negative_mask,
                       temperature, tau_plus, beta) -> jax.Array:
  """Mean over valid (anchor, positive) pairs of -log(pos / (pos + negatives)).

  Every pair is a one-positive InfoNCE term against its anchor's negatives only (other
  positives of the anchor are not in its denominator), which is the form the debiased
  (Chuang et al., 2020) and hard-negative (Robinson et al., 2021) estimators are
  derived for, and the form of the multi-clip SimCLR of the rho-methods.

  Args:
    positive_logits: [A, P] cosine / temperature of each anchor with each positive slot.
    positive_mask: [A, P] which positive slots are real.
    negative_logits: [A, K] cosine / temperature with each negative slot.
    negative_mask: [A, K] which negative slots are real.
    temperature: the temperature the logits were divided by (for the debiased floor).
    tau_plus: positive-class prior of the debiased estimator, or None.
    beta: hard-negative concentration, or None.

  Returns:
    The scalar mean loss.
  """
  if tau_plus is None and beta is None:
    negative_lse = jax.nn.logsumexp(
        jnp.where(negative_mask, negative_logits, -jnp.inf), axis=-1, keepdims=True)
    pair_loss = jnp.logaddexp(positive_logits, negative_lse) - positive_logits
  else:
    tau_plus = 0.0 if tau_plus is None else tau_plus
    num_negatives = jnp.sum(negative_mask, axis=-1, keepdims=True).astype(jnp.float32)
    # The loss is invariant to a common scale of pos and negatives; shifting by the
    # anchor's largest logit keeps every exp <= 1 at any temperature.
    shift = jax.lax.stop_gradient(jnp.maximum(
        _masked_max(positive_logits, positive_mask),
        _masked_max(negative_logits, negative_mask)))
    # Masked entries (e.g. an anchor with itself, logit 1/T) are set to -inf *before*
    # the exp: exp could overflow there, and 0 * inf in the backward pass is NaN.
    negative_exp = jnp.exp(jnp.where(negative_mask, negative_logits - shift, -jnp.inf))
    if beta is not None:
      # Importance weights exp(beta * s / T), normalised to mean one over negatives;
      # the shift by the largest negative cancels in the ratio.
      largest_negative = jax.lax.stop_gradient(
          _masked_max(negative_logits, negative_mask))
      importance = jnp.exp(jnp.where(
          negative_mask, beta * (negative_logits - largest_negative), -jnp.inf))
      negative_sum = num_negatives * (
          jnp.sum(importance * negative_exp, axis=-1, keepdims=True)
          / jnp.sum(importance, axis=-1, keepdims=True))
    else:
      negative_sum = jnp.sum(negative_exp, axis=-1, keepdims=True)
    positive_shifted = jnp.where(positive_mask, positive_logits - shift, 0.0)
    positive_exp = jnp.exp(positive_shifted)
    estimate = (negative_sum - tau_plus * num_negatives * positive_exp) / (1.0 - tau_plus)
    # The estimator's theoretical minimum (every negative at cosine -1).
    floor = num_negatives * jnp.exp(-1.0 / temperature - shift)
    estimate = jnp.maximum(estimate, floor)
    pair_loss = jnp.log(positive_exp + estimate) - positive_shifted
  pair_loss = jnp.where(positive_mask, pair_loss, 0.0)
  return jnp.sum(pair_loss) / jnp.sum(positive_mask)


def info_nce(
    z: jax.Array,
    temperature: float,
    *,
    debiased_tau_plus: float | None = None,
    hard_negative_beta: float | None = None,
    intra_negatives: jax.Array | None = None,
) -> jax.Array:
  """InfoNCE (SimCLR / CVRL / rho-SimCLR) over a global batch of rho >= 2 views.

  For every ordered pair of distinct views (a, b) of the same sample, the term is
  -log(e_ab / (e_ab + sum_n e_an)) with e = exp(cos / temperature), where n ranges
  over every view of every *other* sample (and the sample's intra-video negatives).
  With rho = 2 this is exactly SimCLR's NT-Xent; with rho > 2 the other views of the
  anchor's sample are neither positives nor negatives of that term.

  Args:
    z: [N, rho, D] embeddings of N samples with rho views each (normalised here).
    temperature: softmax temperature.
    debiased_tau_plus: if set, the debiased estimator with positive-class prior tau+
      in [0, 1) replaces the sum of negatives (Chuang et al., 2020).
    hard_negative_beta: if set, negatives are importance-weighted by
      exp(beta * cos / T) (Robinson et al., 2021); combined with tau+ if both are set.
    intra_negatives: optional [N, E, D] embeddings of clips that must *not* match their
      own sample (IIC-style frame-shuffled or frame-repeated clips); they are extra
      negatives of every view of that sample only, and receive gradients.

  Returns:
    The mean over the N * rho * (rho - 1) ordered positive pairs.
  """
  if z.ndim != 3 or z.shape[0] < 2 or z.shape[1] < 2:
    raise ValueError(f"info_nce: z must be [N >= 2, rho >= 2, D], got {z.shape}.")
  _check_positive("info_nce: temperature", temperature)
  _check_variants(debiased_tau_plus, hard_negative_beta)
  num_samples, rho, dim = z.shape
  flat = l2_normalize(z.astype(jnp.float32)).reshape(num_samples * rho, dim)
  logits = jnp.matmul(flat, flat.T, precision=_HIGHEST) / temperature
  sample = jnp.repeat(jnp.arange(num_samples), rho)
  same_sample = sample[:, None] == sample[None, :]
  positive_mask = same_sample & ~jnp.eye(num_samples * rho, dtype=bool)
  negative_logits, negative_mask = logits, ~same_sample
  if intra_negatives is not None:
    if (intra_negatives.ndim != 3 or intra_negatives.shape[0] != num_samples
        or intra_negatives.shape[2] != dim):
      raise ValueError(f"info_nce: intra_negatives must be [N={num_samples}, E, "
                       f"D={dim}], got {intra_negatives.shape}.")
    intra = l2_normalize(intra_negatives.astype(jnp.float32))[sample]
    intra_logits = jnp.einsum("ad,aed->ae", flat, intra, precision=_HIGHEST) / temperature
    negative_logits = jnp.concatenate([logits, intra_logits], axis=1)
    negative_mask = jnp.concatenate(
        [negative_mask, jnp.ones(intra_logits.shape, dtype=bool)], axis=1)
  return _contrastive_pairs(logits, positive_mask, negative_logits, negative_mask,
                            temperature, debiased_tau_plus, hard_negative_beta)


def moco_info_nce(
    q: jax.Array,
    k: jax.Array,
    temperature: float,
    *,
    queue: jax.Array | None = None,
    in_batch_negatives: bool = True,
    debiased_tau_plus: float | None = None,
    hard_negative_beta: float | None = None,
) -> jax.Array:
  """Query-key InfoNCE of MoCo: q_i's positive is k_i; keys and queue get no gradient.

  MoCo v2 uses the queue only (`in_batch_negatives=False, queue=...`); MoCo v3 uses the
  other keys of the global batch (`in_batch_negatives=True, queue=None`) and scales the
  loss by 2 * temperature, which is left to the method.

  Args:
    q: [N, D] queries (online encoder); normalised here.
    k: [N, D] keys (momentum encoder); normalised here, under stop_gradient.
    temperature: softmax temperature.
    queue: optional [K, D] past keys, extra negatives of every query.
    in_batch_negatives: whether k_j (j != i) are negatives of q_i.
    debiased_tau_plus: see `info_nce`.
    hard_negative_beta: see `info_nce`.

  Returns:
    The mean loss over the N queries.
  """
  if q.ndim != 2 or q.shape != k.shape:
    raise ValueError(f"moco_info_nce: q and k must both be [N, D], got {q.shape} and "
                     f"{k.shape}.")
  if queue is None and (not in_batch_negatives or q.shape[0] < 2):
    raise ValueError("moco_info_nce: no negatives; pass a queue or in-batch negatives "
                     "with N >= 2.")
  _check_positive("moco_info_nce: temperature", temperature)
  _check_variants(debiased_tau_plus, hard_negative_beta)
  q = l2_normalize(q.astype(jnp.float32))
  k = jax.lax.stop_gradient(l2_normalize(k.astype(jnp.float32)))
  positive_logits = jnp.sum(q * k, axis=-1, keepdims=True) / temperature
  negative_logits, negative_masks = [], []
  if in_batch_negatives:
    negative_logits.append(jnp.matmul(q, k.T, precision=_HIGHEST) / temperature)
    negative_masks.append(~jnp.eye(q.shape[0], dtype=bool))
  if queue is not None:
    if queue.ndim != 2 or queue.shape[1] != q.shape[1]:
      raise ValueError(f"moco_info_nce: queue must be [K, D={q.shape[1]}], got "
                       f"{queue.shape}.")
    queue = jax.lax.stop_gradient(l2_normalize(queue.astype(jnp.float32)))
    negative_logits.append(jnp.matmul(q, queue.T, precision=_HIGHEST) / temperature)
    negative_masks.append(jnp.ones((q.shape[0], queue.shape[0]), dtype=bool))
  return _contrastive_pairs(
      positive_logits, jnp.ones(positive_logits.shape, dtype=bool),
      jnp.concatenate(negative_logits, axis=1), jnp.concatenate(negative_masks, axis=1),
      temperature, debiased_tau_plus, hard_negative_beta)


def byol_loss(p: jax.Array, z: jax.Array) -> jax.Array:
  """BYOL's normalised regression 2 - 2 cos(p, sg(z)), averaged over the batch.

  Args:
    p: [..., D] online predictions.
    z: [..., D] target projections (EMA network); no gradient flows into them.

  Returns:
    The scalar mean; the method symmetrises by swapping the views.
  """
  if p.shape != z.shape:
    raise ValueError(f"byol_loss: p {p.shape} and z {z.shape} must match.")
  target = jax.lax.stop_gradient(l2_normalize(z.astype(jnp.float32)))
  cosine = jnp.sum(l2_normalize(p.astype(jnp.float32)) * target, axis=-1)
  return jnp.mean(2.0 - 2.0 * cosine)


def simsiam_loss(p: jax.Array, z: jax.Array) -> jax.Array:
  """SimSiam's negative cosine -cos(p, sg(z)), averaged over the batch.

  Args:
    p: [..., D] predictions of one view.
    z: [..., D] projections of the other view (same network, stop-gradient).

  Returns:
    The scalar mean; SimSiam's loss is 0.5 * (D(p1, z2) + D(p2, z1)).
  """
  if p.shape != z.shape:
    raise ValueError(f"simsiam_loss: p {p.shape} and z {z.shape} must match.")
  target = jax.lax.stop_gradient(l2_normalize(z.astype(jnp.float32)))
  return -jnp.mean(jnp.sum(l2_normalize(p.astype(jnp.float32)) * target, axis=-1))


def barlow_twins_loss(z1: jax.Array, z2: jax.Array, lambd: float,
                      eps: float = 1e-5) -> jax.Array:
  """Barlow Twins: cross-correlation of batch-standardised embeddings pushed to I.

  Standardisation matches the reference's affine-free BatchNorm in training mode
  (biased variance, eps 1e-5), over the global batch.

  Args:
    z1: [N, D] projections of view 1.
    z2: [N, D] projections of view 2.
    lambd: weight of the off-diagonal (redundancy reduction) term.
    eps: variance epsilon of the standardisation.

  Returns:
    sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2.
  """
  if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
    raise ValueError(f"barlow_twins_loss: z1 {z1.shape} and z2 {z2.shape} must both be "
                     "[N >= 2, D].")
  def standardise(x):
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=0)
    return (x - mean) * jax.lax.rsqrt(jnp.mean(jnp.square(x - mean), axis=0) + eps)
  correlation = jnp.matmul(standardise(z1).T, standardise(z2),
                           precision=_HIGHEST) / z1.shape[0]
  diagonal = jnp.diagonal(correlation)
  on_diagonal = jnp.sum(jnp.square(1.0 - diagonal))
  off_diagonal = jnp.sum(jnp.square(correlation)) - jnp.sum(jnp.square(diagonal))
  return on_diagonal + lambd * off_diagonal


def vicreg_terms(z1: jax.Array, z2: jax.Array, eps: float = 1e-4) -> dict[str, jax.Array]:
  """The three unweighted VICReg terms, for the loss and for logging.

  Args:
    z1: [N, D] expander outputs of view 1.
    z2: [N, D] expander outputs of view 2.
    eps: added to the (unbiased) variance before the square root, as in the reference.

  Returns:
    dict(invariance=mean squared error, variance=mean hinge of std below 1 (averaged
    over both views), covariance=sum of squared off-diagonal covariances / D, summed
    over both views).
  """
  if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
    raise ValueError(f"vicreg: z1 {z1.shape} and z2 {z2.shape} must both be [N >= 2, D].")
  num_samples, dim = z1.shape
  z1, z2 = z1.astype(jnp.float32), z2.astype(jnp.float32)
  invariance = jnp.mean(jnp.square(z1 - z2))
  variance = covariance = 0.0
  for z in (z1, z2):
    centred = z - jnp.mean(z, axis=0)
    std = jnp.sqrt(jnp.sum(jnp.square(centred), axis=0) / (num_samples - 1) + eps)
    variance += jnp.mean(jax.nn.relu(1.0 - std)) / 2.0
    cov = jnp.matmul(centred.T, centred, precision=_HIGHEST) / (num_samples - 1)
    covariance += (jnp.sum(jnp.square(cov)) - jnp.sum(jnp.square(jnp.diagonal(cov)))) / dim
  return {"invariance": invariance, "variance": variance, "covariance": covariance}


def vicreg_loss(z1: jax.Array, z2: jax.Array, sim_coeff: float, std_coeff: float,
                cov_coeff: float) -> jax.Array:
  """VICReg: sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance.

  Args:
    z1: [N, D] expander outputs of view 1.
    z2: [N, D] expander outputs of view 2.
    sim_coeff: invariance weight (25 in the paper).
    std_coeff: variance weight (25).
    cov_coeff: covariance weight (1).

  Returns:
    The scalar loss (terms as in `vicreg_terms`).
  """
  terms = vicreg_terms(z1, z2)
  return (sim_coeff * terms["invariance"] + std_coeff * terms["variance"]
          + cov_coeff * terms["covariance"])


def sinkhorn(scores: jax.Array, epsilon: float, iterations: int) -> jax.Array:
  """Sinkhorn-Knopp equipartition of a batch over prototypes (SwAV codes).

  Alternately normalises exp(scores / epsilon) so that every prototype receives 1/K
  of the mass and every sample 1/B, `iterations` times, in log space (no overflow at
  small epsilon). Computed under stop_gradient: codes are targets.

  Args:
    scores: [B, K] similarities of B samples (the global batch, optionally with queued
      samples prepended) to K prototypes.
    epsilon: entropic regularisation.
    iterations: number of (prototype, sample) normalisation rounds, >= 1.

  Returns:
    [B, K] codes; each row sums to 1, each column to about B / K.
  """
  if scores.ndim != 2:
    raise ValueError(f"sinkhorn: scores must be [B, K], got {scores.shape}.")
  if iterations < 1:
    raise ValueError(f"sinkhorn: iterations must be >= 1, got {iterations}.")
  _check_positive("sinkhorn: epsilon", epsilon)
  num_samples, num_prototypes = scores.shape
  def normalise(_, log_codes):
    log_codes -= (jax.nn.logsumexp(log_codes, axis=0, keepdims=True)
                  + math.log(num_prototypes))
    return log_codes - (jax.nn.logsumexp(log_codes, axis=1, keepdims=True)
                        + math.log(num_samples))
  # A loop, not Python unrolling: compile time stays flat in `iterations`.
  log_codes = jax.lax.fori_loop(
      0, iterations, normalise,
      jax.lax.stop_gradient(scores.astype(jnp.float32)) / epsilon)
  return jnp.exp(log_codes + math.log(num_samples))


def swav_loss(
    scores: jax.Array,
    temperature: float,
    epsilon: float,
    iterations: int,
    *,
    num_assign_views: int | None = None,
    queue_scores: jax.Array | None = None,
) -> jax.Array:
  """SwAV's swapped prediction: each assigning view's codes predicted from the others.

  For each assigning view i, codes q_i = sinkhorn(scores_i) (with the queue's scores
  prepended when given, keeping the batch rows); the loss is the mean over v != i of
  the cross-entropy between q_i and softmax(scores_v / temperature), averaged over the
  assigning views.

  Args:
    scores: [V, B, K] similarities of each view's normalised embeddings to the
      normalised prototypes.
    temperature: softmax temperature of the predictions.
    epsilon: Sinkhorn regularisation.
    iterations: Sinkhorn iterations.
    num_assign_views: the first this many views compute codes (SwAV's crops for
      assign); all V when None.
    queue_scores: optional [num_assign_views, Q, K] scores of queued embeddings of the
      assigning views against the current prototypes.

  Returns:
    The scalar loss.
  """
  if scores.ndim != 3 or scores.shape[0] < 2:
    raise ValueError(f"swav_loss: scores must be [V >= 2, B, K], got {scores.shape}.")
  _check_positive("swav_loss: temperature", temperature)
  num_views, batch_size, num_prototypes = scores.shape
  num_assign_views = num_views if num_assign_views is None else num_assign_views
  if not 1 <= num_assign_views <= num_views:
    raise ValueError(f"swav_loss: num_assign_views must be in [1, {num_views}], got "
                     f"{num_assign_views}.")
  if queue_scores is not None and (queue_scores.ndim != 3
                                   or queue_scores.shape[0] != num_assign_views
                                   or queue_scores.shape[2] != num_prototypes):
    raise ValueError(f"swav_loss: queue_scores must be [{num_assign_views}, Q, "
                     f"{num_prototypes}], got {queue_scores.shape}.")
  scores = scores.astype(jnp.float32)
  log_predictions = jax.nn.log_softmax(scores / temperature, axis=-1)
  total = 0.0
  for view in range(num_assign_views):
    assign_scores = scores[view]
    if queue_scores is not None:
      assign_scores = jnp.concatenate(
          [queue_scores[view].astype(jnp.float32), assign_scores], axis=0)
    codes = sinkhorn(assign_scores, epsilon, iterations)[-batch_size:]
    cross_entropies = [-jnp.mean(jnp.sum(codes * log_predictions[other], axis=-1))
                       for other in range(num_views) if other != view]
    total += sum(cross_entropies) / (num_views - 1)
  return total / num_assign_views


def supcon_loss(z: jax.Array, labels: jax.Array, temperature: float) -> jax.Array:
  """Supervised contrastive loss (Khosla et al., 2020, L_out, contrast mode "all").

  Every view is an anchor; its positives are the other views with the same label
  (including its own sample's other views), its denominator every other view. The
  reference's extra factor temperature / base_temperature (1 at its defaults) is not
  applied.

  Args:
    z: [N, rho, D] embeddings (normalised here), rho >= 1.
    labels: [N] integer class labels.
    temperature: softmax temperature.

  Returns:
    The mean over anchors that have at least one positive of the negative mean
    log-probability of their positives.
  """
  if z.ndim != 3 or labels.shape != z.shape[:1]:
    raise ValueError(f"supcon_loss: z must be [N, rho, D] and labels [N], got {z.shape} "
                     f"and {labels.shape}.")
  _check_positive("supcon_loss: temperature", temperature)
  num_samples, rho, dim = z.shape
  flat = l2_normalize(z.astype(jnp.float32)).reshape(num_samples * rho, dim)
  logits = jnp.matmul(flat, flat.T, precision=_HIGHEST) / temperature
  not_self = ~jnp.eye(num_samples * rho, dtype=bool)
  view_labels = jnp.repeat(labels, rho)
  positive_mask = (view_labels[:, None] == view_labels[None, :]) & not_self
  log_prob = logits - jax.nn.logsumexp(
      jnp.where(not_self, logits, -jnp.inf), axis=-1, keepdims=True)
  num_positives = jnp.sum(positive_mask, axis=-1)
  anchor_loss = -jnp.sum(jnp.where(positive_mask, log_prob, 0.0), axis=-1) / jnp.maximum(
      num_positives, 1)
  has_positive = num_positives > 0
  return jnp.sum(jnp.where(has_positive, anchor_loss, 0.0)) / jnp.maximum(
      jnp.sum(has_positive), 1)
