"""Tests of decoding, preparation and the prepared store, on tiny videos written here.

Every generated frame is a flat gray image whose level encodes its frame index (plus a
per-video tint), so a decoded frame can be traced back to its source frame after lossy
MPEG-4 coding; resampling and record order are checked against that ground truth.
"""

import hashlib
import io
import json
import math
import shutil
from pathlib import Path

import av
import msgpack
import numpy as np
import pytest
from array_record.python import array_record_module
from PIL import Image

from ssvbench.data import decode
from ssvbench.data import prepare
from ssvbench.data import store
from ssvbench.data.index import DatasetIndex, VideoEntry

NATIVE_FPS = 25
HEIGHT, WIDTH = 24, 32
CLASS_NAMES = ["Jump", "Run"]


def write_video(path, *, num_frames=12, height=HEIGHT, width=WIDTH, tint=0,
                pattern="flat"):
  """Writes an MPEG-4 AVI.

  Patterns: "flat" makes frame i flat gray at level 10 + 20 i + tint; "gradient" a
  diagonal colour ramp (something for a resize to act on); "noise" uniform noise
  (large packets).
  """
  rng = np.random.default_rng(0)
  rows, cols = np.mgrid[0:height, 0:width]
  with av.open(str(path), "w") as container:
    stream = container.add_stream("mpeg4", rate=NATIVE_FPS)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for frame_index in range(num_frames):
      if pattern == "flat":
        pixels = np.full((height, width, 3), 10 + 20 * frame_index + tint, np.uint8)
      elif pattern == "gradient":
        ramp = 20 + 200 * (rows / height + cols / width) / 2
        pixels = np.stack([ramp, 240 - ramp, np.full_like(ramp, 128)], -1).astype(np.uint8)
      else:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
      frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def source_frame_indices(frames, tint=0):
  """Recovers each decoded frame's source index from its gray level."""
  levels = frames.reshape(len(frames), -1).mean(axis=1)
  return np.round((levels - 10 - tint) / 20).astype(int).tolist()


