"""Slow-R50: the Slow pathway of SlowFast (Feichtenhofer et al., 2019) as a backbone.

Why its own module: Slow-only differs from the torchvision-shaped 3D ResNets in where
time is modelled. Its bottleneck puts the temporal kernel on the first 1x1 conv
("conv_a": 3x1x1 in res4/res5, 1x1x1 in res2/res3) and keeps the 3x3 conv purely spatial
(1x3x3), the stem is 1x7x7 followed by a 1x3x3 max-pool, and no layer strides in time
(8 input frames stay 8 to the end). That is the layout of the SlowFast repository's
``SLOW_8x8_R50`` and pytorchvideo's ``slow_r50``, which the self-supervised video papers
(rho-BYOL/MoCo of Feichtenhofer et al. 2021, CVRL's R3D-50 baselines) report on, so
shapes and names here follow it and checkpoints convert by renaming.

Reference parameter count (pytorchvideo model zoo, ``slow_r50``): 32.45M with the
400-way Kinetics head, i.e. 31.64M for this headless backbone (tests/test_slow_s3d.py pins
the exact figure).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ssvbench.models.conv import Conv3D, batch_norm, max_pool3d

# torchvision/SlowFast's c2_msra_fill: kaiming normal, fan_out.
_CONV_INIT = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


@dataclasses.dataclass(frozen=True)
class SlowSpec:
  """Architecture of one Slow-only variant.

  Attributes:
    depths: bottleneck blocks per stage (res2..res5).
    widths: inner widths per stage; stage outputs are 4x these.
    temporal_kernels: kt of each stage's conv_a (1 = purely spatial stage).
    spatial_strides: spatial stride of each stage's first block (time is never strided).
    stem_width: stem output channels.
    stem_kernel: (kt, kh, kw) of the stem conv.
    zero_init_final_bn: each block's last BN scale starts at 0 (SlowFast's default).
  """
  depths: tuple[int, ...] = (3, 4, 6, 3)
  widths: tuple[int, ...] = (64, 128, 256, 512)
  temporal_kernels: tuple[int, ...] = (1, 1, 3, 3)
  spatial_strides: tuple[int, ...] = (1, 2, 2, 2)
  stem_width: int = 64
  stem_kernel: tuple[int, int, int] = (1, 7, 7)
  zero_init_final_bn: bool = True

  def validate(self) -> None:
    """Raises ValueError naming the field when the spec is inconsistent."""
    stages = len(self.depths)
    for field in ("widths", "temporal_kernels", "spatial_strides"):
      if len(getattr(self, field)) != stages:
        raise ValueError(f"SlowSpec.{field} has {len(getattr(self, field))} entries but "
                         f"depths has {stages} stages")
    if min(self.depths) < 1 or min(self.widths) < 1 or self.stem_width < 1:
      raise ValueError(f"SlowSpec: depths, widths and stem_width must be >= 1, got "
                       f"{self.depths}, {self.widths}, {self.stem_width}")
    if any(k % 2 == 0 for k in self.temporal_kernels + self.stem_kernel):
      raise ValueError("SlowSpec: kernels must be odd (symmetric padding keeps T), got "
                       f"{self.temporal_kernels}, stem {self.stem_kernel}")


VARIANTS: dict[str, SlowSpec] = {
    "slow_r50": SlowSpec(),
    # CPU-sized, same topology: one block per stage, 1/8 of the widths (256-d features).
    "slow_tiny": SlowSpec(depths=(1, 1, 1, 1), widths=(8, 16, 32, 64), stem_width=8),
}


class ConvNorm(nnx.Module):
  """Conv3D (no bias, torch's k//2 padding) + BatchNorm (torch eps and momentum)."""

  def __init__(self, in_features: int, out_features: int, kernel_size, strides, *,
               dtype, rngs: nnx.Rngs, zero_scale: bool = False):
    self.conv = Conv3D(
        in_features, out_features, kernel_size, strides=strides, padding="TORCH_SAME",
        dtype=dtype, rngs=rngs, kernel_init=_CONV_INIT)
    self.bn = batch_norm(out_features, dtype=dtype, rngs=rngs, zero_scale=zero_scale)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.bn(self.conv(x))


class SlowBottleneck(nnx.Module):
  """kt x1x1 reduce (a), 1x3x3 spatial (b, carries the stride), 1x1x1 expand (c)."""

  def __init__(self, in_features: int, inner: int, out_features: int, temporal_kernel: int,
               spatial_stride: int, *, dtype, zero_init_final_bn: bool, rngs: nnx.Rngs):
    self.a = ConvNorm(in_features, inner, (temporal_kernel, 1, 1), 1, dtype=dtype, rngs=rngs)
    self.b = ConvNorm(inner, inner, (1, 3, 3), (1, spatial_stride, spatial_stride),
                      dtype=dtype, rngs=rngs)
    self.c = ConvNorm(inner, out_features, 1, 1, dtype=dtype, rngs=rngs,
                      zero_scale=zero_init_final_bn)
    self.shortcut = (
        ConvNorm(in_features, out_features, 1, (1, spatial_stride, spatial_stride),
                 dtype=dtype, rngs=rngs)
        if in_features != out_features or spatial_stride != 1 else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    shortcut = x if self.shortcut is None else self.shortcut(x)
    y = jax.nn.relu(self.a(x))
    y = jax.nn.relu(self.b(y))
    return jax.nn.relu(self.c(y) + shortcut)


def max_pool_1x3x3(x: jax.Array) -> jax.Array:
  """torch MaxPool3d([1, 3, 3], stride [1, 2, 2], padding [0, 1, 1]) (pads with -inf)."""
  return max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))


