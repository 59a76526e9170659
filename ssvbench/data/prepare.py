"""Preparation: listed video files -> a prepared store (a TFDS dataset of ArrayRecord shards,
one per split, plus the manifest; see `ssvbench.data.store`).

Decoding is the slow, once-per-dataset step, so it is done here, in parallel, and
everything downstream reads JPEG frames from the store. What this module guarantees:

* The manifest says exactly which videos were used: every listed video appears with
  its content hash and a status (ok, missing, corrupt), and the manifest hash names
  the whole store in results.
* Missing files are checked before any decoding: past `max_missing_fraction` the run
  stops with a summary, since a benchmark on a silently thinner dataset is a
  different benchmark.
* Videos of `skip_splits` (by default HMDB51's 1666 `unused` clips per split, which no
  protocol reads) are listed with status "skipped" but never looked for, hashed or
  decoded: about a quarter of HMDB51's decoding time saved per split.
* Which official split the index came from (`official_split`, UCF101/HMDB51 1-3) and
  whether its split files were the official ones are recorded at the top of the
  manifest, so results can report split 1 and the 3-split mean separately. Both keys
  are written only when given, so stores without them keep their manifest hash.
* A corrupt file is never replaced by another video (the SlowFast/VideoMAE habit): it
  is logged, counted, recorded with the decoder's error and left out of the records.
* The output is a function of (index, file contents, decode settings) only: records
  are written in manifest order whatever the worker count, and an interrupted run
  resumes from per-video results staged in `<out_dir>/.staging`, reproducing the
  bytes of an uninterrupted run. A staged result is reused only when the file's
  content hash, label and decode settings still match.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import multiprocessing
import os
import sys
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

import av
import PIL
from array_record.python import array_record_module
from PIL import Image
from tqdm import tqdm

from ssvbench import hashing
from ssvbench.data import decode as decode_lib
from ssvbench.data import store as store_lib
from ssvbench.data.index import SPLITS, DatasetIndex

logger = logging.getLogger(__name__)

STAGING_DIRNAME = ".staging"
# How many missing/corrupt paths an error message or summary lists.
_NUM_LISTED = 5


class PrepareError(ValueError):
  """Preparation cannot produce a trustworthy store (e.g. too many missing videos).

  A ValueError: like the parsers' errors, it is bad input that the CLI reports in one
  line.
  """


def default_find_video(source_dir: Path, rel_path: str) -> Path | None:
  """Returns `source_dir / rel_path` if it is a file, else None."""
  candidate = Path(source_dir) / rel_path
  return candidate if candidate.is_file() else None


def encode_record(video_id: str, label: int, decoded: decode_lib.DecodedVideo,
                  jpeg_quality: int, num_classes: int) -> bytes:
  """Packs one decoded video as a store record (a TFDS example, see `ssvbench.data.store`)."""
  jpegs = []
  for frame in decoded.frames:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=jpeg_quality)
    jpegs.append(buffer.getvalue())
  return store_lib.encode_record(video_id, label, decoded.fps, jpegs, num_classes)


def _write_atomically(path: Path, data: bytes) -> None:
  # A crash leaves either the old file or the new one, never a torn file that a
  # resumed run would trust.
  temporary = path.with_name(path.name + ".tmp")
  temporary.write_bytes(data)
  os.replace(temporary, path)


def _staging_stem(staging_dir: Path, video_id: str) -> Path:
  return staging_dir / hashlib.sha1(video_id.encode("utf-8")).hexdigest()


def _read_staged_status(status_file: Path) -> dict | None:
  try:
    staged = json.loads(status_file.read_text())
  except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
    return None
  return staged if isinstance(staged, dict) and "key" in staged else None


def _process_video(task: dict) -> dict:
  """Hashes, decodes and stages one present video; reuses a matching staged result.

  Runs in pool workers, so it takes and returns plain dicts; the record bytes stay on
  disk in the staging area instead of travelling back through the pool.
  """
  stem = _staging_stem(Path(task["staging_dir"]), task["video_id"])
  status_file, record_file = stem.with_suffix(".json"), stem.with_suffix(".record")
  # Everything the record bytes depend on; the codec library versions too, so a
  # resume after an upgrade cannot mix frames from two decoders or JPEG encoders.
  key = {"video_id": task["video_id"], "label": task["label"],
         "content_hash": hashing.file_sha256(task["path"]), "decode": task["decode"],
         "libraries": {"av": av.__version__, "pillow": PIL.__version__},
         "record_format": "tfds_example", "num_classes": task["num_classes"]}
  staged = _read_staged_status(status_file)
  if staged is not None and staged["key"] == key and (staged["status"] != "ok" or (
      record_file.is_file() and record_file.stat().st_size == staged["record_size"])):
    return staged | {"reused": True}

  settings = task["decode"]
  status = {"key": key, "status": "ok", "error": None, "num_frames": None,
            "fps": None, "duration": None, "height": None, "width": None,
            "record_size": None, "record_sha256": None}
  try:
    decoded = decode_lib.decode_video(task["path"], short_side=settings["short_side"],
                                      fps=settings["fps"])
  except decode_lib.DecodeError as error:
    status.update(status="corrupt", error=error.reason)
  else:
    record = encode_record(task["video_id"], task["label"], decoded,
                           settings["jpeg_quality"], task["num_classes"])
    _write_atomically(record_file, record)
    status.update(num_frames=decoded.num_frames, fps=decoded.fps,
                  duration=round(decoded.duration, 6), height=decoded.height,
                  width=decoded.width, record_size=len(record),
                  record_sha256=hashlib.sha256(record).hexdigest())
  # Written last: its presence marks the video as done.
  _write_atomically(status_file, json.dumps(status, sort_keys=True).encode())
  return status | {"reused": False}


def _validate_arguments(index: DatasetIndex, short_side, fps, jpeg_quality,
                        num_workers, max_missing_fraction, skip_splits,
                        official_split) -> None:
  if not index.entries:
    raise PrepareError(f"dataset index {index.name!r} lists no videos")
  seen = set()
  for position, entry in enumerate(index.entries):
    if entry.video_id in seen:
      raise PrepareError(f"index entry {position}: video_id {entry.video_id!r} is "
                         "listed twice; video ids must be unique")
    seen.add(entry.video_id)
    if entry.split not in SPLITS:
      raise PrepareError(f"index entry {position} ({entry.video_id}): split "
                         f"{entry.split!r} is not one of {SPLITS}")
    if not -1 <= entry.label < index.num_classes:
      raise PrepareError(f"index entry {position} ({entry.video_id}): label "
                         f"{entry.label} outside [-1, {index.num_classes})")
  if short_side is not None and (not isinstance(short_side, int) or short_side <= 0):
    raise PrepareError(f"short_side must be a positive int or None, got {short_side!r}")
  if fps is not None and not fps > 0:
    raise PrepareError(f"fps must be positive or None, got {fps!r}")
  if not isinstance(jpeg_quality, int) or not 1 <= jpeg_quality <= 100:
    raise PrepareError(f"jpeg_quality must be an int in [1, 100], got {jpeg_quality!r}")
  if not isinstance(num_workers, int) or num_workers < 1:
    raise PrepareError(f"num_workers must be a positive int, got {num_workers!r}")
  if not 0.0 <= max_missing_fraction <= 1.0:
    raise PrepareError(f"max_missing_fraction must be in [0, 1], got "
                       f"{max_missing_fraction!r}")
  unknown = [split for split in skip_splits if split not in SPLITS]
  if unknown or isinstance(skip_splits, str):
    raise PrepareError(f"skip_splits must be a sequence of split names from {SPLITS}, "
                       f"got {skip_splits!r}")
  if official_split is not None and (isinstance(official_split, bool) or not isinstance(
      official_split, int) or official_split < 1):
    raise PrepareError(f"official_split must be a positive int or None, got "
                       f"{official_split!r}")


def _relative_path(found: Path, source_dir: Path) -> str:
  # The manifest must not depend on where the data lives on this machine.
  return Path(os.path.relpath(found, source_dir)).as_posix()


def _check_missing(index, missing, source_dir, max_missing_fraction, allow_missing,
                   skip_splits):
  if not missing:
    return
  # Skipped videos are neither looked for nor counted: the fraction is of those wanted.
  wanted = [split for split in SPLITS if index.split(split) and split not in skip_splits]
  listed = sum(len(index.split(split)) for split in wanted)
  fraction = len(missing) / listed
  per_split = ", ".join(
      f"{split} {sum(e.split == split for e in missing)}/{len(index.split(split))}"
      for split in wanted)
  first = ", ".join(entry.rel_path for entry in missing[:_NUM_LISTED])
  summary = (f"{len(missing)} of {listed} listed videos ({fraction:.1%}) of "
             f"{index.name!r} are missing under {str(source_dir)!r} (missing/listed per "
             f"split: {per_split}); first missing: {first}")
  if fraction > max_missing_fraction and not allow_missing:
    raise PrepareError(f"{summary}. The limit is max_missing_fraction="
                       f"{max_missing_fraction}; fetch the missing files, or pass "
                       "allow_missing=True / --allow-missing (or a larger "
                       "max_missing_fraction / --max-missing-fraction) to prepare "
                       "without them (they are recorded in the manifest).")
  logger.warning("%s; preparing without them", summary)


def prepare_dataset(
    index: DatasetIndex,
    source_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    find_video: Callable[[Path, str], Path | None] = default_find_video,
    short_side: int | None = None,
    fps: float | None = None,
    jpeg_quality: int = 90,
    num_workers: int = 1,
    max_missing_fraction: float = 0.0,
    allow_missing: bool = False,
    skip_splits: Sequence[str] = ("unused",),
    official_split: int | None = None,
    official_split_files: bool | None = None,
    progress: bool = True,
    min_frames: int = 2,
) -> dict:
  """Decodes the videos of `index` into a prepared store at `out_dir`.

  Args:
    index: the listed videos, in the order records are written.
    source_dir: the directory the index's relative paths refer to.
    out_dir: where `manifest.json` and the TFDS dataset (shards, dataset_info.json,
      features.json, metadata.json) are written; an existing store there is replaced.
    find_video: maps (source_dir, rel_path) to the file, or None when it is missing;
      datasets whose copies differ in layout (Kinetics) pass their own.
    short_side: scale the short side of frames to this many pixels (None: native).
    fps: resample frames to this rate by nearest timestamp (None: native).
    jpeg_quality: Pillow JPEG quality of the stored frames.
    num_workers: decoding processes; the output does not depend on it.
    max_missing_fraction: largest tolerated fraction of missing videos.
    allow_missing: prepare whatever is present regardless of the fraction.
    skip_splits: splits whose videos are listed in the manifest with status "skipped"
      and no record, without being looked for or decoded (default: HMDB51's `unused`;
      pass () to decode everything). A split with only skipped videos gets no record
      file.
    official_split: the official split number the index was parsed from (UCF101 and
      HMDB51: 1-3); recorded as `manifest["official_split"]` when given.
    official_split_files: whether the split files parse to the official ones; recorded
      as `manifest["official_split_files"]` when given.
    progress: show a tqdm progress bar.
    min_frames: videos with fewer decoded frames are flagged: their entry gets a
      `warning` (a clip longer than the video repeats frames, clamped indices, so a
      1-frame video feeds motion-free clips) and the manifest a `short_videos` summary;
      both are absent when no video is short, so other stores keep their hash. The
      command passes the clip span (frames x stride) of the dataset's protocol.

  Returns:
    The manifest (as written to `manifest.json`).

  Raises:
    PrepareError: bad arguments or index, or too many missing videos (raised before
      anything is decoded or written).
  """
  source_dir, out_dir = Path(source_dir), Path(out_dir)
  _validate_arguments(index, short_side, fps, jpeg_quality, num_workers,
                      max_missing_fraction, skip_splits, official_split)
  if not source_dir.is_dir():
    raise PrepareError(f"source directory {str(source_dir)!r} does not exist")
  skipped = {entry.video_id for entry in index.entries if entry.split in skip_splits}
  found_paths = [None if entry.video_id in skipped
                 else find_video(source_dir, entry.rel_path) for entry in index.entries]
  missing = [entry for entry, found in zip(index.entries, found_paths)
             if found is None and entry.video_id not in skipped]
  _check_missing(index, missing, source_dir, max_missing_fraction, allow_missing,
                 skip_splits)

  out_dir.mkdir(parents=True, exist_ok=True)
  # The manifest marks a finished store: drop the old one before touching its records.
  (out_dir / store_lib.MANIFEST_NAME).unlink(missing_ok=True)
  staging_dir = out_dir / STAGING_DIRNAME
  staging_dir.mkdir(exist_ok=True)
  settings = {"short_side": short_side,
              "fps": None if fps is None else float(fps),
              "jpeg_quality": jpeg_quality}
  tasks = [{"video_id": entry.video_id, "label": entry.label, "path": str(found),
            "staging_dir": str(staging_dir), "decode": settings,
            "num_classes": len(index.class_names)}
           for entry, found in zip(index.entries, found_paths) if found is not None]

  start = time.perf_counter()
  results = _run_tasks(tasks, num_workers, progress, index.name)
  elapsed = time.perf_counter() - start

  provenance = {key: value for key, value in (
      ("official_split", official_split),
      ("official_split_files", official_split_files)) if value is not None}
  manifest = _assemble(index, source_dir, out_dir, found_paths, results, settings,
                       skipped, provenance, min_frames)
  shutil.rmtree(staging_dir)
  _print_summary(manifest, out_dir, elapsed, results)
  return manifest


def _run_tasks(tasks: list[dict], num_workers: int, progress: bool,
               name: str) -> dict[str, dict]:
  """Processes the tasks in order, in-process or on a pool; returns results by id."""
  bar = tqdm(total=len(tasks), unit="video", desc=f"prepare {name}",
             disable=not progress)
  results = {}

  def collect(outputs):
    for task, result in zip(tasks, outputs):
      results[task["video_id"]] = result
      if result["status"] == "corrupt":
        logger.warning("corrupt video %s (%s) excluded from the store: %s",
                       task["video_id"], task["path"], result["error"])
      bar.update()

  with bar:
    if num_workers == 1 or len(tasks) <= 1:
      collect(map(_process_video, tasks))
    else:
      # spawn: workers must not inherit a forked copy of a multithreaded parent
      # (JAX, TensorFlow) whose locks may be held mid-fork.
      context = multiprocessing.get_context("spawn")
      with context.Pool(min(num_workers, len(tasks))) as pool:
        collect(pool.imap(_process_video, tasks, chunksize=1))
  return results


def _assemble(index, source_dir, out_dir, found_paths, results, settings, skipped,
              provenance, min_frames=2) -> dict:
  """Writes the record files in manifest order from staging, then the manifest."""
  staging_dir = out_dir / STAGING_DIRNAME
  listed_splits = [split for split in SPLITS if index.split(split)]
  counts = {split: {"listed": 0, "ok": 0, "missing": 0, "corrupt": 0}
            for split in listed_splits}
  # Splits with something to decode get a record file (possibly empty); wholly skipped
  # splits get none.
  splits = [split for split in listed_splits
            if any(e.video_id not in skipped for e in index.split(split))]
  final_paths = {split: store_lib.record_path(out_dir, split, index.name) for split in splits}
  temporary_paths = {split: out_dir / (final_paths[split].name + ".tmp") for split in splits}
  writers = {split: array_record_module.ArrayRecordWriter(
      str(temporary_paths[split]), "group_size:1") for split in splits}
  videos = []
  try:
    for entry, found in zip(index.entries, found_paths):
      result = results.get(entry.video_id)
      if entry.video_id in skipped:
        status = "skipped"
      else:
        status = "missing" if result is None else result["status"]
      video = {
          "video_id": entry.video_id,
          "path": entry.rel_path if found is None else _relative_path(found, source_dir),
          "label": entry.label, "split": entry.split, "group": entry.group,
          "content_hash": None if result is None else result["key"]["content_hash"],
          "status": status,
          "error": None if result is None else result["error"],
          "record_index": None,
      }
      for field in ("num_frames", "fps", "duration", "height", "width"):
        video[field] = None if result is None else result[field]
      if status == "ok" and video["num_frames"] < min_frames:
        video["warning"] = (f"short: {video['num_frames']} frame(s), fewer than the "
                            f"{min_frames} a clip spans; its clips repeat frames")
      split_counts = counts[entry.split]
      split_counts["listed"] += 1
      # "skipped" appears only where used, so stores without it keep their hash.
      split_counts[status] = split_counts.get(status, 0) + 1
      if status == "ok":
        record = _staging_stem(staging_dir, entry.video_id).with_suffix(
            ".record").read_bytes()
        if hashlib.sha256(record).hexdigest() != result["record_sha256"]:
          raise PrepareError(f"staged record of {entry.video_id} in {staging_dir} does "
                             "not match its status file; delete the staging directory "
                             "and prepare again")
        video["record_index"] = split_counts["ok"] - 1
        writers[entry.split].write(record)
      videos.append(video)
  finally:
    for writer in writers.values():
      writer.close()
  for split in splits:
    os.replace(temporary_paths[split], final_paths[split])
  for split in SPLITS:  # leftovers of an earlier store: other splits, the older layout
    store_lib.record_path(out_dir, split).unlink(missing_ok=True)
    if split not in splits:
      store_lib.record_path(out_dir, split, index.name).unlink(missing_ok=True)

  short = sum("warning" in video for video in videos)
  if short:
    provenance = dict(provenance, short_videos={"count": short, "min_frames": min_frames})
  manifest = {"format_version": store_lib.FORMAT_VERSION, "dataset": index.name,
              "class_names": list(index.class_names), "decode": settings,
              "videos": videos, "counts": counts, **provenance}
  manifest["manifest_hash"] = store_lib.compute_manifest_hash(manifest)
  # The TFDS metadata, then the manifest: the manifest stays the mark of a finished store.
  _write_tfds_metadata(out_dir, index, {split: (counts[split]["ok"], final_paths[split])
                                        for split in splits}, manifest["manifest_hash"])
  _write_atomically(out_dir / store_lib.MANIFEST_NAME,
                    (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
  return manifest


def _write_tfds_metadata(out_dir: Path, index: DatasetIndex,
                         shards: dict[str, tuple[int, Path]], manifest_hash: str) -> None:
  """TFDS's dataset_info.json, features.json and metadata.json (which links the manifest),
  so that `tfds.builder_from_directory(out_dir)` reads the store without TensorFlow."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core import naming  # pylint: disable=g-import-not-at-top
  name = store_lib.tfds_name(index.name)
  template = naming.ShardedFileTemplate(
      data_dir=out_dir, dataset_name=name, filetype_suffix="array_record",
      template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}")
  split_infos = [tfds.core.SplitInfo(name=split, shard_lengths=[count],
                                     num_bytes=path.stat().st_size,
                                     filename_template=template)
                 for split, (count, path) in shards.items()]
  tfds.folder_dataset.write_metadata(
      data_dir=out_dir, features=store_lib.tfds_features(index.class_names),
      split_infos=split_infos, version=store_lib.TFDS_VERSION, filename_template=template,
      check_data=False,
      description=(f"{index.name} prepared by ssvbench: one example per decoded video, "
                   "frames as the stored JPEG bytes. Every video's status, errors, source "
                   f"hashes and the split files are in {store_lib.MANIFEST_NAME} next to "
                   "this file (see metadata.json)."),
      metadata=tfds.core.MetadataDict(ssvbench_manifest=store_lib.MANIFEST_NAME,
                                      manifest_hash=manifest_hash))


