"""`ssvbench prepare` end to end on small video trees in the real dataset layouts.

The real split files list thousands of videos, so each test tree has a few classes of
tiny clips (8 frames, 24x32, written with PyAV) and split files written in the official
formats, quirks included: UCF101 lists with CRLF endings, classInd.txt in its own
(not sorted) order and the HandstandPushups/v_HandStandPushups spelling; HMDB51
per-class files with trailing spaces and unused (id 0) clips; Kinetics CSVs with quoted
labels, a val CSV without `is_cc` using the value `validate`, label folders with
underscores. Every tree holds missing and corrupt (zero-byte, truncated) videos.
Everything goes through `ssvbench.cli.main`, as a user would run it.

Each clip is flat gray at a level unique to it, so a record can be traced back to its
source file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest

from ssvbench import cli
from ssvbench.data import decode
from ssvbench.data import pipeline
from ssvbench.data import prepare
from ssvbench.data import splits
from ssvbench.data import store as store_lib

HEIGHT, WIDTH, NUM_FRAMES, NATIVE_FPS = 24, 32, 8, 25


def write_clip(path: Path, level: int) -> None:
  """Writes NUM_FRAMES flat gray MPEG-4 frames at `level` (.avi or .mp4 by suffix)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with av.open(str(path), "w") as container:
    stream = container.add_stream("mpeg4", rate=NATIVE_FPS)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    for _ in range(NUM_FRAMES):
      frame = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), level, np.uint8),
                                         format="rgb24")
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def write_bad(path: Path, kind: str, level: int = 100) -> None:
  """Writes a zero-byte file or a clip cut after 300 bytes (a truncated download)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  if kind == "zero-byte":
    path.write_bytes(b"")
  else:
    write_clip(path, level)
    path.write_bytes(path.read_bytes()[:300])


def run_prepare(capsys, *args) -> tuple[int, str, str]:
  """Runs `ssvbench prepare ARGS --no-progress`; returns (exit code, stdout, stderr)."""
  capsys.readouterr()
  code = cli.main(["prepare", *map(str, args), "--no-progress"])
  out, err = capsys.readouterr()
  return code, out, err


def error_line(err: str) -> str:
  """The one error line of stderr, past any split-file warning; fails if not one."""
  lines = [line for line in err.splitlines() if not line.startswith(("warning:", "  "))]
  assert len(lines) == 1 and "Traceback" not in err, err
  assert lines[0].startswith("ssvbench prepare: error: "), err
  return lines[0]


def store_files(out_dir: Path) -> dict[str, bytes]:
  return {p.relative_to(out_dir).as_posix(): p.read_bytes()
          for p in sorted(out_dir.rglob("*")) if p.is_file()}


def record_levels(prepared: store_lib.PreparedStore, split: str) -> list[float]:
  """Mean gray level of every record of `split`, in record order."""
  source = prepared.data_source(split)
  levels = []
  for position in range(len(source)):
    record = prepared.decode_record(source[position])
    frames = prepared.decode_frames(record["frames"], range(len(record["frames"])))
    levels.append(float(frames.mean()))
  return levels


def sha256(path: Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------ UCF101

# classInd.txt order (as in the official file): sorted() would put HammerThrow first.
UCF_CLASSES = ["Hammering", "HammerThrow", "HandstandPushups"]
UCF_FILE_CLASS = {"HandstandPushups": "HandStandPushups"}  # the official quirk
UCF_GROUPS = (1, 8, 15, 22)  # test groups of splits 1, 2, 3; g22 is always train
UCF_MISSING = "Hammering/v_Hammering_g22_c01.avi"
UCF_BAD = {"HammerThrow/v_HammerThrow_g15_c01.avi": "zero-byte",
           "HandstandPushups/v_HandStandPushups_g08_c01.avi": "truncated"}


def crlf(lines) -> bytes:
  return "".join(f"{line}\r\n" for line in lines).encode()


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
  """UCF-101/<Class>/v_*.avi and a small ucfTrainTestlist/ in the official format."""
  root = tmp_path_factory.mktemp("ucf")
  videos, lists = root / "UCF-101", root / "ucfTrainTestlist"
  lists.mkdir()
  listed = [(f"{name}/v_{UCF_FILE_CLASS.get(name, name)}_g{group:02d}_c01.avi", label,
             group) for label, name in enumerate(UCF_CLASSES) for group in UCF_GROUPS]
  (lists / "classInd.txt").write_bytes(
      crlf(f"{label + 1} {name}" for label, name in enumerate(UCF_CLASSES)))
  for split, test_group in zip((1, 2, 3), UCF_GROUPS):
    (lists / f"trainlist0{split}.txt").write_bytes(
        crlf(f"{rel} {label + 1}" for rel, label, group in listed if group != test_group))
    (lists / f"testlist0{split}.txt").write_bytes(
        crlf(rel for rel, _, group in listed if group == test_group))
  levels = {}
  for number, (rel, _, _) in enumerate(listed):
    if rel in UCF_BAD:
      write_bad(videos / rel, UCF_BAD[rel])
    elif rel != UCF_MISSING:
      levels[rel] = 30 + 15 * number
      write_clip(videos / rel, levels[rel])
  return dict(videos=videos, lists=lists, listed=listed, levels=levels, root=root)


def test_ucf101_dry_run_counts_and_split_file_warning(ucf, tmp_path, capsys):
  code, out, err = run_prepare(capsys, "ucf101", "--source-dir", ucf["videos"],
                               "--splits-dir", ucf["lists"], "--dry-run")
  assert code == 0
  report = json.loads(out)
  assert report["splits"] == {
      "train": dict(listed=9, found=8, missing=1, missing_examples=[UCF_MISSING]),
      "test": dict(listed=3, found=3, missing=0, missing_examples=[])}
  assert (report["listed"], report["found"], report["missing"]) == (12, 11, 1)
  assert report["ok"] is False and report["max_missing_fraction"] == 0.0
  # User split files that are not the official ones: a warning naming every file.
  assert report["official_split_files"] is False
  assert err.startswith(f"warning: the ucf101 split files in {ucf['lists']} differ")
  assert "NOT the official one" in err
  for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
    assert f"  {name} differs from the official file" in err
  assert "trainlist02.txt" not in err  # only the files of the split asked for

  code, out, _ = run_prepare(capsys, "ucf101", "--source-dir", ucf["videos"],
                             "--splits-dir", ucf["lists"], "--dry-run", "--split", "3",
                             "--max-missing-fraction", "0.1")
  report = json.loads(out)
  assert {s: c["listed"] for s, c in report["splits"].items()} == {"train": 9, "test": 3}
  assert report["ok"] is True and report["max_missing_fraction"] == 0.1

  # The official files with LF instead of CRLF: reported, but the split is official.
  lf_copy = tmp_path / "official_lf"
  lf_copy.mkdir()
  for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
    official = splits.official_splits_dir("ucf101") / name
    (lf_copy / name).write_bytes(official.read_bytes().replace(b"\r\n", b"\n"))
  code, out, err = run_prepare(capsys, "ucf101", "--source-dir", ucf["videos"],
                               "--splits-dir", lf_copy, "--dry-run")
  assert code == 0 and json.loads(out)["official_split_files"] is True
  assert "they parse to the official split" in err and "trainlist01.txt" in err

  # Default split files: the shipped official ones, all 13,320 videos listed.
  code, out, err = run_prepare(capsys, "ucf101", "--source-dir", ucf["videos"],
                               "--dry-run")
  report = json.loads(out)
  assert code == 0 and err == ""
  assert report["official_split_files"] is True and report["num_classes"] == 101
  assert {s: (c["listed"], c["found"]) for s, c in report["splits"].items()} == {
      "train": (9537, 8), "test": (3783, 3)}


def test_ucf101_prepare_manifest_and_missing_fraction(ucf, tmp_path, capsys):
  out_dir = tmp_path / "ucf_split1"
  common = ("ucf101", "--source-dir", ucf["videos"], "--splits-dir", ucf["lists"],
            "--out", out_dir)
  code, _, err = run_prepare(capsys, *common)
  message = error_line(err)
  assert code == 2 and message.startswith(
      "ssvbench prepare: error: 1 of 12 listed videos (8.3%)")
  assert UCF_MISSING in message and "--allow-missing" in message
  assert not (out_dir / "manifest.json").exists()

  code, out, err = run_prepare(capsys, *common, "--allow-missing")
  assert code == 0 and "differ from the official" in err
  assert "9 ok, 2 corrupt, 1 missing of 12 listed" in err  # the summary; JSON on stdout
  prepared = store_lib.PreparedStore(out_dir)
  manifest = prepared.manifest
  # The fixture's 8-frame videos are shorter than the UCF101 protocol's 16x2-frame clips.
  assert json.loads(out) == {"manifest_hash": prepared.manifest_hash, "official_split": 1,
                            "official_split_files": False, "counts": manifest["counts"],
                            "short_videos": {"count": 9, "min_frames": 32}}
  assert (prepared.dataset, prepared.official_split, prepared.official_split_files) == (
      "ucf101", 1, False)
  assert prepared.class_names == UCF_CLASSES
  assert sorted(prepared.splits) == ["test", "train"]
  assert manifest["counts"] == {
      "train": {"listed": 9, "ok": 6, "missing": 1, "corrupt": 2},
      "test": {"listed": 3, "ok": 3, "missing": 0, "corrupt": 0}}
  expected_order = ([(rel, label, group) for rel, label, group in ucf["listed"]
                     if group != 1]
                    + [(rel, label, group) for rel, label, group in ucf["listed"]
                       if group == 1])
  assert [v["path"] for v in manifest["videos"]] == [rel for rel, _, _ in expected_order]
  for video, (rel, label, group) in zip(manifest["videos"], expected_order):
    path = ucf["videos"] / rel
    assert video["video_id"] == rel[:-4] and video["label"] == label
    assert video["split"] == ("test" if group == 1 else "train")
    assert video["group"] == f"{UCF_CLASSES[label]}_g{group:02d}"
    if rel == UCF_MISSING:
      assert (video["status"], video["content_hash"], video["error"]) == (
          "missing", None, None)
      continue
    assert video["content_hash"] == sha256(path)
    if rel in UCF_BAD:
      assert video["status"] == "corrupt" and video["error"]
      assert video["record_index"] is None and video["num_frames"] is None
    else:
      assert (video["status"], video["error"], video["num_frames"], video["fps"],
              video["height"], video["width"]) == ("ok", None, NUM_FRAMES, 25.0,
                                                   HEIGHT, WIDTH)
      assert video["duration"] == pytest.approx(NUM_FRAMES / NATIVE_FPS)
  # Each record holds the frames of the file its manifest entry names.
  for split in ("train", "test"):
    expected = [ucf["levels"][v["path"]] for v in prepared.videos(split)]
    np.testing.assert_allclose(record_levels(prepared, split), expected, atol=3)
    assert [v["record_index"] for v in prepared.videos(split)] == list(
        range(len(expected)))

  # Splits 2 and 3: other test groups, their number in the manifest.
  for split, test_group in ((2, 8), (3, 15)):
    split_dir = tmp_path / f"ucf_split{split}"
    code, out, _ = run_prepare(capsys, "ucf101", "--source-dir", ucf["videos"],
                               "--splits-dir", ucf["lists"], "--out", split_dir,
                               "--split", split, "--allow-missing")
    prepared_k = store_lib.PreparedStore(split_dir)
    assert code == 0 and prepared_k.official_split == split
    assert {g.rsplit("_", 1)[1] for g in prepared_k.groups("test")} == {
        f"g{test_group:02d}"}
    assert prepared_k.manifest_hash != prepared.manifest_hash


def test_ucf101_official_split_files_partial_copy(ucf, tmp_path, capsys):
  # Shipped official lists, a copy holding 11 of the 13,320 videos: refused by default
  # (UCF101 tolerates no missing video), prepared with --allow-missing.
  out_dir = tmp_path / "official"
  code, _, err = run_prepare(capsys, "ucf101", "--source-dir", ucf["videos"],
                             "--out", out_dir)
  assert code == 2 and "13309 of 13320 listed videos" in error_line(err)
  code, out, err = run_prepare(capsys, "ucf101", "--source-dir", ucf["videos"],
                               "--out", out_dir, "--allow-missing")
  assert code == 0 and "differ from the official" not in err  # official files: no warning
  prepared = store_lib.PreparedStore(out_dir)
  assert (prepared.official_split, prepared.official_split_files) == (1, True)
  assert prepared.num_classes == 101 and len(prepared.manifest["videos"]) == 13320
  assert prepared.manifest["counts"]["train"] == {"listed": 9537, "ok": 6,
                                                  "missing": 9529, "corrupt": 2}
  hammering = prepared.class_names.index("Hammering")
  assert prepared.class_names[hammering:hammering + 3] == UCF_CLASSES
  assert set(prepared.labels("test")) == {hammering, hammering + 1, hammering + 2}


def test_ucf101_interrupted_prepare_resumes_to_identical_store(ucf, tmp_path, capsys,
                                                               monkeypatch):
  common = ("ucf101", "--source-dir", ucf["videos"], "--splits-dir", ucf["lists"],
            "--allow-missing")
  assert run_prepare(capsys, *common, "--out", tmp_path / "reference")[0] == 0

  real_decode = decode.decode_video
  calls = []

  def interrupted_after_three(path, **kwargs):
    if len(calls) == 3:
      raise KeyboardInterrupt  # Ctrl-C in the middle of the run
    calls.append(path)
    return real_decode(path, **kwargs)

  monkeypatch.setattr(decode, "decode_video", interrupted_after_three)
  out_dir = tmp_path / "resumed"
  with pytest.raises(KeyboardInterrupt):
    cli.main(["prepare", *map(str, common), "--out", str(out_dir), "--no-progress"])
  assert len(list((out_dir / prepare.STAGING_DIRNAME).glob("*.json"))) == 3
  assert not (out_dir / "manifest.json").exists()
  monkeypatch.undo()

  # Resumed with two worker processes: the output depends on neither.
  code, _, err = run_prepare(capsys, *common, "--out", out_dir, "--workers", "2")
  assert code == 0 and "8 decoded, 3 reused from staging" in err
  assert store_files(out_dir) == store_files(tmp_path / "reference")


# ------------------------------------------------------------------------------ HMDB51

HMDB_CLASSES = ["brush_hair", "cartwheel", "catch"]
HMDB_FILMS = ["April_09", "Fellowship_6", "Veoh_Alpha", "likebeckam"]
# Split id of the 4 clips of every class in splits 1, 2, 3 (1 train, 2 test, 0 unused).
HMDB_IDS = {1: "1120", 2: "0112", 3: "2011"}
HMDB_ZERO_BYTE = "catch/likebeckam_catch_u_nm_np1_fr_goo_3.avi"  # unused in split 1


def hmdb_name(film: str, class_name: str, clip: int) -> str:
  return f"{film}_{class_name}_u_nm_np1_fr_goo_{clip}.avi"


@pytest.fixture(scope="module")
def hmdb(tmp_path_factory):
  """hmdb51_org/<class>/<video>.avi and per-class split files with trailing spaces."""
  root = tmp_path_factory.mktemp("hmdb")
  videos, lists = root / "hmdb51_org", root / "testTrainMulti_7030_splits"
  lists.mkdir()
  levels = {}
  for label, class_name in enumerate(HMDB_CLASSES):
    names = [hmdb_name(film, class_name, clip) for clip, film in enumerate(HMDB_FILMS)]
    for split, ids in HMDB_IDS.items():
      (lists / f"{class_name}_test_split{split}.txt").write_text(
          "".join(f"{name} {split_id} \n" for name, split_id in zip(names, ids)))
    for clip, name in enumerate(names):
      rel = f"{class_name}/{name}"
      if rel == HMDB_ZERO_BYTE:
        write_bad(videos / rel, "zero-byte")
      else:
        levels[rel] = 40 + 15 * (4 * label + clip)
        write_clip(videos / rel, levels[rel])
  return dict(videos=videos, lists=lists, levels=levels)


def test_hmdb51_three_splits_skip_unused_clips(hmdb, tmp_path, capsys):
  for split, ids in HMDB_IDS.items():
    out_dir = tmp_path / f"hmdb_split{split}"
    code, out, err = run_prepare(
        capsys, "hmdb51", "--source-dir", hmdb["videos"], "--splits-dir", hmdb["lists"],
        "--out", out_dir, "--split", split, "--short-side", "12", "--fps", "10")
    assert code == 0, err
    # 48 official class files are absent from this copy: the warning says so.
    assert "NOT the official one" in err and "brush_hair_test_split" in err
    prepared = store_lib.PreparedStore(out_dir)
    manifest = prepared.manifest
    assert (prepared.dataset, prepared.official_split) == ("hmdb51", split)
    assert prepared.class_names == HMDB_CLASSES
    # Unused clips are listed but never decoded: no record file, not a store split.
    assert sorted(prepared.splits) == ["test", "train"]
    assert prepared.is_tfds and prepared.record_path("train").is_file()
    assert not store_lib.record_path(out_dir, "unused", "hmdb51").exists()
    assert not list(out_dir.glob("*unused*"))
    zero_byte_split = {"0": "unused", "1": "train", "2": "test"}[ids[3]]
    counts = {name: {"listed": listed, "ok": listed, "missing": 0, "corrupt": 0}
              for name, listed in (("train", 6), ("test", 3))}
    counts["unused"] = {"listed": 3, "ok": 0, "missing": 0, "corrupt": 0, "skipped": 3}
    if zero_byte_split != "unused":
      counts[zero_byte_split].update(ok=counts[zero_byte_split]["ok"] - 1, corrupt=1)
    assert manifest["counts"] == counts
    assert manifest["decode"] == {"short_side": 12, "fps": 10.0, "jpeg_quality": 90}
    for video in manifest["videos"]:
      class_name, name = video["path"].split("/")
      clip = int(name[-5])
      assert video["split"] == {"0": "unused", "1": "train", "2": "test"}[ids[clip]]
      assert video["group"] == HMDB_FILMS[clip]
      assert video["label"] == HMDB_CLASSES.index(class_name)
      if video["split"] == "unused":
        assert (video["status"], video["content_hash"], video["record_index"]) == (
            "skipped", None, None)
      elif video["path"] == HMDB_ZERO_BYTE:
        assert video["status"] == "corrupt" and video["error"]
      else:
        # 8 frames at 25 fps last 0.32 s: 4 frames at 10 fps; 24x32 -> 12x16.
        assert (video["status"], video["num_frames"], video["fps"], video["height"],
                video["width"]) == ("ok", 4, 10.0, 12, 16)
    for name in ("train", "test"):
      expected = [hmdb["levels"][v["path"]] for v in prepared.videos(name)]
      np.testing.assert_allclose(record_levels(prepared, name), expected, atol=3)
    assert "3 skipped of 12 listed" in err

  # The store checks the skipped count like the others (hash recomputed: not an edit
  # the hash would catch).
  manifest = json.loads((tmp_path / "hmdb_split1" / "manifest.json").read_text())
  manifest["counts"]["unused"]["skipped"] = 2
  manifest["manifest_hash"] = store_lib.compute_manifest_hash(manifest)
  (tmp_path / "hmdb_split1" / "manifest.json").write_text(json.dumps(manifest))
  with pytest.raises(store_lib.StoreError,
                     match=r"counts\['unused'\]\['skipped'\] is 2, but 3 videos"):
    store_lib.PreparedStore(tmp_path / "hmdb_split1")


def test_hmdb51_include_unused(hmdb, tmp_path, capsys):
  out_dir = tmp_path / "with_unused"
  code, out, _ = run_prepare(capsys, "hmdb51", "--source-dir", hmdb["videos"],
                             "--splits-dir", hmdb["lists"], "--out", out_dir,
                             "--include-unused")
  assert code == 0
  prepared = store_lib.PreparedStore(out_dir)
  assert sorted(prepared.splits) == ["test", "train", "unused"]
  assert prepared.manifest["counts"]["unused"] == {"listed": 3, "ok": 2, "missing": 0,
                                                   "corrupt": 1}
  assert prepared.num_videos("unused") == 2
  code, out, _ = run_prepare(capsys, "hmdb51", "--source-dir", hmdb["videos"],
                             "--splits-dir", hmdb["lists"], "--dry-run")
  report = json.loads(out)
  assert report["skipped_splits"] == ["unused"] and report["ok"] is True
  assert report["splits"]["unused"]["listed"] == 3


# ---------------------------------------------------------------------------- Kinetics

K400_CLASSES = ["abseiling", "air drumming", "answering questions"]


def k400_clip(label: int, number: int) -> tuple[str, int, int]:
  return f"yt{label}{number}abcdefg", 10 * number, 10 * number + 10


@pytest.fixture(scope="module")
def k400(tmp_path_factory):
  """train/<label_with_underscores>/<clip>.mp4, flat val/, CSVs with quoted labels."""
  root = tmp_path_factory.mktemp("k400")
  videos, annotations = root / "kinetics400", root / "annotations"
  annotations.mkdir()
  train_rows = [(label, *k400_clip(label, n)) for label in range(3) for n in range(3)]
  val_rows = [(label, *k400_clip(label, 9)) for label in range(3)]
  (annotations / "kinetics-400_train.csv").write_bytes(crlf(
      ["label,youtube_id,time_start,time_end,split,is_cc"]
      + [f'"{K400_CLASSES[l]}",{y},{s},{e},train,0' for l, y, s, e in train_rows]))
  # The val file in the K700-2020 style: no is_cc, split value `validate`.
  (annotations / "kinetics-400_val.csv").write_text(
      "label,youtube_id,time_start,time_end,split\n"
      + "".join(f'"{K400_CLASSES[l]}",{y},{s},{e},validate\n' for l, y, s, e in val_rows))
  paths = {}
  for label, youtube_id, start, end in train_rows:
    folder = videos / "train" / K400_CLASSES[label].replace(" ", "_")
    paths[f"train/{youtube_id}_{start:06d}_{end:06d}"] = (
        folder / f"{youtube_id}_{start:06d}_{end:06d}.mp4")
  for label, youtube_id, start, end in val_rows:
    paths[f"val/{youtube_id}_{start:06d}_{end:06d}"] = (
        videos / "val" / f"{youtube_id}_{start:06d}_{end:06d}.mp4")
  missing, truncated = "train/yt12abcdefg_000020_000030", "val/yt29abcdefg_000090_000100"
  levels = {}
  for number, (video_id, path) in enumerate(paths.items()):
    if video_id == truncated:
      write_bad(path, "truncated")
    elif video_id != missing:
      levels[video_id] = 30 + 15 * number
      write_clip(path, levels[video_id])
  return dict(videos=videos, annotations=annotations, paths=paths, levels=levels,
              missing=missing, truncated=truncated, root=root)


def test_kinetics400_dry_run_prepare_and_pipeline_batch(k400, tmp_path, capsys):
  common = ("kinetics400", "--source-dir", k400["videos"], "--splits-dir",
            k400["annotations"])
  code, out, err = run_prepare(capsys, *common, "--dry-run")
  report = json.loads(out)
  assert code == 0 and err == ""
  assert {s: (c["listed"], c["found"], c["missing"]) for s, c in
          report["splits"].items()} == {"train": (9, 8, 1), "val": (3, 3, 0)}
  assert report["ok"] is True and report["official_split_files"] is None

  # 1 of 12 missing is within Kinetics' default 10%, but not within 5%.
  code, _, err = run_prepare(capsys, *common, "--out", tmp_path / "strict",
                             "--max-missing-fraction", "0.05")
  assert code == 2 and "1 of 12 listed videos (8.3%)" in error_line(err)
  out_dir = tmp_path / "k400"
  code, out, err = run_prepare(capsys, *common, "--out", out_dir)
  assert code == 0 and "10 ok, 1 corrupt, 1 missing of 12 listed" in err
  prepared = store_lib.PreparedStore(out_dir)
  assert prepared.class_names == K400_CLASSES and prepared.official_split is None
  assert "official_split" not in prepared.manifest
  for video in prepared.manifest["videos"]:
    split, clip = video["video_id"].split("/")
    assert video["group"] == clip[:-14]  # the YouTube id
    assert video["label"] == int(clip[2])
    if video["video_id"] == k400["missing"]:
      assert video["status"] == "missing"
    else:
      path = k400["paths"][video["video_id"]]
      assert video["path"] == path.relative_to(k400["videos"]).as_posix()
      assert video["content_hash"] == sha256(path)
      assert video["status"] == (
          "corrupt" if video["video_id"] == k400["truncated"] else "ok")
  assert prepared.video_ids("val") == [f"val/yt{l}9abcdefg_000090_000100"
                                       for l in (0, 1)]

  # One training batch read from the produced store by the grain pipeline.
  dataset = pipeline.make_train_dataset(
      prepared.record_path("train"), global_batch_size=4, seed=0, num_clips=2,
      num_frames=4, frame_stride=2, crop_size=16)
  batch = next(iter(dataset))
  assert batch["clips"].shape == (4, 2, 4, 16, 16, 3)
  assert batch["clips"].dtype == np.uint8
  assert len(set(batch["index"].tolist())) == 4
  np.testing.assert_array_equal(batch["label"], prepared.labels("train")[batch["index"]])

  # SlowFast's `path label` lists, named train.csv, in place of the CSVs.
  lists = tmp_path / "slowfast"
  lists.mkdir()
  (lists / "train.csv").write_text("".join(
      f"{k400['paths'][v].relative_to(k400['videos']).as_posix()} {int(v[8])}\n"
      for v in k400["paths"] if v.startswith("train/")))
  code, out, _ = run_prepare(capsys, "kinetics400", "--source-dir", k400["videos"],
                             "--splits-dir", lists, "--dry-run")
  report = json.loads(out)
  assert report["splits"] == {"train": dict(listed=9, found=8, missing=1,
                                            missing_examples=[report["splits"]["train"]
                                                              ["missing_examples"][0]])}
  assert report["num_classes"] == 400


# ----------------------------------------------------------------------------- bad input


def _broken_copy(folder: Path, destination: Path, name: str, line: int,
                 replacement: str) -> Path:
  """Copies a split folder, replacing line `line` (1-based) of file `name`."""
  destination.mkdir()
  for path in folder.iterdir():
    data = path.read_bytes()
    if path.name == name:
      lines = data.splitlines(keepends=True)
      ending = b"\r\n" if lines[line - 1].endswith(b"\r\n") else b"\n"
      lines[line - 1] = replacement.encode() + ending
      data = b"".join(lines)
    (destination / path.name).write_bytes(data)
  return destination


def test_bad_input_is_one_line_naming_the_place(ucf, hmdb, k400, tmp_path, capsys):
  cases = [
      (("ucf101", "--source-dir", ucf["videos"], "--splits-dir",
        _broken_copy(ucf["lists"], tmp_path / "ucf", "trainlist01.txt", 2,
                     "HammerThrow/v_HammerThrow_g08_c01.avi")),
       ["trainlist01.txt:2: 1 columns instead of 2",
        "expected '<Class>/v_<Class>_gGG_cCC.avi <1-based label>'"]),
      (("hmdb51", "--source-dir", hmdb["videos"], "--splits-dir",
        _broken_copy(hmdb["lists"], tmp_path / "hmdb", "catch_test_split1.txt", 3,
                     "Veoh_Alpha_catch_u_nm_np1_fr_goo_2.avi 3 ")),
       ["catch_test_split1.txt:3: expected '<video>.avi <id>'"]),
      (("kinetics400", "--source-dir", k400["videos"], "--splits-dir",
        _broken_copy(k400["annotations"], tmp_path / "k400", "kinetics-400_train.csv",
                     3, '"abseiling",yt01abcdefg,ten,20,train,0')),
       ["kinetics-400_train.csv:3: time_start must be a whole number of seconds",
        "expected label,youtube_id"]),
      # The folder above the videos, the folder above the split files.
      (("ucf101", "--source-dir", ucf["root"], "--splits-dir", ucf["lists"]),
       [f"pass --source-dir {ucf['videos']}"]),
      (("ucf101", "--source-dir", ucf["videos"], "--splits-dir", ucf["root"]),
       [f"Did you mean --splits-dir {ucf['lists']}?"]),
      (("kinetics400", "--source-dir", k400["videos"]), ["needs --splits-dir"]),
      (("hmdb51", "--source-dir", hmdb["videos"], "--split", "4"),
       ["hmdb51 has splits (1, 2, 3), got 4"]),
  ]
  for arguments, fragments in cases:
    for mode in ("--dry-run", "--out"):
      extra = ["--dry-run"] if mode == "--dry-run" else ["--out", tmp_path / "out"]
      code, out, err = run_prepare(capsys, *arguments, *extra)
      assert code == 2 and out == "", (arguments, err)
      message = error_line(err)
      for fragment in fragments:
        assert fragment in message, (fragment, message)
  assert not (tmp_path / "out").exists()
