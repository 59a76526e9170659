"""Video ViT with tubelet patches and joint space-time attention (VideoMAE / MAE-ST).

Why this layout: the masked-video-modelling results the benchmark must host (VideoMAE,
MAE-ST) use a plain ViT whose tokens are non-overlapping 2x16x16 tubelets and whose
attention is over all space-time tokens at once. The module follows VideoMAE's
``VisionTransformer`` exactly (pre-norm blocks, LayerNorm eps 1e-6, fused qkv with q and
v biases only, exact GELU, a fixed 1D sin-cos table over the flattened token index), so
its parameter count equals the reference and a VideoMAE checkpoint converts by renaming.
The key bias is absent on purpose: adding a constant to every key shifts all logits of a
query by the same amount, which softmax ignores.

The pooled feature is the mean over tokens. ``final_norm='pooled'`` applies the final
LayerNorm to that mean (VideoMAE's fine-tuning ``fc_norm``); ``'tokens'`` normalises each
token before the mean (the pre-training encoder's ``norm``), which is what a masked
pre-training run trains and so what its frozen features should use.

Parameters carry logical axis names ('embed', 'heads', 'mlp') as sharding metadata
(see ssvbench.models.sharding_rules), and every matmul runs in ``dtype`` (e.g. bfloat16)
while parameters, LayerNorm statistics and softmax stay float32.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

POS_EMBEDDINGS = ("sincos", "learned")
FINAL_NORMS = ("pooled", "tokens")


@dataclasses.dataclass(frozen=True)
class ViT3DSpec:
  """Architecture of one variant.

  Attributes:
    width: token dimension.
    depth: transformer blocks.
    num_heads: attention heads (width must divide evenly).
    mlp_ratio: hidden width of the MLP as a multiple of ``width``.
    tubelet: (kt, kh, kw) patch size; inputs must be divisible by it.
    pos_embedding: 'sincos' (VideoMAE's fixed table, any input size) or 'learned'
      (a parameter for a fixed token grid).
    grid: (T', H', W') token grid of the learned embedding; unused for 'sincos'.
    final_norm: 'pooled' (LayerNorm after the token mean) or 'tokens' (before it).
    layer_norm_epsilon: LayerNorm epsilon (1e-6 in ViT/VideoMAE).
  """
  width: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_ratio: float = 4.0
  tubelet: tuple[int, int, int] = (2, 16, 16)
  pos_embedding: str = "sincos"
  grid: tuple[int, int, int] | None = None
  final_norm: str = "pooled"
  layer_norm_epsilon: float = 1e-6

  @property
  def mlp_width(self) -> int:
    return int(self.width * self.mlp_ratio)

  def validate(self) -> None:
    """Raises ValueError naming the field when the spec is inconsistent."""
    if self.width < 1 or self.depth < 1 or self.num_heads < 1:
      raise ValueError(f"ViT3DSpec: width, depth, num_heads must be >= 1, got "
                       f"{self.width}, {self.depth}, {self.num_heads}")
    if self.width % self.num_heads:
      raise ValueError(f"ViT3DSpec.width={self.width} is not divisible by "
                       f"num_heads={self.num_heads}")
    if len(self.tubelet) != 3 or min(self.tubelet) < 1:
      raise ValueError(f"ViT3DSpec.tubelet must be 3 positive ints, got {self.tubelet}")
    if self.pos_embedding not in POS_EMBEDDINGS:
      raise ValueError(f"ViT3DSpec.pos_embedding={self.pos_embedding!r}; "
                       f"valid: {POS_EMBEDDINGS}")
    if self.pos_embedding == "learned" and (self.grid is None or len(self.grid) != 3):
      raise ValueError("ViT3DSpec: pos_embedding='learned' needs grid=(T', H', W'), the "
                       f"token grid of the training clips; got {self.grid}")
    if self.final_norm not in FINAL_NORMS:
      raise ValueError(f"ViT3DSpec.final_norm={self.final_norm!r}; valid: {FINAL_NORMS}")


VARIANTS: dict[str, ViT3DSpec] = {
    # ViT-S/16 and ViT-B/16 with 2x16x16 tubelets (VideoMAE, MAE-ST).
    "vit3d_s16": ViT3DSpec(width=384, depth=12, num_heads=6),
    "vit3d_b16": ViT3DSpec(width=768, depth=12, num_heads=12),
    # CPU-sized: 8x32x32 clips give a 4x4x4 grid of 2x8x8 tubelets (64 tokens).
    "vit3d_tiny": ViT3DSpec(width=64, depth=4, num_heads=4, tubelet=(2, 8, 8)),
    # The SynthActions recipe's size (128-d features, like r3d_cpu).
    "vit3d_cpu": ViT3DSpec(width=128, depth=6, num_heads=4, tubelet=(2, 8, 8)),
}


def annotated_param(rngs: nnx.Rngs, init, shape,
                    names: tuple[str | None, ...]) -> nnx.Param:
  """A float32 parameter with logical axis names as sharding metadata.

  eager_sharding=False: the names are logical (resolved by sharding_rules against a
  mesh when a config asks for it), so nothing is placed at construction time.
  """
  return nnx.Param(init(rngs.params(), shape, jnp.float32), out_sharding=names,
                   eager_sharding=False)


DENSE_INIT = nnx.initializers.truncated_normal(stddev=0.02)  # VideoMAE's Linear init.
_ZEROS = nnx.initializers.zeros_init()
_ONES = nnx.initializers.ones_init()


@functools.lru_cache(maxsize=32)
def sincos_table(num_tokens: int, width: int) -> np.ndarray:
  """VideoMAE's fixed position table [num_tokens, width] over the flattened token index.

  Entry (p, j) is sin (j even) or cos (j odd) of p / 10000^(2 * (j // 2) / width),
  computed in float64 and stored as float32, as the reference does.
  """
  positions = np.arange(num_tokens, dtype=np.float64)[:, None]
  exponents = 2 * (np.arange(width) // 2) / width
  angles = positions / np.power(10000.0, exponents)[None, :]
  table = np.where(np.arange(width)[None, :] % 2 == 0, np.sin(angles), np.cos(angles))
  return table.astype(np.float32)


class LayerNorm(nnx.Module):
  """LayerNorm over the last axis, statistics in float32, output in the compute dtype."""

  def __init__(self, width: int, epsilon: float, *, dtype, rngs: nnx.Rngs):
    self.scale = annotated_param(rngs, _ONES, (width,), ("embed",))
    self.bias = annotated_param(rngs, _ZEROS, (width,), ("embed",))
    self.epsilon = epsilon
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon)
    return (y * self.scale[...] + self.bias[...]).astype(self.dtype)


class TubeletEmbed(nnx.Module):
  """Non-overlapping kt x kh x kw patches, flattened and projected: a conv with stride = kernel.

  Written as reshape + one matmul (identical to the strided Conv3d, and one GEMM on CPU).
  ``kernel`` is [kt, kh, kw, 3, width], the layout of a DHWIO convolution kernel.
  """

  def __init__(self, tubelet, width: int, *, dtype, rngs: nnx.Rngs):
    self.tubelet = tuple(tubelet)
    # MAE initialises the patch projection like a Linear layer of the flattened patch.
    init = nnx.initializers.variance_scaling(1.0, "fan_avg", "uniform",
                                             in_axis=(0, 1, 2, 3), out_axis=4)
    self.kernel = annotated_param(rngs, init, self.tubelet + (3, width),
                         (None, None, None, None, "embed"))
    self.bias = annotated_param(rngs, _ZEROS, (width,), ("embed",))
    self.dtype = dtype

  def grid(self, clip_shape) -> tuple[int, int, int]:
    """Token grid (T', H', W') of a [T, H, W] clip; errors name the indivisible axis."""
    grid = []
    for axis, size, patch in zip("THW", clip_shape, self.tubelet):
      if size % patch:
        raise ValueError(f"ViT3D: clip {axis}={size} is not divisible by the tubelet "
                         f"size {patch} (tubelet {self.tubelet}, clip {tuple(clip_shape)})")
      grid.append(size // patch)
    return tuple(grid)  # type: ignore[return-value]

  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, T, H, W, 3] -> [B, T'*H'*W', width] tokens in (t, h, w) raster order."""
    batch = x.shape[0]
    (gt, gh, gw), (kt, kh, kw) = self.grid(x.shape[1:4]), self.tubelet
    x = x.reshape(batch, gt, kt, gh, kh, gw, kw, 3).transpose(0, 1, 3, 5, 2, 4, 6, 7)
    x = x.reshape(batch, gt * gh * gw, kt * kh * kw * 3).astype(self.dtype)
    kernel = self.kernel[...].reshape(-1, self.kernel.shape[-1]).astype(self.dtype)
    return x @ kernel + self.bias[...].astype(self.dtype)


class Attention(nnx.Module):
  """Multi-head self-attention with a fused qkv kernel [width, 3, width] and q/v biases."""

  def __init__(self, width: int, num_heads: int, *, dtype, rngs: nnx.Rngs):
    self.num_heads = num_heads
    self.qkv_kernel = annotated_param(rngs, DENSE_INIT, (width, 3, width), ("embed", None, "heads"))
    self.q_bias = annotated_param(rngs, _ZEROS, (width,), ("heads",))
    self.v_bias = annotated_param(rngs, _ZEROS, (width,), ("heads",))
    self.proj_kernel = annotated_param(rngs, DENSE_INIT, (width, width), ("heads", "embed"))
    self.proj_bias = annotated_param(rngs, _ZEROS, (width,), ("embed",))
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    batch, tokens, width = x.shape
    head_dim = width // self.num_heads
    qkv = jnp.einsum("bnd,dke->bkne", x, self.qkv_kernel[...].astype(self.dtype))
    query = qkv[:, 0] + self.q_bias[...].astype(self.dtype)
    key = qkv[:, 1]
    value = qkv[:, 2] + self.v_bias[...].astype(self.dtype)
    split = lambda t: t.reshape(batch, tokens, self.num_heads, head_dim)
    query, key, value = split(query * head_dim ** -0.5), split(key), split(value)
    logits = jnp.einsum("bqhd,bkhd->bhqk", query, key, preferred_element_type=jnp.float32)
    weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, value).reshape(batch, tokens, width)
    return out @ self.proj_kernel[...].astype(self.dtype) + self.proj_bias[...].astype(
        self.dtype)


class MLP(nnx.Module):
  """Linear - exact GELU - Linear."""

  def __init__(self, width: int, hidden: int, *, dtype, rngs: nnx.Rngs):
    self.fc1_kernel = annotated_param(rngs, DENSE_INIT, (width, hidden), ("embed", "mlp"))
    self.fc1_bias = annotated_param(rngs, _ZEROS, (hidden,), ("mlp",))
    self.fc2_kernel = annotated_param(rngs, DENSE_INIT, (hidden, width), ("mlp", "embed"))
    self.fc2_bias = annotated_param(rngs, _ZEROS, (width,), ("embed",))
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    h = x @ self.fc1_kernel[...].astype(self.dtype) + self.fc1_bias[...].astype(self.dtype)
    h = jax.nn.gelu(h, approximate=False)
    return h @ self.fc2_kernel[...].astype(self.dtype) + self.fc2_bias[...].astype(self.dtype)


class Block(nnx.Module):
  """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

  def __init__(self, width: int, num_heads: int, mlp_width: int, epsilon: float, *, dtype,
               rngs: nnx.Rngs):
    self.norm1 = LayerNorm(width, epsilon, dtype=dtype, rngs=rngs)
    self.attn = Attention(width, num_heads, dtype=dtype, rngs=rngs)
    self.norm2 = LayerNorm(width, epsilon, dtype=dtype, rngs=rngs)
    self.mlp = MLP(width, mlp_width, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x + self.attn(self.norm1(x))
    return x + self.mlp(self.norm2(x))


class ViT3D(nnx.Module):
  """Tubelet ViT: [B, T, H, W, 3] clips -> [B, feature_dim] mean-pooled features.

  The pieces are public so that masked pre-training can run the encoder on a subset of
  tokens: ``embed`` (tokens + positions), ``encode`` (the blocks), ``norm``.
  """

  def __init__(self, spec: ViT3DSpec, *, rngs: nnx.Rngs, dtype=jnp.float32):
    spec.validate()
    self.spec = spec
    self.dtype = dtype
    self.patch_embed = TubeletEmbed(spec.tubelet, spec.width, dtype=dtype, rngs=rngs)
    self.pos_embed = (
        annotated_param(rngs, nnx.initializers.truncated_normal(stddev=0.02),
               (int(np.prod(spec.grid)), spec.width), (None, "embed"))
        if spec.pos_embedding == "learned" else None)
    self.blocks = nnx.List([
        Block(spec.width, spec.num_heads, spec.mlp_width, spec.layer_norm_epsilon,
              dtype=dtype, rngs=rngs) for _ in range(spec.depth)])
    self.norm = LayerNorm(spec.width, spec.layer_norm_epsilon, dtype=dtype, rngs=rngs)
    self.feature_dim = int(spec.width)

  def positions(self, grid: tuple[int, int, int]) -> jax.Array:
    """[N, width] position embedding of a token grid (checked for learned tables)."""
    num_tokens = int(np.prod(grid))
    if self.pos_embed is None:
      return jnp.asarray(sincos_table(num_tokens, self.spec.width))
    if tuple(grid) != tuple(self.spec.grid):
      raise ValueError(f"ViT3D: learned position embedding was built for token grid "
                       f"{self.spec.grid}, the clip gives {tuple(grid)}")
    return self.pos_embed[...]

  def embed(self, x: jax.Array) -> jax.Array:
    """[B, T, H, W, 3] clips -> [B, N, width] tokens with positions added (raster order)."""
    if x.ndim != 5 or x.shape[-1] != 3:
      raise ValueError(f"ViT3D: expected clips [B, T, H, W, 3], got shape {x.shape}")
    tokens = self.patch_embed(x.astype(self.dtype))
    grid = self.patch_embed.grid(x.shape[1:4])
    return tokens + self.positions(grid).astype(self.dtype)

  def encode(self, tokens: jax.Array) -> jax.Array:
    """Runs the transformer blocks on [B, n, width] tokens (any subset of positions)."""
    for block in self.blocks:
      tokens = block(tokens)
    return tokens

  def pool(self, tokens: jax.Array) -> jax.Array:
    """Mean over tokens with the final LayerNorm placed as ``spec.final_norm`` says."""
    if self.spec.final_norm == "tokens":
      return jnp.mean(self.norm(tokens).astype(jnp.float32), axis=1)
    return self.norm(jnp.mean(tokens.astype(jnp.float32), axis=1)).astype(jnp.float32)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Pooled features.

    Args:
      x: [B, T, H, W, 3] normalised clips; T, H, W divisible by the tubelet.

    Returns:
      [B, feature_dim] float32 features.
    """
    return self.pool(self.encode(self.embed(x)))


# Override name -> (spec field, converter).
_OVERRIDES: dict[str, tuple[str, Any]] = {
    "width": ("width", int),
    "depth": ("depth", int),
    "num_heads": ("num_heads", int),
    "mlp_ratio": ("mlp_ratio", float),
    "tubelet": ("tubelet", lambda v: tuple(int(x) for x in v)),
    "pos_embedding": ("pos_embedding", str),
    "grid": ("grid", lambda v: None if v is None else tuple(int(x) for x in v)),
    "final_norm": ("final_norm", str),
    "layer_norm_epsilon": ("layer_norm_epsilon", float),
}


def variant_spec(name: str, **overrides) -> ViT3DSpec:
  """The spec of a named variant with overrides applied (errors list the valid ones)."""
  if name not in VARIANTS:
    raise ValueError(f"Unknown ViT variant {name!r}; valid: {', '.join(sorted(VARIANTS))}")
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


def build(name: str, *, rngs: nnx.Rngs, dtype=jnp.float32, **overrides) -> ViT3D:
  """Builds a named ViT variant (see ``VARIANTS``); the registry's entry point."""
  return ViT3D(variant_spec(name, **overrides), rngs=rngs, dtype=dtype)
