"""The JAX side of the backbone benchmarks, without torch: a SimCLR-like training step
(backbone + 2-layer projection + NT-Xent, SGD with momentum) and XLA's FLOP count.

Shared by bench_backbones.py (JAX against PyTorch, 3D ResNets) and bench_backbone_flops.py
(every backbone family, JAX only), so both time the same step.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ssvbench.models.registry import build_backbone

PROJECTION_DIM = 128
TEMPERATURE = 0.1
LEARNING_RATE = 0.05


def _backbone(name: str, conv_impl: str | None, dtype, rngs: nnx.Rngs):
  # Only the 3D ResNets take a conv formulation; the other families pick theirs.
  extra = {} if conv_impl is None else {"conv_impl": conv_impl}
  return build_backbone(name, rngs=rngs, dtype=dtype, **extra)


def nt_xent(features: jax.Array) -> jax.Array:
  """SimCLR loss; rows i and i + N of ``features`` are the two views of one video."""
  features = features / jnp.linalg.norm(features, axis=-1, keepdims=True)
  count = features.shape[0] // 2
  logits = features @ features.T / TEMPERATURE
  logits = jnp.where(jnp.eye(2 * count, dtype=bool), -1e9, logits)
  labels = jnp.concatenate([jnp.arange(count, 2 * count), jnp.arange(count)])
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


class SimCLRModel(nnx.Module):
  """Backbone + 2-layer projection MLP (the SimCLR head)."""

  def __init__(self, backbone_name: str, *, conv_impl: str | None, dtype, rngs: nnx.Rngs):
    self.backbone = _backbone(backbone_name, conv_impl, dtype, rngs)
    width = self.backbone.feature_dim
    self.hidden = nnx.Linear(width, width, rngs=rngs)
    self.out = nnx.Linear(width, PROJECTION_DIM, rngs=rngs)

  def __call__(self, clips):
    return self.out(jax.nn.relu(self.hidden(self.backbone(clips))))


def make_jax_step(backbone_name: str, conv_impl: str | None, dtype):
  """Returns (step_fn, state) for a donated-state jitted SGD step."""
  model = SimCLRModel(backbone_name, conv_impl=conv_impl, dtype=dtype, rngs=nnx.Rngs(0))
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  optimizer = optax.sgd(LEARNING_RATE, momentum=0.9)

  def loss_fn(params, batch_stats, clips):
    network = nnx.merge(graphdef, params, batch_stats, copy=True)
    loss = nt_xent(network(clips))
    return loss, nnx.state(network, nnx.BatchStat)

  @functools.partial(jax.jit, donate_argnums=(0,))
  def step(state, clips):
    params, batch_stats, opt_state = state
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats, clips)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

  return step, (params, batch_stats, optimizer.init(params))


def forward_flops_per_clip(backbone_name: str, frames: int, size: int,
                           conv_impl: str | None = "native") -> float:
  """XLA's FLOP count of the backbone forward for one clip (3D ResNets: native conv, so
  the count is the convolution's, not a rewrite's)."""
  model = nnx.eval_shape(lambda: _backbone(backbone_name, conv_impl, jnp.float32,
                                            nnx.Rngs(0)))
  graphdef, state = nnx.split(model)

  def forward(state, clips):
    return nnx.merge(graphdef, state, copy=True)(clips)

  clips = jax.ShapeDtypeStruct((1, frames, size, size, 3), jnp.float32)
  analysis = jax.jit(forward).lower(state, clips).compile().cost_analysis()
  if isinstance(analysis, list):
    analysis = analysis[0]
  return float(analysis["flops"])




def jax_matmul_peak(dtype=jnp.float32, rounds: int = 5, size: int = 2048) -> float:
  """Best GFLOP/s of a size^3 matmul in XLA: the machine's reference peak."""
  a = jax.random.normal(jax.random.key(0), (size, size), dtype)
  matmul = jax.jit(lambda m: m @ m)
  matmul(a).block_until_ready()
  best = float("inf")
  for _ in range(rounds):
    start = time.perf_counter()
    matmul(a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * size ** 3 / best / 1e9
