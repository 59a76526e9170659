"""Kinetics-400/600/700: annotation CSVs (or SlowFast `path label` lists) to an index.

The official annotations are CSVs `label,youtube_id,time_start,time_end,split[,is_cc]`.
Their variants differ in small ways that break naive parsers: labels containing spaces
are quoted in K400 and bare in K600; K600 and K700-2020 have no `is_cc`; K700-2020 names
its validation split `validate`; the test CSVs have no `label` column at all (those clips
get label -1); copies edited on Windows have CRLF line endings. All of these are read
here, and anything else (unknown columns, short rows, non-integer times, unknown split
values) is an error naming the file, the line and the expected format.

Clip files are `<youtube_id>_<start:06d>_<end:06d>.mp4` (the downloaders' convention),
either flat in `<split>/` folders or in `<split>/<label>/` folders, where some copies
replace the label's spaces by underscores and name the validation folder `validate`.
`find_video` tries every one of these, so the index does not need to know which layout a
user has. The class list is the sorted set of train/val labels unless a classes file is
given. The leakage group is the YouTube id.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ssvbench.data.index import DatasetIndex, VideoEntry

KINETICS_NUM_CLASSES = {"400": 400, "600": 600, "700": 700}
# Split values (and folder names) as found in the wild -> ssvbench split names.
SPLIT_ALIASES = {"train": "train", "val": "val", "validate": "val", "validation": "val",
                 "test": "test"}
_FOLDER_NAMES = {"train": ("train",), "val": ("val", "validate", "validation"),
                 "test": ("test",)}
_VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm")
_REQUIRED_COLUMNS = ("youtube_id", "time_start", "time_end", "split")
_KNOWN_COLUMNS = ("label",) + _REQUIRED_COLUMNS + ("is_cc",)
_CSV_FORMAT = "label,youtube_id,time_start,time_end,split[,is_cc] (label absent for test)"
_CLIP_RE = re.compile(r"^(?P<youtube_id>.+)_(?P<start>\d{6})_(?P<end>\d{6})$")


def clip_name(youtube_id: str, time_start: int, time_end: int) -> str:
  """Returns the conventional clip file stem `<youtube_id>_<start:06d>_<end:06d>`."""
  return f"{youtube_id}_{time_start:06d}_{time_end:06d}"


def _parse_seconds(value: str, column: str, where: str) -> int:
  try:
    seconds = float(value)
  except ValueError:
    seconds = float("nan")
  if not math.isfinite(seconds) or seconds != int(seconds) or seconds < 0:
    raise ValueError(f"{where}: {column} must be a whole number of seconds >= 0, got"
                     f" {value!r}; expected {_CSV_FORMAT}.")
  return int(seconds)


def read_annotation_csv(path: str | os.PathLike) -> list[dict]:
  """Reads one Kinetics annotation CSV.

  Args:
    path: e.g. `kinetics-400_val.csv`.

  Returns:
    One dict per row, in file order: `label` (str, or None without a label), `youtube_id`,
    `time_start`, `time_end` (int seconds), `split` ('train'|'val'|'test'), `is_cc` (bool
    or None), `line` (1-based line number).

  Raises:
    ValueError: on a bad header or row, naming the file, the line and the format.
  """
  path = Path(path)
  rows = []
  # newline='' lets the csv module handle CRLF and quoted fields; utf-8-sig drops a BOM.
  with open(path, newline="", encoding="utf-8-sig") as stream:
    reader = csv.reader(stream)
    header = next(reader, None)
    columns = [name.strip() for name in header or []]
    missing = [name for name in _REQUIRED_COLUMNS if name not in columns]
    unknown = [name for name in columns if name not in _KNOWN_COLUMNS]
    if missing or unknown or len(set(columns)) != len(columns):
      raise ValueError(
          f"{path}:1: bad header {','.join(columns)!r} (missing {missing}, unknown"
          f" {unknown}); expected {_CSV_FORMAT}.")
    for row in reader:
      where = f"{path}:{reader.line_num}"
      if not any(field.strip() for field in row):
        continue
      if len(row) != len(columns):
        raise ValueError(f"{where}: {len(row)} fields instead of {len(columns)}"
                         f" ({','.join(columns)}); labels with commas must be quoted.")
      values = dict(zip(columns, (field.strip() for field in row)))
      split = SPLIT_ALIASES.get(values["split"])
      if split is None:
        raise ValueError(f"{where}: split {values['split']!r} is not one of"
                         f" {sorted(SPLIT_ALIASES)}.")
      if not values["youtube_id"] or "/" in values["youtube_id"]:
        raise ValueError(f"{where}: bad youtube_id {values['youtube_id']!r}.")
      start = _parse_seconds(values["time_start"], "time_start", where)
      end = _parse_seconds(values["time_end"], "time_end", where)
      if end <= start:
        raise ValueError(f"{where}: time_end {end} is not after time_start {start}.")
      label = values.get("label") or None
      if label is None and split != "test":
        raise ValueError(f"{where}: a {split} row needs a label; expected {_CSV_FORMAT}.")
      is_cc = values.get("is_cc")
      if is_cc not in (None, "", "0", "1"):
        raise ValueError(f"{where}: is_cc must be 0 or 1, got {is_cc!r}.")
      rows.append(dict(label=label, youtube_id=values["youtube_id"], time_start=start,
                       time_end=end, split=split,
                       is_cc=None if is_cc in (None, "") else is_cc == "1",
                       line=reader.line_num))
  return rows


def read_path_label_list(path: str | os.PathLike) -> list[tuple[str, int, int]]:
  """Reads a SlowFast-style list: one `<video path> <0-based label>` per line.

  Paths may contain spaces (the label is the last field).

  Returns:
    `[(path, label, line number)]` in file order.
  """
  path = Path(path)
  items = []
  with open(path, encoding="utf-8", newline=None) as lines:
    for line_number, line in enumerate(lines, start=1):
      if not line.strip():
        continue
      fields = line.strip().rsplit(maxsplit=1)
      if len(fields) != 2 or not fields[1].isdigit():
        raise ValueError(f"{path}:{line_number}: expected '<video path> <0-based label>',"
                         f" got {line.rstrip()!r}.")
      items.append((fields[0], int(fields[1]), line_number))
  return items


def read_classes_file(path: str | os.PathLike) -> list[str]:
  """Reads an explicit class list: a text file of one name per line, or SlowFast's JSON.

  The JSON form maps class name -> 0-based index (`kinetics_classnames.json`); names may
  be quoted there.

  Returns:
    Class names in index order.
  """
  path = Path(path)
  if path.suffix == ".json":
    mapping = json.loads(path.read_text(encoding="utf-8"))
    ordered = sorted(mapping.items(), key=lambda name_index: name_index[1])
    names = [name.strip().strip('"') for name, _ in ordered]
    if sorted(mapping.values()) != list(range(len(mapping))):
      raise ValueError(f"{path}: indices must be 0..{len(mapping) - 1}, each once.")
  else:
    lines = path.read_text(encoding="utf-8").splitlines()
    names = [line.strip().strip('"') for line in lines if line.strip()]
  if len(set(names)) != len(names):
    raise ValueError(f"{path}: a class name is listed twice.")
  return names


def _is_annotation_csv(path: Path) -> bool:
  with open(path, encoding="utf-8-sig", newline="") as stream:
    first_line = next((line for line in stream if line.strip()), "")
  return "youtube_id" in first_line


def annotation_files(folder: str | os.PathLike, variant: str,
                     splits: Sequence[str]) -> dict[str, Path]:
  """Finds the annotation file of each requested split in a folder.

  Accepted names for split `s` (val also as `validate`/`validation`):
  `kinetics-<variant>_<s>.csv`, `kinetics_<variant>_<s>.csv`, `kinetics<variant>_<s>.csv`,
  `<s>.csv` (the downloaders' and SlowFast's naming).

  Raises:
    FileNotFoundError: naming the folder, the names tried and the CSVs present.
  """
  folder = Path(folder)
  if not folder.is_dir():
    raise FileNotFoundError(f"Kinetics annotation folder {folder} does not exist.")
  found = {}
  for split in splits:
    names = [f"{prefix}{alias}.csv" for alias in _FOLDER_NAMES[split]
             for prefix in (f"kinetics-{variant}_", f"kinetics_{variant}_",
                            f"kinetics{variant}_", "")]
    matches = [folder / name for name in names if (folder / name).is_file()]
    if len(matches) > 1:
      raise ValueError(f"{folder}: several {split} annotation files"
                       f" {[m.name for m in matches]}; keep one.")
    if not matches:
      present = sorted(p.name for p in folder.glob("*.csv"))
      raise FileNotFoundError(
          f"No Kinetics-{variant} {split} annotations in {folder}: tried {names[:4]} ...,"
          f" found {present or 'no CSV'}. Wrong --variant or folder?")
    found[split] = matches[0]
  return found


def _check_classes(class_names: list[str], variant: str, source: str) -> None:
  limit = KINETICS_NUM_CLASSES[variant]
  if len(class_names) > limit:
    raise ValueError(f"{source} has {len(class_names)} classes, more than"
                     f" Kinetics-{variant}'s {limit}: wrong variant or annotation files?")


def parse_kinetics(
    annotations: str | os.PathLike | Sequence[str | os.PathLike],
    variant: str = "400",
    splits: Sequence[str] = ("train", "val"),
    classes_file: str | os.PathLike | None = None,
) -> DatasetIndex:
  """Parses Kinetics annotations (official CSVs or SlowFast lists) into an index.

  Args:
    annotations: a folder (see `annotation_files`) or a list of annotation files; rows
      whose split is not in `splits` are dropped.
    variant: '400', '600' or '700'.
    splits: subset of ('train', 'val', 'test').
    classes_file: optional explicit class list (`read_classes_file`); by default the
      sorted unique labels of the train and val rows read.

  Returns:
    A `DatasetIndex` named `kinetics<variant>`, entries by split then file order, with
    video_id `<split>/<clip>`, rel_path `<split>/<label>/<clip>.mp4` (`<split>/<clip>.mp4`
    without label; `find_video` also tries the other layouts), label -1 for unlabelled
    test rows, group = YouTube id. Identical repeated rows are kept once.
  """
  if variant not in KINETICS_NUM_CLASSES:
    raise ValueError(f"Kinetics variant must be one of {sorted(KINETICS_NUM_CLASSES)},"
                     f" got {variant!r}.")
  unknown = [s for s in splits if s not in _FOLDER_NAMES]
  if unknown or not splits:
    raise ValueError(f"splits must be a non-empty subset of ('train', 'val', 'test'), got"
                     f" {splits}.")
  if isinstance(annotations, (str, os.PathLike)) and Path(annotations).is_dir():
    files = list(annotation_files(annotations, variant, splits).values())
  elif isinstance(annotations, (str, os.PathLike)):
    files = [Path(annotations)]
  else:
    files = [Path(f) for f in annotations]
  csv_files = [f for f in files if _is_annotation_csv(f)]
  list_files = [f for f in files if f not in csv_files]
  if list_files:
    if csv_files:
      raise ValueError(f"Mixed annotation formats: CSVs {csv_files} and path-label lists"
                       f" {list_files}; pass one kind.")
    by_split = {}
    for f in list_files:
      split = SPLIT_ALIASES.get(f.stem.split("_")[-1].split("-")[-1])
      if split is None:
        raise ValueError(f"{f}: cannot tell the split of a path-label list from its name;"
                         " expected train/val/test in it (e.g. train.csv).")
      by_split[split] = f
    wanted = {s: f for s, f in by_split.items() if s in splits}
    return parse_path_label_list(wanted, variant, classes_file)
  rows = [(f, row) for f in files for row in read_annotation_csv(f)
          if row["split"] in splits]
  if classes_file is not None:
    class_names = read_classes_file(classes_file)
  else:
    labelled = {row["label"] for _, row in rows
                if row["split"] != "test" and row["label"]}
    labelled = labelled or {row["label"] for _, row in rows if row["label"]}
    class_names = sorted(labelled)
  _check_classes(class_names, variant, str(classes_file or files))
  label_of = {name: index for index, name in enumerate(class_names)}
  entries: dict[str, VideoEntry] = {}
  origin: dict[str, str] = {}
  for split in ("train", "val", "test"):
    for path, row in rows:
      if row["split"] != split:
        continue
      where = f"{path}:{row['line']}"
      if row["label"] is not None and row["label"] not in label_of:
        raise ValueError(f"{where}: label {row['label']!r} is not in the class list"
                         f" ({classes_file or 'train/val labels'}).")
      clip = clip_name(row["youtube_id"], row["time_start"], row["time_end"])
      folder = f"{split}/{row['label']}" if row["label"] is not None else split
      entry = VideoEntry(video_id=f"{split}/{clip}", rel_path=f"{folder}/{clip}.mp4",
                         label=label_of.get(row["label"], -1), split=split,
                         group=row["youtube_id"])
      previous = entries.get(entry.video_id)
      if previous is not None and previous != entry:
        raise ValueError(f"{where}: clip {clip} is listed again with a different label"
                         f" (first at {origin[entry.video_id]}).")
      entries.setdefault(entry.video_id, entry)
      origin.setdefault(entry.video_id, where)
  return DatasetIndex(name=f"kinetics{variant}", class_names=class_names,
                      entries=list(entries.values()))


def parse_path_label_list(
    lists: Mapping[str, str | os.PathLike],
    variant: str = "400",
    classes_file: str | os.PathLike | None = None,
) -> DatasetIndex:
  """Parses SlowFast-style `<path> <label>` lists, one per split.

  Args:
    lists: `{'train'|'val'|'test': list file}`; paths inside are relative to the source
      folder (or absolute).
    variant: '400', '600' or '700'; without `classes_file` the class names are the
      indices '0'..'<N-1>' of the variant's official list.
    classes_file: optional class names in index order (`read_classes_file`).

  Returns:
    A `DatasetIndex` named `kinetics<variant>`; video_id `<split>/<file stem>`, rel_path
    the listed path, group the YouTube id when the stem is `<id>_<start>_<end>` (else
    the stem).
  """
  if classes_file is not None:
    class_names = read_classes_file(classes_file)
    _check_classes(class_names, variant, str(classes_file))
  else:
    class_names = [str(index) for index in range(KINETICS_NUM_CLASSES[variant])]
  entries, origin = [], {}
  for split in ("train", "val", "test"):
    if split not in lists:
      continue
    for rel_path, label, line_number in read_path_label_list(lists[split]):
      where = f"{lists[split]}:{line_number}"
      if label >= len(class_names):
        raise ValueError(f"{where}: label {label} >= {len(class_names)} classes.")
      stem = Path(rel_path).stem
      video_id = f"{split}/{stem}"
      if video_id in origin:
        raise ValueError(f"{where}: {stem} is listed again (first at"
                         f" {origin[video_id]}).")
      origin[video_id] = where
      match = _CLIP_RE.match(stem)
      entries.append(VideoEntry(video_id=video_id, rel_path=rel_path, label=label,
                                split=split,
                                group=match["youtube_id"] if match else stem))
  return DatasetIndex(name=f"kinetics{variant}", class_names=class_names, entries=entries)


def _candidate_paths(root: Path, rel_path: str) -> Iterable[Path]:
  yield root / rel_path
  parts = Path(rel_path).parts
  stem = Path(rel_path).stem
  if (len(parts) not in (2, 3) or parts[0] not in _FOLDER_NAMES
      or not _CLIP_RE.match(stem)):
    return
  label_folders = [""]
  if len(parts) == 3:
    label_folders += [parts[1], parts[1].replace(" ", "_")]
  for split_folder in _FOLDER_NAMES[parts[0]]:
    for label_folder in dict.fromkeys(label_folders):
      for extension in _VIDEO_EXTENSIONS:
        yield root / split_folder / label_folder / f"{stem}{extension}"
  for extension in _VIDEO_EXTENSIONS:
    yield root / f"{stem}{extension}"


def find_video(source_dir: str | os.PathLike, rel_path: str) -> Path | None:
  """Locates a Kinetics clip in any of the common layouts.

  Tries `rel_path` itself, then `<split>/<clip>`, `<split>/<label>/<clip>` and
  `<split>/<label with underscores>/<clip>` with split folders val/validate/validation and
  extensions .mp4/.mkv/.webm, then `<clip>` directly in `source_dir`.

  Args:
    source_dir: the folder holding the split folders.
    rel_path: an entry's rel_path (`parse_kinetics` or `parse_path_label_list`).

  Returns:
    The path of the clip, or None if it is absent.
  """
  root = Path(source_dir)
  for candidate in _candidate_paths(root, rel_path):
    if candidate.is_file():
      return candidate
  return None
