"""VideoMAE / MAE-ST: masked video modelling with tube masking and a light decoder.

VideoMAE (Tong et al., 2022) and MAE-ST (Feichtenhofer et al., 2022) pre-train a plain
ViT by hiding most of the clip and reconstructing it. What makes it work on video, and
what this module reproduces:

* **Tube masking** at a high ratio (default 90%): one random set of spatial positions is
  hidden for every tubelet time step, so a hidden patch cannot be copied from the same
  place a frame earlier (video is redundant in time).
* The **encoder sees only the visible tokens** (10%), the source of MAE's efficiency.
* A **light decoder** (narrower, 4 blocks) receives the encoded visible tokens and a
  shared learned mask token at every hidden position, each with its position, and
  predicts the pixels of the hidden tubelets.
* **Normalised-pixel targets**: each tubelet's pixels are normalised per channel by that
  tubelet's own mean and (unbiased) standard deviation; the MSE is taken on the hidden
  tubelets only.

The model's ``backbone`` is the plain ViT (``ssvbench.models.vit3d``), so evaluation
extracts features with the full, unmasked encoder and its mean pooling. With the
backbone's ``final_norm='tokens'`` (the recipe's choice) the encoder's final LayerNorm
is the one trained here; otherwise this model owns a separate encoder-output norm.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ssvbench.methods import base
from ssvbench.models import input_norm, vit3d


def tube_mask(rng: jax.Array, batch: int, grid: tuple[int, int, int],
              mask_ratio: float) -> tuple[jax.Array, jax.Array]:
  """Random tube masks: the same hidden spatial positions at every time step.

  Args:
    rng: PRNG key.
    batch: number of clips (each gets its own mask).
    grid: (T', H', W') token grid; tokens are indexed t * H'W' + s in raster order.
    mask_ratio: fraction of spatial positions hidden; int(ratio * H'W') are hidden
      (VideoMAE's count), and at least one stays visible.

  Returns:
    (visible, masked) int32 token indices, [B, T' * n_visible] and [B, T' * n_hidden],
    time-major (all positions of t=0, then t=1, ...).
  """
  frames, spatial = grid[0], grid[1] * grid[2]
  num_hidden = int(mask_ratio * spatial)
  if not 0 < num_hidden < spatial:
    raise ValueError(f"videomae: mask_ratio={mask_ratio} hides {num_hidden} of {spatial} "
                     f"spatial positions of grid {grid}; at least one must be hidden and "
                     "one visible")
  order = jnp.argsort(jax.random.uniform(rng, (batch, spatial)), axis=1).astype(jnp.int32)
  offsets = (jnp.arange(frames, dtype=jnp.int32) * spatial)[None, :, None]

  def tubes(spatial_index):
    return (offsets + spatial_index[:, None, :]).reshape(batch, -1)

  return tubes(order[:, num_hidden:]), tubes(order[:, :num_hidden])


def patch_targets(clips: jax.Array, tubelet: tuple[int, int, int], normalize: bool = True,
                  epsilon: float = 1e-6) -> jax.Array:
  """Per-tubelet pixel targets [B, N, kt*kh*kw*3], in the tokens' (t, h, w) order.

  Args:
    clips: [B, T, H, W, 3] uint8 clips (targets are pixels in [0, 1], as VideoMAE
      un-normalises its input before building them).
    tubelet: (kt, kh, kw).
    normalize: normalise each tubelet per channel by its mean and unbiased std.
    epsilon: added to the variance.

  Returns:
    float32 targets; the flattened order within a tubelet is (dt, dh, dw, channel).
  """
  batch, frames, height, width, channels = clips.shape
  kt, kh, kw = tubelet
  x = clips.astype(jnp.float32) / 255.0
  x = x.reshape(batch, frames // kt, kt, height // kh, kh, width // kw, kw, channels)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(batch, -1, kt * kh * kw, channels)
  if normalize:
    mean = jnp.mean(x, axis=2, keepdims=True)
    var = jnp.var(x, axis=2, keepdims=True, ddof=1)
    x = (x - mean) / jnp.sqrt(var + epsilon)
  return x.reshape(batch, x.shape[1], -1)


def gather_tokens(tokens: jax.Array, index: jax.Array) -> jax.Array:
  """tokens [B, N, D], index [B, n] -> [B, n, D]."""
  return jnp.take_along_axis(tokens, index[..., None], axis=1)


class Decoder(nnx.Module):
  """Projects encoded visible tokens, fills hidden positions with the mask token, predicts pixels."""

  def __init__(self, encoder_width: int, width: int, depth: int, num_heads: int,
               patch_values: int, *, dtype, rngs: nnx.Rngs):
    param = vit3d.annotated_param
    self.encoder_to_decoder = param(rngs, vit3d.DENSE_INIT, (encoder_width, width),
                                    ("embed", "decoder_embed"))
    self.mask_token = param(rngs, vit3d.DENSE_INIT, (width,), ("decoder_embed",))
    self.blocks = nnx.List([
        vit3d.Block(width, num_heads, 4 * width, 1e-6, dtype=dtype, rngs=rngs)
        for _ in range(depth)])
    self.norm = vit3d.LayerNorm(width, 1e-6, dtype=dtype, rngs=rngs)
    self.head_kernel = param(rngs, vit3d.DENSE_INIT, (width, patch_values),
                             ("decoder_embed", None))
    self.head_bias = param(rngs, nnx.initializers.zeros_init(), (patch_values,), (None,))
    self.width = width
    self.dtype = dtype

  def __call__(self, encoded: jax.Array, visible: jax.Array, masked: jax.Array,
               num_tokens: int) -> jax.Array:
    """Predictions [B, n_masked, patch_values] for the hidden tokens, in ``masked`` order."""
    positions = jnp.asarray(vit3d.sincos_table(num_tokens, self.width)).astype(self.dtype)
    x_visible = encoded @ self.encoder_to_decoder[...].astype(self.dtype)
    x_visible = x_visible + positions[visible]
    x_masked = self.mask_token[...].astype(self.dtype) + positions[masked]
    x = jnp.concatenate([x_visible, x_masked], axis=1)
    for block in self.blocks:
      x = block(x)
    x = self.norm(x[:, visible.shape[1]:])
    return (x @ self.head_kernel[...].astype(self.dtype)
            + self.head_bias[...].astype(self.dtype)).astype(jnp.float32)


class MaskedVideoModel(nnx.Module):
  """The ViT encoder (``backbone``, used for evaluation) and the pre-training decoder."""

  def __init__(self, backbone: vit3d.ViT3D, decoder: Decoder, encoder_norm):
    self.backbone = backbone
    self.decoder = decoder
    self.encoder_norm = encoder_norm


class VideoMAE(base.Method):
  """Config: mask_ratio, decoder_width, decoder_depth, decoder_heads, normalize_targets,
  num_views (1; more views are more clips, each masked independently)."""

  name = "videomae"

  @property
  def num_views(self) -> int:
    return int(self.setting("num_views"))

  def build_model(self, backbone, num_classes, rngs):
    del num_classes
    if not isinstance(backbone, vit3d.ViT3D):
      raise ValueError(f"videomae needs a ViT backbone (config.model.backbone=vit3d_*), got "
                       f"{type(backbone).__name__}")
    spec = backbone.spec
    width = int(self.config.get("decoder_width", None) or spec.width // 2)
    heads = int(self.config.get("decoder_heads", None) or max(1, width // 64))
    decoder = Decoder(spec.width, width, int(self.setting("decoder_depth")), heads,
                      int(np.prod(spec.tubelet)) * 3, dtype=backbone.dtype, rngs=rngs)
    encoder_norm = (None if spec.final_norm == "tokens" else
                    vit3d.LayerNorm(spec.width, spec.layer_norm_epsilon,
                                    dtype=backbone.dtype, rngs=rngs))
    return MaskedVideoModel(backbone, decoder, encoder_norm)

  def predict(self, model: MaskedVideoModel, clips: jax.Array, rng: jax.Array):
    """Masks, encodes the visible tokens, decodes the hidden ones.

    Args:
      model: a MaskedVideoModel.
      clips: [B, T, H, W, 3] uint8 clips.
      rng: PRNG key of the masks.

    Returns:
      (predictions [B, n_masked, P], visible [B, n_visible], masked [B, n_masked]).
    """
    encoder = model.backbone
    x = base.normalize_clips(clips, encoder.dtype, input_norm.of(encoder))
    grid = encoder.patch_embed.grid(x.shape[1:4])
    visible, masked = tube_mask(rng, x.shape[0], grid, self.setting("mask_ratio"))
    encoded = encoder.encode(gather_tokens(encoder.embed(x), visible))
    norm = encoder.norm if model.encoder_norm is None else model.encoder_norm
    predictions = model.decoder(norm(encoded), visible, masked, int(np.prod(grid)))
    return predictions, visible, masked

  def loss(self, model, batch, rng):
    clips = batch["clips"]
    clips = clips.reshape((-1,) + clips.shape[2:])  # Views are independent clips.
    predictions, visible, masked = self.predict(model, clips, rng)
    targets = gather_tokens(
        patch_targets(clips, model.backbone.spec.tubelet,
                      self.setting("normalize_targets")), masked)
    loss = jnp.mean(jnp.square(predictions - targets))
    hidden_fraction = masked.shape[1] / (masked.shape[1] + visible.shape[1])
    return loss, {"loss": loss, "hidden_fraction": jnp.float32(hidden_fraction)}
