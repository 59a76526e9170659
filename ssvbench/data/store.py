"""Reading a prepared store: the manifest plus a TFDS dataset of the videos, one split each.

The store is the contract between preparation and everything downstream (the grain
pipeline, feature extraction, results). This module owns the format definition (file
names, version, the manifest hash) and validates a store before anyone reads from it,
so that a half-written or hand-edited store fails at load time with a message naming
the file and key, not later inside a data loader worker.

On disk the store is a TensorFlow Datasets dataset (ArrayRecord shards named
`ssvbench_<dataset>-<split>.array_record-00000-of-00001`, TFDS's `dataset_info.json`,
`features.json` and `metadata.json`, which links `manifest.json`), so TFDS readers load it
without TensorFlow: `tfds.builder_from_directory(store_dir).as_data_source("train")`.
Each record is a TFDS-serialised example (a `tf.train.Example`) of `tfds_features()`:
  {"video_id": Text, "label": ClassLabel, "fps": float32,
   "frames": Sequence(Image(encoding_format="jpeg"))}
ssvbench's own pipeline reads the JPEG bytes straight from the example (`parse_record`)
and decodes only the frames it samples; TFDS readers get every frame decoded.
Stores written before this layout (`<split>.array_record` of msgpack records
{"video_id", "label", "fps", "frames"}) still load: the layout is detected from
`dataset_info.json`, the record format from its first byte.
Records of a split appear in manifest order, only for videos whose status is "ok";
an entry's `record_index` is its position in the split's record file. Videos with status
"skipped" (HMDB51's unused clips) are listed but were never decoded; a split whose
videos are all skipped has no record file and is not among `PreparedStore.splits`.

Optional top-level manifest keys (absent from older stores, covered by the hash when
present): `official_split` (int, the UCF101/HMDB51 split 1-3 the store was prepared
from) and `official_split_files` (bool, whether those split files parse to the
official ones), and `short_videos` ({count, min_frames}: videos with fewer decoded frames
than a clip spans, each of which carries a `warning` string in its entry; both absent
when no video is short).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import msgpack
import numpy as np
from PIL import Image

from ssvbench import hashing

if TYPE_CHECKING:
  import grain

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
RECORD_SUFFIX = ".array_record"
# The TFDS side: the dataset's version, and the file whose presence marks the layout.
TFDS_VERSION = "1.0.0"
TFDS_INFO_NAME = "dataset_info.json"
STATUSES = ("ok", "missing", "corrupt", "skipped")

_PREPARE_HINT = "run `ssvbench prepare` first"
_TOP_LEVEL_KEYS = ("format_version", "dataset", "class_names", "decode", "videos",
                   "counts", "manifest_hash")
_VIDEO_KEYS = ("video_id", "path", "label", "split", "group", "content_hash",
               "num_frames", "fps", "duration", "height", "width", "status", "error",
               "record_index")


class StoreError(Exception):
  """A prepared store that is absent, incomplete or inconsistent."""


def _holds_records(split_counts: dict) -> bool:
  """Whether a split has a record file: some of its listed videos were not skipped."""
  return split_counts.get("skipped", 0) < split_counts["listed"]


def compute_manifest_hash(manifest: dict) -> str:
  """Returns the sha256 of the canonical JSON of `manifest` without `manifest_hash`.

  Args:
    manifest: a manifest dict, with or without its `manifest_hash` key.

  Returns:
    The hex digest that identifies exactly which videos, decoded how, a result used.
  """
  content = {key: value for key, value in manifest.items() if key != "manifest_hash"}
  return hashlib.sha256(hashing.canonical_json(content, allow_nan=True).encode()).hexdigest()


def tfds_name(dataset: str) -> str:
  """The TFDS dataset name of a store (TFDS's own `ucf101` etc. are other datasets)."""
  return f"ssvbench_{dataset}"


def record_path(out_dir: str | os.PathLike, split: str, dataset: str | None = None) -> Path:
  """Returns the path of the ArrayRecord file holding `split`.

  With `dataset`, the TFDS shard name; without it, the layout before TFDS
  (`<split>.array_record`).
  """
  if dataset is None:
    return Path(out_dir) / f"{split}{RECORD_SUFFIX}"
  return Path(out_dir) / f"{tfds_name(dataset)}-{split}{RECORD_SUFFIX}-00000-of-00001"


def tfds_features(classes: int | Sequence[str]):
  """The TFDS features of a record; `classes` is the class names (or only their count,
  which gives the same serialisation)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  label = (tfds.features.ClassLabel(num_classes=classes) if isinstance(classes, int)
           else tfds.features.ClassLabel(names=list(classes)))
  return tfds.features.FeaturesDict({
      "video_id": tfds.features.Text(),
      "label": label,
      "fps": tfds.features.Scalar(dtype=np.float32),
      "frames": tfds.features.Sequence(
          tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg")),
  })


@functools.lru_cache(maxsize=4)
def _serializer(num_classes: int):
  return tfds_features(num_classes)


def encode_record(video_id: str, label: int, fps: float, jpegs: Sequence[bytes],
                  num_classes: int) -> bytes:
  """One store record: TFDS serialises the example; the JPEG bytes are kept as they are.

  The proto is written again with deterministic map order: protobuf's default order of
  the feature map may differ between processes, and a store's bytes must not depend on
  how many workers prepared it.
  """
  from tensorflow_datasets.proto import tf_example_pb2  # pylint: disable=g-import-not-at-top
  serialized = _serializer(int(num_classes)).serialize_example({
      "video_id": video_id, "label": int(label), "fps": float(fps),
      "frames": [io.BytesIO(jpeg) for jpeg in jpegs]})
  return tf_example_pb2.Example.FromString(serialized).SerializeToString(deterministic=True)


def parse_record(raw: bytes) -> dict:
  """A record as {"video_id", "label", "fps", "frames": [JPEG bytes]}, frames undecoded.

  A serialised tf.train.Example starts with its `features` field (byte 0x0a); a
  msgpack map (the records of stores prepared before TFDS) with 0x80-0x8f or 0xde/0xdf.

  Raises:
    ValueError: neither format parses.
  """
  if raw[:1] == b"\x0a":
    # TFDS's bundled protocol buffers: no TensorFlow needed.
    from tensorflow_datasets.proto import tf_example_pb2  # pylint: disable=g-import-not-at-top
    try:
      feature = tf_example_pb2.Example.FromString(raw).features.feature
      return {"video_id": feature["video_id"].bytes_list.value[0].decode("utf-8"),
              "label": int(feature["label"].int64_list.value[0]),
              "fps": float(feature["fps"].float_list.value[0]),
              "frames": list(feature["frames"].bytes_list.value)}
    except Exception as error:  # protobuf's DecodeError, a missing key, an empty list.
      raise ValueError(f"not a store record ({type(error).__name__}: {error})") from None
  try:
    return msgpack.unpackb(raw, raw=False)
  except Exception as error:  # msgpack raises several unrelated types.
    raise ValueError(f"not a store record ({error})") from None


class PreparedStore:
  """A validated prepared store.

  Args:
    out_dir: the directory `prepare_dataset` wrote.

  Raises:
    StoreError: the directory or manifest is missing, malformed, or inconsistent with
      its hash or its record files.
  """

  def __init__(self, out_dir: str | os.PathLike):
    self.out_dir = Path(out_dir)
    manifest_file = self.out_dir / MANIFEST_NAME
    if not self.out_dir.is_dir():
      raise StoreError(f"prepared store {str(self.out_dir)!r} does not exist; "
                       f"{_PREPARE_HINT}")
    if not manifest_file.is_file():
      raise StoreError(f"{str(manifest_file)!r} not found (the store is absent or its "
                       f"preparation did not finish); {_PREPARE_HINT}")
    try:
      manifest = json.loads(manifest_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
      raise StoreError(f"{str(manifest_file)!r} is not valid JSON ({error}); "
                       f"{_PREPARE_HINT}") from error
    self._manifest = manifest
    # The TFDS layout, or the one before it (see the module docstring).
    self.is_tfds = (self.out_dir / TFDS_INFO_NAME).is_file()
    self._validate(manifest_file)
    # Wholly skipped splits hold no records, so they are not offered to readers.
    self._ok_videos = {split: [] for split, split_counts in manifest["counts"].items()
                       if _holds_records(split_counts)}
    for video in manifest["videos"]:
      if video["status"] == "ok":
        self._ok_videos[video["split"]].append(video)

  def _validate(self, manifest_file: Path) -> None:
    manifest = self._manifest
    where = repr(str(manifest_file))

    def fail(message: str):
      raise StoreError(f"{where}: {message}; {_PREPARE_HINT}")

    if not isinstance(manifest, dict):
      fail("expected a JSON object at the top level")
    absent = [key for key in _TOP_LEVEL_KEYS if key not in manifest]
    if absent:
      fail(f"missing key(s) {absent}")
    if manifest["format_version"] != FORMAT_VERSION:
      fail(f"format_version is {manifest['format_version']!r}, this reader expects "
           f"{FORMAT_VERSION}")
    if compute_manifest_hash(manifest) != manifest["manifest_hash"]:
      fail("manifest_hash does not match the manifest's content (was it edited?)")
    official_split = manifest.get("official_split")
    if official_split is not None and (isinstance(official_split, bool) or not isinstance(
        official_split, int) or official_split < 1):
      fail(f"official_split is {official_split!r}, expected a positive int")
    if not isinstance(manifest.get("official_split_files", False), bool):
      fail(f"official_split_files is {manifest['official_split_files']!r}, expected a "
           "bool")
    counts = manifest["counts"]
    next_record = {split: 0 for split in counts}
    by_status = {split: dict.fromkeys(("listed",) + STATUSES, 0) for split in counts}
    for position, video in enumerate(manifest["videos"]):
      absent = [key for key in _VIDEO_KEYS if key not in video]
      if absent:
        fail(f"videos[{position}] is missing key(s) {absent}")
      if video["status"] not in STATUSES:
        fail(f"videos[{position}] ({video['video_id']}) has status "
             f"{video['status']!r}, expected one of {STATUSES}")
      if video["split"] not in counts:
        fail(f"videos[{position}] ({video['video_id']}) has split {video['split']!r} "
             f"absent from counts {sorted(counts)}")
      by_status[video["split"]]["listed"] += 1
      by_status[video["split"]][video["status"]] += 1
      if video["status"] == "ok":
        if video["record_index"] != next_record[video["split"]]:
          fail(f"videos[{position}] ({video['video_id']}) has record_index "
               f"{video['record_index']}, expected {next_record[video['split']]}")
        next_record[video["split"]] += 1
      elif video["record_index"] is not None:
        fail(f"videos[{position}] ({video['video_id']}) is {video['status']} but has "
             f"record_index {video['record_index']}")
    for split, actual in by_status.items():
      for status, number in actual.items():
        # A zero "skipped" count may be absent (it is written only where used).
        if counts[split].get(status, 0 if status == "skipped" else None) != number:
          fail(f"counts[{split!r}][{status!r}] is {counts[split].get(status)}, but "
               f"{number} videos are {status}")
      if _holds_records(counts[split]) and not self._record_file(split).is_file():
        fail(f"record file {str(self._record_file(split))!r} is missing")

  @property
  def manifest(self) -> dict:
    return self._manifest

  @property
  def manifest_hash(self) -> str:
    return self._manifest["manifest_hash"]

  @property
  def dataset(self) -> str:
    return self._manifest["dataset"]

  @property
  def official_split(self) -> int | None:
    """The official UCF101/HMDB51 split (1-3) the store holds; None if not recorded."""
    return self._manifest.get("official_split")

  @property
  def official_split_files(self) -> bool | None:
    """Whether the store's split files parse to the official ones; None if unknown."""
    return self._manifest.get("official_split_files")

  @property
  def class_names(self) -> list[str]:
    return list(self._manifest["class_names"])

  @property
  def num_classes(self) -> int:
    return len(self._manifest["class_names"])

  @property
  def splits(self) -> list[str]:
    """The splits the store holds (each has a record file, possibly empty)."""
    return list(self._ok_videos)

  def _split_videos(self, split: str) -> list[dict]:
    if split not in self._ok_videos:
      raise KeyError(f"split {split!r} is not in the prepared store "
                     f"{str(self.out_dir)!r}; it holds {self.splits}")
    return self._ok_videos[split]

  def videos(self, split: str) -> list[dict]:
    """Returns the manifest entries of `split` with status ok, in record order."""
    return list(self._split_videos(split))

  def num_videos(self, split: str) -> int:
    """Returns the number of records (ok videos) of `split`."""
    return len(self._split_videos(split))

  def labels(self, split: str) -> np.ndarray:
    """Returns int64 labels of `split`, aligned with record order."""
    return np.asarray([video["label"] for video in self._split_videos(split)],
                      dtype=np.int64)

  def groups(self, split: str) -> list[str]:
    """Returns the leakage groups of `split`, aligned with record order."""
    return [video["group"] for video in self._split_videos(split)]

  def video_ids(self, split: str) -> list[str]:
    """Returns the video ids of `split`, aligned with record order."""
    return [video["video_id"] for video in self._split_videos(split)]

  def _record_file(self, split: str) -> Path:
    return record_path(self.out_dir, split, self.dataset if self.is_tfds else None)

  def record_path(self, split: str) -> Path:
    """Returns the ArrayRecord file of `split`."""
    self._split_videos(split)
    return self._record_file(split)

  def data_source(self, split: str) -> grain.sources.ArrayRecordDataSource:
    """Returns a random-access grain source of the raw records of `split`.

    Raises:
      StoreError: the record file holds a different number of records than the
        manifest lists (a store mixed from two preparations).
    """
    # Imported here: grain pulls in JAX, which preparation's spawned decoding workers
    # (importing this module for the format constants) should not pay for.
    import grain  # pylint: disable=g-import-not-at-top

    source = grain.sources.ArrayRecordDataSource(str(self.record_path(split)))
    if len(source) != self.num_videos(split):
      raise StoreError(
          f"{str(self.record_path(split))!r} holds {len(source)} records but the "
          f"manifest lists {self.num_videos(split)} ok videos; {_PREPARE_HINT}")
    return source

  @staticmethod
  def decode_record(raw: bytes) -> dict:
    """Unpacks one record; its frames stay JPEG bytes (decode with `decode_frames`)."""
    return parse_record(raw)

  @staticmethod
  def decode_frames(jpegs: Sequence[bytes], indices: Sequence[int]) -> np.ndarray:
    """Decodes only the requested frames of a record.

    Args:
      jpegs: the record's `frames`.
      indices: frame indices to decode, in output order; repeats are decoded once.

    Returns:
      uint8 array [len(indices), H, W, 3].

    Raises:
      IndexError: an index is outside [0, len(jpegs)).
    """
    indices = [int(index) for index in indices]
    for index in indices:
      if not 0 <= index < len(jpegs):
        raise IndexError(f"frame index {index} is out of range for a video of "
                         f"{len(jpegs)} frames")
    if not indices:
      if not jpegs:
        return np.zeros((0, 0, 0, 3), np.uint8)
      width, height = Image.open(io.BytesIO(jpegs[0])).size  # header only
      return np.zeros((0, height, width, 3), np.uint8)
    decoded = {}
    for index in dict.fromkeys(indices):
      with Image.open(io.BytesIO(jpegs[index])) as image:
        decoded[index] = np.asarray(image.convert("RGB"))
    return np.stack([decoded[index] for index in indices])
