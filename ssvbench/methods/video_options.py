"""Video-specific options any method can switch on, applied on device to the global batch.

The pipeline ships uint8 clips [B, rho, T, H, W, 3] (rho >= 2 temporal views of each
video, `config.method.num_views`). The options of the video SSL literature that do not
change what a method optimises, only what it sees, live here so that every method gets
them the same way, under `config.method.video`:

- Background Erasing (Wang et al., 2021): a view becomes (1 - w) * clip + w * frame, with
  `frame` a random frame of that same clip held static over time and w ~ U(0, max_weight)
  (the mixing of the authors' reference code). The static frame carries the background
  but no motion, so a method that matches the erased view to the clean one cannot rely
  on appearance alone.
- IIC-style intra-video negatives (Tao et al., 2020): frame-shuffled and frame-repeated
  versions of each video's first view. They share its appearance exactly but not its
  motion; contrastive methods use them as extra negatives of that video only.
- RGB + frame-difference views: `frame_difference="alternate"` turns odd-numbered views
  into frame differences (residual frames), `"all"` every view, so that the positives
  of a pair are an appearance stream and a motion stream.

Why on device and here: these are pure functions of the global batch and the step's key,
so they cost no host time, are reproducible from the step, and (the key is replicated and
JAX's random bits are partitionable) do not depend on how many devices share the batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from ssvbench.models import input_norm

INTRA_NEGATIVE_KINDS = ("shuffle", "repeat")
FRAME_DIFFERENCE_MODES = ("none", "alternate", "all")


@dataclasses.dataclass(frozen=True)
class VideoOptions:
  """The options of `config.method.video`; all off by default.

  Attributes:
    background_erasing_prob: probability that a view is background-erased.
    background_erasing_max_weight: w is drawn uniformly in [0, this].
    intra_negatives: kinds of intra-video negatives to build ("shuffle", "repeat").
    frame_difference: "none", "alternate" (odd views are frame differences) or "all".
  """
  background_erasing_prob: float = 0.0
  background_erasing_max_weight: float = 0.3
  intra_negatives: tuple[str, ...] = ()
  frame_difference: str = "none"

  @classmethod
  def from_config(cls, method_config: Any, num_views: int) -> "VideoOptions":
    """Reads and validates `config.method.video` (a dict; absent means all off)."""
    spec = method_config.get("video", None) or {}
    spec = dict(spec.to_dict() if hasattr(spec, "to_dict") else spec)
    valid = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(spec) - set(valid))
    if unknown:
      raise ValueError(f"config.method.video: unknown key(s) {unknown}; valid: {valid}.")
    if "intra_negatives" in spec:
      kinds = spec["intra_negatives"]
      spec["intra_negatives"] = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    options = cls(**spec)
    if not 0.0 <= options.background_erasing_prob <= 1.0:
      raise ValueError("config.method.video.background_erasing_prob must be in [0, 1], got "
                       f"{options.background_erasing_prob}.")
    if not 0.0 <= options.background_erasing_max_weight < 1.0:
      raise ValueError("config.method.video.background_erasing_max_weight must be in "
                       f"[0, 1), got {options.background_erasing_max_weight}.")
    bad = [kind for kind in options.intra_negatives if kind not in INTRA_NEGATIVE_KINDS]
    if bad or len(set(options.intra_negatives)) != len(options.intra_negatives):
      raise ValueError(f"config.method.video.intra_negatives={options.intra_negatives}: "
                       f"expected distinct kinds from {INTRA_NEGATIVE_KINDS}.")
    if options.frame_difference not in FRAME_DIFFERENCE_MODES:
      raise ValueError(f"config.method.video.frame_difference={options.frame_difference!r}; "
                       f"valid: {FRAME_DIFFERENCE_MODES}.")
    if options.frame_difference == "alternate" and num_views < 2:
      raise ValueError("config.method.video.frame_difference='alternate' needs num_views "
                       f">= 2, got {num_views}.")
    return options

  @property
  def num_intra_negatives(self) -> int:
    return len(self.intra_negatives)


@dataclasses.dataclass
class VideoBatch:
  """What a method encodes: normalised float views and optional intra-video negatives.

  Attributes:
    views: [B, V, T, H, W, 3] float32 network inputs.
    intra_negatives: [B, E, T, H, W, 3] float32, or None when the option is off.
  """
  views: jax.Array
  intra_negatives: jax.Array | None


def background_erasing(clips: jax.Array, rng: jax.Array, prob: float,
                       max_weight: float) -> jax.Array:
  """Mixes a static frame of each clip into all of its frames.

  Args:
    clips: [B, V, T, H, W, C] float clips in [0, 1].
    rng: PRNG key.
    prob: probability that a given view is erased.
    max_weight: mixing weight w ~ U(0, max_weight) per erased view.

  Returns:
    Clips of the same shape: (1 - w) * clip + w * clip[t*] for a random frame t* of that
    clip (w = 0 for views that are not erased).
  """
  batch, views, frames = clips.shape[:3]
  apply_key, weight_key, frame_key = jax.random.split(rng, 3)
  erase = jax.random.uniform(apply_key, (batch, views)) < prob
  weight = jnp.where(erase, jax.random.uniform(weight_key, (batch, views)) * max_weight, 0.0)
  frame_index = jax.random.randint(frame_key, (batch, views), 0, frames)
  static = jnp.take_along_axis(clips, frame_index[:, :, None, None, None, None], axis=2)
  weight = weight[:, :, None, None, None, None]
  return (1.0 - weight) * clips + weight * static


def intra_video_negatives(clips: jax.Array, rng: jax.Array,
                          kinds: tuple[str, ...]) -> jax.Array:
  """Frame-shuffled / frame-repeated versions of each video's first view.

  Args:
    clips: [B, V, T, H, W, C] clips (any dtype).
    rng: PRNG key.
    kinds: subset of INTRA_NEGATIVE_KINDS, in output order.

  Returns:
    [B, len(kinds), T, H, W, C]. "shuffle" permutes the frames with a random
    permutation that is never the identity (T >= 2); "repeat" repeats one random frame.
  """
  anchor = clips[:, 0]
  batch, frames = anchor.shape[:2]
  if frames < 2:
    raise ValueError(f"intra-video negatives need clips of >= 2 frames, got {frames}.")
  negatives = []
  for kind, key in zip(kinds, jax.random.split(rng, len(kinds))):
    if kind == "shuffle":
      order = jnp.argsort(jax.random.uniform(key, (batch, frames)), axis=1)
      # An identity permutation would be a positive, not a negative; its reverse is not.
      identity = jnp.all(order == jnp.arange(frames), axis=1, keepdims=True)
      order = jnp.where(identity, order[:, ::-1], order)
    elif kind == "repeat":
      order = jnp.repeat(jax.random.randint(key, (batch, 1), 0, frames), frames, axis=1)
    else:
      raise ValueError(f"unknown intra-video negative kind {kind!r}; valid: "
                       f"{INTRA_NEGATIVE_KINDS}.")
    negatives.append(jnp.take_along_axis(anchor, order[:, :, None, None, None], axis=1))
  return jnp.stack(negatives, axis=1)


def frame_differences(clips: jax.Array) -> jax.Array:
  """Residual frames x[t+1] - x[t] over axis -4 (time), the last one repeated to keep T."""
  difference = clips[..., 1:, :, :, :] - clips[..., :-1, :, :, :]
  return jnp.concatenate([difference, difference[..., -1:, :, :, :]], axis=-4)


def _to_network_input(clips01: jax.Array, as_difference: bool,
                      norm: input_norm.InputNorm) -> jax.Array:
  if as_difference:
    # Differences are centred already; the RGB scale keeps both streams comparable.
    return frame_differences(clips01) / jnp.asarray(norm.std)
  return (clips01 - jnp.asarray(norm.mean)) / jnp.asarray(norm.std)


def prepare(clips: jax.Array, rng: jax.Array, options: VideoOptions,
            norm: input_norm.InputNorm | None = None) -> VideoBatch:
  """Applies the options to a global batch of uint8 clips.

  Args:
    clips: [B, V, T, H, W, 3] uint8 clips from the pipeline.
    rng: the step's PRNG key.
    options: the method's VideoOptions.
    norm: the backbone's input normalisation (`input_norm.of(model.backbone)`); None is
      ssvbench's default.

  Returns:
    A VideoBatch; with every option off, `views` equals `base.normalize_clips(clips)`.
  """
  if clips.ndim != 6:
    raise ValueError(f"expected clips [B, V, T, H, W, 3], got shape {clips.shape}.")
  norm = norm or input_norm.DEFAULT
  negative_key, erasing_key = jax.random.split(rng)
  clips01 = clips.astype(jnp.float32) / 255.0
  negatives = None
  if options.intra_negatives:
    negatives = intra_video_negatives(clips01, negative_key, options.intra_negatives)
  if options.background_erasing_prob > 0.0:
    clips01 = background_erasing(clips01, erasing_key, options.background_erasing_prob,
                                 options.background_erasing_max_weight)
  num_views = clips.shape[1]
  if options.frame_difference == "none":
    views = _to_network_input(clips01, False, norm)
  elif options.frame_difference == "all":
    views = _to_network_input(clips01, True, norm)
  else:
    views = jnp.stack([_to_network_input(clips01[:, v], v % 2 == 1, norm)
                       for v in range(num_views)], axis=1)
  if negatives is not None:
    # Negatives take the modality of the view they were made from (view 0).
    negatives = _to_network_input(negatives, options.frame_difference == "all", norm)
  return VideoBatch(views=views, intra_negatives=negatives)


def encode(backbone, inputs: jax.Array) -> jax.Array:
  """Runs the backbone on float [B, V, T, H, W, 3] inputs; returns [B, V, D] features."""
  batch, views = inputs.shape[:2]
  features = backbone(inputs.reshape((batch * views,) + inputs.shape[2:]))
  return features.reshape(batch, views, -1)


def encode_batch(backbone, video: VideoBatch) -> tuple[jax.Array, jax.Array | None]:
  """Encodes views and intra-video negatives in one backbone call (one set of BN stats).

  Returns:
    ([B, V, D] view features, [B, E, D] negative features or None).
  """
  if video.intra_negatives is None:
    return encode(backbone, video.views), None
  num_views = video.views.shape[1]
  features = encode(backbone, jnp.concatenate([video.views, video.intra_negatives], axis=1))
  return features[:, :num_views], features[:, num_views:]


def refuse_intra_negatives(options: VideoOptions, method_name: str) -> None:
  """Methods without negatives (BYOL, SimSiam, SwAV, ...) cannot use intra negatives."""
  if options.intra_negatives:
    raise ValueError(f"config.method.video.intra_negatives={options.intra_negatives}: "
                     f"{method_name} has no negatives to add them to; they apply to the "
                     "contrastive methods (simclr, moco_v2, moco_v3).")
