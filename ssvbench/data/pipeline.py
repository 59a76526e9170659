"""grain input pipelines over a prepared split: random training clips and fixed eval views.

Both pipelines read a split's ArrayRecord records (`store.parse_record`: {"video_id",
"label", "fps", "frames": [JPEG bytes]}) and decode only the frames a clip needs; sampling and augmentation are the pure functions of
`transforms.py`, fed by grain's per-element seeded generators.

Process sharding, and why it is not `source[process_index::process_count]`: the
pipelines build ONE global stream (shuffle -> repeat -> random_map over all videos),
cut it into micro-batches of `batch_size // process_count`, and give process p the
micro-batches p, p + P, p + 2P, ... . Global batch b is therefore micro-batches
[bP, (b+1)P): process p holds its rows [p*B_local, (p+1)*B_local), and concatenating
the processes' rows in order gives exactly the batch a single process would have seen,
clips and augmentations included (grain seeds each element by its position in the
global stream). Slicing the source per process instead makes the data depend on the
process count, and hands element i of every process the same random generator, so
their augmentations would be correlated.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import os
from collections.abc import Sequence
from typing import Any

import grain
from absl import flags
import numpy as np
from PIL import Image

from ssvbench.data import store as store_lib
from ssvbench.data import transforms

_RECORD_KEYS = ("video_id", "label", "fps", "frames")


def open_source(source: Any) -> Any:
  """Returns a random-access record source for a split's array_record path or a source.

  Args:
    source: path of a split's ArrayRecord file, or an object with `__len__` and
      `__getitem__(int) -> bytes` (e.g. `grain.sources.ArrayRecordDataSource`).
  """
  if isinstance(source, (str, os.PathLike)):
    if not os.path.isfile(source):
      raise FileNotFoundError(f"record file {os.fspath(source)!r} does not exist; run "
                              "`ssvbench prepare` first")
    return grain.sources.ArrayRecordDataSource([os.fspath(source)])
  if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
    raise TypeError(f"source must be an array_record path or a random-access source, "
                    f"got {type(source)}")
  return source


def _source_name(source: Any) -> str:
  paths = getattr(source, "paths", None)
  if paths:
    return ",".join(os.fspath(p) for p in ([paths] if isinstance(paths, str) else paths))
  return type(source).__name__


class RecordSubset:
  """The records of a source at `record_indices`, in that order, as a random-access source.

  Fine-tuning trains on the training split minus a validation part carved by group, and
  scores that part separately; both read the one split file through this view instead
  of a second copy of the data. Element i is record `record_indices[i]` of the source.
  A module-level class, so grain workers can pickle it.
  """

  def __init__(self, source: Any, record_indices: Sequence[int]):
    source = open_source(source)
    indices = np.asarray(record_indices)
    where = f"record_indices into {_source_name(source)} ({len(source)} records)"
    if indices.ndim != 1 or not len(indices):
      raise ValueError(f"{where}: expected a non-empty list of record indices, got shape "
                       f"{indices.shape}")
    if not np.issubdtype(indices.dtype, np.integer):
      raise ValueError(f"{where}: expected integers, got dtype {indices.dtype}")
    outside = (indices < 0) | (indices >= len(source))
    if outside.any():
      raise ValueError(f"{where}: index {int(indices[outside][0])} is outside "
                       f"[0, {len(source)})")
    if len(np.unique(indices)) != len(indices):
      raise ValueError(f"{where}: indices repeat; each record may appear once")
    self.source = source
    self.record_indices = indices.astype(np.int64)
    self.paths = getattr(source, "paths", None)

  def __len__(self) -> int:
    return len(self.record_indices)

  def __getitem__(self, position: int) -> bytes:
    return self.source[int(self.record_indices[position])]


class DecodedFrameCache:
  """A process-wide, thread-safe LRU of decoded frames, keyed by their JPEG bytes.

  Why: training revisits every video once per epoch, and on small-frame data (the
  SynthActions quickstart: 20x20 JPEGs) parsing and decoding a JPEG with PIL costs more
  than cropping, resizing and colour-jittering it; about half of the pipeline's time.
  Keying by the encoded bytes makes a hit exactly the image a decode would give (no
  stale entries when a store is re-prepared, no dependence on record indices), so the
  pipeline's output is unchanged. Bounded by decoded size (default 512 MiB, env
  `SSVBENCH_FRAME_CACHE_MB`; 0 disables): on Kinetics-scale data it simply misses.
  """

  def __init__(self, max_bytes: int):
    import collections
    import threading
    self.max_bytes = max_bytes
    self._images: collections.OrderedDict[bytes, Image.Image] = collections.OrderedDict()
    self._bytes = 0
    self._lock = threading.Lock()

  def get(self, jpeg: bytes) -> Image.Image | None:
    if self.max_bytes <= 0:
      return None
    with self._lock:
      image = self._images.get(jpeg)
      if image is not None:
        self._images.move_to_end(jpeg)
      return image

  def put(self, jpeg: bytes, image: Image.Image) -> None:
    size = image.width * image.height * len(image.getbands())
    if size > self.max_bytes:
      return
    with self._lock:
      if jpeg in self._images:
        return
      self._images[jpeg] = image
      self._bytes += size
      while self._bytes > self.max_bytes:
        _, old = self._images.popitem(last=False)
        self._bytes -= old.width * old.height * len(old.getbands())


FRAME_CACHE = DecodedFrameCache(
    int(float(os.environ.get("SSVBENCH_FRAME_CACHE_MB", "512")) * 2**20))


class VideoRecord:
  """One decoded record; JPEG frames are decoded on demand and cached by index (and in
  the process-wide `FRAME_CACHE`)."""

  def __init__(self, raw: bytes, record_index: int, source_name: str):
    where = f"{source_name} record {record_index}"
    try:
      record = store_lib.parse_record(raw)
    except ValueError as error:
      raise ValueError(f"{where}: {error}") from error
    if not isinstance(record, dict) or any(key not in record for key in _RECORD_KEYS):
      keys = sorted(record) if isinstance(record, dict) else type(record).__name__
      raise ValueError(f"{where}: expected keys {list(_RECORD_KEYS)}, got {keys}")
    frames = record["frames"]
    if not isinstance(frames, list) or not frames or not all(
        isinstance(frame, bytes) for frame in frames):
      raise ValueError(f"{where} ({record['video_id']}): 'frames' must be a non-empty "
                       "list of JPEG bytes")
    if not isinstance(record["label"], int):
      raise ValueError(f"{where} ({record['video_id']}): 'label' must be an int, got "
                       f"{record['label']!r}")
    self.where = f"{where} ({record['video_id']})"
    self.video_id: str = record["video_id"]
    self.label: int = record["label"]
    self.fps: float = float(record["fps"])
    self._jpegs: list[bytes] = frames
    self._cache: dict[int, Image.Image] = {}
    first = FRAME_CACHE.get(frames[0])
    if first is not None:
      self._cache[0] = first
      self.width, self.height = first.size
    else:  # Only the header is parsed here, not the pixels.
      self.width, self.height = Image.open(io.BytesIO(frames[0])).size

  @property
  def num_frames(self) -> int:
    return len(self._jpegs)

  def load_frames(self, indices: Sequence[int]) -> list[Image.Image]:
    """Decodes (once) and returns the RGB frames at `indices`."""
    frames = []
    for index in indices:
      index = int(index)
      if index not in self._cache:
        image = FRAME_CACHE.get(self._jpegs[index])
        if image is None:
          image = Image.open(io.BytesIO(self._jpegs[index]))
          image = image.convert("RGB") if image.mode != "RGB" else image
          image.load()
          FRAME_CACHE.put(self._jpegs[index], image)
        if image.size != (self.width, self.height):
          raise ValueError(f"{self.where}: frame {index} is {image.size}, frame 0 is "
                           f"{(self.width, self.height)} (width, height)")
        self._cache[index] = image
      frames.append(self._cache[index])
    return frames


def _with_record_index(num_records: int, index: int, raw: bytes,
                       record_indices: np.ndarray | None = None) -> tuple[int, bytes]:
  # Upstream of shuffle/repeat the index still counts epochs; the source wraps it.
  position = index % num_records
  # A subset reports the record's index in the split, not its position in the subset.
  return (position if record_indices is None else int(record_indices[position])), raw


def _with_subset_record_index(record_indices: np.ndarray, index: int,
                              raw: bytes) -> tuple[int, bytes]:
  return _with_record_index(len(record_indices), index, raw, record_indices)


@dataclasses.dataclass(frozen=True)
class _TrainTransform(grain.transforms.RandomMap):
  """Record -> {"clips", "label", "index"}; a module-level class so workers can pickle it."""

  source_name: str
  num_clips: int
  num_frames: int
  frame_stride: int
  crop_size: int
  augment: transforms.AugmentConfig
  max_interval: int | None

  def random_map(self, element: tuple[int, bytes], rng: np.random.Generator) -> dict:
    record_index, raw = element
    video = VideoRecord(raw, record_index, self.source_name)
    clips = transforms.train_views(
        rng, video.load_frames, video.num_frames, video.height, video.width,
        num_clips=self.num_clips, num_frames=self.num_frames,
        frame_stride=self.frame_stride, crop_size=self.crop_size, augment=self.augment,
        max_interval=self.max_interval)
    return {"clips": clips, "label": np.int32(video.label),
            "index": np.int32(record_index)}


def _local_batch_size(batch_size: int, process_index: int, process_count: int) -> int:
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"need 0 <= process_index < process_count, got {process_index}, "
                     f"{process_count}")
  if batch_size < 1 or batch_size % process_count:
    raise ValueError(f"global batch size {batch_size} must be a positive multiple of "
                     f"process_count {process_count}")
  return batch_size // process_count


def _shard_and_iterate(micro_batches: grain.MapDataset, process_index: int,
                       process_count: int, worker_count: int, read_threads: int,
                       prefetch_buffer_size: int) -> grain.IterDataset:
  # Keep whole global batches only, so that every process yields as many batches.
  usable = len(micro_batches) - len(micro_batches) % process_count
  local = micro_batches[process_index:usable:process_count]
  dataset = local.to_iter_dataset(grain.ReadOptions(
      num_threads=read_threads, prefetch_buffer_size=prefetch_buffer_size))
  if worker_count > 0:
    # grain's worker start-up reads an absl flag, which fails outside `absl.app` (under
    # pytest, in notebooks) unless flags count as parsed; defaults are what we want.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return dataset


def make_train_dataset(source: Any, *, global_batch_size: int, seed: int,
                       num_clips: int = 2, num_frames: int = 8, frame_stride: int = 2,
                       crop_size: int = 32, process_index: int = 0, process_count: int = 1,
                       augment: Any = transforms.AugmentConfig(), shuffle: bool = True,
                       num_epochs: int | None = None, max_interval: int | None = None,
                       worker_count: int = 0, read_threads: int = 2,
                       prefetch_buffer_size: int = 2,
                       record_indices: Sequence[int] | None = None) -> grain.IterDataset:
  """The CVRL-style training stream of one process (see the module docstring).

  Args:
    source: the split's array_record path, or a random-access source of records.
    global_batch_size: videos per step over all processes.
    seed: the one seed of shuffling, clip sampling and augmentation.
    num_clips, num_frames, frame_stride, crop_size: clips per video and their shape.
    process_index, process_count: this process and the number of processes.
    augment: None, dict or ConfigDict for `transforms.AugmentConfig.from_spec`.
    shuffle: reshuffle the videos every epoch.
    num_epochs: passes over the split; None repeats forever. A batch may straddle two
      epochs; the final incomplete global batch is dropped.
    max_interval: cap on the delay between a video's clips, in frames (None: none).
    worker_count: grain worker processes (0: decode in this process's threads).
    read_threads: threads per process, each preparing whole micro-batches.
    prefetch_buffer_size: micro-batches prepared ahead per process.
    record_indices: train on these records of the split only (an epoch is one pass
      over them); None uses every record. `index` stays the record's index in the split.

  Returns:
    A checkpointable IterDataset of {"clips": uint8 [B_local, num_clips, num_frames,
    crop_size, crop_size, 3], "label": int32 [B_local], "index": int32 [B_local]}.
  """
  local_batch = _local_batch_size(global_batch_size, process_index, process_count)
  if num_clips < 1 or crop_size < 1:
    raise ValueError(f"num_clips and crop_size must be >= 1, got {num_clips}, {crop_size}")
  transforms.clip_span(num_frames, frame_stride)  # Validates both.
  if max_interval is not None and max_interval < 0:
    raise ValueError(f"max_interval must be None or >= 0 frames, got {max_interval}")
  records = open_source(source)
  if len(records) == 0:
    raise ValueError(f"{_source_name(records)} holds no records")
  if record_indices is not None:
    records = RecordSubset(records, record_indices)
    index_records = functools.partial(_with_subset_record_index, records.record_indices)
  else:
    index_records = functools.partial(_with_record_index, len(records))
  transform = _TrainTransform(
      source_name=_source_name(records), num_clips=num_clips, num_frames=num_frames,
      frame_stride=frame_stride, crop_size=crop_size,
      augment=transforms.AugmentConfig.from_spec(augment), max_interval=max_interval)
  dataset = grain.MapDataset.source(records).map_with_index(index_records)
  dataset = dataset.seed(seed)
  if shuffle:
    dataset = dataset.shuffle()
  dataset = dataset.repeat(num_epochs).random_map(transform)
  dataset = dataset.batch(local_batch, drop_remainder=True)
  return _shard_and_iterate(dataset, process_index, process_count, worker_count,
                            read_threads, prefetch_buffer_size)


def num_eval_batches(n_videos: int, batch_size: int) -> int:
  """Global batches needed to visit `n_videos` once with `batch_size` (last one padded)."""
  return math.ceil(n_videos / batch_size)


@dataclasses.dataclass(frozen=True)
class _EvalTransform(grain.transforms.Map):
  """Position in the padded split -> {"views", "label", "index", "mask"}."""

  records: Any
  source_name: str
  num_temporal_views: int
  num_spatial_crops: int
  num_frames: int
  frame_stride: int
  crop_size: int

  def map(self, position: int) -> dict:
    position = int(position)
    if position >= len(self.records):  # Padding: cheap zeros, masked out.
      num_views = self.num_temporal_views * self.num_spatial_crops
      shape = (num_views, self.num_frames, self.crop_size, self.crop_size, 3)
      return {"views": np.zeros(shape, np.uint8), "label": np.int32(-1),
              "index": np.int32(-1), "mask": np.bool_(False)}
    video = VideoRecord(self.records[position], position, self.source_name)
    views = transforms.eval_views(
        video.load_frames, video.num_frames, video.height, video.width,
        num_temporal_views=self.num_temporal_views,
        num_spatial_crops=self.num_spatial_crops, num_frames=self.num_frames,
        frame_stride=self.frame_stride, crop_size=self.crop_size)
    return {"views": views, "label": np.int32(video.label),
            "index": np.int32(position), "mask": np.bool_(True)}


def make_eval_dataset(source: Any, *, batch_size: int, num_temporal_views: int = 1,
                      num_spatial_crops: int = 1, num_frames: int = 8,
                      frame_stride: int = 2, crop_size: int = 32, process_index: int = 0,
                      process_count: int = 1, worker_count: int = 0, read_threads: int = 2,
                      prefetch_buffer_size: int = 2) -> grain.IterDataset:
  """Deterministic evaluation batches visiting every video of the split once, in order.

  Global batch b covers records [b*B, (b+1)*B); this process gets its rows
  [p*B_local, (p+1)*B_local). Rows past the end of the split are padding: zero views,
  label -1, index -1, mask False. Filter with `mask`, never with `index`.

  Args:
    source: the split's array_record path, or a random-access source of records.
    batch_size: global batch size B.
    num_temporal_views: clips per video, centres evenly spaced (`eval_clip_starts`).
    num_spatial_crops: squares along the long side (1 centre, 3 left/centre/right).
    num_frames, frame_stride, crop_size: clip shape.
    process_index, process_count: this process and the number of processes.
    worker_count, read_threads, prefetch_buffer_size: as in `make_train_dataset`.

  Returns:
    An IterDataset of `num_eval_batches(len, batch_size)` dicts: "views" uint8
    [B_local, V, num_frames, crop_size, crop_size, 3] (V = temporal * spatial,
    temporal-major), "label" int32, "index" int32, "mask" bool, each [B_local].
  """
  local_batch = _local_batch_size(batch_size, process_index, process_count)
  transforms.clip_span(num_frames, frame_stride)
  if num_temporal_views < 1 or num_spatial_crops < 1:
    raise ValueError(f"num_temporal_views and num_spatial_crops must be >= 1, got "
                     f"{num_temporal_views}, {num_spatial_crops}")
  records = open_source(source)
  padded = num_eval_batches(len(records), batch_size) * batch_size
  transform = _EvalTransform(
      records=records, source_name=_source_name(records),
      num_temporal_views=num_temporal_views, num_spatial_crops=num_spatial_crops,
      num_frames=num_frames, frame_stride=frame_stride, crop_size=crop_size)
  dataset = grain.MapDataset.range(padded).map(transform).batch(local_batch)
  return _shard_and_iterate(dataset, process_index, process_count, worker_count,
                            read_threads, prefetch_buffer_size)
