"""UCF101 split lists (`ucfTrainTestlist/`) parsed into a `DatasetIndex`.

The official lists are the only trustworthy source of labels and splits: classInd.txt
is sorted case-insensitively, so a plain `sorted()` of the class folders swaps
Hammering/HammerThrow and JumpingJack/JumpRope and silently shifts labels. Labels are
therefore read from classInd.txt, and every listed line is checked (label column,
class folder, gGG group) so that a damaged or foreign list fails loudly with the file
and line instead of producing a plausible but wrong index.

The parser is also the reader of the SynthActions benchmark, which writes its lists in
the same format, so both travel the same path.
"""

from __future__ import annotations

import functools
import os
import pathlib
import re

from ssvbench.data.index import DatasetIndex, VideoEntry

CLASS_INDEX_FILE = "classInd.txt"
CLASS_INDEX_FORMAT = "'<1-based index> <ClassName>'"
TRAIN_FORMAT = "'<Class>/v_<Class>_gGG_cCC.avi <1-based label>'"
TEST_FORMAT = "'<Class>/v_<Class>_gGG_cCC.avi'"

# v_<Class>_gGG_cCC; the class part is greedy so that a class name with an underscore
# still leaves the last two fields to the group and clip.
_FILE_STEM = re.compile(r"^v_(?P<cls>.+)_g(?P<group>\d+)_c(?P<clip>\d+)$")


class SplitFileError(ValueError):
  """A malformed line in a UCF101-style split or class-index file."""

  def __init__(self, path: os.PathLike | str, line_number: int, line: str, problem: str,
               expected: str):
    self.path = str(path)
    self.line_number = line_number
    self.line = line
    super().__init__(
        f"{path}:{line_number}: {problem}; line was {line!r}; expected {expected}.")


def list_file_names(split: int) -> tuple[str, str]:
  """Returns the (train, test) list file names of one split, e.g. trainlist01.txt."""
  if isinstance(split, bool) or not isinstance(split, int) or split < 1:
    raise ValueError(f"UCF101 split must be a positive integer (1, 2 or 3), got {split!r}.")
  return f"trainlist{split:02d}.txt", f"testlist{split:02d}.txt"


def _read_lines(path: pathlib.Path) -> list[tuple[int, str]]:
  """Returns (1-based line number, stripped text) of the non-blank lines of a file."""
  if not path.is_file():
    raise FileNotFoundError(
        f"UCF101 split file not found: expected {path} (directory "
        f"{'exists' if path.parent.is_dir() else 'does not exist'}).")
  # utf-8-sig drops a byte-order mark some editors add; CRLF and trailing blanks go
  # with strip().
  text = path.read_bytes().decode("utf-8-sig")
  lines = []
  for number, raw in enumerate(text.split("\n"), start=1):
    stripped = raw.strip()
    if stripped:
      lines.append((number, stripped))
  return lines


def parse_class_index(path: os.PathLike | str) -> list[str]:
  """Parses classInd.txt.

  Args:
    path: the class-index file, lines `<1-based index> <ClassName>`.

  Returns:
    Class names ordered by index (so label = position, 0-based).

  Raises:
    SplitFileError: on a malformed line, a duplicate index or name, or indices that are
      not exactly 1..N.
    FileNotFoundError: if the file is missing.
  """
  path = pathlib.Path(path)
  by_index: dict[int, str] = {}
  seen_names: dict[str, int] = {}
  last_line = (0, "")
  for number, line in _read_lines(path):
    last_line = (number, line)
    fields = line.split()
    if len(fields) != 2:
      raise SplitFileError(path, number, line, f"{len(fields)} columns instead of 2",
                           CLASS_INDEX_FORMAT)
    index_text, name = fields
    if not index_text.isdigit() or int(index_text) < 1:
      raise SplitFileError(path, number, line, f"index {index_text!r} is not a positive "
                           "integer", CLASS_INDEX_FORMAT)
    index = int(index_text)
    if index in by_index:
      raise SplitFileError(path, number, line, f"index {index} already used by "
                           f"{by_index[index]!r}", CLASS_INDEX_FORMAT)
    # Folder lookup is case-insensitive, so names equal up to case would be ambiguous.
    if name.lower() in seen_names:
      raise SplitFileError(path, number, line, f"class {name!r} already listed (case-"
                           f"insensitively) at index {seen_names[name.lower()]}",
                           CLASS_INDEX_FORMAT)
    by_index[index] = name
    seen_names[name.lower()] = index
  if not by_index:
    raise SplitFileError(path, 1, "", "no classes listed", CLASS_INDEX_FORMAT)
  if sorted(by_index) != list(range(1, len(by_index) + 1)):
    missing = sorted(set(range(1, max(by_index) + 1)) - set(by_index))
    raise SplitFileError(path, last_line[0], last_line[1], f"indices are not 1..N "
                         f"(missing {missing[:5]})", CLASS_INDEX_FORMAT)
  return [by_index[i] for i in range(1, len(by_index) + 1)]


