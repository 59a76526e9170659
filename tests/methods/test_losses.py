"""Method-zoo losses against straightforward float64 numpy / python-loop computations.

The references transcribe the papers' formulas term by term (no shifts, no masks, no
log-space tricks), so agreement checks the vectorised, numerically-stabilised JAX code.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from ssvbench.methods import losses


def _normalise(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _random(seed, *shape):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ----------------------------------------------------------------------- references


def _pair_term(pos, negatives, temperature, tau_plus, beta):
  """-log(pos / (pos + Ng)) with Ng as in the DCL / HCL reference estimators."""
  if tau_plus is None and beta is None:
    return -math.log(pos / (pos + negatives.sum())), False
  tau = tau_plus or 0.0
  count = len(negatives)
  if beta is not None:
    importance = negatives ** beta
    reweighted = (importance * negatives).sum() / importance.mean()
  else:
    reweighted = negatives.sum()
  estimate = (reweighted - tau * count * pos) / (1 - tau)
  floor = count * math.exp(-1 / temperature)
  return -math.log(pos / (pos + max(estimate, floor))), estimate < floor


def info_nce_reference(z, temperature, tau_plus=None, beta=None, intra=None):
  z = _normalise(z.astype(np.float64))
  num_samples, rho, _ = z.shape
  terms, floored = [], 0
  for i in range(num_samples):
    for a in range(rho):
      anchor = z[i, a]
      similarities = [anchor @ z[j, c] for j in range(num_samples) if j != i
                      for c in range(rho)]
      if intra is not None:
        similarities += [anchor @ e for e in _normalise(intra[i].astype(np.float64))]
      negatives = np.exp(np.array(similarities) / temperature)
      for b in range(rho):
        if b != a:
          term, was_floored = _pair_term(math.exp(anchor @ z[i, b] / temperature),
                                         negatives, temperature, tau_plus, beta)
          terms.append(term)
          floored += was_floored
  return np.mean(terms), floored


def moco_reference(q, k, temperature, queue=None, in_batch=True, tau_plus=None,
                   beta=None):
  q, k = _normalise(q.astype(np.float64)), _normalise(k.astype(np.float64))
  terms = []
  for i in range(len(q)):
    similarities = [q[i] @ k[j] for j in range(len(k)) if j != i] if in_batch else []
    if queue is not None:
      similarities += [q[i] @ key for key in _normalise(queue.astype(np.float64))]
    negatives = np.exp(np.array(similarities) / temperature)
    terms.append(_pair_term(math.exp(q[i] @ k[i] / temperature), negatives,
                            temperature, tau_plus, beta)[0])
  return np.mean(terms)


def sinkhorn_reference(scores, epsilon, iterations):
  """SwAV's published algorithm, in plain exp space, float64."""
  codes = np.exp(scores.astype(np.float64) / epsilon).T  # [K, B]
  num_prototypes, num_samples = codes.shape
  codes /= codes.sum()
  for _ in range(iterations):
    codes /= codes.sum(axis=1, keepdims=True)
    codes /= num_prototypes
    codes /= codes.sum(axis=0, keepdims=True)
    codes /= num_samples
  return (codes * num_samples).T


def _log_softmax(x):
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def swav_reference(scores, temperature, epsilon, iterations, assign=None, queue=None):
  num_views, batch_size, _ = scores.shape
  assign = num_views if assign is None else assign
  total = 0.0
  for i in range(assign):
    assign_scores = scores[i] if queue is None else np.concatenate([queue[i], scores[i]])
    codes = sinkhorn_reference(assign_scores, epsilon, iterations)[-batch_size:]
    sub = 0.0
    for v in range(num_views):
      if v != i:
        sub -= np.mean(np.sum(codes * _log_softmax(scores[v].astype(np.float64)
                                                   / temperature), axis=1))
    total += sub / (num_views - 1)
  return total / assign


