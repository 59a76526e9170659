"""The official split files shipped with ssvbench, their checksums, the few-shot splits.

A benchmark number is only comparable when it was computed on the official split, and
many copies of the UCF101/HMDB51 split lists in circulation were edited (line endings
converted, lines dropped, classes renamed). ssvbench therefore ships the official lists
byte for byte under `ssvbench/splits/` and records their sha256 in
`ssvbench/splits/SHA256SUMS.txt` (verifiable with `sha256sum -c`). That table is itself
pinned by a digest in this module, so neither a file nor its checksum can drift
unnoticed. When a user brings their own split files, `compare_to_official` says exactly
which files differ and whether the difference is only cosmetic (line endings, trailing
spaces) or changes the content.

The Kinetics annotation CSVs are not shipped (several MB); Kinetics users pass
`--splits-dir`.

Few-shot class splits (ARN for UCF101/HMDB51, CMN for Kinetics and Something-Something
v2) are files `{train,val,test}list03.txt` of lines `<class>/<video>`; the episodic
protocol draws its classes from them.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
from pathlib import Path
from typing import Sequence

from ssvbench import hashing

SPLITS_ROOT = Path(__file__).resolve().parent.parent / "splits"
_SUMS_FILE = SPLITS_ROOT / "SHA256SUMS.txt"
# sha256 of SHA256SUMS.txt: pins the checksum table itself.
_SUMS_FILE_SHA256 = "d37c47c400fba157991686c0a0afa11995356c53a6b9791cefc9a75e6639d3f9"

# Datasets whose official split files are shipped, and the folder each lives in.
SHIPPED_DATASETS = ("ucf101", "hmdb51", "fewshot")
# Few-shot class splits: name -> (dataset the videos come from, classes train/val/test).
FEWSHOT_SPLITS = {
    "ucf_ARN": ("ucf101", (70, 10, 21)),
    "hmdb_ARN": ("hmdb51", (31, 10, 10)),
    "kinetics_CMN": ("kinetics400", (64, 12, 24)),
    "ssv2_CMN": ("ssv2", (64, 12, 24)),
}
_FEWSHOT_PARTS = ("train", "val", "test")


@functools.cache
def official_checksums() -> dict[str, dict[str, str]]:
  """Returns the sha256 of every shipped split file.

  Returns:
    `{dataset: {file path relative to official_splits_dir(dataset): sha256}}`.

  Raises:
    RuntimeError: if the checksum table was modified or is malformed.
  """
  digest = hashing.file_sha256(_SUMS_FILE)
  if digest != _SUMS_FILE_SHA256:
    raise RuntimeError(
        f"{_SUMS_FILE} has sha256 {digest}, expected {_SUMS_FILE_SHA256}: the table of "
        "official split checksums was modified; reinstall ssvbench.")
  table: dict[str, dict[str, str]] = {name: {} for name in SHIPPED_DATASETS}
  for line_number, line in enumerate(_SUMS_FILE.read_text().splitlines(), start=1):
    checksum, _, rel_path = line.partition("  ")
    dataset, _, file_name = rel_path.partition("/")
    if len(checksum) != 64 or dataset not in table or not file_name:
      raise RuntimeError(f"{_SUMS_FILE}:{line_number}: expected '<sha256>  <dataset>/"
                         f"<file>' with dataset in {SHIPPED_DATASETS}, got {line!r}.")
    table[dataset][file_name] = checksum
  return table


def official_splits_dir(dataset: str) -> Path:
  """Returns the folder of the shipped official split files of `dataset`.

  Args:
    dataset: 'ucf101' (classInd.txt, trainlist0K.txt, testlist0K.txt), 'hmdb51' (the 153
      testTrainMulti_7030_splits files) or 'fewshot' (one folder per few-shot split).

  Returns:
    The folder, inside the installed package.

  Raises:
    ValueError: for a dataset whose split files are not shipped (Kinetics).
  """
  if dataset.startswith("kinetics"):
    raise ValueError(
        f"ssvbench does not ship the {dataset} annotation CSVs (several MB); pass the"
        " folder holding them with --splits-dir (e.g. kinetics-400_train.csv,"
        " kinetics-400_val.csv).")
  if dataset not in SHIPPED_DATASETS:
    raise ValueError(f"No official split files for {dataset!r}; shipped:"
                     f" {SHIPPED_DATASETS}.")
  return SPLITS_ROOT / dataset


def verify_shipped(dataset: str) -> list[str]:
  """Checks the installed split files of `dataset` against the checksum table.

  Returns:
    One message per missing or altered file; empty when the installation is intact.
  """
  root = official_splits_dir(dataset)
  problems = []
  for rel_path, checksum in sorted(official_checksums()[dataset].items()):
    path = root / rel_path
    if not path.is_file():
      problems.append(f"{path} is missing from the installed package.")
    elif (actual := hashing.file_sha256(path)) != checksum:
      problems.append(f"{path} has sha256 {actual}, expected {checksum}.")
  return problems


def _normalised_lines(data: bytes) -> list[bytes]:
  # What the parsers see: line endings and surrounding blanks do not matter to them.
  return [line.strip() for line in data.splitlines() if line.strip()]


def _find_official_subdir(user_dir: Path, official_names: set[str]) -> Path | None:
  """Finds the sub-folder (two levels deep at most) holding most official file names."""
  best, best_count = None, 0
  for depth_glob in ("*", "*/*"):
    for candidate in sorted(user_dir.glob(depth_glob)):
      if candidate.is_dir():
        count = sum((candidate / name).is_file() for name in official_names)
        if count > best_count:
          best, best_count = candidate, count
  return best


def compare_to_official(dataset: str, user_splits_dir: str | os.PathLike,
                        patterns: Sequence[str] | None = None) -> list[str]:
  """Compares user-supplied split files with the official ones, file by file.

  Args:
    dataset: 'ucf101' or 'hmdb51' (or 'fewshot').
    user_splits_dir: the folder the user passed with --splits-dir.
    patterns: optional fnmatch patterns restricting the comparison to the files one
      split reads (e.g. `('classInd.txt', 'trainlist01.txt', 'testlist01.txt')` or
      `('*_test_split1.txt',)`), so a folder holding only split 1 is not reported as
      missing splits 2 and 3. None compares every official file.

  Returns:
    Human-readable differences, e.g. "trainlist01.txt differs from the official file
    (sha256 ab12... instead of 8c1e...): 3 lines differ". Empty when every official file
    is present and identical. Files that differ only in line endings or trailing spaces
    are reported as such (the parsers read them identically).

  Raises:
    FileNotFoundError: if `user_splits_dir` is not a folder.
  """
  user_dir = Path(user_splits_dir)
  if not user_dir.is_dir():
    raise FileNotFoundError(f"Split folder {user_dir} does not exist or is not a folder.")
  official_root = official_splits_dir(dataset)
  table = official_checksums()[dataset]
  if patterns is not None:
    table = {name: checksum for name, checksum in table.items()
             if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)}
    if not table:
      raise ValueError(f"No official {dataset} split file matches {list(patterns)}.")
  present = [name for name in table if (user_dir / name).is_file()]
  if not present:
    message = (f"{user_dir} holds none of the {len(table)} official {dataset} split files"
               f" (e.g. {sorted(table)[0]}).")
    subdir = _find_official_subdir(user_dir, set(table))
    if subdir is not None:
      message += f" Did you mean --splits-dir {subdir}?"
    return [message]
  differences = []
  for name in sorted(table):
    user_file = user_dir / name
    if not user_file.is_file():
      differences.append(f"{name} is missing from {user_dir} (official sha256"
                         f" {table[name]}).")
      continue
    user_bytes = user_file.read_bytes()
    user_checksum = hashlib.sha256(user_bytes).hexdigest()
    if user_checksum == table[name]:
      continue
    user_lines = _normalised_lines(user_bytes)
    official_lines = _normalised_lines((official_root / name).read_bytes())
    if user_lines == official_lines:
      detail = ("only line endings or surrounding spaces differ; the parsed content is"
                " the same")
    else:
      changed = len(set(user_lines) ^ set(official_lines))
      detail = (f"{len(user_lines)} lines instead of {len(official_lines)}, {changed}"
                " lines present in only one of the two")
    differences.append(
        f"{name} differs from the official file (sha256 {user_checksum} instead of"
        f" {table[name]}): {detail}.")
  if dataset == "hmdb51":
    # The HMDB51 parser reads every <class>_test_split<k>.txt it finds: an extra one adds
    # a class.
    for extra in sorted(user_dir.glob("*_test_split[123].txt")):
      wanted = patterns is None or any(
          fnmatch.fnmatchcase(extra.name, pattern) for pattern in patterns)
      if wanted and extra.name not in table:
        differences.append(
            f"{extra.name} is not an official HMDB51 split file (extra class).")
  return differences


def _fewshot_dir(name: str) -> Path:
  if name not in FEWSHOT_SPLITS:
    matches = [known for known in FEWSHOT_SPLITS if known.lower() == name.lower()]
    if not matches:
      raise ValueError(f"Unknown few-shot split {name!r}; known:"
                       f" {sorted(FEWSHOT_SPLITS)}.")
    name = matches[0]
  return official_splits_dir("fewshot") / name


def fewshot_videos(name: str) -> dict[str, list[tuple[str, str]]]:
  """Reads the video lists of a few-shot class split.

  Args:
    name: one of `FEWSHOT_SPLITS` ('ucf_ARN', 'hmdb_ARN', 'kinetics_CMN', 'ssv2_CMN');
      case-insensitive.

  Returns:
    `{'train'|'val'|'test': [(class name, video stem), ...]}` in file order.

  Raises:
    ValueError: on a malformed line (naming file and line) or classes shared by two parts.
  """
  folder = _fewshot_dir(name)
  parts: dict[str, list[tuple[str, str]]] = {}
  for part in _FEWSHOT_PARTS:
    path = folder / f"{part}list03.txt"
    videos = []
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
      line = line.strip()
      if not line:
        continue
      # Video ids never contain '/', class names might: split at the last one.
      class_name, _, video = line.rpartition("/")
      if not class_name or not video:
        raise ValueError(f"{path}:{line_number}: expected '<class>/<video>', got"
                         f" {line!r}.")
      videos.append((class_name, video))
    parts[part] = videos
  class_sets = {part: {c for c, _ in videos} for part, videos in parts.items()}
  for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
    shared = class_sets[first] & class_sets[second]
    if shared:
      raise ValueError(f"Few-shot split {folder.name}: classes {sorted(shared)[:5]} are"
                       f" in both {first} and {second}; the class splits must be"
                       " disjoint.")
  return parts


def fewshot_class_split(name: str) -> dict[str, list[str]]:
  """Returns the disjoint train/val/test class lists of a few-shot split.

  Args:
    name: one of `FEWSHOT_SPLITS`, e.g. 'ucf_ARN' (70/10/21 classes), 'hmdb_ARN'
      (31/10/10), 'kinetics_CMN' (64/12/24).

  Returns:
    `{'train': [...], 'val': [...], 'test': [...]}`, class names in order of first
    appearance in each file.
  """
  return {part: list(dict.fromkeys(c for c, _ in videos))
          for part, videos in fewshot_videos(name).items()}
