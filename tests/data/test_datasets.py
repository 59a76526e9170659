"""Real-dataset parsing: official counts from the real split files, quirks, dry-run.

The real split/annotation files live in ../shared/datasets (a copy of the official
ones); the shipped copies in ssvbench/splits must equal them byte for byte. Quirk tests
use small hand-written files in the real formats; dry-run tests generate empty video
files in the real layouts (dry-run never decodes).
"""

from __future__ import annotations

import collections
import csv
import functools
import hashlib
import json
from pathlib import Path

import pytest

from ssvbench.data import hmdb51
from ssvbench.data import kinetics
from ssvbench.data import sources
from ssvbench.data import splits
from ssvbench.data import synthactions
from ssvbench.data import ucf101
from ssvbench.data.validation import carve_validation

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"
UCF_SPLITS = SHARED / "ucf101" / "ucfTrainTestlist"
HMDB_SPLITS = SHARED / "hmdb51" / "testTrainMulti_7030_splits"
KINETICS_ANNOTATIONS = SHARED / "kinetics" / "annotations"
SHARED_COPY_OF = {"ucf101": UCF_SPLITS, "hmdb51": HMDB_SPLITS,
                  "fewshot": SHARED / "fewshot"}


@functools.cache
def _hmdb(split: int):
  return hmdb51.parse_hmdb51(splits.official_splits_dir("hmdb51"), split)


@functools.cache
def _ucf(split: int):
  return ucf101.parse_ucf101(splits.official_splits_dir("ucf101"), split)


@functools.cache
def _k400_val():
  return kinetics.parse_kinetics(KINETICS_ANNOTATIONS, "400", ("val",))