def supcon_reference(z, labels, temperature):
  flat = _normalise(z.astype(np.float64)).reshape(-1, z.shape[-1])
  view_labels = np.repeat(labels, z.shape[1])
  anchor_losses = []
  for a in range(len(flat)):
    others = [b for b in range(len(flat)) if b != a]
    denominator = sum(math.exp(flat[a] @ flat[b] / temperature) for b in others)
    positives = [b for b in others if view_labels[b] == view_labels[a]]
    if positives:
      anchor_losses.append(-np.mean([flat[a] @ flat[p] / temperature
                                     - math.log(denominator) for p in positives]))
  return np.mean(anchor_losses)


# ----------------------------------------------------------------------- contrastive

Z = _random(0, 4, 3, 5)  # N=4 samples, rho=3 views, D=5.


INFO_NCE_VARIANTS = [(None, None), (0.1, None), (None, 1.0), (0.1, 0.5), (0.6, None)]


def test_info_nce_matches_loop():
  # One compiled function for all variants: compiles dominate this file's run time.
  got = jax.jit(lambda z: jnp.stack([
      losses.info_nce(z, 0.5, debiased_tau_plus=tau_plus, hard_negative_beta=beta)
      for tau_plus, beta in INFO_NCE_VARIANTS]))(Z)
  for value, (tau_plus, beta) in zip(got, INFO_NCE_VARIANTS):
    expected, floored = info_nce_reference(Z, 0.5, tau_plus, beta)
    np.testing.assert_allclose(value, expected, rtol=1e-5, err_msg=f"{tau_plus}, {beta}")
    if tau_plus == 0.6:
      assert floored > 0  # This case exercises the estimator's floor.


def test_info_nce_rho2_is_nt_xent_and_variants_reduce_to_it():
  z = Z[:, :2]
  flat = _normalise(np.concatenate([z[:, 0], z[:, 1]]).astype(np.float64))
  n = len(z)
  logits = flat @ flat.T / 0.2
  np.fill_diagonal(logits, -np.inf)
  targets = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
  nt_xent = -np.mean(_log_softmax(logits)[np.arange(2 * n), targets])
  # tau+ = 0 and beta = 0 are the plain estimator.
  plain, zero_variants = jax.jit(lambda z: (
      losses.info_nce(z, 0.2),
      losses.info_nce(z, 0.2, debiased_tau_plus=0.0, hard_negative_beta=0.0)))(z)
  np.testing.assert_allclose(plain, nt_xent, rtol=1e-5)
  np.testing.assert_allclose(zero_variants, nt_xent, rtol=1e-5)


def test_info_nce_low_temperature_is_finite():
  # exp(cos / 0.01) overflows float32; the implementation must not.
  plain, variants = jax.jit(lambda z: (
      losses.info_nce(z, 0.01),
      losses.info_nce(z, 0.01, debiased_tau_plus=0.1, hard_negative_beta=1.0)))(Z)
  np.testing.assert_allclose(plain, info_nce_reference(Z, 0.01)[0], rtol=1e-4)
  np.testing.assert_allclose(variants, info_nce_reference(Z, 0.01, 0.1, 1.0)[0],
                             rtol=1e-4)
  # Orthogonal embeddings: every logit but an anchor's own 1/T = 100 is 0, so a masked
  # exp(100) would overflow; gradients must stay finite.
  orthogonal = np.eye(5, dtype=np.float32)[:4].reshape(2, 2, 5)
  grads = jax.jit(jax.grad(lambda z: losses.info_nce(
      z, 0.01, debiased_tau_plus=0.1, hard_negative_beta=1.0)))(orthogonal)
  assert np.all(np.isfinite(grads))


def test_info_nce_intra_negatives():
  intra = _random(1, 4, 2, 5)
  plain, variants = jax.jit(lambda z, intra: (
      losses.info_nce(z, 0.5, intra_negatives=intra),
      losses.info_nce(z, 0.5, debiased_tau_plus=0.1, hard_negative_beta=1.0,
                      intra_negatives=intra)))(Z, intra)
  np.testing.assert_allclose(plain, info_nce_reference(Z, 0.5, intra=intra)[0], rtol=1e-5)
  np.testing.assert_allclose(variants, info_nce_reference(Z, 0.5, 0.1, 1.0, intra)[0],
                             rtol=1e-5)


