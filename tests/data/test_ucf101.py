"""Tests of the UCF101 split-list parser against the real official lists and bad files."""

import pathlib

import pytest

from ssvbench.data import ucf101

# The official lists in ../shared/datasets, beside the repository.
REAL_SPLITS = (pathlib.Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ucf101"
               / "ucfTrainTestlist")


@pytest.fixture(scope="module")
def real_indices():
  return {split: ucf101.parse_ucf101(REAL_SPLITS, split) for split in (1, 2, 3)}


@pytest.mark.parametrize("split, num_train, num_test",
                         [(1, 9537, 3783), (2, 9586, 3734), (3, 9624, 3696)])
def test_real_counts(real_indices, split, num_train, num_test):
  index = real_indices[split]
  assert index.name == "ucf101"
  assert index.num_classes == 101
  assert len(index.split("train")) == num_train
  assert len(index.split("test")) == num_test
  assert len(index.entries) == 13320
  assert len({e.video_id for e in index.entries}) == 13320
  # Every class appears in both splits.
  assert {e.label for e in index.split("train")} == set(range(101))
  assert {e.label for e in index.split("test")} == set(range(101))


@pytest.mark.parametrize("split", [1, 2, 3])
def test_real_groups_disjoint_and_official(real_indices, split):
  index = real_indices[split]
  train_groups = {e.group for e in index.split("train")}
  test_groups = {e.group for e in index.split("test")}
  assert not train_groups & test_groups
  # The official test groups of split k are g(7k-6)..g(7k).
  expected_test = {f"g{g:02d}" for g in range(7 * split - 6, 7 * split + 1)}
  assert {g.rsplit("_", 1)[1] for g in test_groups} == expected_test
  # A group key never spans classes.
  label_of_group = {}
  for entry in index.entries:
    assert label_of_group.setdefault(entry.group, entry.label) == entry.label


def test_real_labels_follow_class_index_not_sorted(real_indices):
  index = real_indices[1]
  names = index.class_names
  # Independent reading of classInd.txt.
  lines = (REAL_SPLITS / "classInd.txt").read_text().split()
  assert names == lines[1::2]
  assert names.index("Hammering") == 34 and names.index("HammerThrow") == 35
  assert names.index("JumpingJack") == 46 and names.index("JumpRope") == 47
  # sorted() would swap both pairs: the parser must not use it.
  by_sorting = sorted(names)
  assert by_sorting.index("HammerThrow") == 34 and by_sorting.index("Hammering") == 35
  assert by_sorting.index("JumpRope") == 46 and by_sorting.index("JumpingJack") == 47
  # Labels of the listed training lines equal the label column minus one.
  raw_train = (REAL_SPLITS / "trainlist01.txt").read_text().split()
  assert [e.label for e in index.split("train")] == [int(x) - 1 for x in raw_train[1::2]]
  for entry in index.entries:
    assert entry.rel_path.split("/")[0].lower() == names[entry.label].lower()


def test_real_entry_fields_and_order(real_indices):
  index = real_indices[1]
  first = index.entries[0]
  assert first.video_id == "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01"
  assert first.rel_path == "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"
  assert (first.label, first.split, first.group) == (0, "train", "ApplyEyeMakeup_g08")
  assert index.entries[9537].rel_path == "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
  assert index.entries[-1].video_id == "YoYo/v_YoYo_g07_c04"
  handstand = [e for e in index.entries if e.rel_path.startswith("HandstandPushups/")]
  assert handstand and all("v_HandStandPushups_" in e.rel_path for e in handstand)
  assert {e.label for e in handstand} == {index.class_names.index("HandstandPushups")}
  assert all(e.group.startswith("HandstandPushups_g") for e in handstand)


def _write_lists(directory, class_lines, train_lines, test_lines, newline="\r\n"):
  directory.mkdir(parents=True, exist_ok=True)
  for name, lines in (("classInd.txt", class_lines), ("trainlist01.txt", train_lines),
                      ("testlist01.txt", test_lines)):
    (directory / name).write_bytes((newline.join(lines) + newline).encode())
  return directory


CLASSES = ["1 Zeta", "2 alpha", "3 HandstandPushups"]
TRAIN = ["Zeta/v_Zeta_g02_c01.avi 1", "alpha/v_alpha_g03_c02.avi 2",
         "HandstandPushups/v_HandStandPushups_g04_c01.avi 3"]
TEST = ["Zeta/v_Zeta_g01_c01.avi", "alpha/v_alpha_g01_c01.avi"]


def test_small_lists_tolerate_whitespace_and_blank_lines(tmp_path):
  directory = _write_lists(tmp_path / "lists", CLASSES + [""],
                           ["", TRAIN[0] + "  ", "   "] + TRAIN[1:],
                           [TEST[0] + "\t", "", TEST[1]])
  index = ucf101.parse_ucf101(directory, dataset_name="tiny")
  assert index.name == "tiny"
  assert index.class_names == ["Zeta", "alpha", "HandstandPushups"]
  assert [(e.label, e.split, e.group) for e in index.entries] == [
      (0, "train", "Zeta_g02"), (1, "train", "alpha_g03"),
      (2, "train", "HandstandPushups_g04"), (0, "test", "Zeta_g01"),
      (1, "test", "alpha_g01")]
  assert index.entries[2].video_id == "HandstandPushups/v_HandStandPushups_g04_c01"
  # LF-only files read the same.
  lf_dir = _write_lists(tmp_path / "lf", CLASSES, TRAIN, TEST, newline="\n")
  assert ucf101.parse_ucf101(lf_dir).entries == index.entries


