"""What a pre-training method is (the registry that selects one is methods/registry.py).

A method owns two things: the model it trains around a backbone (heads, predictors,
EMA targets...) and its loss on a global batch. The trainer, data pipeline and
checkpointing are shared, so methods differ only where their papers differ.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from ssvbench.models import input_norm as input_norm_lib

# ssvbench's default input statistics (Kinetics RGB, the convention of the field's video
# models); a backbone may carry others (ssvbench.models.input_norm).
CLIP_MEAN = input_norm_lib.SSVBENCH.mean
CLIP_STD = input_norm_lib.SSVBENCH.std


def normalize_clips(clips: jax.Array, dtype=jnp.float32,
                    norm: input_norm_lib.InputNorm | None = None) -> jax.Array:
  """uint8 [..., 3] clips to normalised floats, on device (the host ships bytes).

  `norm` is the backbone's input normalisation (`input_norm.of(backbone)`); None is
  ssvbench's default.
  """
  norm = norm or input_norm_lib.DEFAULT
  x = clips.astype(jnp.float32) / 255.0
  x = (x - jnp.asarray(norm.mean)) / jnp.asarray(norm.std)
  return x.astype(dtype)


class Method:
  """Base class. Subclasses set `name` and implement `build_model` and `loss`."""

  name: str = ""
  # Clips per video the pipeline must deliver (rho); 2 for two-view methods.
  uses_labels: bool = False

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config

  def setting(self, key: str):
    """A required key of the method config. Defaults live in the recipes
    (ssvbench/recipes.py METHOD_DEFAULTS, configs/pretrain/), not here, so a missing key
    is a one-line error naming it rather than a silent code default."""
    if key not in self.config:
      raise ValueError(f"config.method.{key} is required by method {self.name!r} (the "
                       "recipes in ssvbench/recipes.py and configs/pretrain/ set it).")
    return self.config[key]

  @property
  def num_views(self) -> int:
    return int(self.setting("num_views"))

  @property
  def trains(self) -> bool:
    """False for baselines that only initialise (random init)."""
    return True

  def build_model(self, backbone: nnx.Module, num_classes: int, rngs: nnx.Rngs) -> nnx.Module:
    raise NotImplementedError

  def loss(self, model: nnx.Module, batch: dict[str, jax.Array],
           rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Returns (scalar loss, metrics) on the global batch; metrics are means."""
    raise NotImplementedError

  def after_update(self, params: nnx.State, rest: nnx.State, step: jax.Array) -> nnx.State:
    """Updates non-gradient state after the optimiser step; returns the new `rest`.

    `params` are the updated trainable parameters, `rest` everything else of the model
    (batch statistics, EMA targets, queues), `step` the step just taken (0-based). EMA
    methods update their target here: one `jax.tree.map` over matching leaves.
    """
    del params, step
    return rest


def encode_views(backbone: nnx.Module, clips: jax.Array) -> jax.Array:
  """Runs the backbone on [B, V, T, H, W, 3] uint8 clips; returns [B, V, D] features."""
  batch, views = clips.shape[:2]
  x = normalize_clips(clips.reshape((batch * views,) + clips.shape[2:]),
                      norm=input_norm_lib.of(backbone))
  features = backbone(x)
  return features.reshape(batch, views, -1)
