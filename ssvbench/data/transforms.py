"""Clip sampling and augmentation: pure functions of the decoded frames and a numpy RNG.

Why pure functions: grain hands every element its own `np.random.Generator`, seeded by
the pipeline seed and the element's position in the stream. If every random choice
here comes from that generator (and nothing else), a run is reproducible and a
restored data iterator continues with exactly the same clips. The grain wiring lives in
`pipeline.py`; this module never sees a file or a record.

Conventions (the choices other codebases leave implicit):

* Frames arrive through `load_frames(indices) -> list[PIL.Image]`, so only the frames a
  clip needs are ever decoded. Crop + resize is one Pillow `resize(box=...)` per frame.
  Against a vectorised numpy bilinear gather over the clip (benchmarks/bench_pipeline.py
  re-measures) it is 9-11x faster at 112x112 (1.6 vs 17.7 ms per 8-frame clip from
  128x171) and 1.1-2x slower at 32x32 (0.9 vs 0.8 ms), because it antialiases: its
  kernel widens with the shrink factor, where the gather would alias at 32 px.
* A clip spans `(num_frames - 1) * frame_stride + 1` source frames. Videos shorter
  than a clip are CLAMPED: indices past the end repeat the last frame (eval clips are
  centred, so both ends repeat). Looping would splice the end onto the start, a fake
  "teleport" motion a model could learn from; a held frame is merely a pause.
* Training clips (CVRL): the delay between the first clip and each further clip is
  drawn from a density decreasing linearly from 0 to `max_interval` (by default, all
  the video leaves: `num_frames_total - span`), `delay = (max+1)(1 - sqrt(u))` floored;
  the first clip's start is then uniform over the positions where every clip fits. With
  more than two clips (rho views) each further clip gets its own independent delay
  from the same density, relative to the first clip (so clip 0 is the earliest).
* Spatial augmentation is drawn once per clip and applied identically to all its
  frames; clips of one video are augmented independently, EXCEPT the horizontal flip,
  which is drawn once per video: flipping one clip but not the other would pair
  "moving left" with "moving right" as a positive and teach the model to ignore
  motion direction.
* Colour jitter (prob 0.8) applies brightness, contrast, saturation and hue in a random
  order (SimCLR/CVRL), each a linear map of RGB (hue = rotation of the YIQ chroma
  plane; contrast pulls towards the clip's mean luma, one value for the whole clip).
  The sequence, plus optional grayscale (prob 0.2), therefore composes into ONE affine
  colour map per clip, applied by Pillow's matrix `convert` (rounded and clipped to
  [0, 255] once; 2.4 ms per 8x112x112 clip against 8-9 ms for a numpy matmul). Unlike
  torchvision, intermediate results are not clipped; in exchange the cost does not
  grow with the number of ops and every frame of a clip gets exactly the same map.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

# ITU-R BT.601 luma, and the NTSC RGB -> YIQ matrix whose I/Q plane carries hue.
_LUMA = np.array([0.299, 0.587, 0.114])
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.596, -0.274, -0.322],
                        [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)

LoadFrames = Callable[[np.ndarray], Sequence[Image.Image]]


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Strengths and per-op switches of the training augmentation (defaults: CVRL)."""

  random_crop: bool = True  # False: largest centred square, resized (no crop jitter).
  crop_scale: tuple[float, float] = (0.3, 1.0)  # Fraction of the frame area.
  crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)  # Width / height, log-uniform.
  flip: bool = True
  flip_prob: float = 0.5
  color_jitter: bool = True
  color_jitter_prob: float = 0.8
  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.4
  hue: float = 0.1  # In turns of the colour circle, at most 0.5.
  color_jitter_random_order: bool = True
  grayscale: bool = True
  grayscale_prob: float = 0.2

  def __post_init__(self):
    for name in ("flip_prob", "color_jitter_prob", "grayscale_prob"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")
    for name in ("brightness", "contrast", "saturation"):
      if getattr(self, name) < 0:
        raise ValueError(f"augment.{name} must be >= 0, got {getattr(self, name)}")
    if not 0.0 <= self.hue <= 0.5:
      raise ValueError(f"augment.hue must be in [0, 0.5], got {self.hue}")
    low, high = self.crop_scale
    if not 0.0 < low <= high <= 1.0:
      raise ValueError(f"augment.crop_scale must satisfy 0 < low <= high <= 1, got "
                       f"{self.crop_scale}")
    low, high = self.crop_aspect
    if not 0.0 < low <= high:
      raise ValueError(f"augment.crop_aspect must satisfy 0 < low <= high, got "
                       f"{self.crop_aspect}")

  @classmethod
  def from_spec(cls, spec: Any) -> AugmentConfig:
    """Builds the config from None, an AugmentConfig, a dict or an ml_collections ConfigDict.

    `None` disables every op. In a dict, `enabled` (default True) sets the default of
    the four switches `random_crop`, `flip`, `color_jitter`, `grayscale`; switches
    given explicitly win, so `{"enabled": False, "random_crop": True, "flip": True}`
    is crop + flip only (fine-tuning). Other keys override the default strengths.

    Args:
      spec: None, AugmentConfig, or a mapping / ConfigDict with the keys above.

    Returns:
      The validated AugmentConfig.
    """
    if spec is None:
      return cls(random_crop=False, flip=False, color_jitter=False, grayscale=False)
    if isinstance(spec, cls):
      return spec
    if hasattr(spec, "to_dict"):
      spec = spec.to_dict()
    if not isinstance(spec, Mapping):
      raise TypeError(f"augment must be None, a dict or a ConfigDict, got {type(spec)}")
    spec = dict(spec)
    valid = {field.name for field in dataclasses.fields(cls)} | {"enabled"}
    unknown = sorted(set(spec) - valid)
    if unknown:
      raise ValueError(f"unknown augment key(s) {unknown}; valid keys: {sorted(valid)}")
    enabled = bool(spec.pop("enabled", True))
    for switch in ("random_crop", "flip", "color_jitter", "grayscale"):
      spec.setdefault(switch, enabled)
    for pair in ("crop_scale", "crop_aspect"):
      if pair in spec:
        spec[pair] = tuple(float(v) for v in spec[pair])
    return cls(**spec)


# ----------------------------------------------------------------------------- time


def clip_span(num_frames: int, frame_stride: int) -> int:
  """Number of source frames covered by a clip of `num_frames` taken every `frame_stride`."""
  if num_frames < 1 or frame_stride < 1:
    raise ValueError(f"num_frames and frame_stride must be >= 1, got {num_frames}, "
                     f"{frame_stride}")
  return (num_frames - 1) * frame_stride + 1


def clip_frame_indices(start: int, num_frames: int, frame_stride: int,
                       num_frames_total: int) -> np.ndarray:
  """Source frame indices of a clip, clamped into [0, num_frames_total - 1]."""
  indices = start + frame_stride * np.arange(num_frames)
  return np.clip(indices, 0, num_frames_total - 1)


def sample_train_clip_starts(rng: np.random.Generator, num_frames_total: int, span: int,
                             num_clips: int, max_interval: int | None = None) -> np.ndarray:
  """CVRL temporal sampling of `num_clips` clip starts (see the module docstring).

  Args:
    rng: the element's generator.
    num_frames_total: frames in the video (>= 1).
    span: source frames covered by one clip (`clip_span`).
    num_clips: clips to sample (>= 1).
    max_interval: cap on the delay between the first clip and any other, in frames;
      None = whatever the video allows.

  Returns:
    int64 [num_clips] starts; clip 0 first, `starts[k] - starts[0]` the k-th delay.
  """
  slack = max(num_frames_total - span, 0)
  limit = slack if max_interval is None else min(int(max_interval), slack)
  uniforms = rng.random(num_clips - 1)
  delays = np.minimum(np.floor((limit + 1) * (1.0 - np.sqrt(uniforms))), limit)
  delays = delays.astype(np.int64)
  longest = int(delays.max()) if delays.size else 0
  first = int(rng.integers(0, slack - longest + 1))
  return np.concatenate([[first], first + delays]).astype(np.int64)


def eval_clip_starts(num_frames_total: int, span: int, num_views: int) -> np.ndarray:
  """Deterministic clip starts: centres at linspace(span/2, N - span/2, num_views).

  One view is centred on the video (`np.linspace` with one point would return its
  first end, the start of the video). A video shorter than a clip gets every view
  centred on it (start < 0; `clip_frame_indices` clamps, so both end frames repeat).
  """
  if num_frames_total >= span and num_views > 1:
    centres = np.linspace(span / 2, num_frames_total - span / 2, num_views)
  else:
    centres = np.full(num_views, num_frames_total / 2)
  return np.floor(centres - span / 2 + 0.5).astype(np.int64)


# -------------------------------------------------------------------------- space

Box = tuple[float, float, float, float]  # (left, top, right, bottom) in source pixels.


def sample_crop_box(rng: np.random.Generator, height: int, width: int,
                    scale: tuple[float, float], aspect: tuple[float, float],
                    attempts: int = 10) -> Box:
  """Inception-style random resized crop box; falls back to the centred square-ish box."""
  area = height * width
  log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
  for _ in range(attempts):
    target_area = area * rng.uniform(*scale)
    ratio = math.exp(rng.uniform(*log_aspect))
    crop_w = int(round(math.sqrt(target_area * ratio)))
    crop_h = int(round(math.sqrt(target_area / ratio)))
    if 0 < crop_w <= width and 0 < crop_h <= height:
      left = int(rng.integers(0, width - crop_w + 1))
      top = int(rng.integers(0, height - crop_h + 1))
      return (left, top, left + crop_w, top + crop_h)
  # Like torchvision: the whole frame, trimmed to the nearest allowed aspect ratio.
  ratio = min(max(width / height, aspect[0]), aspect[1])
  crop_w, crop_h = (width, width / ratio) if width / height < ratio else (height * ratio,
                                                                          height)
  crop_w, crop_h = min(crop_w, width), min(crop_h, height)
  left, top = (width - crop_w) / 2, (height - crop_h) / 2
  return (left, top, left + crop_w, top + crop_h)


def square_crop_boxes(height: int, width: int, num_crops: int) -> list[Box]:
  """Largest squares along the long side: 1 = centre, n = evenly spaced from start to end.

  Resizing one of these boxes to crop x crop equals "resize the short side to crop,
  then take a crop x crop window", without rounding the intermediate size.
  """
  side = min(height, width)
  if num_crops == 1:
    offsets = np.array([(max(height, width) - side) / 2])
  else:
    offsets = np.linspace(0.0, max(height, width) - side, num_crops)
  if width >= height:
    return [(float(o), 0.0, float(o) + side, float(side)) for o in offsets]
  return [(0.0, float(o), float(side), float(o) + side) for o in offsets]


def _crop_resize_images(frames: Sequence[Image.Image], box: Box,
                        size: int) -> list[Image.Image]:
  return [frame.resize((size, size), Image.Resampling.BILINEAR, box=box)
          for frame in frames]


def _stack(images: Sequence[Image.Image]) -> np.ndarray:
  return np.stack([np.asarray(image) for image in images])


def crop_and_resize(frames: Sequence[Image.Image], box: Box, size: int) -> np.ndarray:
  """Crops `box` from every frame and resizes it to size x size (bilinear, antialiased).

  Returns:
    uint8 [T, size, size, 3].
  """
  return _stack(_crop_resize_images(frames, box, size))


# ------------------------------------------------------------------------- colour


@dataclasses.dataclass(frozen=True)
class ColorOps:
  """The colour ops drawn for one clip, in application order: (name, factor) pairs."""

  ops: tuple[tuple[str, float], ...]


def sample_color_ops(rng: np.random.Generator, config: AugmentConfig) -> ColorOps:
  """Draws whether to jitter / gray a clip and with which factors, in which order."""
  ops: list[tuple[str, float]] = []
  if config.color_jitter and rng.random() < config.color_jitter_prob:
    jitter = [
        ("brightness", rng.uniform(max(0.0, 1 - config.brightness), 1 + config.brightness)),
        ("contrast", rng.uniform(max(0.0, 1 - config.contrast), 1 + config.contrast)),
        ("saturation", rng.uniform(max(0.0, 1 - config.saturation), 1 + config.saturation)),
        ("hue", rng.uniform(-config.hue, config.hue)),
    ]
    order = (rng.permutation(len(jitter)) if config.color_jitter_random_order
             else range(len(jitter)))
    ops.extend((jitter[i][0], float(jitter[i][1])) for i in order)
  if config.grayscale and rng.random() < config.grayscale_prob:
    ops.append(("grayscale", 1.0))
  return ColorOps(tuple(ops))


def color_affine(ops: ColorOps, mean_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Composes the ops into `x -> matrix @ x + bias` on RGB in [0, 1].

  Args:
    ops: from `sample_color_ops`.
    mean_rgb: [3] mean colour of the clip before the ops (for contrast's mean luma).

  Returns:
    (matrix [3, 3], bias [3]), float64.
  """
  matrix, bias = np.eye(3), np.zeros(3)
  ones = np.ones(3)
  for name, factor in ops.ops:
    step_bias = np.zeros(3)
    if name == "brightness":
      step = factor * np.eye(3)
    elif name == "contrast":
      # Mean luma of the image as it is at this point of the sequence.
      mean_luma = _LUMA @ (matrix @ mean_rgb + bias)
      step, step_bias = factor * np.eye(3), (1 - factor) * mean_luma * ones
    elif name == "saturation":
      step = factor * np.eye(3) + (1 - factor) * np.outer(ones, _LUMA)
    elif name == "hue":
      angle = 2 * math.pi * factor
      rotation = np.array([[1, 0, 0],
                           [0, math.cos(angle), -math.sin(angle)],
                           [0, math.sin(angle), math.cos(angle)]])
      step = _YIQ_TO_RGB @ rotation @ _RGB_TO_YIQ
    elif name == "grayscale":
      step = np.outer(ones, _LUMA)
    else:
      raise ValueError(f"unknown colour op {name!r}")
    matrix, bias = step @ matrix, step @ bias + step_bias
  return matrix, bias


def _color_images(images: Sequence[Image.Image], ops: ColorOps) -> list[Image.Image]:
  """One colour map for all frames of a clip, through Pillow's RGB matrix convert."""
  if not ops.ops:
    return list(images)
  mean_rgb = np.zeros(3)
  if any(name == "contrast" for name, _ in ops.ops):
    # Clip mean from the frames' C histograms (frames share a size): 3 x 256 counts each.
    counts = np.sum([image.histogram() for image in images], axis=0).reshape(3, 256)
    mean_rgb = counts @ np.arange(256) / counts.sum(axis=1) / 255
  matrix, bias = color_affine(ops, mean_rgb)
  # Pillow wants (r_r, r_g, r_b, r_offset, g_r, ...), offsets in pixel units.
  affine = tuple(np.concatenate([matrix, 255.0 * bias[:, None]], axis=1).ravel().tolist())
  return [image.convert("RGB", affine) for image in images]


def apply_color_ops(clip: np.ndarray, ops: ColorOps) -> np.ndarray:
  """Applies the composed colour map to a uint8 [T, H, W, 3] clip (same map per frame)."""
  if not ops.ops:
    return clip
  return _stack(_color_images([Image.fromarray(frame) for frame in clip], ops))


# -------------------------------------------------------------------------- views


def train_views(rng: np.random.Generator, load_frames: LoadFrames, num_frames_total: int,
                height: int, width: int, *, num_clips: int, num_frames: int,
                frame_stride: int, crop_size: int, augment: AugmentConfig,
                max_interval: int | None = None) -> np.ndarray:
  """Samples and augments the `num_clips` training clips of one video.

  Args:
    rng: the element's generator (the only source of randomness).
    load_frames: decodes the given source frame indices.
    num_frames_total, height, width: the video's length and frame size.
    num_clips, num_frames, frame_stride: clips per video and their temporal shape.
    crop_size: output side in pixels.
    augment: op switches and strengths.
    max_interval: cap on the delay between clips (frames), None = no cap.

  Returns:
    uint8 [num_clips, num_frames, crop_size, crop_size, 3].
  """
  flip = augment.flip and rng.random() < augment.flip_prob  # One draw per video.
  starts = sample_train_clip_starts(rng, num_frames_total,
                                    clip_span(num_frames, frame_stride), num_clips,
                                    max_interval)
  clips = []
  for start in starts:
    indices = clip_frame_indices(int(start), num_frames, frame_stride, num_frames_total)
    if augment.random_crop:
      box = sample_crop_box(rng, height, width, augment.crop_scale, augment.crop_aspect)
    else:
      box = square_crop_boxes(height, width, 1)[0]
    images = _crop_resize_images(load_frames(indices), box, crop_size)
    clip = _stack(_color_images(images, sample_color_ops(rng, augment)))
    clips.append(clip[:, :, ::-1] if flip else clip)  # Colour is per pixel: commutes.
  return np.stack(clips)


def eval_views(load_frames: LoadFrames, num_frames_total: int, height: int, width: int,
               *, num_temporal_views: int, num_spatial_crops: int, num_frames: int,
               frame_stride: int, crop_size: int) -> np.ndarray:
  """Deterministic multi-view clips of one video (no randomness at all).

  Views are ordered temporal-major: view `t * num_spatial_crops + s` is temporal
  position t (earliest first) and spatial crop s (left/top first).

  Returns:
    uint8 [num_temporal_views * num_spatial_crops, num_frames, crop_size, crop_size, 3].
  """
  if num_temporal_views < 1 or num_spatial_crops < 1:
    raise ValueError(f"num_temporal_views and num_spatial_crops must be >= 1, got "
                     f"{num_temporal_views}, {num_spatial_crops}")
  starts = eval_clip_starts(num_frames_total, clip_span(num_frames, frame_stride),
                            num_temporal_views)
  boxes = square_crop_boxes(height, width, num_spatial_crops)
  views = []
  for start in starts:
    frames = load_frames(clip_frame_indices(int(start), num_frames, frame_stride,
                                            num_frames_total))
    views.extend(crop_and_resize(frames, box, crop_size) for box in boxes)
  return np.stack(views)