def test_info_nce_bad_input():
  with pytest.raises(ValueError, match=r"rho >= 2"):
    losses.info_nce(jnp.zeros((4, 1, 5)), 0.1)
  with pytest.raises(ValueError, match=r"debiased_tau_plus must be in \[0, 1\)"):
    losses.info_nce(jnp.asarray(Z), 0.1, debiased_tau_plus=1.0)
  with pytest.raises(ValueError, match=r"temperature must be > 0"):
    losses.info_nce(jnp.asarray(Z), 0.0)


@pytest.mark.parametrize("in_batch, with_queue, tau_plus, beta", [
    (True, False, None, None), (False, True, None, None), (True, True, 0.1, 1.0)])
def test_moco_matches_loop_and_keys_get_no_gradient(in_batch, with_queue, tau_plus, beta):
  q, k, queue = _random(2, 4, 5), _random(3, 4, 5), _random(4, 6, 5)
  expected = moco_reference(q, k, 0.3, queue if with_queue else None, in_batch,
                            tau_plus, beta)
  def loss(q, k, queue):
    return losses.moco_info_nce(q, k, 0.3, queue=queue if with_queue else None,
                                in_batch_negatives=in_batch, debiased_tau_plus=tau_plus,
                                hard_negative_beta=beta)
  value, (grad_q, grad_k, grad_queue) = jax.jit(
      jax.value_and_grad(loss, argnums=(0, 1, 2)))(q, k, queue)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  assert np.abs(grad_q).max() > 0
  assert not np.any(grad_k) and not np.any(grad_queue)


# ------------------------------------------------------------------ BYOL / SimSiam


def test_byol_and_simsiam_values_and_stop_gradient():
  p, z = _random(5, 6, 4), _random(6, 6, 4)
  cosine = np.sum(_normalise(p.astype(np.float64)) * _normalise(z.astype(np.float64)), 1)
  # d/dp of -cos(p, z) = -(z_hat - cos * p_hat) / |p|, averaged over the batch.
  p64, z64 = p.astype(np.float64), z.astype(np.float64)
  p_norm = np.linalg.norm(p64, axis=1, keepdims=True)
  grad_neg_cos = -(_normalise(z64) - cosine[:, None] * p64 / p_norm) / p_norm / len(p)
  for loss_fn, value, scale in ((losses.byol_loss, np.mean(2 - 2 * cosine), 2.0),
                                (losses.simsiam_loss, -np.mean(cosine), 1.0)):
    got, (grad_p, grad_z) = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))(p, z)
    np.testing.assert_allclose(got, value, rtol=1e-5)
    np.testing.assert_allclose(grad_p, scale * grad_neg_cos, rtol=1e-4, atol=1e-6)
    assert not np.any(grad_z)


# ------------------------------------------------------------ Barlow Twins / VICReg


