"""HMDB51: the official 70/30 split files and the source film of every clip.

The split folder `testTrainMulti_7030_splits/` holds 153 files
`<class>_test_split{1,2,3}.txt` whose lines read `<video>.avi <id> ` (with a trailing
space); id 1 is train, 2 test and 0 unused (each split: 70/30/rest clips per class). The
class index is the position in the sorted class names.

Video names follow `<film>_<class>_<body>_<motion>_<people>_<view>_<quality>_<clip>`, the
meta tags of the HMDB51 paper: body in {f, h, u, l} (full, head, upper, lower), motion
in {cm, nm} (camera moving or not), people `np<n>`, view in {fr, ba, le, ri}, quality
in {bad, med, goo}, then the clip number. The leakage group is `<film>`, the exact text
before `_<class>_<tags>`. That is the unit the official splits respect: within a class,
no film has clips in both train and test, in any of the three splits (tests/
test_datasets.py checks it). The same film can appear in several classes, and then it
does cross train and test (133-149 films per split), so the official protocol is
film-disjoint per class, not globally. Numbered parts of one movie (`Fellowship_6`,
`Fellowship_7`) are kept apart, as the official split does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ssvbench.data.index import DatasetIndex, VideoEntry

SPLIT_OF_ID = {"1": "train", "2": "test", "0": "unused"}
_LINE_FORMAT = "'<video>.avi <id>' with id 1 (train), 2 (test) or 0 (unused)"
_SPLIT_FILE_RE = re.compile(r"^(?P<class_name>.+)_test_split(?P<split>[123])\.txt$")
# The meta-tag suffix of every HMDB51 video name (see the module docstring).
_TAGS_RE = re.compile(
    r"_[fhul]_(?:cm|nm)_np\d+_(?:fr|ba|le|ri)_(?:bad|med|goo)_\d+$")
NUM_CLASSES = 51


def source_film(video_name: str, class_name: str) -> str:
  """Returns the source film of an HMDB51 clip, its leakage group.

  Args:
    video_name: file name with or without `.avi`, e.g.
      'April_09_brush_hair_u_nm_np1_ba_goo_0.avi'.
    class_name: the clip's class, e.g. 'brush_hair'.

  Returns:
    The text before `_<class>_<tags>`, e.g. 'April_09'.

  Raises:
    ValueError: if the name does not end in `_<class>_<tags>_<clip>`.
  """
  stem = video_name[:-4] if video_name.endswith(".avi") else video_name
  match = _TAGS_RE.search(stem)
  prefix = stem[:match.start()] if match else ""
  if not match or not prefix.endswith("_" + class_name) or prefix == "_" + class_name:
    raise ValueError(
        f"HMDB51 video name {video_name!r} does not follow"
        f" '<film>_{class_name}_<body>_<cm|nm>_np<n>_<fr|ba|le|ri>_<bad|med|goo>_<clip>"
        ".avi';"
        " cannot tell its source film.")
  return prefix[:-len(class_name) - 1]


def split_files(splits_dir: str | os.PathLike, split: int) -> dict[str, Path]:
  """Finds the per-class split files of one split.

  Returns:
    `{class name: path}` sorted by class name.

  Raises:
    FileNotFoundError: if the folder holds no `<class>_test_split<split>.txt`, with a hint
      when a sub-folder does.
  """
  folder = Path(splits_dir)
  if split not in (1, 2, 3):
    raise ValueError(f"HMDB51 has splits 1, 2 and 3; got split={split!r}.")
  if not folder.is_dir():
    raise FileNotFoundError(f"HMDB51 split folder {folder} does not exist.")
  files = {}
  for path in folder.iterdir():
    match = _SPLIT_FILE_RE.match(path.name)
    if match and int(match["split"]) == split and path.is_file():
      files[match["class_name"]] = path
  if not files:
    hint = ""
    for candidate in sorted(folder.glob("*/")):
      if any(candidate.glob(f"*_test_split{split}.txt")):
        hint = f" Did you mean {candidate}?"
        break
    raise FileNotFoundError(
        f"{folder} holds no HMDB51 split files '<class>_test_split{split}.txt' (the"
        f" testTrainMulti_7030_splits folder).{hint}")
  return dict(sorted(files.items()))


def parse_split_file(path: Path, class_name: str) -> list[tuple[str, str]]:
  """Reads one `<class>_test_split<k>.txt`.

  Returns:
    `[(video file name, split name)]` in file order.

  Raises:
    ValueError: on a malformed or repeated line, naming the file and line.
  """
  videos, seen = [], {}
  with open(path, encoding="utf-8", newline=None) as lines:
    for line_number, line in enumerate(lines, start=1):
      fields = line.split()  # Drops the trailing space and any CR.
      if not fields:
        continue
      if (len(fields) != 2 or not fields[0].endswith(".avi")
          or fields[1] not in SPLIT_OF_ID):
        raise ValueError(f"{path}:{line_number}: expected {_LINE_FORMAT}, got"
                         f" {line.rstrip()!r}.")
      video, split_id = fields
      if video in seen:
        raise ValueError(f"{path}:{line_number}: {video} is listed again (first on line"
                         f" {seen[video]}).")
      seen[video] = line_number
      try:
        source_film(video, class_name)
      except ValueError as error:
        raise ValueError(f"{path}:{line_number}: {error}") from None
      videos.append((video, SPLIT_OF_ID[split_id]))
  return videos


def parse_hmdb51(splits_dir: str | os.PathLike, split: int = 1) -> DatasetIndex:
  """Parses one of the three official HMDB51 splits.

  Args:
    splits_dir: the `testTrainMulti_7030_splits` folder.
    split: 1, 2 or 3.

  Returns:
    A `DatasetIndex` named 'hmdb51' with the sorted class names and, class by class in
    file order, entries with video_id `<class>/<stem>`, rel_path `<class>/<video>.avi`,
    split 'train', 'test' or 'unused', and group = source film (see `source_film`).
  """
  files = split_files(splits_dir, split)
  class_names = list(files)
  entries = []
  for label, (class_name, path) in enumerate(files.items()):
    for video, split_name in parse_split_file(path, class_name):
      entries.append(VideoEntry(
          video_id=f"{class_name}/{video[:-4]}",
          rel_path=f"{class_name}/{video}",
          label=label,
          split=split_name,
          group=source_film(video, class_name)))
  return DatasetIndex(name="hmdb51", class_names=class_names, entries=entries)


def find_video(source_dir: str | os.PathLike, rel_path: str) -> Path | None:
  """Locates a listed HMDB51 video on disk.

  The official archives unpack to `<class>/<video>.avi`; some copies are flat. Both are
  tried, in that order.

  Args:
    source_dir: the folder holding the class folders.
    rel_path: an entry's rel_path (`<class>/<video>.avi`).

  Returns:
    The path of the video, or None if it is absent.
  """
  root = Path(source_dir)
  for candidate in (root / rel_path, root / Path(rel_path).name):
    if candidate.is_file():
      return candidate
  return None