def nearest_indices(num_native, target_fps):
  """Independent reference for resampling: argmin |native time - target time|."""
  duration = num_native / NATIVE_FPS
  native_times = np.arange(num_native) / NATIVE_FPS
  num_targets = math.ceil(duration * target_fps - 1e-9)
  target_times = np.arange(num_targets) / target_fps
  return np.abs(target_times[:, None] - native_times[None, :]).argmin(axis=1).tolist()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  """A UCF-like source directory: 6 good videos, 2 corrupt files, 1 missing file."""
  root = tmp_path_factory.mktemp("source")
  for name in CLASS_NAMES:
    (root / name).mkdir()
  entries, good = [], {}

  def add(class_index, group, clip, split):
    name = CLASS_NAMES[class_index]
    video_id = f"{name}/v_{name}_g{group:02d}_c{clip:02d}"
    entries.append(VideoEntry(video_id, video_id + ".avi", class_index, split,
                              f"g{group:02d}"))
    return video_id, root / (video_id + ".avi")

  for number in range(6):
    split = "test" if number >= 4 else "train"
    video_id, path = add(number % 2, number // 2 + 1, 1, split)
    good[video_id] = {"num_frames": 10 + number % 3, "tint": 2 * number}
    write_video(path, num_frames=good[video_id]["num_frames"], tint=2 * number)
    if number == 1:  # corrupt and missing entries sit between good ones
      _, zero_byte = add(0, 5, 1, "train")
      zero_byte.write_bytes(b"")
      add(1, 6, 1, "train")  # listed, never written: missing
    if number == 4:
      _, truncated = add(1, 7, 1, "test")
      truncated.write_bytes(path.read_bytes()[:300])
  index = DatasetIndex("toy", list(CLASS_NAMES), entries)
  return {"root": root, "index": index, "good": good}


def run_prepare(source, out_dir, **kwargs):
  kwargs = {"allow_missing": True, "progress": False} | kwargs
  return prepare.prepare_dataset(source["index"], source["root"], out_dir, **kwargs)


@pytest.fixture(scope="module")
def reference_store(source, tmp_path_factory):
  out_dir = tmp_path_factory.mktemp("reference")
  run_prepare(source, out_dir)
  return out_dir


def store_files(out_dir):
  return {path.relative_to(out_dir).as_posix(): path.read_bytes()
          for path in sorted(Path(out_dir).rglob("*")) if path.is_file()}


# Decoding.


def test_decode_keeps_native_frames(tmp_path):
  write_video(tmp_path / "v.avi", num_frames=12)
  video = decode.decode_video(tmp_path / "v.avi")
  assert video.frames.shape == (12, HEIGHT, WIDTH, 3) and video.frames.dtype == np.uint8
  assert video.fps == 25.0
  assert video.duration == pytest.approx(12 / 25)
  assert source_frame_indices(video.frames) == list(range(12))


@pytest.mark.parametrize("target_fps", [7.0, 35.0])
def test_decode_resamples_to_nearest_timestamp(tmp_path, target_fps):
  write_video(tmp_path / "v.avi", num_frames=12)
  video = decode.decode_video(tmp_path / "v.avi", fps=target_fps)
  expected = nearest_indices(12, target_fps)
  assert len(expected) == math.ceil(12 / 25 * target_fps)
  assert source_frame_indices(video.frames) == expected
  assert video.fps == target_fps
  assert video.duration == pytest.approx(12 / 25)


@pytest.mark.parametrize("height,width,short_side,expected", [
    (24, 32, 12, (12, 16)), (24, 32, 48, (48, 64)), (32, 24, 12, (16, 12)),
    (24, 40, 9, (9, 15))])
def test_decode_resizes_short_side_bilinearly(tmp_path, height, width, short_side,
                                             expected):
  write_video(tmp_path / "v.avi", num_frames=3, height=height, width=width,
              pattern="gradient")
  native = decode.decode_video(tmp_path / "v.avi").frames
  resized = decode.decode_video(tmp_path / "v.avi", short_side=short_side).frames
  assert resized.shape == (3, *expected, 3)
  # swscale scales before its YUV->RGB conversion (chroma at half resolution), so it
  # matches a Pillow bilinear resize of the native RGB frames closely but not bit for
  # bit; a crop, flip or wrong aspect would be off by tens of levels on this ramp.
  reference = np.stack([
      np.asarray(Image.fromarray(frame).resize(expected[::-1], Image.Resampling.BILINEAR))
      for frame in native]).astype(int)
  assert np.abs(resized - reference).mean() < 3.5
  assert np.abs(resized - reference).max() < 16


def test_resized_shape_rounds_half_up():
  assert decode.resized_shape(128, 171, 64) == (64, 86)  # 85.5 -> 86
  assert decode.resized_shape(171, 128, 64) == (86, 64)
  assert decode.resized_shape(240, 320, None) == (240, 320)


def test_decode_errors_name_the_decoder_failure(tmp_path):
  write_video(tmp_path / "good.avi", num_frames=40, height=64, width=64, pattern="noise")
  data = (tmp_path / "good.avi").read_bytes()
  (tmp_path / "empty.avi").write_bytes(b"")
  (tmp_path / "head.avi").write_bytes(data[:300])
  (tmp_path / "half.avi").write_bytes(data[:len(data) // 2])
  # Cut exactly before a frame chunk about halfway: every packet left decodes cleanly,
  # so only the frame count declared in the AVI header reveals the truncation.
  chunk_starts = [i for i in range(len(data)) if data.startswith(b"00dc", i)]
  (tmp_path / "clean_cut.avi").write_bytes(data[:chunk_starts[20]])
  for name in ("empty.avi", "head.avi"):
    with pytest.raises(decode.DecodeError, match="Invalid data found") as caught:
      decode.decode_video(tmp_path / name)
    assert name in str(caught.value) and name not in caught.value.reason
  with pytest.raises(decode.DecodeError):  # a cut inside a packet
    decode.decode_video(tmp_path / "half.avi")
  with pytest.raises(decode.DecodeError,
                     match=r"truncated: decoded 1\d of the 40 frames"):
    decode.decode_video(tmp_path / "clean_cut.avi")
  with pytest.raises(FileNotFoundError):
    decode.decode_video(tmp_path / "absent.avi")
  with pytest.raises(ValueError, match="short_side"):
    decode.decode_video(tmp_path / "good.avi", short_side=0)


# Preparation.


def test_prepare_manifest_records_and_reports(source, tmp_path, caplog, capsys):
  caplog.set_level("WARNING", logger="ssvbench.data.prepare")
  manifest = run_prepare(source, tmp_path / "out")
  out_dir = tmp_path / "out"
  assert json.loads((out_dir / "manifest.json").read_text()) == manifest
  assert sorted(p.name for p in out_dir.iterdir()) == [  # Staging removed; a TFDS dataset.
      "dataset_info.json", "features.json", "label.labels.txt", "manifest.json",
      "metadata.json", "ssvbench_toy-test.array_record-00000-of-00001",
      "ssvbench_toy-train.array_record-00000-of-00001"]

  assert manifest["format_version"] == 1 and manifest["dataset"] == "toy"
  assert manifest["class_names"] == CLASS_NAMES
  assert manifest["decode"] == {"short_side": None, "fps": None, "jpeg_quality": 90}
  entries = source["index"].entries
  assert [v["video_id"] for v in manifest["videos"]] == [e.video_id for e in entries]
  next_record = {"train": 0, "test": 0}
  for entry, video in zip(entries, manifest["videos"]):
    path = source["root"] / entry.rel_path
    assert (video["path"], video["label"], video["split"], video["group"]) == (
        entry.rel_path, entry.label, entry.split, entry.group)
    if entry.video_id in source["good"]:
      num_frames = source["good"][entry.video_id]["num_frames"]
      assert video["content_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
      assert (video["status"], video["error"], video["num_frames"], video["fps"],
              video["height"], video["width"]) == ("ok", None, num_frames, 25.0, 24, 32)
      assert video["duration"] == pytest.approx(num_frames / 25, abs=1e-6)
      assert video["record_index"] == next_record[entry.split]
      next_record[entry.split] += 1
    elif path.exists():
      assert video["status"] == "corrupt" and "Invalid data found" in video["error"]
      assert video["content_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
      assert video["record_index"] is None and video["num_frames"] is None
    else:
      assert video["status"] == "missing" and video["content_hash"] is None
      assert video["error"] is None and video["record_index"] is None
  assert manifest["counts"] == {
      "train": {"listed": 6, "ok": 4, "missing": 1, "corrupt": 1},
      "test": {"listed": 3, "ok": 2, "missing": 0, "corrupt": 1}}
  content = {k: v for k, v in manifest.items() if k != "manifest_hash"}
  canonical = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
  assert manifest["manifest_hash"] == hashlib.sha256(canonical).hexdigest()

  # Records, read without PreparedStore; frames must equal a direct Pillow encoding.
  for split in ("train", "test"):
    reader = array_record_module.ArrayRecordReader(
        str(store.record_path(out_dir, split, "toy")))
    records = [store.parse_record(raw) for raw in reader.read_all()]
    reader.close()
    expected_ids = [e.video_id for e in entries
                    if e.split == split and e.video_id in source["good"]]
    assert [r["video_id"] for r in records] == expected_ids
    for record in records:
      good = source["good"][record["video_id"]]
      entry = next(e for e in entries if e.video_id == record["video_id"])
      assert record["label"] == entry.label and record["fps"] == 25.0
      frames = decode.decode_video(source["root"] / entry.rel_path).frames
      for jpeg, frame in zip(record["frames"], frames, strict=True):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
        assert jpeg == buffer.getvalue()
      decoded = np.stack([np.asarray(Image.open(io.BytesIO(jpeg)))
                          for jpeg in record["frames"]])
      assert source_frame_indices(decoded, good["tint"]) == list(
          range(good["num_frames"]))

  corrupt_logs = [record.getMessage() for record in caplog.records
                  if "corrupt video" in record.getMessage()]
  assert len(corrupt_logs) == 2
  assert all("Invalid data found" in message for message in corrupt_logs)
  assert any("Jump/v_Jump_g05_c01" in message for message in corrupt_logs)
  assert any("1 of 9 listed videos" in r.getMessage() for r in caplog.records)
  summary = capsys.readouterr().err  # the summary goes to stderr
  assert "6 ok, 2 corrupt, 1 missing of 9 listed" in summary
  assert "corrupt: Run/v_Run_g07_c01.avi: InvalidDataError" in summary


def test_too_many_missing_fails_before_decoding(source, tmp_path, monkeypatch):
  def never_called(*args, **kwargs):
    raise AssertionError("decode_video must not run when too many videos are missing")

  monkeypatch.setattr(decode, "decode_video", never_called)
  for kwargs in ({}, {"max_missing_fraction": 0.1}):
    with pytest.raises(prepare.PrepareError) as caught:
      prepare.prepare_dataset(source["index"], source["root"], tmp_path / "out",
                              progress=False, **kwargs)
    message = str(caught.value)
    assert "1 of 9 listed videos (11.1%)" in message
    assert "train 1/6, test 0/3" in message
    assert "Run/v_Run_g06_c01.avi" in message and "allow_missing" in message
    assert not (tmp_path / "out").exists()
  monkeypatch.undo()
  manifest = prepare.prepare_dataset(source["index"], source["root"], tmp_path / "out",
                                     progress=False, max_missing_fraction=0.12)
  assert manifest["counts"]["train"]["missing"] == 1


def test_bad_index_and_arguments_are_rejected(source, tmp_path):
  entries = source["index"].entries
  duplicated = DatasetIndex("toy", CLASS_NAMES, entries + [entries[0]])
  with pytest.raises(prepare.PrepareError, match="listed twice"):
    prepare.prepare_dataset(duplicated, source["root"], tmp_path / "out")
  bad_split = DatasetIndex("toy", CLASS_NAMES,
                           [VideoEntry("x", "x.avi", 0, "validation", "g")])
  with pytest.raises(prepare.PrepareError, match="'validation' is not one of"):
    prepare.prepare_dataset(bad_split, source["root"], tmp_path / "out")
  with pytest.raises(prepare.PrepareError, match="does not exist"):
    prepare.prepare_dataset(source["index"], tmp_path / "nowhere", tmp_path / "out")
  with pytest.raises(prepare.PrepareError, match="jpeg_quality"):
    run_prepare(source, tmp_path / "out", jpeg_quality=0)


def test_find_video_locates_files_in_another_layout(source, tmp_path):
  flat = tmp_path / "flat"
  flat.mkdir()
  entries = [e for e in source["index"].entries if e.video_id in source["good"]][:2]
  for entry in entries:
    shutil.copy(source["root"] / entry.rel_path, flat / Path(entry.rel_path).name)

  def find_in_flat_folder(source_dir, rel_path):
    candidate = source_dir / Path(rel_path).name
    return candidate if candidate.is_file() else None

  manifest = prepare.prepare_dataset(DatasetIndex("flat", CLASS_NAMES, entries), flat,
                                     tmp_path / "out", find_video=find_in_flat_folder,
                                     progress=False)
  assert [v["path"] for v in manifest["videos"]] == [
      Path(e.rel_path).name for e in entries]
  assert [v["status"] for v in manifest["videos"]] == ["ok", "ok"]


def test_two_workers_give_identical_bytes(source, reference_store, tmp_path):
  run_prepare(source, tmp_path / "out", num_workers=2)
  assert store_files(tmp_path / "out") == store_files(reference_store)


def test_interrupted_prepare_resumes_to_identical_bytes(source, reference_store,
                                                       tmp_path, monkeypatch, capsys):
  real_decode = decode.decode_video
  calls = []

  def interrupted_after_three(path, **kwargs):
    if len(calls) == 3:
      raise RuntimeError("simulated interruption")
    calls.append(Path(path).name)
    return real_decode(path, **kwargs)

  monkeypatch.setattr(decode, "decode_video", interrupted_after_three)
  with pytest.raises(RuntimeError, match="simulated interruption"):
    run_prepare(source, tmp_path / "out")
  staging = tmp_path / "out" / prepare.STAGING_DIRNAME
  assert len(list(staging.glob("*.json"))) == 3  # 2 ok + the zero-byte file, staged
  assert not (tmp_path / "out" / "manifest.json").exists()

  calls.clear()
  monkeypatch.setattr(decode, "decode_video", lambda path, **kwargs: (
      calls.append(Path(path).name), real_decode(path, **kwargs))[1])
  capsys.readouterr()
  run_prepare(source, tmp_path / "out")
  assert len(calls) == 8 - 3  # 8 present files, 3 staged before the interruption
  assert "5 decoded, 3 reused from staging" in capsys.readouterr().err
  assert store_files(tmp_path / "out") == store_files(reference_store)


def test_staged_results_are_reused_only_with_matching_settings(source, tmp_path,
                                                              monkeypatch):
  real_decode = decode.decode_video
  calls = []

  def counting(path, **kwargs):
    if len(calls) == 4:
      raise RuntimeError("simulated interruption")
    calls.append(Path(path).name)
    return real_decode(path, **kwargs)

  monkeypatch.setattr(decode, "decode_video", counting)
  with pytest.raises(RuntimeError):
    run_prepare(source, tmp_path / "out", jpeg_quality=90)
  calls.clear()
  monkeypatch.setattr(decode, "decode_video", real_decode)
  monkeypatch.setattr(decode, "decode_video", lambda path, **kwargs: (
      calls.append(Path(path).name), real_decode(path, **kwargs))[1])
  manifest = run_prepare(source, tmp_path / "out", jpeg_quality=50)
  assert len(calls) == 8  # other settings: nothing staged is valid
  assert manifest["decode"]["jpeg_quality"] == 50


def test_short_side_and_fps_are_applied_and_recorded(source, tmp_path):
  manifest = run_prepare(source, tmp_path / "out", short_side=12, fps=7)
  assert manifest["decode"] == {"short_side": 12, "fps": 7.0, "jpeg_quality": 90}
  prepared = store.PreparedStore(tmp_path / "out")
  for split in ("train", "test"):
    data_source = prepared.data_source(split)
    for position, video in enumerate(prepared.videos(split)):
      good = source["good"][video["video_id"]]
      expected = nearest_indices(good["num_frames"], 7.0)
      assert (video["num_frames"], video["fps"], video["height"], video["width"]) == (
          len(expected), 7.0, 12, 16)
      record = prepared.decode_record(data_source[position])
      frames = prepared.decode_frames(record["frames"], range(len(record["frames"])))
      assert frames.shape == (len(expected), 12, 16, 3) and record["fps"] == 7.0
      assert source_frame_indices(frames, good["tint"]) == expected


# The prepared store.


def test_prepared_store_round_trip(source, reference_store):
  prepared = store.PreparedStore(reference_store)
  manifest = json.loads((reference_store / "manifest.json").read_text())
  assert prepared.manifest == manifest
  assert prepared.manifest_hash == manifest["manifest_hash"]
  assert (prepared.dataset, prepared.class_names, prepared.num_classes) == (
      "toy", CLASS_NAMES, 2)
  for split in ("train", "test"):
    ok_entries = [e for e in source["index"].split(split) if e.video_id in source["good"]]
    assert prepared.video_ids(split) == [e.video_id for e in ok_entries]
    assert [v["video_id"] for v in prepared.videos(split)] == prepared.video_ids(split)
    assert prepared.num_videos(split) == len(ok_entries)
    np.testing.assert_array_equal(prepared.labels(split), [e.label for e in ok_entries])
    assert prepared.labels(split).dtype == np.int64
    assert prepared.groups(split) == [e.group for e in ok_entries]
    data_source = prepared.data_source(split)
    assert len(data_source) == len(ok_entries)
    for position in reversed(range(len(data_source))):  # random access
      record = prepared.decode_record(data_source[position])
      assert record["video_id"] == ok_entries[position].video_id
  record = prepared.decode_record(prepared.data_source("train")[1])
  everything = np.stack([np.asarray(Image.open(io.BytesIO(j))) for j in record["frames"]])
  some = prepared.decode_frames(record["frames"], [3, 0, 3])
  np.testing.assert_array_equal(some, everything[[3, 0, 3]])
  assert prepared.decode_frames(record["frames"], []).shape == (0, 24, 32, 3)
  with pytest.raises(IndexError, match="frame index 11 is out of range"):
    prepared.decode_frames(record["frames"], [0, 11])
  with pytest.raises(KeyError, match="'val' is not in the prepared store"):
    prepared.videos("val")


def test_prepared_store_errors_are_clear(reference_store, tmp_path):
  with pytest.raises(store.StoreError, match="does not exist; run `ssvbench prepare`"):
    store.PreparedStore(tmp_path / "nowhere")
  (tmp_path / "empty").mkdir()
  with pytest.raises(store.StoreError,
                     match="manifest.json' not found.*ssvbench prepare"):
    store.PreparedStore(tmp_path / "empty")

  def broken_copy(name, edit):
    copy = tmp_path / name
    shutil.copytree(reference_store, copy)
    edit(copy)
    return copy

  malformed = broken_copy("malformed",
                          lambda d: (d / "manifest.json").write_text("{oops"))
  with pytest.raises(store.StoreError, match="is not valid JSON"):
    store.PreparedStore(malformed)

  def relabel(directory):
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["videos"][0]["label"] = 1
    (directory / "manifest.json").write_text(json.dumps(manifest))

  with pytest.raises(store.StoreError, match="manifest_hash does not match"):
    store.PreparedStore(broken_copy("edited", relabel))
  test_records = store.record_path(".", "test", "toy").name
  no_records = broken_copy("no_records", lambda d: (d / test_records).unlink())
  with pytest.raises(store.StoreError, match=f"{test_records}' is missing"):
    store.PreparedStore(no_records)

  def shorten(directory):
    writer = array_record_module.ArrayRecordWriter(
        str(directory / test_records), "group_size:1")
    writer.write(b"only one")
    writer.close()

  shortened = store.PreparedStore(broken_copy("shortened", shorten))
  with pytest.raises(store.StoreError, match="holds 1 records but the manifest lists 2"):
    shortened.data_source("test")
