"""Decoding one video file into RGB frames, at a chosen size and frame rate.

Every dataset is decoded here once, at preparation time, so that training and
evaluation read frames that went through one decoder with one set of rules. The rules:

* Size: the short side is scaled to `short_side` (aspect ratio kept, FFmpeg's
  swscale bilinear, whose filter widens when shrinking so it does not alias), or
  left native. Scaling happens in swscale's YUV->RGB pass: about 3x cheaper than
  converting at full size and resizing with Pillow, and within ~1.3/255 of it.
* Frame rate: output frame k shows the source frame whose presentation time is
  nearest to `k / fps` (ties go to the earlier frame), for every k with
  `k / fps < duration`; with no `fps` every source frame is kept. Selection streams
  through the decoder, so a long video resampled to a low rate never holds all its
  native frames in memory.
* Failure is loud: a file that cannot be opened, has no video stream, yields no frame,
  or stops well short of the frame count its container declares (a truncated download)
  raises `DecodeError`. Preparation then records the video as corrupt instead of
  silently keeping a partial or substituted clip.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter

# A file is called truncated when it decodes fewer frames than its container declares,
# by more than this many frames or this fraction of the declared count (whichever is
# larger). The slack absorbs legitimate gaps such as MP4 edit lists dropping a few
# leading frames; a download cut short loses far more.
TRUNCATION_SLACK_FRAMES = 2
TRUNCATION_SLACK_FRACTION = 0.05

# Target timestamps within this many seconds of the end of the video are not emitted,
# so float rounding in `k / fps` never adds a frame past the last one.
_TIME_EPSILON = 1e-9


class DecodeError(Exception):
  """A video file that cannot be decoded into frames.

  Attributes:
    path: the file that failed (as given to `decode_video`).
    reason: the decoder's message without the path, so that it can be stored in a
      manifest and compared across machines.
  """

  def __init__(self, path: str | os.PathLike, reason: str):
    super().__init__(f"cannot decode video {os.fspath(path)!r}: {reason}")
    self.path = os.fspath(path)
    self.reason = reason


@dataclasses.dataclass(frozen=True)
class DecodedVideo:
  """Frames of one video.

  Attributes:
    frames: uint8 array [T, H, W, 3], RGB.
    fps: frame rate of `frames` (the target rate if one was requested, else native).
    duration: duration of the source video in seconds (first frame's start to last
      frame's end).
  """

  frames: np.ndarray
  fps: float
  duration: float

  @property
  def num_frames(self) -> int:
    return int(self.frames.shape[0])

  @property
  def height(self) -> int:
    return int(self.frames.shape[1])

  @property
  def width(self) -> int:
    return int(self.frames.shape[2])


def resized_shape(height: int, width: int, short_side: int | None) -> tuple[int, int]:
  """Returns (height, width) after scaling the short side to `short_side`.

  Args:
    height: source height in pixels.
    width: source width in pixels.
    short_side: target length of the shorter side, or None to keep the size.

  Returns:
    The output (height, width); the long side is rounded half up.
  """
  if short_side is None:
    return height, width
  if height <= width:
    return short_side, max(1, math.floor(width * short_side / height + 0.5))
  return max(1, math.floor(height * short_side / width + 0.5)), short_side


def _frame_to_array(frame: av.VideoFrame, reformatter: VideoReformatter,
                    size: tuple[int, int]) -> np.ndarray:
  # One reformatter per video keeps its swscale context; `frame.to_ndarray(format=...)`
  # rebuilds it per frame, which costs more than decoding small frames.
  rgb = reformatter.reformat(frame, width=size[1], height=size[0], format="rgb24",
                             interpolation="BILINEAR")
  return rgb.to_ndarray()


def _ffmpeg_reason(error: av.FFmpegError) -> str:
  # str(error) embeds the file path; the manifest must not depend on where data lives.
  return f"{type(error).__name__}: {error.strerror}"


def _timed_frames(container, stream,
                  native_fps: float) -> Iterator[tuple[float, av.VideoFrame]]:
  """Yields (presentation time in seconds, frame) in presentation order."""
  for frame_index, frame in enumerate(container.decode(stream)):
    if frame.pts is None:  # some raw streams carry no timestamps: assume constant rate
      yield frame_index / native_fps, frame
    else:
      yield float(frame.pts * stream.time_base), frame


def decode_video(
    path: str | os.PathLike,
    *,
    short_side: int | None = None,
    fps: float | None = None,
) -> DecodedVideo:
  """Decodes a video file into RGB frames.

  Args:
    path: the video file.
    short_side: if given, the short side of every frame is scaled to this many pixels
      (aspect ratio kept, bilinear).
    fps: if given, frames are resampled to this rate by nearest presentation time;
      None keeps every native frame.

  Returns:
    A `DecodedVideo`.

  Raises:
    FileNotFoundError: `path` does not exist (a missing video is not a corrupt one).
    DecodeError: the file is corrupt, truncated, empty, or yields no frame; the
      message carries the decoder's error.
    ValueError: `short_side` or `fps` is not positive.
  """
  if short_side is not None and short_side <= 0:
    raise ValueError(f"short_side must be a positive number of pixels, got {short_side}")
  if fps is not None and not fps > 0:
    raise ValueError(f"fps must be positive, got {fps}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"video file not found: {os.fspath(path)!r}")
  try:
    with av.open(os.fspath(path)) as container:
      if not container.streams.video:
        raise DecodeError(path, "no video stream")
      stream = container.streams.video[0]
      rate = stream.average_rate or stream.guessed_rate
      # A stream without a declared rate gets one from its timestamps below; 25 only
      # serves frames that also lack timestamps.
      native_fps = float(rate) if rate else 25.0
      frames, num_native, first_time, last_time, estimated_fps = _decode_frames(
          container, stream, native_fps, short_side, fps)
      declared_frames = stream.frames
  except av.FFmpegError as error:
    raise DecodeError(path, _ffmpeg_reason(error)) from error

  if num_native == 0:
    raise DecodeError(path, "no video frames decoded")
  slack = max(TRUNCATION_SLACK_FRAMES, TRUNCATION_SLACK_FRACTION * declared_frames)
  if declared_frames > 0 and num_native < declared_frames - slack:
    raise DecodeError(
        path, f"truncated: decoded {num_native} of the {declared_frames} frames "
        "the container declares")
  if not rate and estimated_fps is not None:
    native_fps = estimated_fps
  duration = last_time - first_time + 1.0 / native_fps
  output_fps = native_fps if fps is None else float(fps)
  if fps is not None:
    # Targets past the last frame's timestamp but before the video's end show it.
    last_frame = frames.pop()
    num_targets = math.ceil(duration * fps - _TIME_EPSILON)
    frames.extend([last_frame] * (num_targets - len(frames)))
  return DecodedVideo(frames=np.stack(frames), fps=output_fps, duration=duration)


def _decode_frames(container, stream, native_fps, short_side, fps):
  """Decodes and selects frames; see `decode_video`.

  With a target rate, the returned list ends with the last native frame (converted),
  which the caller repeats for the targets between the last timestamp and the end.

  Returns:
    (frames, number of native frames, first time, last time, fps estimated from the
    timestamps or None).
  """
  reformatter = VideoReformatter()
  selected: list[np.ndarray] = []
  num_native = 0
  first_time = last_time = 0.0
  previous_frame = previous_array = None
  target_index = 0
  size = None
  for time, frame in _timed_frames(container, stream, native_fps):
    if num_native == 0:
      first_time = time
      # The first frame fixes the output size, so a stream that changes resolution
      # midway still yields one [T, H, W, 3] array.
      size = resized_shape(frame.height, frame.width, short_side)
    relative_time = time - first_time
    if fps is None:
      selected.append(_frame_to_array(frame, reformatter, size))
    elif previous_frame is not None:
      # Every target up to the midpoint is nearest to the previous frame.
      midpoint = (last_time - first_time + relative_time) / 2
      while target_index / fps <= midpoint:
        if previous_array is None:
          previous_array = _frame_to_array(previous_frame, reformatter, size)
        selected.append(previous_array)
        target_index += 1
    previous_frame, previous_array = frame, None
    last_time = time
    num_native += 1
  if fps is not None and previous_frame is not None:
    selected.append(_frame_to_array(previous_frame, reformatter, size))
  estimated_fps = None
  if num_native >= 2 and last_time > first_time:
    estimated_fps = (num_native - 1) / (last_time - first_time)
  return selected, num_native, first_time, last_time, estimated_fps
