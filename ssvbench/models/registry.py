"""Named backbone variants: the one place a config string becomes a network.

Why a registry: configs, checkpoints and result records name a backbone by a string
(``r3d_18``), and the name must mean the same architecture everywhere. Overrides let a
config shrink or reshape a variant (widths, blocks, stem) without inventing a new name;
an unknown name or override is an error that lists what is valid.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp
from flax import nnx

from ssvbench.models import input_norm as input_norm_lib
from ssvbench.models.conv import IMPLEMENTATIONS
from ssvbench.models.resnet3d import ResNet3D, ResNet3DSpec

_R3D = ("3d", "3d", "3d", "3d")
_MC3 = ("3d", "no_temporal", "no_temporal", "no_temporal")
_R2PLUS1D = ("2plus1d", "2plus1d", "2plus1d", "2plus1d")

# Reference shapes: torchvision.models.video (r3d_18, mc3_18, r2plus1d_18) and the same
# VideoResNet with ResNet-34/50 stage depths (Basic [3,4,6,3], Bottleneck [3,4,6,3]).
_SPECS: dict[str, ResNet3DSpec] = {
    "r3d_18": ResNet3DSpec(block="basic", blocks=(2, 2, 2, 2), stage_convs=_R3D),
    "r3d_34": ResNet3DSpec(block="basic", blocks=(3, 4, 6, 3), stage_convs=_R3D),
    "r3d_50": ResNet3DSpec(block="bottleneck", blocks=(3, 4, 6, 3), stage_convs=_R3D),
    "mc3_18": ResNet3DSpec(block="basic", blocks=(2, 2, 2, 2), stage_convs=_MC3),
    "r2plus1d_18": ResNet3DSpec(block="basic", blocks=(2, 2, 2, 2),
                                stage_convs=_R2PLUS1D, stem="2plus1d"),
    # CPU-sized: for tests (tiny) and the quickstart (cpu). Same topology as r3d_18,
    # narrower and shallower; the stem keeps (1, 2, 2) so 8x32x32 clips end at 1x2x2.
    "r3d_tiny": ResNet3DSpec(block="basic", blocks=(1, 1, 1, 1), widths=(8, 16, 32, 64),
                             stage_convs=_R3D, stem_width=8),
    "r3d_cpu": ResNet3DSpec(block="basic", blocks=(1, 1, 1, 1),
                            widths=(16, 32, 64, 128), stage_convs=_R3D, stem_width=16),
}

# Override name -> (spec field, converter).
_OVERRIDES: dict[str, tuple[str, Callable]] = {
    "widths": ("widths", lambda v: tuple(int(x) for x in v)),
    "blocks": ("blocks", lambda v: tuple(int(x) for x in v)),
    "stage_strides": ("stage_strides", lambda v: tuple(int(x) for x in v)),
    "stem_width": ("stem_width", int),
    "stem_kernel": ("stem_kernel", lambda v: tuple(int(x) for x in v)),
    "stem_strides": ("stem_strides", lambda v: tuple(int(x) for x in v)),
    "zero_init_residual": ("zero_init_residual", bool),
}
_EXTRA_OVERRIDES = ("conv_impl",)


def _other_families() -> dict:
  """Backbone families with their own modules (ViT, Slow, S3D): name -> module.

  Each module exposes ``VARIANTS`` (its names) and ``build(name, *, rngs, dtype,
  **overrides)``; imported lazily so the ResNet path does not depend on them.
  """
  from ssvbench.models import s3d, slowfast, vit3d
  return {name: module for module in (vit3d, slowfast, s3d) for name in module.VARIANTS}


def available_backbones() -> list[str]:
  """Names accepted by ``build_backbone``, sorted."""
  return sorted(list(_SPECS) + list(_other_families()))


def backbone_spec(name: str, **overrides) -> ResNet3DSpec:
  """The architecture spec of a named variant with overrides applied.

  Args:
    name: a name from ``available_backbones()``.
    **overrides: any of widths, blocks, stage_strides, stem_width, stem_kernel,
      stem_strides, zero_init_residual. When ``widths`` changes the stem width follows
      the first stage width unless ``stem_width`` is given too.

  Returns:
    The validated ResNet3DSpec.
  """
  if name not in _SPECS:
    raise ValueError(
        f"Unknown backbone {name!r}; valid names: {', '.join(available_backbones())}")
  unknown = sorted(set(overrides) - set(_OVERRIDES))
  if unknown:
    raise ValueError(
        f"Unknown override(s) {unknown} for backbone {name!r}; valid: "
        f"{', '.join(sorted(list(_OVERRIDES) + list(_EXTRA_OVERRIDES)))}")
  spec = _SPECS[name]
  changes = {}
  for key, value in overrides.items():
    field, convert = _OVERRIDES[key]
    changes[field] = convert(value)
  if "widths" in changes and "stem_width" not in changes:
    changes["stem_width"] = changes["widths"][0]
  if "blocks" in changes:
    # Per-stage tuples follow the number of stages when the depth pattern changes.
    stages = len(changes["blocks"])
    if len(spec.stage_convs) != stages:
      changes.setdefault("stage_convs", (spec.stage_convs[0],) * stages)
      changes.setdefault("stage_strides", (1,) + (2,) * (stages - 1))
  spec = dataclasses.replace(spec, **changes)
  try:
    spec.validate()
  except ValueError as error:
    raise ValueError(f"Backbone {name!r} with overrides {overrides}: {error}") from None
  return spec


def build_backbone(name: str, *, rngs: nnx.Rngs, dtype=jnp.float32, input_norm=None,
                   **overrides) -> nnx.Module:
  """Builds a named backbone: [B, T, H, W, 3] clips -> pooled [B, feature_dim] features.

  Args:
    name: a name from ``available_backbones()`` (e.g. 'r3d_18', 'r3d_cpu').
    rngs: nnx.Rngs with a 'params' stream.
    dtype: compute dtype (jnp.float32 or jnp.bfloat16); parameters stay float32.
    input_norm: the pixel statistics the network expects (`config.model.input_norm`: a
      mapping with mean/std, a name from ``input_norm.NAMED``, or None for ssvbench's
      default); kept on the module as ``input_norm``, where encoders read it.
    **overrides: architecture overrides (see ``backbone_spec``) and ``conv_impl``
      ('auto', 'native', ...; see ssvbench.models.conv).

  Returns:
    An nnx.Module with an int ``feature_dim`` attribute and an ``input_norm``
    (static: not a weight); BatchNorm modes switch with ``model.train()`` /
    ``model.eval()``.
  """
  norm = input_norm_lib.from_config(input_norm)
  families = _other_families()
  if name in families:
    backbone = families[name].build(name, rngs=rngs, dtype=dtype, **overrides)
  else:
    conv_impl = overrides.pop("conv_impl", "auto")
    if conv_impl not in IMPLEMENTATIONS:
      raise ValueError(f"build_backbone: conv_impl {conv_impl!r}; valid: {IMPLEMENTATIONS}")
    spec = backbone_spec(name, **overrides)
    backbone = ResNet3D(spec, rngs=rngs, dtype=dtype, conv_impl=conv_impl)
  backbone.input_norm = norm
  return backbone
