"""3D ResNets (R3D, MC3, R(2+1)D) in Flax NNX, shaped like torchvision's video ResNets.

Why one configurable family: torchvision's ``VideoResNet`` expresses R3D-18, MC3-18 and
R(2+1)D-18 as one network with a per-stage choice of spatio-temporal convolution, and the
published checkpoints the benchmark must host follow its layout (stem, four stages,
BasicBlock/Bottleneck, 1x1x1 strided shortcut with BN, no max-pool). Keeping that exact
structure (and torch's symmetric ``k//2`` padding) keeps parameter counts and shapes equal
to the reference and makes checkpoint conversion a renaming.

Every convolution is ``ssvbench.models.conv.Conv3D``, which picks the fastest exact
formulation on CPU; the backbone returns globally average-pooled features [B, D].
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ssvbench.models.conv import Conv3D, batch_norm

CONV_KINDS = ("3d", "no_temporal", "2plus1d")
BLOCK_KINDS = ("basic", "bottleneck")
STEM_KINDS = ("basic", "2plus1d")


@dataclasses.dataclass(frozen=True)
class ResNet3DSpec:
  """Architecture of one variant.

  Attributes:
    block: 'basic' (two 3x3x3-like convs) or 'bottleneck' (1x1x1, 3x3x3, 1x1x1, x4).
    blocks: residual blocks per stage.
    widths: planes per stage (output channels are widths x expansion).
    stage_convs: per stage, the spatio-temporal conv: '3d' (k x 3 x 3), 'no_temporal'
      (1 x 3 x 3, MC3's upper stages) or '2plus1d' (1x3x3 then 3x1x1).
    stage_strides: per stage stride, applied to T, H and W (only H, W for 'no_temporal').
    stem: 'basic' (one conv) or '2plus1d' (1x7x7 to 45 channels then 3x1x1).
    stem_width: stem output channels.
    stem_kernel: (kt, kh, kw) of the basic stem.
    stem_strides: (st, sh, sw) of the stem.
    zero_init_residual: start each block's last BN scale at zero (off in torchvision).
  """
  block: str = "basic"
  blocks: tuple[int, ...] = (2, 2, 2, 2)
  widths: tuple[int, ...] = (64, 128, 256, 512)
  stage_convs: tuple[str, ...] = ("3d", "3d", "3d", "3d")
  stage_strides: tuple[int, ...] = (1, 2, 2, 2)
  stem: str = "basic"
  stem_width: int = 64
  stem_kernel: tuple[int, int, int] = (3, 7, 7)
  stem_strides: tuple[int, int, int] = (1, 2, 2)
  zero_init_residual: bool = False

  def validate(self) -> None:
    """Raises ValueError naming the field when the spec is inconsistent."""
    if self.block not in BLOCK_KINDS:
      raise ValueError(f"ResNet3DSpec.block={self.block!r}; valid: {BLOCK_KINDS}")
    if self.stem not in STEM_KINDS:
      raise ValueError(f"ResNet3DSpec.stem={self.stem!r}; valid: {STEM_KINDS}")
    stages = len(self.blocks)
    for field in ("widths", "stage_convs", "stage_strides"):
      if len(getattr(self, field)) != stages:
        raise ValueError(
            f"ResNet3DSpec.{field} has {len(getattr(self, field))} entries but blocks "
            f"has {stages} stages: {getattr(self, field)!r}")
    for kind in self.stage_convs:
      if kind not in CONV_KINDS:
        raise ValueError(f"ResNet3DSpec.stage_convs entry {kind!r}; valid: {CONV_KINDS}")
    if min(self.blocks) < 1 or min(self.widths) < 1:
      raise ValueError(f"ResNet3DSpec: blocks and widths must be >= 1, got "
                       f"blocks={self.blocks} widths={self.widths}")
    if len(self.stem_kernel) != 3 or len(self.stem_strides) != 3:
      raise ValueError("ResNet3DSpec.stem_kernel and stem_strides need 3 ints (T, H, W)")


def r2plus1d_midplanes(in_planes: int, out_planes: int) -> int:
  """torchvision's hidden width that gives (2+1)D the parameter count of a 3x3x3 conv."""
  return (in_planes * out_planes * 3 * 3 * 3) // (in_planes * 3 * 3 + 3 * out_planes)


class ConvBN(nnx.Module):
  """Conv3D (no bias) followed by BatchNorm and an optional ReLU."""

  def __init__(self, in_features: int, out_features: int, kernel_size, strides, *,
               relu: bool, dtype, conv_impl: str, rngs: nnx.Rngs,
               zero_scale: bool = False):
    self.conv = Conv3D(in_features, out_features, kernel_size, strides=strides,
                       padding="TORCH_SAME", dtype=dtype, impl=conv_impl, rngs=rngs)
    self.bn = batch_norm(out_features, dtype=dtype, rngs=rngs, zero_scale=zero_scale)
    self.relu = relu

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.bn(self.conv(x))
    return jax.nn.relu(y) if self.relu else y


class SpatioTemporalConv(nnx.Module):
  """The block's k x 3 x 3 unit: a full 3D conv, MC3's 1x3x3, or (2+1)D's factorisation.

  The output is not normalised (the caller's BN follows), except inside (2+1)D where the
  spatial half has its own BN + ReLU, as in torchvision.
  """

  def __init__(self, kind: str, in_features: int, out_features: int, midplanes: int,
               stride: int, *, dtype, conv_impl: str, rngs: nnx.Rngs):
    self.kind = kind
    if kind == "3d":
      self.conv = Conv3D(in_features, out_features, 3, strides=stride, dtype=dtype,
                         impl=conv_impl, rngs=rngs)
    elif kind == "no_temporal":
      self.conv = Conv3D(in_features, out_features, (1, 3, 3), strides=(1, stride, stride),
                         dtype=dtype, impl=conv_impl, rngs=rngs)
    else:
      self.spatial = ConvBN(in_features, midplanes, (1, 3, 3), (1, stride, stride),
                            relu=True, dtype=dtype, conv_impl=conv_impl, rngs=rngs)
      self.temporal = Conv3D(midplanes, out_features, (3, 1, 1), strides=(stride, 1, 1),
                             dtype=dtype, impl=conv_impl, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.kind == "2plus1d":
      return self.temporal(self.spatial(x))
    return self.conv(x)


def downsample_strides(kind: str, stride: int) -> tuple[int, int, int]:
  """Shortcut stride: MC3's 1x3x3 stages keep time, the others stride T, H and W."""
  return (1, stride, stride) if kind == "no_temporal" else (stride, stride, stride)


class BasicBlock(nnx.Module):
  """Two spatio-temporal convs with BN; identity or 1x1x1-conv+BN shortcut."""
  expansion = 1

  def __init__(self, in_planes: int, planes: int, kind: str, stride: int, *, dtype,
               conv_impl: str, zero_init_residual: bool, rngs: nnx.Rngs):
    midplanes = r2plus1d_midplanes(in_planes, planes)
    self.conv1 = SpatioTemporalConv(kind, in_planes, planes, midplanes, stride,
                                    dtype=dtype, conv_impl=conv_impl, rngs=rngs)
    self.bn1 = batch_norm(planes, dtype=dtype, rngs=rngs)
    self.conv2 = SpatioTemporalConv(kind, planes, planes, midplanes, 1, dtype=dtype,
                                    conv_impl=conv_impl, rngs=rngs)
    self.bn2 = batch_norm(planes, dtype=dtype, rngs=rngs, zero_scale=zero_init_residual)
    needs_projection = stride != 1 or in_planes != planes
    self.downsample = (
        ConvBN(in_planes, planes, 1, downsample_strides(kind, stride), relu=False,
               dtype=dtype, conv_impl=conv_impl, rngs=rngs)
        if needs_projection else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    shortcut = x if self.downsample is None else self.downsample(x)
    y = jax.nn.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return jax.nn.relu(y + shortcut)


class Bottleneck(nnx.Module):
  """1x1x1 reduce, spatio-temporal conv (carries the stride), 1x1x1 expand (x4)."""
  expansion = 4

  def __init__(self, in_planes: int, planes: int, kind: str, stride: int, *, dtype,
               conv_impl: str, zero_init_residual: bool, rngs: nnx.Rngs):
    midplanes = r2plus1d_midplanes(in_planes, planes)
    out_planes = planes * self.expansion
    self.reduce = ConvBN(in_planes, planes, 1, 1, relu=True, dtype=dtype,
                         conv_impl=conv_impl, rngs=rngs)
    self.conv2 = SpatioTemporalConv(kind, planes, planes, midplanes, stride, dtype=dtype,
                                    conv_impl=conv_impl, rngs=rngs)
    self.bn2 = batch_norm(planes, dtype=dtype, rngs=rngs)
    self.expand = ConvBN(planes, out_planes, 1, 1, relu=False, dtype=dtype,
                         conv_impl=conv_impl, rngs=rngs, zero_scale=zero_init_residual)
    needs_projection = stride != 1 or in_planes != out_planes
    self.downsample = (
        ConvBN(in_planes, out_planes, 1, downsample_strides(kind, stride), relu=False,
               dtype=dtype, conv_impl=conv_impl, rngs=rngs)
        if needs_projection else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    shortcut = x if self.downsample is None else self.downsample(x)
    y = self.reduce(x)
    y = jax.nn.relu(self.bn2(self.conv2(y)))
    return jax.nn.relu(self.expand(y) + shortcut)


class R2Plus1DStem(nnx.Module):
  """torchvision's R(2+1)D stem: 1x7x7 (stride 1,2,2) to 45 ch, then 3x1x1 to the width."""

  def __init__(self, width: int, strides: Sequence[int], *, dtype, conv_impl: str,
               rngs: nnx.Rngs):
    self.spatial = ConvBN(3, 45, (1, 7, 7), tuple(strides), relu=True, dtype=dtype,
                          conv_impl=conv_impl, rngs=rngs)
    self.temporal = ConvBN(45, width, (3, 1, 1), 1, relu=True, dtype=dtype,
                           conv_impl=conv_impl, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.temporal(self.spatial(x))


class ResNet3D(nnx.Module):
  """Stem, residual stages, global average pool: [B, T, H, W, 3] -> [B, feature_dim].

  Attributes:
    feature_dim: width of the pooled output (last stage width x block expansion).
    spec: the ResNet3DSpec the network was built from.
  """

  def __init__(self, spec: ResNet3DSpec, *, rngs: nnx.Rngs, dtype=jnp.float32,
               conv_impl: str = "auto"):
    """Builds the network.

    Args:
      spec: architecture (validated here).
      rngs: nnx.Rngs with a 'params' stream.
      dtype: compute dtype (parameters stay float32).
      conv_impl: Conv3D formulation for every layer ('auto' picks per backend/shape).
    """
    spec.validate()
    self.spec = spec
    self.dtype = dtype
    if spec.stem == "basic":
      self.stem = ConvBN(3, spec.stem_width, spec.stem_kernel, spec.stem_strides,
                         relu=True, dtype=dtype, conv_impl=conv_impl, rngs=rngs)
    else:
      self.stem = R2Plus1DStem(spec.stem_width, spec.stem_strides, dtype=dtype,
                               conv_impl=conv_impl, rngs=rngs)
    block_class = BasicBlock if spec.block == "basic" else Bottleneck
    in_planes = spec.stem_width
    stages = []
    for num_blocks, planes, kind, stride in zip(spec.blocks, spec.widths,
                                                spec.stage_convs, spec.stage_strides):
      blocks = []
      for index in range(num_blocks):
        blocks.append(block_class(in_planes, planes, kind, stride if index == 0 else 1,
                                  dtype=dtype, conv_impl=conv_impl,
                                  zero_init_residual=spec.zero_init_residual, rngs=rngs))
        in_planes = planes * block_class.expansion
      stages.append(nnx.List(blocks))
    self.stages = nnx.List(stages)
    self.feature_dim = int(in_planes)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Pooled features.

    Args:
      x: [B, T, H, W, 3] normalised clips.

    Returns:
      [B, feature_dim] float32 features (mean over T, H, W after the last stage).
    """
    if x.ndim != 5 or x.shape[-1] != 3:
      raise ValueError(f"ResNet3D: expected clips [B, T, H, W, 3], got shape {x.shape}")
    y = self.stem(x.astype(self.dtype))
    for stage in self.stages:
      for block in stage:
        y = block(y)
    return jnp.mean(y.astype(jnp.float32), axis=(1, 2, 3))
