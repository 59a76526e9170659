"""Pieces shared by several methods: projection heads, the joint-embedding model, the
momentum (EMA) target and the FIFO queue.

Why one module: BYOL reuses MoCo's EMA target, SwAV its queue, SimCLR / Barlow Twins /
VICReg / SupCon the same backbone-plus-projector model. Keeping these here lets each
method file import only `base` and `common`, never a sibling method.

How the EMA state fits the one trainer: the target is a copy of (backbone, projector)
whose weights are `EMATarget` variables, not `nnx.Param`, so the trainer's
`nnx.split(model, nnx.Param, ...)` puts them in `rest`: the optimiser never sees them,
and `after_update` moves them towards the new online weights with one `jax.tree.map`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from ssvbench.methods import base, video_options


class ProjectionHead(nnx.Module):
  """MLP projector (Linear-BN-ReLU)x(depth-1) + Linear, as in SimCLR/CVRL."""

  def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, depth: int, rngs: nnx.Rngs):
    dims = [in_dim] + [hidden_dim] * (depth - 1) + [out_dim]
    self.linears = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])])
    self.norms = nnx.List([nnx.BatchNorm(b, momentum=0.9, rngs=rngs) for b in dims[1:-1]])

  def __call__(self, x: jax.Array) -> jax.Array:
    for linear, norm in zip(self.linears[:-1], self.norms):
      x = jax.nn.relu(norm(linear(x)))
    return self.linears[-1](x)


class JointEmbeddingModel(nnx.Module):
  """A backbone and a projector (expander); evaluation uses the backbone only."""

  def __init__(self, backbone, projector):
    self.backbone = backbone
    self.projector = projector


def project_views(model, video: video_options.VideoBatch):
  """Backbone then projector on every view: [B, V, D'] embeddings."""
  features = video_options.encode(model.backbone, video.views)
  batch_size, views, dim = features.shape
  return model.projector(features.reshape(batch_size * views, dim)).reshape(batch_size, views, -1)


def unit_embedding_std(embeddings):
  """Mean over dimensions of the batch std of L2-normalised embeddings (0 = collapsed)."""
  flat = embeddings.reshape(-1, embeddings.shape[-1])
  return jnp.mean(jnp.std(flat / jnp.linalg.norm(flat, axis=-1, keepdims=True), axis=0))


MOMENTUM_SCHEDULES = ("constant", "cosine")


class EMATarget(nnx.Variable):
  """A weight of a momentum (EMA) target network; in `rest`, never in the gradient."""


class Queue(nnx.Variable):
  """A FIFO of past embeddings along its queue axis, newest first."""


class QueueFill(nnx.Variable):
  """How many entries of a queue are real (SwAV uses its queue once it is full)."""


def _is_variable(node) -> bool:
  return isinstance(node, nnx.Variable)


class TargetNetwork(nnx.Module):
  """The momentum copy of (backbone, projector); evaluation never uses it."""

  def __init__(self, backbone: nnx.Module, projector: nnx.Module):
    self.backbone = backbone
    self.projector = projector


def momentum_target(backbone: nnx.Module, projector: nnx.Module) -> TargetNetwork:
  """An independent copy of (backbone, projector) with every Param retyped as EMATarget.

  Batch statistics stay BatchStat: the target runs in training mode (batch statistics
  of the keys), as the reference implementations' key encoders do.
  """
  graphdef, state = nnx.split(TargetNetwork(backbone, projector))

  def retype(variable):
    value = jnp.copy(variable.get_value())
    return EMATarget(value) if isinstance(variable, nnx.Param) else variable.replace(value)

  return nnx.merge(graphdef, jax.tree.map(retype, state, is_leaf=_is_variable))


def momentum_at(step, base_momentum: float, schedule: str, total_steps: int | None):
  """EMA momentum after optimiser step `step` (0-based).

  "constant" is MoCo v2's; "cosine" is BYOL's / MoCo v3's
  1 - (1 - base) * (cos(pi * step / total) + 1) / 2, rising from base to 1.
  """
  if schedule == "constant":
    return jnp.asarray(base_momentum, jnp.float32)
  progress = jnp.minimum(jnp.asarray(step, jnp.float32) / float(total_steps), 1.0)
  return 1.0 - (1.0 - base_momentum) * (jnp.cos(math.pi * progress) + 1.0) / 2.0


def ema_update(rest: nnx.State, params: nnx.State, momentum, target: str = "target"):
  """Moves every EMATarget under `rest[target]` towards the same-path online Param.

  Args:
    rest: the model's non-trainable state, holding the target network at `target`.
    params: the updated trainable parameters; `params[name]` mirrors `rest[target][name]`.
    momentum: m in target <- m * target + (1 - m) * online.
    target: the attribute name of the TargetNetwork in the model.

  Returns:
    `rest` with the target weights replaced (its batch statistics are left alone).
  """
  weights = rest[target].filter(EMATarget)
  missing = [name for name in weights if name not in params]
  if missing:
    raise ValueError(f"EMA target modules {missing} have no online counterpart in params "
                     f"(top-level: {list(params)}).")
  # Plain nested dicts of arrays on both sides: the Variable types (EMATarget vs Param)
  # and container types differ, the paths and shapes do not.
  online = {name: nnx.to_pure_dict(params[name]) for name in weights}
  updated = jax.tree.map(
      lambda t, o: (momentum * t + (1.0 - momentum) * o).astype(t.dtype),
      nnx.to_pure_dict(weights), online)
  nnx.replace_by_pure_dict(weights, updated)
  return nnx.merge_state(rest, nnx.State({target: weights}))


def enqueue(queue: jax.Array, items: jax.Array, axis: int = 0) -> jax.Array:
  """FIFO update: `items` enter at the front, the oldest entries fall off the end."""
  size = queue.shape[axis]
  combined = jnp.concatenate([items.astype(queue.dtype), queue], axis=axis)
  return jax.lax.slice_in_dim(combined, 0, size, axis=axis)


class MomentumMethod(base.Method):
  """A method with an EMA target network, updated after every optimiser step.

  Config: momentum (base value), momentum_schedule ("constant" or "cosine"),
  momentum_steps (the schedule's length; the recipes tie it to config.train.num_steps).
  """

  def __init__(self, config):
    super().__init__(config)
    schedule = self.setting("momentum_schedule")
    if schedule not in MOMENTUM_SCHEDULES:
      raise ValueError(f"config.method.momentum_schedule={schedule!r}; valid: "
                       f"{MOMENTUM_SCHEDULES}.")
    if not 0.0 <= config.momentum <= 1.0:
      raise ValueError(f"config.method.momentum must be in [0, 1], got {config.momentum}.")
    if schedule == "cosine" and not self.setting("momentum_steps"):
      raise ValueError("config.method.momentum_steps is required by the cosine momentum "
                       "schedule (the recipes set it to follow config.train.num_steps).")
    self.video = video_options.VideoOptions.from_config(config, self.num_views)

  def momentum(self, step):
    return momentum_at(step, self.config.momentum, self.setting("momentum_schedule"),
                       self.setting("momentum_steps"))

  def after_update(self, params, rest, step):
    return ema_update(rest, params, self.momentum(step))