class SlowResNet(nnx.Module):
  """Stem (conv + max-pool), four bottleneck stages, global average pool -> [B, 4*widths[-1]]."""

  def __init__(self, spec: SlowSpec, *, rngs: nnx.Rngs, dtype=jnp.float32):
    spec.validate()
    self.spec = spec
    self.dtype = dtype
    self.stem = ConvNorm(3, spec.stem_width, spec.stem_kernel, (1, 2, 2), dtype=dtype,
                         rngs=rngs)
    in_features = spec.stem_width
    stages = []
    for depth, inner, kt, stride in zip(spec.depths, spec.widths, spec.temporal_kernels,
                                        spec.spatial_strides):
      blocks = []
      for index in range(depth):
        blocks.append(SlowBottleneck(in_features, inner, inner * 4, kt,
                                     stride if index == 0 else 1, dtype=dtype,
                                     zero_init_final_bn=spec.zero_init_final_bn, rngs=rngs))
        in_features = inner * 4
      stages.append(nnx.List(blocks))
    self.stages = nnx.List(stages)
    self.feature_dim = int(in_features)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Pooled features.

    Args:
      x: [B, T, H, W, 3] normalised clips (8 x 224 x 224 for the reference).

    Returns:
      [B, feature_dim] float32 features (mean over T, H, W after res5).
    """
    if x.ndim != 5 or x.shape[-1] != 3:
      raise ValueError(f"SlowResNet: expected clips [B, T, H, W, 3], got shape {x.shape}")
    y = max_pool_1x3x3(jax.nn.relu(self.stem(x.astype(self.dtype))))
    for stage in self.stages:
      for block in stage:
        y = block(y)
    return jnp.mean(y.astype(jnp.float32), axis=(1, 2, 3))


_OVERRIDES: dict[str, tuple[str, Any]] = {
    "depths": ("depths", lambda v: tuple(int(x) for x in v)),
    "widths": ("widths", lambda v: tuple(int(x) for x in v)),
    "temporal_kernels": ("temporal_kernels", lambda v: tuple(int(x) for x in v)),
    "spatial_strides": ("spatial_strides", lambda v: tuple(int(x) for x in v)),
    "stem_width": ("stem_width", int),
    "stem_kernel": ("stem_kernel", lambda v: tuple(int(x) for x in v)),
    "zero_init_final_bn": ("zero_init_final_bn", bool),
}


def variant_spec(name: str, **overrides) -> SlowSpec:
  """The spec of a named variant with overrides applied (errors list the valid ones)."""
  if name not in VARIANTS:
    raise ValueError(f"Unknown Slow variant {name!r}; valid: {', '.join(sorted(VARIANTS))}")
  unknown = sorted(set(overrides) - set(_OVERRIDES))
  if unknown:
    raise ValueError(f"Unknown override(s) {unknown} for backbone {name!r}; valid: "
                     f"{', '.join(sorted(_OVERRIDES))}")
  changes = {_OVERRIDES[k][0]: _OVERRIDES[k][1](v) for k, v in overrides.items()}
  spec = dataclasses.replace(VARIANTS[name], **changes)
  try:
    spec.validate()
  except ValueError as error:
    raise ValueError(f"Backbone {name!r} with overrides {overrides}: {error}") from None
  return spec


def build(name: str, *, rngs: nnx.Rngs, dtype=jnp.float32, **overrides) -> SlowResNet:
  """Builds a named Slow-only variant (see ``VARIANTS``); the registry's entry point."""
  return SlowResNet(variant_spec(name, **overrides), rngs=rngs, dtype=dtype)