def barlow_twins_reference(z1, z2, lambd):
  def standardise(x):
    x = x.astype(np.float64)
    return (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
  a, b = standardise(z1), standardise(z2)
  num_samples, dim = a.shape
  total = 0.0
  for i in range(dim):
    for j in range(dim):
      c_ij = sum(a[n, i] * b[n, j] for n in range(num_samples)) / num_samples
      total += (1 - c_ij) ** 2 if i == j else lambd * c_ij ** 2
  return total


def vicreg_reference(z1, z2):
  """(invariance, variance, covariance), with numpy's own var and cov."""
  x, y = z1.astype(np.float64), z2.astype(np.float64)
  invariance = np.mean((x - y) ** 2)
  variance = sum(np.mean(np.maximum(0, 1 - np.sqrt(v.var(0, ddof=1) + 1e-4))) / 2
                 for v in (x, y))
  covariance = 0.0
  for v in (x, y):
    cov = np.cov(v, rowvar=False)
    covariance += (np.sum(cov ** 2) - np.sum(np.diag(cov) ** 2)) / v.shape[1]
  return invariance, variance, covariance


def test_barlow_twins_matches_loop():
  z1, z2 = _random(7, 8, 4), _random(8, 8, 4) + 0.5 * _random(7, 8, 4)
  got = jax.jit(lambda a, b: losses.barlow_twins_loss(a, b, 0.005))(z1, z2)
  np.testing.assert_allclose(got, barlow_twins_reference(z1, z2, 0.005), rtol=1e-5)


def test_vicreg_matches_numpy():
  z1, z2 = 0.3 * _random(9, 8, 4), _random(10, 8, 4)
  invariance, variance, covariance = vicreg_reference(z1, z2)
  terms, loss = jax.jit(lambda a, b: (losses.vicreg_terms(a, b),
                                      losses.vicreg_loss(a, b, 25.0, 25.0, 1.0)))(z1, z2)
  np.testing.assert_allclose(terms["invariance"], invariance, rtol=1e-5)
  np.testing.assert_allclose(terms["variance"], variance, rtol=1e-5)
  assert variance > 0  # The hinge is active for the shrunk z1.
  np.testing.assert_allclose(terms["covariance"], covariance, rtol=1e-5)
  np.testing.assert_allclose(loss, 25 * invariance + 25 * variance + covariance,
                             rtol=1e-5)


# --------------------------------------------------------------------- SwAV / Sinkhorn

SCORES = np.tanh(_random(11, 3, 8, 5))  # V=3 views, B=8, K=5 prototypes, in [-1, 1].


def test_sinkhorn_matches_reference_and_marginals():
  weights = jnp.asarray(_random(16, 8, 5))
  codes, converged, small_epsilon, grad = jax.jit(lambda s: (
      losses.sinkhorn(s, 0.05, 3), losses.sinkhorn(s, 0.2, 30),
      losses.sinkhorn(s, 0.005, 3),
      jax.grad(lambda s: jnp.sum(losses.sinkhorn(s, 0.05, 3) * weights))(s)))(SCORES[0])
  np.testing.assert_allclose(codes, sinkhorn_reference(SCORES[0], 0.05, 3), rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_allclose(codes.sum(1), 1.0, rtol=1e-5)  # Each sample: one unit.
  # Enough iterations: prototypes equipartitioned, B / K each.
  np.testing.assert_allclose(converged.sum(0), 8 / 5, rtol=1e-3)
  np.testing.assert_allclose(converged.sum(1), 1.0, rtol=1e-5)
  # Epsilon 0.005 overflows exp in float32; log space does not (float64 reference).
  np.testing.assert_allclose(small_epsilon, sinkhorn_reference(SCORES[0], 0.005, 3),
                             atol=1e-4)
  # Codes are targets: no gradient flows back into the scores through them.
  assert not np.any(grad)


@pytest.mark.parametrize("assign, with_queue", [(None, False), (2, True)])
def test_swav_matches_loop_and_codes_are_targets(assign, with_queue):
  queue = np.tanh(_random(12, 2, 4, 5)) if with_queue else None
  expected = swav_reference(SCORES, 0.1, 0.05, 3, assign, queue)
  def loss(scores):
    return losses.swav_loss(scores, 0.1, 0.05, 3, num_assign_views=assign,
                            queue_scores=None if queue is None else jnp.asarray(queue))
  value, grad = jax.jit(jax.value_and_grad(loss))(SCORES)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  # The gradient is that of the cross-entropy with the codes held constant.
  num_assign = 3 if assign is None else assign
  codes = [jnp.asarray(sinkhorn_reference(
      SCORES[i] if queue is None else np.concatenate([queue[i], SCORES[i]]),
      0.05, 3)[-8:], dtype=jnp.float32) for i in range(num_assign)]
  def constant_code_loss(scores):
    log_p = jax.nn.log_softmax(scores / 0.1, axis=-1)
    return sum(sum(-jnp.mean(jnp.sum(codes[i] * log_p[v], -1)) for v in range(3) if v != i)
               / 2 for i in range(num_assign)) / num_assign
  np.testing.assert_allclose(grad, jax.jit(jax.grad(constant_code_loss))(SCORES),
                             rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- SupCon


def test_supcon_matches_loop_and_equals_info_nce_without_labels():
  labels = np.array([0, 1, 0, 2])
  three_views, one_view, supcon_two, info_nce_two = jax.jit(lambda z, labels: (
      losses.supcon_loss(z, labels, 0.5), losses.supcon_loss(z[:, :1], labels, 0.5),
      losses.supcon_loss(z[:, :2], jnp.arange(4), 0.5),
      losses.info_nce(z[:, :2], 0.5)))(Z, labels)
  np.testing.assert_allclose(three_views, supcon_reference(Z, labels, 0.5), rtol=1e-5)
  # rho = 1: the unique label 2 has no positive; its anchor is excluded, not NaN.
  np.testing.assert_allclose(one_view, supcon_reference(Z[:, :1], labels, 0.5), rtol=1e-5)
  # Unique labels and two views: SupCon is NT-Xent.
  np.testing.assert_allclose(supcon_two, info_nce_two, rtol=1e-5)


# ------------------------------------------------------------------ device invariance


def test_losses_on_8_devices_equal_the_single_host_reference():
  """With the batch sharded over 8 devices, every batch-coupled loss still equals the
  float64 single-host reference: negatives, batch statistics and Sinkhorn marginals
  are global, so the number does not depend on the device count."""
  z = _random(13, 8, 2, 6)
  pair = _random(14, 2, 8, 6)
  scores = np.tanh(_random(15, 2, 8, 5))
  labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])

  def batch_coupled_losses(z, pair, scores, labels):
    # BYOL and SimSiam are per-sample means and cannot depend on the layout.
    return jnp.stack([
        losses.info_nce(z, 0.2, debiased_tau_plus=0.1, hard_negative_beta=1.0,
                        intra_negatives=pair.transpose(1, 0, 2)),
        losses.moco_info_nce(pair[0], pair[1], 0.2, queue=z[:, 0]),
        losses.barlow_twins_loss(pair[0], pair[1], 0.005),
        losses.vicreg_loss(pair[0], pair[1], 25.0, 25.0, 1.0),
        losses.swav_loss(scores, 0.1, 0.05, 3, queue_scores=scores[:, ::-1]),
        losses.supcon_loss(z, labels, 0.2),
    ])

  # Auto axes: GSPMD places the collectives, as the trainer's jit with NamedShardings
  # expects. (jax.make_mesh's default Explicit axes reject x @ x.T on a batch-sharded x.)
  mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
  def on_batch_axis(axis):
    return NamedSharding(mesh, PartitionSpec(*([None] * axis + ["data"])))
  inputs = [jax.device_put(z, on_batch_axis(0)), jax.device_put(pair, on_batch_axis(1)),
            jax.device_put(scores, on_batch_axis(1)),
            jax.device_put(labels, on_batch_axis(0))]
  assert all(len(x.sharding.device_set) == 8 for x in inputs)
  sharded = jax.jit(batch_coupled_losses)(*inputs)
  expected = [
      info_nce_reference(z, 0.2, 0.1, 1.0, intra=pair.transpose(1, 0, 2))[0],
      moco_reference(pair[0], pair[1], 0.2, queue=z[:, 0]),
      barlow_twins_reference(pair[0], pair[1], 0.005),
      np.dot([25.0, 25.0, 1.0], vicreg_reference(pair[0], pair[1])),
      swav_reference(scores, 0.1, 0.05, 3, queue=scores[:, ::-1]),
      supcon_reference(z, labels, 0.2),
  ]
  np.testing.assert_allclose(sharded, expected, rtol=2e-5)