@pytest.mark.parametrize("file_name, lines, line_number, fragment", [
    ("trainlist01.txt", ["Zeta/v_Zeta_g02_c01.avi"], 1, "1 columns instead of 2"),
    ("trainlist01.txt", ["Zeta/v_Zeta_g02_c01.avi 1", "alpha/v_alpha_g03_c02.avi 1"], 2,
     "label 1 is class 'Zeta' but the folder is 'alpha'"),
    ("trainlist01.txt", ["Zeta/v_Zeta_g02_c01.avi x"], 1, "label 'x'"),
    ("trainlist01.txt", ["", "Zeta/v_Zeta_g02_c01.avi 4"], 2, "label '4'"),
    ("trainlist01.txt", ["Omega/v_Omega_g02_c01.avi 1"], 1, "'Omega' is not in"),
    ("trainlist01.txt", ["Zeta/v_Zeta_gXX_c01.avi 1"], 1, "v_<Class>_gGG_cCC"),
    ("trainlist01.txt", ["Zeta/v_alpha_g02_c01.avi 1"], 1, "does not match"),
    ("trainlist01.txt", ["v_Zeta_g02_c01.avi 1"], 1, "'<Class>/<file>'"),
    ("testlist01.txt", ["Zeta/v_Zeta_g01_c01.avi", "Zeta/v_Zeta_g01_c02.avi 1"], 2,
     "2 columns instead of 1"),
    ("testlist01.txt", ["Zeta/v_Zeta_g02_c01.avi"], 1, "already listed at"),
    ("classInd.txt", ["1 Zeta", "2 alpha extra"], 2, "3 columns instead of 2"),
    ("classInd.txt", ["1 Zeta", "1 alpha"], 2, "index 1 already used"),
    ("classInd.txt", ["1 Zeta", "2 zeta"], 2, "already listed"),
    ("classInd.txt", ["1 Zeta", "3 alpha"], 2, "not 1..N"),
])
def test_malformed_line_names_file_and_line(tmp_path, file_name, lines, line_number,
                                            fragment):
  files = {"classInd.txt": CLASSES, "trainlist01.txt": TRAIN[:1], "testlist01.txt": TEST[:1]}
  files[file_name] = lines
  directory = _write_lists(tmp_path, files["classInd.txt"], files["trainlist01.txt"],
                           files["testlist01.txt"])
  with pytest.raises(ucf101.SplitFileError) as raised:
    ucf101.parse_ucf101(directory)
  message = str(raised.value)
  assert f"{directory / file_name}:{line_number}:" in message
  assert fragment in message
  assert repr(lines[line_number - 1]) in message
  assert "expected '" in message
  assert raised.value.line_number == line_number
  assert isinstance(raised.value, ValueError)


def test_missing_files_name_expected_path(tmp_path):
  with pytest.raises(FileNotFoundError, match="nowhere"):
    ucf101.parse_ucf101(tmp_path / "nowhere")
  directory = _write_lists(tmp_path / "lists", CLASSES, TRAIN, TEST)
  with pytest.raises(FileNotFoundError, match=str(directory / "trainlist02.txt")):
    ucf101.parse_ucf101(directory, split=2)
  (directory / "classInd.txt").unlink()
  with pytest.raises(FileNotFoundError, match=str(directory / "classInd.txt")):
    ucf101.parse_ucf101(directory)
  with pytest.raises(ValueError, match="positive integer"):
    ucf101.parse_ucf101(directory, split=0)


def test_find_video_layouts(tmp_path):
  nested = tmp_path / "nested"
  (nested / "Zeta").mkdir(parents=True)
  (nested / "Zeta" / "v_Zeta_g01_c01.avi").write_bytes(b"x")
  # A copy whose folder uses the file-name spelling of the class.
  (nested / "HandStandPushups").mkdir()
  (nested / "HandStandPushups" / "v_HandStandPushups_g01_c01.avi").write_bytes(b"x")
  assert ucf101.find_video(nested, "Zeta/v_Zeta_g01_c01.avi") == (
      nested / "Zeta" / "v_Zeta_g01_c01.avi")
  assert ucf101.find_video(
      nested, "HandstandPushups/v_HandStandPushups_g01_c01.avi") == (
          nested / "HandStandPushups" / "v_HandStandPushups_g01_c01.avi")
  assert ucf101.find_video(nested, "Zeta/v_Zeta_g01_c02.avi") is None
  flat = tmp_path / "flat"
  flat.mkdir()
  (flat / "v_Zeta_g01_c01.avi").write_bytes(b"x")
  (flat / "v_HandstandPushups_g01_c01.avi").write_bytes(b"x")
  assert ucf101.find_video(flat, "Zeta/v_Zeta_g01_c01.avi") == flat / "v_Zeta_g01_c01.avi"
  assert ucf101.find_video(
      flat, "HandstandPushups/v_HandStandPushups_g01_c01.avi") == (
          flat / "v_HandstandPushups_g01_c01.avi")
  assert ucf101.find_video(flat, "Zeta/v_Zeta_g09_c01.avi") is None
  assert ucf101.find_video(tmp_path / "absent", "Zeta/v_Zeta_g01_c01.avi") is None
