"""S3D: separable 3D Inception (Xie et al., 2018) as used by CoCLR (Han et al., 2020).

Why it is here: CoCLR, and several papers comparing against it, report on S3D, an
Inception-v1 whose 3x3x3 convolutions are factorised into 1x3x3 (spatial) then 3x1x1
(temporal), each with BN + ReLU. The layout follows CoCLR's ``backbone/s3dg.py`` (its
``s3d``: no feature gating, torch-default BatchNorm, 1x7x7 + 7x1x1 stem with stride 2 in
time and space), so parameter counts and feature shapes match what CoCLR evaluates:
a 1024-d globally pooled feature, 7.9M parameters. ``gating=True`` gives S3D-G's
self-gating (one Linear per branch).

Block names mirror the reference (Conv_1a, Conv_2b, Conv_2c, Mixed_3b ... Mixed_5c) so
that a CoCLR checkpoint maps onto it name for name.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ssvbench.models.conv import Conv3D, batch_norm, max_pool3d

# CoCLR initialises every conv as N(0, 0.01) (the TF original: truncated normal).
_CONV_INIT = nnx.initializers.normal(stddev=0.01)

# (in_planes, [b0, b1a, b1b, b2a, b2b, b3b]) of each Inception block, Inception-v1 widths.
_INCEPTION = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}
# Max-pool (kernel, stride, padding) applied before each stage's first block.
_POOLS = {
    "MaxPool_2a": ((1, 3, 3), (1, 2, 2), (0, 1, 1)),
    "MaxPool_3a": ((1, 3, 3), (1, 2, 2), (0, 1, 1)),
    "MaxPool_4a": ((3, 3, 3), (2, 2, 2), (1, 1, 1)),
    "MaxPool_5a": ((2, 2, 2), (2, 2, 2), (0, 0, 0)),
}


@dataclasses.dataclass(frozen=True)
class S3DSpec:
  """Attributes:
    width_multiplier: scales every channel count (1.0 = the reference; CPU variants < 1).
    gating: S3D-G's self-gating on each Inception branch.
    stem_temporal_stride: 2 for S3D; 1 keeps all frames through the stem ("slow").
  """
  width_multiplier: float = 1.0
  gating: bool = False
  stem_temporal_stride: int = 2

  def channels(self, reference: int) -> int:
    return max(1, int(round(reference * self.width_multiplier)))

  def validate(self) -> None:
    if self.width_multiplier <= 0:
      raise ValueError(f"S3DSpec.width_multiplier must be > 0, got {self.width_multiplier}")
    if self.stem_temporal_stride not in (1, 2):
      raise ValueError(f"S3DSpec.stem_temporal_stride must be 1 or 2, got "
                       f"{self.stem_temporal_stride}")


VARIANTS: dict[str, S3DSpec] = {
    "s3d": S3DSpec(),
    "s3dg": S3DSpec(gating=True),
    # CPU-sized: 1/8 of every width (128-d features); 8x32x32 clips end at 1x1x1.
    "s3d_tiny": S3DSpec(width_multiplier=0.125),
}


def _conv(in_features, out_features, kernel, strides, dtype, rngs):
  return Conv3D(in_features, out_features, kernel, strides=strides, padding="TORCH_SAME",
                dtype=dtype, rngs=rngs, kernel_init=_CONV_INIT)


class BasicConv3d(nnx.Module):
  """1x1x1 (or any) conv, BN, ReLU."""

  def __init__(self, in_features, out_features, kernel=1, strides=1, *, dtype, rngs):
    self.conv = _conv(in_features, out_features, kernel, strides, dtype, rngs)
    self.bn = batch_norm(out_features, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    return jax.nn.relu(self.bn(self.conv(x)))


class STConv3d(nnx.Module):
  """Separable k x k x k: 1xkxk conv-BN-ReLU, then kx1x1 conv-BN-ReLU (stride split)."""

  def __init__(self, in_features, out_features, kernel: int, spatial_stride: int = 1,
               temporal_stride: int = 1, *, dtype, rngs):
    self.conv1 = _conv(in_features, out_features, (1, kernel, kernel),
                       (1, spatial_stride, spatial_stride), dtype, rngs)
    self.bn1 = batch_norm(out_features, dtype=dtype, rngs=rngs)
    self.conv2 = _conv(out_features, out_features, (kernel, 1, 1), (temporal_stride, 1, 1),
                       dtype, rngs)
    self.bn2 = batch_norm(out_features, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    x = jax.nn.relu(self.bn1(self.conv1(x)))
    return jax.nn.relu(self.bn2(self.conv2(x)))


class SelfGating(nnx.Module):
  """S3D-G: scale each channel by sigmoid(Linear(mean over T, H, W))."""

  def __init__(self, features, *, dtype, rngs):
    self.fc = nnx.Linear(features, features, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    weights = jax.nn.sigmoid(self.fc(jnp.mean(x, axis=(1, 2, 3))))
    return x * weights[:, None, None, None, :]


class SepInception(nnx.Module):
  """Four branches (1x1; 1x1->sep3; 1x1->sep3; maxpool->1x1) concatenated on channels."""

  def __init__(self, in_features: int, widths: Sequence[int], gating: bool, *, dtype, rngs):
    b0, b1a, b1b, b2a, b2b, b3b = widths
    self.branch0 = BasicConv3d(in_features, b0, dtype=dtype, rngs=rngs)
    self.branch1_reduce = BasicConv3d(in_features, b1a, dtype=dtype, rngs=rngs)
    self.branch1_conv = STConv3d(b1a, b1b, 3, dtype=dtype, rngs=rngs)
    self.branch2_reduce = BasicConv3d(in_features, b2a, dtype=dtype, rngs=rngs)
    self.branch2_conv = STConv3d(b2a, b2b, 3, dtype=dtype, rngs=rngs)
    self.branch3 = BasicConv3d(in_features, b3b, dtype=dtype, rngs=rngs)
    self.gates = (nnx.List([SelfGating(w, dtype=dtype, rngs=rngs) for w in (b0, b1b, b2b, b3b)])
                  if gating else None)
    self.out_features = b0 + b1b + b2b + b3b

  def __call__(self, x):
    outputs = [
        self.branch0(x),
        self.branch1_conv(self.branch1_reduce(x)),
        self.branch2_conv(self.branch2_reduce(x)),
        self.branch3(max_pool3d(x, (3, 3, 3), (1, 1, 1), (1, 1, 1))),
    ]
    if self.gates is not None:
      outputs = [gate(y) for gate, y in zip(self.gates, outputs)]
    return jnp.concatenate(outputs, axis=-1)


class S3D(nnx.Module):
  """[B, T, H, W, 3] clips -> [B, 1024 * width_multiplier] globally pooled features."""

  def __init__(self, spec: S3DSpec, *, rngs: nnx.Rngs, dtype=jnp.float32):
    spec.validate()
    self.spec = spec
    self.dtype = dtype
    c = spec.channels
    self.Conv_1a = STConv3d(3, c(64), 7, spatial_stride=2,
                            temporal_stride=spec.stem_temporal_stride, dtype=dtype, rngs=rngs)
    self.Conv_2b = BasicConv3d(c(64), c(64), dtype=dtype, rngs=rngs)
    self.Conv_2c = STConv3d(c(64), c(192), 3, dtype=dtype, rngs=rngs)
    in_features = c(192)
    for name, (reference_in, widths) in _INCEPTION.items():
      del reference_in  # Follows from the previous block's output.
      block = SepInception(in_features, [c(w) for w in widths], spec.gating, dtype=dtype,
                           rngs=rngs)
      setattr(self, name, block)  # The reference's attribute names (Mixed_3b, ...).
      in_features = block.out_features
    self.feature_dim = int(in_features)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Pooled features.

    Args:
      x: [B, T, H, W, 3] normalised clips (CoCLR: 32 x 128 x 128); T >= 8 and H, W >= 32
        (the stride-32 network must keep at least one position).

    Returns:
      [B, feature_dim] float32 features (mean over T, H, W after Mixed_5c).
    """
    if x.ndim != 5 or x.shape[-1] != 3:
      raise ValueError(f"S3D: expected clips [B, T, H, W, 3], got shape {x.shape}")
    y = self.Conv_1a(x.astype(self.dtype))
    y = max_pool3d(y, *_POOLS["MaxPool_2a"])
    y = self.Conv_2c(self.Conv_2b(y))
    for name in _INCEPTION:
      block = getattr(self, name)
      pool = {"Mixed_3b": "MaxPool_3a", "Mixed_4b": "MaxPool_4a",
              "Mixed_5b": "MaxPool_5a"}.get(name)
      if pool is not None:
        if pool == "MaxPool_5a" and min(y.shape[1:4]) < 2:
          raise ValueError(f"S3D: clip {x.shape[1:4]} is too small: {y.shape[1:4]} before "
                           "MaxPool_5a (needs >= 2 per axis; use >= 8 frames, >= 32 pixels)")
        y = max_pool3d(y, *_POOLS[pool])
      y = block(y)
    return jnp.mean(y.astype(jnp.float32), axis=(1, 2, 3))


_OVERRIDES: dict[str, tuple[str, Any]] = {
    "width_multiplier": ("width_multiplier", float),
    "gating": ("gating", bool),
    "stem_temporal_stride": ("stem_temporal_stride", int),
}


def variant_spec(name: str, **overrides) -> S3DSpec:
  """The spec of a named variant with overrides applied (errors list the valid ones)."""
  if name not in VARIANTS:
    raise ValueError(f"Unknown S3D variant {name!r}; valid: {', '.join(sorted(VARIANTS))}")
  unknown = sorted(set(overrides) - set(_OVERRIDES))
  if unknown:
    raise ValueError(f"Unknown override(s) {unknown} for backbone {name!r}; valid: "
                     f"{', '.join(sorted(_OVERRIDES))}")
  changes = {_OVERRIDES[k][0]: _OVERRIDES[k][1](v) for k, v in overrides.items()}
  spec = dataclasses.replace(VARIANTS[name], **changes)
  spec.validate()
  return spec


def build(name: str, *, rngs: nnx.Rngs, dtype=jnp.float32, **overrides) -> S3D:
  """Builds a named S3D variant (see ``VARIANTS``); the registry's entry point."""
  return S3D(variant_spec(name, **overrides), rngs=rngs, dtype=dtype)