def _sha256(path: Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- shipped split files


def test_shipped_files_equal_shared_copies_and_checksum_table():
  table = splits.official_checksums()
  assert {name: len(files) for name, files in table.items()} == {
      "ucf101": 7, "hmdb51": 153, "fewshot": 12}
  for dataset, files in table.items():
    shipped_root = splits.official_splits_dir(dataset)
    on_disk = {p.relative_to(shipped_root).as_posix() for p in shipped_root.rglob("*")
               if p.is_file()}
    assert on_disk == set(files), dataset
    for rel_path, checksum in files.items():
      shared_checksum = _sha256(SHARED_COPY_OF[dataset] / rel_path)
      assert _sha256(shipped_root / rel_path) == checksum == shared_checksum, rel_path
    assert splits.verify_shipped(dataset) == []
  # The published md5 prefixes of three UCF101 files: UCF101 is the original.
  md5 = lambda name: hashlib.md5((UCF_SPLITS / name).read_bytes()).hexdigest()
  assert md5("classInd.txt").startswith("36f36c4c")
  assert md5("trainlist01.txt").startswith("8abbe5a3")
  assert md5("testlist01.txt").startswith("dc64a3bf")


def test_kinetics_annotations_are_not_shipped():
  with pytest.raises(ValueError, match="--splits-dir"):
    splits.official_splits_dir("kinetics400")


def test_compare_to_official(tmp_path):
  official = splits.official_splits_dir("ucf101")
  user = tmp_path / "ucfTrainTestlist"
  user.mkdir()
  for path in official.iterdir():
    (user / path.name).write_bytes(path.read_bytes())
  assert splits.compare_to_official("ucf101", user) == []
  # Line endings converted (CRLF -> LF): reported, but as cosmetic.
  train = (official / "trainlist01.txt").read_bytes()
  (user / "trainlist01.txt").write_bytes(train.replace(b"\r\n", b"\n"))
  [message] = splits.compare_to_official("ucf101", user)
  assert message.startswith("trainlist01.txt differs from the official file (sha256 ")
  assert _sha256(official / "trainlist01.txt") in message
  assert "only line endings" in message
  # One line dropped, one file missing: content differences.
  lines = train.splitlines(keepends=True)
  (user / "trainlist01.txt").write_bytes(b"".join(lines[:10] + lines[11:]))
  (user / "testlist03.txt").unlink()
  messages = splits.compare_to_official("ucf101", user)
  assert len(messages) == 2
  assert "9536 lines instead of 9537, 1 lines present in only one" in messages[1]
  assert messages[0].startswith("testlist03.txt is missing")
  # Pointing at the parent folder: the message names the right one.
  [message] = splits.compare_to_official("ucf101", tmp_path)
  assert f"Did you mean --splits-dir {user}" in message


def test_compare_to_official_hmdb_extra_class(tmp_path):
  for path in splits.official_splits_dir("hmdb51").iterdir():
    (tmp_path / path.name).write_bytes(path.read_bytes())
  (tmp_path / "juggle_test_split1.txt").write_text("a_juggle_f_cm_np1_le_med_0.avi 1 \n")
  assert splits.compare_to_official("hmdb51", tmp_path) == [
      "juggle_test_split1.txt is not an official HMDB51 split file (extra class)."]


# ---------------------------------------------------------------- official counts


@pytest.mark.parametrize("split,train,test", [(1, 9537, 3783), (2, 9586, 3734),
                                              (3, 9624, 3696)])
def test_ucf101_official_counts(split, train, test):
  index = _ucf(split)
  assert index.num_classes == 101
  assert (len(index.split("train")), len(index.split("test"))) == (train, test)
  train_groups = {e.group for e in index.split("train")}
  assert not train_groups & {e.group for e in index.split("test")}
  # The shared copy parses identically.
  assert ucf101.parse_ucf101(UCF_SPLITS, split).entries == index.entries


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_official_counts(split):
  index = _hmdb(split)
  assert index.num_classes == 51
  assert index.class_names == sorted(index.class_names)
  counts = collections.Counter(e.split for e in index.entries)
  assert counts == {"train": 3570, "test": 1530, "unused": 1666}
  per_class = collections.Counter((e.label, e.split) for e in index.entries)
  assert all(per_class[(label, "train")] == 70 and per_class[(label, "test")] == 30
             for label in range(51))
  assert hmdb51.parse_hmdb51(HMDB_SPLITS, split).entries == index.entries


def _film_by_tokens(video: str, class_name: str) -> str:
  """Independent statement of the film rule: drop the 6 tag tokens and the class."""
  tokens = video[:-len(".avi")].split("_")
  class_tokens = class_name.split("_")
  assert tokens[-6 - len(class_tokens):-6] == class_tokens, video
  return "_".join(tokens[:-6 - len(class_tokens)])


def test_hmdb51_source_film_rule():
  assert hmdb51.source_film(
      "April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair") == "April_09"
  # np10 (ten people), and a film whose name contains the class name.
  assert hmdb51.source_film("metacafe_coolsoccer_run_f_cm_np10_le_bad_2.avi", "run") == (
      "metacafe_coolsoccer")
  assert hmdb51.source_film("run_for_it_run_f_cm_np1_le_bad_2", "run") == "run_for_it"
  for bad in ("April_09_brush_hair_u_nm_np1_ba_0.avi",
              "April_09_hair_u_nm_np1_ba_goo_0.avi", "brush_hair_u_nm_np1_ba_goo_0.avi"):
    with pytest.raises(ValueError, match="cannot tell its source film"):
      hmdb51.source_film(bad, "brush_hair")
  # Every real name follows the rule; checked against the token-based statement.
  index = _hmdb(1)
  for entry in index.entries:
    video = entry.rel_path.split("/")[1]
    assert entry.group == _film_by_tokens(video, index.class_names[entry.label])


# Films shared between train (one class) and test (another class) in each official split.
_HMDB_FILMS_ACROSS_CLASSES = {1: 133, 2: 149, 3: 144}


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_official_splits_are_film_disjoint_per_class_only(split):
  index = _hmdb(split)
  train = {(e.label, e.group) for e in index.split("train")}
  test = {(e.label, e.group) for e in index.split("test")}
  assert not train & test  # Within a class, no film has clips in both.
  # Across classes, the official splits do share films between train and test.
  shared = {g for _, g in train} & {g for _, g in test}
  assert len(shared) == _HMDB_FILMS_ACROSS_CLASSES[split]


def test_kinetics_val_counts():
  k400 = _k400_val()
  assert (len(k400.entries), k400.num_classes) == (19906, 400)
  assert "air drumming" in k400.class_names  # Quoted in the CSV.
  with open(KINETICS_ANNOTATIONS / "kinetics-400_val.csv", newline="") as stream:
    rows = list(csv.DictReader(stream))
  assert [k400.class_names[e.label] for e in k400.entries] == [r["label"] for r in rows]
  assert [e.group for e in k400.entries] == [r["youtube_id"] for r in rows]
  k600 = kinetics.parse_kinetics(KINETICS_ANNOTATIONS / "kinetics-600_val.csv", "600",
                                 ("val",))
  assert (len(k600.entries), k600.num_classes) == (30000, 600)
  k400_test = kinetics.parse_kinetics(KINETICS_ANNOTATIONS, "400", ("test",))
  assert len(k400_test.entries) == 38685 and {e.label for e in k400_test.entries} == {-1}
  assert k400_test.entries[0].rel_path == "test/--6bJUbfpnQ_000017_000027.mp4"


def test_fewshot_class_splits():
  expected = {"ucf_ARN": (70, 10, 21), "hmdb_ARN": (31, 10, 10),
              "kinetics_CMN": (64, 12, 24), "ssv2_CMN": (64, 12, 24)}
  universe = {"ucf_ARN": set(_ucf(1).class_names), "hmdb_ARN": set(_hmdb(1).class_names),
              "kinetics_CMN": set(_k400_val().class_names)}
  for name, sizes in expected.items():
    classes = splits.fewshot_class_split(name)
    assert tuple(len(classes[p]) for p in ("train", "val", "test")) == sizes, name
    assert len(set().union(*map(set, classes.values()))) == sum(sizes)
    if name in universe:
      assert set().union(*map(set, classes.values())) <= universe[name]
  videos = splits.fewshot_videos("KINETICS_CMN")
  videos_per_class = collections.Counter(c for c, _ in videos["test"])
  assert collections.Counter(videos_per_class.values()) == {100: 24}
  with pytest.raises(ValueError, match="Unknown few-shot split"):
    splits.fewshot_class_split("ucf_CMN")


def test_carved_validation_shares_no_group_with_train():
  def carve(entries):
    mask = carve_validation([e.label for e in entries], [e.group for e in entries],
                            0.2, 0)
    return ([e for e, v in zip(entries, mask) if v],
            [e for e, v in zip(entries, mask) if not v])

  val, train = carve(_ucf(1).split("train"))
  assert val and not {e.group for e in val} & {e.group for e in train}
  # HMDB51: whole films per class, like the official split (films cross classes).
  val, train = carve(_hmdb(1).split("train"))
  assert 0.15 < len(val) / (len(val) + len(train)) < 0.3
  assert not {(e.label, e.group) for e in val} & {(e.label, e.group) for e in train}
  val, train = carve(_k400_val().entries)
  assert val and not {e.group for e in val} & {e.group for e in train}


# ---------------------------------------------------------------- quirks and bad input


def test_hmdb51_quirks_and_errors(tmp_path):
  good = ("A_b_walk_f_cm_np1_le_med_0.avi 1 \r\n"
          "A_b_walk_f_cm_np1_le_med_1.avi 2 \r\n\r\n"
          "C_walk_u_nm_np2_fr_goo_0.avi 0 \r\n")
  (tmp_path / "walk_test_split2.txt").write_bytes(good.encode())
  (tmp_path / "clap_test_split2.txt").write_text("D_clap_h_nm_np1_fr_bad_3.avi 1\n")
  index = hmdb51.parse_hmdb51(tmp_path, 2)
  assert index.class_names == ["clap", "walk"]
  assert [(e.video_id, e.label, e.split, e.group) for e in index.entries] == [
      ("clap/D_clap_h_nm_np1_fr_bad_3", 0, "train", "D"),
      ("walk/A_b_walk_f_cm_np1_le_med_0", 1, "train", "A_b"),
      ("walk/A_b_walk_f_cm_np1_le_med_1", 1, "test", "A_b"),
      ("walk/C_walk_u_nm_np2_fr_goo_0", 1, "unused", "C")]
  with pytest.raises(FileNotFoundError, match="_test_split1.txt"):
    hmdb51.parse_hmdb51(tmp_path, 1)
  # Both layouts: <class>/<video>.avi and flat.
  videos = tmp_path / "videos"
  _touch_all(videos, ["walk/A_b_walk_f_cm_np1_le_med_0.avi", "C_walk_u_nm_np2_fr_goo_0.avi"])
  found = [hmdb51.find_video(videos, e.rel_path) for e in index.entries]
  assert found == [None, videos / "walk/A_b_walk_f_cm_np1_le_med_0.avi", None,
                   videos / "C_walk_u_nm_np2_fr_goo_0.avi"]
  for line, problem in (("A_walk_f_cm_np1_le_med_0.avi 3", "expected '<video>.avi <id>'"),
                        ("A_walk_f_cm_np1_le_med_0.avi", "expected '<video>.avi <id>'"),
                        ("A_walk_f_cm_np1_le_med_0.mp4 1", "expected '<video>.avi <id>'"),
                        ("A_walk_f_cm_np1_le_0.avi 1", "cannot tell its source film")):
    (tmp_path / "walk_test_split2.txt").write_text(good.replace("\r", "") + line + "\n")
    with pytest.raises(ValueError, match=problem) as error:
      hmdb51.parse_hmdb51(tmp_path, 2)
    assert "walk_test_split2.txt:5:" in str(error.value)


def test_kinetics_csv_quirks(tmp_path):
  path = tmp_path / "kinetics-700_val.csv"
  path.write_bytes(
      b"label,youtube_id,time_start,time_end,split\r\n"
      b'"tying, knot",abc-DEF_123,5,15,validate\r\n'
      b"playing cards,zzz,0,10,val\r\n"
      b'"air drumming",yyy,30.0,40,validate\r\n')
  index = kinetics.parse_kinetics(path, "700", ("val",))
  assert index.class_names == ["air drumming", "playing cards", "tying, knot"]
  assert [(e.video_id, e.rel_path, e.label, e.split, e.group) for e in index.entries] == [
      ("val/abc-DEF_123_000005_000015",
       "val/tying, knot/abc-DEF_123_000005_000015.mp4", 2, "val", "abc-DEF_123"),
      ("val/zzz_000000_000010", "val/playing cards/zzz_000000_000010.mp4", 1, "val",
       "zzz"),
      ("val/yyy_000030_000040", "val/air drumming/yyy_000030_000040.mp4", 0, "val",
       "yyy")]
  rows = kinetics.read_annotation_csv(path)
  assert {row["is_cc"] for row in rows} == {None}
  # K400 style: is_cc present; test CSV without labels -> -1.
  (tmp_path / "k400_test.csv").write_text(
      "youtube_id,time_start,time_end,split\nq,1,11,test\n")
  test_index = kinetics.parse_kinetics(tmp_path / "k400_test.csv", "400", ("test",))
  assert [(e.label, e.rel_path) for e in test_index.entries] == [
      (-1, "test/q_000001_000011.mp4")]
  # An explicit classes file (text or SlowFast JSON) fixes the label order.
  (tmp_path / "classes.json").write_text(json.dumps(
      {'"tying, knot"': 0, "playing cards": 1, "air drumming": 2}))
  with_json = kinetics.parse_kinetics(path, "700", ("val",), tmp_path / "classes.json")
  assert [e.label for e in with_json.entries] == [0, 1, 2]
  (tmp_path / "classes.txt").write_text("playing cards\n")
  with pytest.raises(ValueError,
                     match=r"kinetics-700_val.csv:2: label 'tying, knot' is not"):
    kinetics.parse_kinetics(path, "700", ("val",), tmp_path / "classes.txt")


@pytest.mark.parametrize("text,line,problem", [
    ("label,youtube_id,start,time_end,split\n", 1, "bad header"),
    ("label,youtube_id,time_start,time_end,split,is_cc\nx,a,1,11,val\n", 2, "5 fields"),
    ("label,youtube_id,time_start,time_end,split\nx,a,1,11,val\nx,b,one,11,val\n", 3,
     "time_start must be a whole number"),
    ("label,youtube_id,time_start,time_end,split\nx,a,1,11,valid\n", 2, "split 'valid'"),
    ("label,youtube_id,time_start,time_end,split\n,a,1,11,val\n", 2, "needs a label"),
    ("label,youtube_id,time_start,time_end,split\nx,a,11,1,val\n", 2, "not after"),
    ("label,youtube_id,time_start,time_end,split,is_cc\nx,a,1,11,val,yes\n", 2, "is_cc"),
])
def test_kinetics_malformed_lines(tmp_path, text, line, problem):
  path = tmp_path / "bad.csv"
  path.write_text(text)
  with pytest.raises(ValueError, match=problem) as error:
    kinetics.parse_kinetics(path, "400", ("val",))
  assert f"bad.csv:{line}:" in str(error.value)


def test_kinetics_duplicates_and_variant_check(tmp_path):
  path = tmp_path / "val.csv"
  header = "label,youtube_id,time_start,time_end,split\n"
  path.write_text(header + "x,a,1,11,val\nx,a,1,11,val\n")
  assert len(kinetics.parse_kinetics(path, "400", ("val",)).entries) == 1
  path.write_text(header + "x,a,1,11,val\ny,a,1,11,val\n")
  with pytest.raises(ValueError, match="val.csv:3: clip a_000001_000011 is listed again"):
    kinetics.parse_kinetics(path, "400", ("val",))
  with pytest.raises(ValueError, match="600 classes, more than Kinetics-400"):
    kinetics.parse_kinetics(KINETICS_ANNOTATIONS / "kinetics-600_val.csv", "400",
                            ("val",))


def test_path_label_lists(tmp_path):
  (tmp_path / "train.csv").write_text(
      "train/air drumming/abc_000001_000011.mp4 3\nother/clip two.mp4 0\n")
  (tmp_path / "val.csv").write_text("val/def_000002_000012.mp4 399\r\n")
  index = kinetics.parse_kinetics(tmp_path, "400", ("train", "val"))
  assert index.num_classes == 400
  assert [(e.video_id, e.rel_path, e.label, e.split, e.group) for e in index.entries] == [
      ("train/abc_000001_000011", "train/air drumming/abc_000001_000011.mp4", 3, "train",
       "abc"),
      ("train/clip two", "other/clip two.mp4", 0, "train", "clip two"),
      ("val/def_000002_000012", "val/def_000002_000012.mp4", 399, "val", "def")]
  (tmp_path / "val.csv").write_text("val/def_000002_000012.mp4 400\n")
  with pytest.raises(ValueError, match=r"val.csv:1: label 400 >= 400"):
    kinetics.parse_kinetics(tmp_path, "400", ("val",))
  (tmp_path / "val.csv").write_text("val/def_000002_000012.mp4\n")
  with pytest.raises(ValueError,
                     match=r"val.csv:1: expected '<video path> <0-based label>'"):
    kinetics.parse_kinetics(tmp_path, "400", ("val",))


def test_kinetics_find_video_layouts(tmp_path):
  def touch(rel_path):
    (tmp_path / rel_path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel_path).touch()
    return tmp_path / rel_path

  flat = touch("val/a_000001_000011.mp4")
  labelled = touch("train/air drumming/b_000001_000011.mp4")
  underscored = touch("train/air_drumming/c_000001_000011.mkv")
  validate = touch("validate/air_drumming/d_000001_000011.mp4")
  assert kinetics.find_video(tmp_path, "val/air drumming/a_000001_000011.mp4") == flat
  find = functools.partial(kinetics.find_video, tmp_path)
  assert find("train/air drumming/b_000001_000011.mp4") == labelled
  assert find("train/air drumming/c_000001_000011.mp4") == underscored
  assert kinetics.find_video(tmp_path, "val/air drumming/d_000001_000011.mp4") == validate
  assert kinetics.find_video(tmp_path, "val/air drumming/e_000001_000011.mp4") is None


# ------------------------------------------------------- dry-run on generated trees


def _touch_all(root: Path, rel_paths, skip=()):
  for rel_path in rel_paths:
    if rel_path not in skip:
      (root / rel_path).parent.mkdir(parents=True, exist_ok=True)
      (root / rel_path).touch()


def test_dry_run_hmdb51_real_layout(tmp_path):
  index = _hmdb(1)
  missing = {index.split("test")[0].rel_path, index.split("unused")[5].rel_path}
  source = tmp_path / "hmdb51_org"
  _touch_all(source, [e.rel_path for e in index.entries], missing)
  report = sources.dry_run("hmdb51", source)
  json.dumps(report)
  assert report["splits"]["train"] == dict(listed=3570, found=3570, missing=0,
                                           missing_examples=[])
  assert report["splits"]["test"]["missing"] == report["splits"]["unused"]["missing"] == 1
  assert report["splits"]["test"]["missing_examples"] == [index.split("test")[0].rel_path]
  assert (report["listed"], report["found"], report["missing"]) == (6766, 6764, 2)
  assert report["official_split_files"] is True and report["ok"] is False
  assert report["num_classes"] == 51
  # Pointing at the parent folder: the error names the folder to use.
  with pytest.raises(sources.LayoutError, match=f"pass --source-dir {source}"):
    sources.dry_run("hmdb51", tmp_path)


def test_dry_run_ucf101_flat_layout_and_user_splits(tmp_path):
  index = _ucf(2)
  source = tmp_path / "videos"
  _touch_all(source, [e.rel_path.split("/")[1] for e in index.entries])  # Flat copy.
  report = sources.dry_run("ucf101", source, split=2)
  assert {s: (c["listed"], c["found"]) for s, c in report["splits"].items()} == {
      "train": (9586, 9586), "test": (3734, 3734)}
  assert report["ok"] is True
  # A user copy of the split files with one line dropped: parsed, and reported.
  user_splits = tmp_path / "ucfTrainTestlist"
  user_splits.mkdir()
  for path in splits.official_splits_dir("ucf101").iterdir():
    lines = path.read_bytes().splitlines(keepends=True)
    (user_splits / path.name).write_bytes(
        b"".join(lines[1:]) if path.name == "testlist02.txt" else b"".join(lines))
  report = sources.dry_run("ucf101", source, user_splits, split=2)
  assert report["splits"]["test"]["listed"] == 3733
  assert report["official_split_files"] is False
  assert [m.split(" ")[0] for m in report["split_file_differences"]] == ["testlist02.txt"]
  with pytest.raises(sources.LayoutError, match=f"--splits-dir {user_splits}"):
    sources.dry_run("ucf101", source, tmp_path, split=2)


def test_dry_run_kinetics_label_folders(tmp_path):
  annotations = tmp_path / "annotations"
  annotations.mkdir()
  rows = [(f"class {c}", f"vid{c}{i}", 10 * i, 10 * i + 10)
          for c in range(2) for i in range(10)]
  (annotations / "kinetics-400_train.csv").write_text(
      "label,youtube_id,time_start,time_end,split,is_cc\n"
      + "".join(f'"{l}",{y},{s},{e},train,0\n' for l, y, s, e in rows))
  (annotations / "kinetics-400_val.csv").write_text(
      "label,youtube_id,time_start,time_end,split,is_cc\n"
      + "".join(f'"{l}",v{y},{s},{e},val,0\n' for l, y, s, e in rows[:4]))
  source = tmp_path / "k400"
  train = [f"train/{l.replace(' ', '_')}/{y}_{s:06d}_{e:06d}.mp4" for l, y, s, e in rows]
  val = [f"validate/v{y}_{s:06d}_{e:06d}.mp4" for _, y, s, e in rows[:4]]
  _touch_all(source, train[1:] + val)  # One train clip missing: 1/24 < 10%.
  report = sources.dry_run("kinetics400", source, annotations)
  counts = {s: (c["listed"], c["found"], c["missing"])
            for s, c in report["splits"].items()}
  assert counts == {"train": (20, 19, 1), "val": (4, 4, 0)}
  assert report["ok"] is True and report["max_missing_fraction"] == 0.10
  assert report["official_split_files"] is None and report["num_classes"] == 2
  index, find_video = sources.load_index("kinetics400", source, annotations)
  assert find_video is kinetics.find_video and len(index.entries) == 24
  with pytest.raises(sources.LayoutError, match="needs --splits-dir"):
    sources.load_index("kinetics400", source)
  with pytest.raises(sources.LayoutError, match=f"pass --source-dir {source}"):
    sources.dry_run("kinetics400", source / "train", annotations)


def test_dry_run_synthactions_splits_inside_source(tmp_path):
  # The layout `synthactions.generate` writes: videos/ and ucfTrainTestlist/ side by side.
  lists = tmp_path / synthactions.SPLITS_DIR
  lists.mkdir()
  (lists / "classInd.txt").write_text("1 Spin\r\n2 Slide\r\n")
  (lists / "trainlist01.txt").write_text(
      "Spin/v_Spin_g01_c01.avi 1\r\nSlide/v_Slide_g01_c01.avi 2\r\n")
  (lists / "testlist01.txt").write_text("Spin/v_Spin_g02_c01.avi\r\n")
  videos = tmp_path / synthactions.VIDEOS_DIR
  _touch_all(videos, ["Spin/v_Spin_g01_c01.avi", "Slide/v_Slide_g01_c01.avi"])
  for source in (tmp_path, videos):  # The generated folder or its videos/ folder.
    report = sources.dry_run("synthactions", source)
    assert report["splits"]["train"]["found"] == 2
    assert report["splits"]["test"] == dict(listed=1, found=0, missing=1,
                                            missing_examples=["Spin/v_Spin_g02_c01.avi"])
    assert report["ok"] is False and report["splits_dir"] == str(lists)
  index, find_video = sources.load_index("synthactions", tmp_path)
  assert index.name == "synthactions" and index.class_names == ["Spin", "Slide"]
  assert find_video(tmp_path, "Spin/v_Spin_g01_c01.avi") == (
      videos / "Spin" / "v_Spin_g01_c01.avi")
  with pytest.raises(sources.LayoutError, match="generated in"):
    sources.load_index("synthactions", videos / "Spin")


def test_registry_defaults():
  assert set(sources.DATASETS) == {"ucf101", "hmdb51", "kinetics400", "kinetics600",
                                   "kinetics700", "synthactions"}
  fractions = {name: spec.max_missing_fraction for name, spec in sources.DATASETS.items()}
  assert fractions == {"ucf101": 0.0, "hmdb51": 0.0, "kinetics400": 0.1,
                       "kinetics600": 0.1, "kinetics700": 0.1, "synthactions": 0.0}
  with pytest.raises(ValueError, match="known:"):
    sources.get_spec("ssv2")
  with pytest.raises(ValueError, match=r"splits \(1, 2, 3\), got 4"):
    sources.load_index("hmdb51", Path(__file__).parent, split=4)