def _parse_list(path: pathlib.Path, split_name: str, with_labels: bool,
                class_names: list[str],
                first_listed: dict[str, tuple[pathlib.Path, int]]) -> list[VideoEntry]:
  """Parses one train or test list into entries, checking every field.

  `first_listed` maps each video id seen so far (in any list) to its file and line, so
  that a video listed twice is reported with both places.
  """
  label_of = {name: label for label, name in enumerate(class_names)}
  label_of_folded = {name.lower(): label for label, name in enumerate(class_names)}
  expected = TRAIN_FORMAT if with_labels else TEST_FORMAT
  expected_columns = 2 if with_labels else 1
  entries = []
  for number, line in _read_lines(path):
    fields = line.split()
    if len(fields) != expected_columns:
      raise SplitFileError(path, number, line, f"{len(fields)} columns instead of "
                           f"{expected_columns}", expected)
    rel_path = fields[0]
    parts = rel_path.split("/")
    if len(parts) != 2 or not all(parts):
      raise SplitFileError(path, number, line, "path is not '<Class>/<file>'", expected)
    folder, file_name = parts
    label = label_of.get(folder, label_of_folded.get(folder.lower()))
    if label is None:
      raise SplitFileError(path, number, line, f"class folder {folder!r} is not in "
                           f"{CLASS_INDEX_FILE}", expected)
    class_name = class_names[label]
    if with_labels:
      label_text = fields[1]
      if not label_text.isdigit() or not 1 <= int(label_text) <= len(class_names):
        raise SplitFileError(path, number, line, f"label {label_text!r} is not an "
                             f"integer in 1..{len(class_names)}", expected)
      if int(label_text) - 1 != label:
        raise SplitFileError(
            path, number, line, f"label {label_text} is class "
            f"{class_names[int(label_text) - 1]!r} but the folder is {class_name!r} "
            f"(label {label + 1})", expected)
    stem = os.path.splitext(file_name)[0]
    match = _FILE_STEM.match(stem)
    if match is None:
      raise SplitFileError(path, number, line, f"file name {file_name!r} has no "
                           "v_<Class>_gGG_cCC stem", expected)
    # Case-insensitive: the official HandstandPushups folder holds v_HandStandPushups_*.
    if match["cls"].lower() != class_name.lower():
      raise SplitFileError(path, number, line, f"file name class {match['cls']!r} does "
                           f"not match the folder class {class_name!r}", expected)
    video_id = f"{folder}/{stem}"
    if video_id in first_listed:
      first_path, first_number = first_listed[video_id]
      raise SplitFileError(path, number, line, f"video {video_id!r} already listed at "
                           f"{first_path}:{first_number}", expected)
    first_listed[video_id] = (path, number)
    entries.append(VideoEntry(
        video_id=video_id,
        rel_path=rel_path,
        label=label,
        split=split_name,
        group=f"{class_name}_g{match['group']}",
    ))
  return entries


def parse_ucf101(splits_dir: os.PathLike | str, split: int = 1, *,
                 dataset_name: str = "ucf101") -> DatasetIndex:
  """Parses classInd.txt and the train/test lists of one official split.

  Args:
    splits_dir: the `ucfTrainTestlist` directory (or a SynthActions one).
    split: 1, 2 or 3 (reads trainlist0{split}.txt and testlist0{split}.txt).
    dataset_name: name recorded in the index.

  Returns:
    A `DatasetIndex` with 0-based labels in classInd order and the entries of the train
    list followed by those of the test list, in file order. `group` is `<Class>_gGG`.

  Raises:
    FileNotFoundError: a list file is missing (the message names the expected path).
    SplitFileError: a malformed line or a video listed twice, with file, line number
      and expected format.
  """
  splits_dir = pathlib.Path(splits_dir)
  if not splits_dir.is_dir():
    raise FileNotFoundError(
        f"UCF101 split directory not found: expected {splits_dir} containing "
        f"{CLASS_INDEX_FILE}, trainlist0K.txt and testlist0K.txt.")
  train_name, test_name = list_file_names(split)
  class_names = parse_class_index(splits_dir / CLASS_INDEX_FILE)
  first_listed: dict[str, tuple[pathlib.Path, int]] = {}
  entries = (
      _parse_list(splits_dir / train_name, "train", True, class_names, first_listed)
      + _parse_list(splits_dir / test_name, "test", False, class_names, first_listed))
  return DatasetIndex(name=dataset_name, class_names=class_names, entries=entries)


@functools.lru_cache(maxsize=64)
def _folded_listing(directory: str, mtime_ns: int) -> dict[str, str]:
  """Maps lower-cased names to real names in a directory (cached per mtime)."""
  del mtime_ns  # Part of the cache key only: a changed directory is listed again.
  return {name.lower(): name for name in os.listdir(directory)}


def _find_folded(directory: pathlib.Path, name: str) -> pathlib.Path | None:
  """Finds `name` in `directory`, ignoring case; None if absent."""
  try:
    listing = _folded_listing(str(directory), directory.stat().st_mtime_ns)
  except (FileNotFoundError, NotADirectoryError):
    return None
  real = listing.get(name.lower())
  return directory / real if real is not None else None


def find_video(source_dir: os.PathLike | str, rel_path: str) -> pathlib.Path | None:
  """Locates a listed video on disk.

  Copies of UCF101 come as `<source_dir>/<Class>/<file>` or flat `<source_dir>/<file>`,
  and some spell the HandstandPushups folder or its files with a different case.

  Args:
    source_dir: the directory holding the videos.
    rel_path: the path as listed (`<Class>/<file>`).

  Returns:
    The path of the video file, or None if it is in neither layout.
  """
  source_dir = pathlib.Path(source_dir)
  folder, _, file_name = rel_path.rpartition("/")
  for candidate in (source_dir / rel_path, source_dir / file_name):
    if candidate.is_file():
      return candidate
  # Exact spellings failed: retry both layouts ignoring case (costs a directory listing).
  if folder:
    class_dir = _find_folded(source_dir, folder)
    if class_dir is not None and class_dir.is_dir():
      found = _find_folded(class_dir, file_name)
      if found is not None and found.is_file():
        return found
  found = _find_folded(source_dir, file_name)
  if found is not None and found.is_file():
    return found
  return None