def _print_summary(manifest: dict, out_dir: Path, elapsed: float,
                   results: dict[str, dict]) -> None:
  totals = {status: sum(c.get(status, 0) for c in manifest["counts"].values())
            for status in ("listed", "ok", "missing", "corrupt", "skipped")}
  decoded = sum(not result["reused"] for result in results.values())
  skipped = f", {totals['skipped']} skipped" if totals["skipped"] else ""
  lines = [f"prepared {manifest['dataset']!r} into {str(out_dir)!r}: {totals['ok']} ok, "
           f"{totals['corrupt']} corrupt, {totals['missing']} missing{skipped} of "
           f"{totals['listed']} listed; {decoded} decoded, "
           f"{len(results) - decoded} reused from staging in {elapsed:.1f} s"]
  for split, split_counts in manifest["counts"].items():
    lines.append(f"  {split}: " + ", ".join(f"{k} {v}" for k, v in split_counts.items()))
  corrupt = [video for video in manifest["videos"] if video["status"] == "corrupt"]
  for video in corrupt[:_NUM_LISTED]:
    lines.append(f"  corrupt: {video['path']}: {video['error']}")
  if len(corrupt) > _NUM_LISTED:
    lines.append(f"  ... and {len(corrupt) - _NUM_LISTED} more corrupt (see manifest)")
  short = [video for video in manifest["videos"] if "warning" in video]
  if short:
    lines.append(f"  WARNING: {len(short)} video(s) shorter than "
                 f"{manifest['short_videos']['min_frames']} frames (a clip's span): their "
                 "clips repeat frames; flagged in the manifest ('warning')")
    for video in short[:_NUM_LISTED]:
      lines.append(f"  short: {video['path']}: {video['num_frames']} frame(s)")
  lines.append(f"  manifest_hash {manifest['manifest_hash']}")
  # stderr: stdout of `ssvbench prepare` is the machine-readable JSON summary.
  print("\n".join(lines), file=sys.stderr)
