"""The registry of video datasets: how to parse their split files and find their videos.

Every command that touches a dataset (`prepare`, `prepare --dry-run`) goes through
`load_index`, so the choice of split files (the shipped official ones unless the user
passes their own), the video lookup and the tolerated fraction of missing videos are
decided in one place. `inspect_source` (and `dry_run`, its report) checks a user's copy
without decoding anything: it counts listed, found and missing videos per split,
compares user split files with the official ones (`compare_split_files`: which files
differ, and whether the split they define is still the official one), and when nothing
is found it looks around (sub-folders, the parent) for the folder the user probably
meant, because pointing at the wrong level is the commonest mistake. `prepare` runs the
same inspection first, so a wrong layout fails before anything is decoded.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Callable, Sequence

from ssvbench.data import hmdb51
from ssvbench.data import kinetics
from ssvbench.data import splits as splits_lib
from ssvbench.data import synthactions
from ssvbench.data import ucf101
from ssvbench.data.index import SPLITS, DatasetIndex

FindVideo = Callable[[Path, str], "Path | None"]
# Videos sampled per candidate folder when looking for the folder the user meant.
_LAYOUT_SAMPLE = 50
_MAX_LAYOUT_CANDIDATES = 100
_NUM_MISSING_EXAMPLES = 5


class LayoutError(ValueError):
  """The source or split folder does not have the expected layout."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """How one dataset is read.

  Attributes:
    name: registry key.
    parse: (splits_dir, split number) -> DatasetIndex.
    find_video: (source_dir, rel_path) -> path or None.
    max_missing_fraction: default tolerated fraction of missing videos.
    official_splits: key of the shipped split files (`splits.official_splits_dir`), or
      None when nothing is shipped.
    splits_inside_source: the split files live in the source folder (SynthActions).
    split_numbers: valid values of `split`.
    video_layout: the expected source layout, for error messages.
    splits_marker: a glob that matches files of a valid split folder.
    split_file_patterns: split number -> fnmatch patterns of the official files that
      split reads (compared with a user's copy); None when nothing is shipped.
  """

  name: str
  parse: Callable[[Path, int], DatasetIndex]
  find_video: FindVideo
  max_missing_fraction: float
  official_splits: str | None
  splits_inside_source: bool
  split_numbers: tuple[int, ...]
  video_layout: str
  splits_marker: str
  split_file_patterns: Callable[[int], tuple[str, ...]] | None = None


def _parse_kinetics(variant: str, splits_dir: Path, split: int) -> DatasetIndex:
  """Parses the labelled Kinetics splits present (train and/or val)."""
  del split  # Kinetics has one official split; checked by load_index.
  present = []
  for name in ("train", "val"):
    try:
      kinetics.annotation_files(splits_dir, variant, (name,))
      present.append(name)
    except FileNotFoundError:
      continue
  # Without train or val, ask for val: its error message names what was looked for.
  return kinetics.parse_kinetics(splits_dir, variant, tuple(present) or ("val",))


def _kinetics_spec(variant: str) -> DatasetSpec:
  return DatasetSpec(
      name=f"kinetics{variant}",
      parse=functools.partial(_parse_kinetics, variant),
      find_video=kinetics.find_video,
      max_missing_fraction=0.10,
      official_splits=None,
      splits_inside_source=False,
      split_numbers=(1,),
      video_layout="<split>/<youtube_id>_<start:06d>_<end:06d>.mp4 or"
                   " <split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4",
      splits_marker="*.csv")


def _find_synthactions_video(source_dir: Path, rel_path: str) -> Path | None:
  """Finds a SynthActions video given the generated folder or its videos/ folder."""
  return (ucf101.find_video(source_dir, rel_path)
          or ucf101.find_video(Path(source_dir) / synthactions.VIDEOS_DIR, rel_path))


DATASETS: dict[str, DatasetSpec] = {
    "ucf101": DatasetSpec(
        name="ucf101", parse=ucf101.parse_ucf101, find_video=ucf101.find_video,
        max_missing_fraction=0.0, official_splits="ucf101", splits_inside_source=False,
        split_numbers=(1, 2, 3), video_layout="<Class>/v_<Class>_gGG_cCC.avi (or flat)",
        splits_marker="classInd.txt",
        split_file_patterns=lambda split: (ucf101.CLASS_INDEX_FILE,
                                           *ucf101.list_file_names(split))),
    "hmdb51": DatasetSpec(
        name="hmdb51", parse=hmdb51.parse_hmdb51, find_video=hmdb51.find_video,
        max_missing_fraction=0.0, official_splits="hmdb51", splits_inside_source=False,
        split_numbers=(1, 2, 3), video_layout="<class>/<video>.avi (or flat)",
        splits_marker="*_test_split1.txt",
        split_file_patterns=lambda split: (f"*_test_split{split}.txt",)),
    "kinetics400": _kinetics_spec("400"),
    "kinetics600": _kinetics_spec("600"),
    "kinetics700": _kinetics_spec("700"),
    "synthactions": DatasetSpec(
        name="synthactions",
        parse=functools.partial(ucf101.parse_ucf101, dataset_name="synthactions"),
        find_video=_find_synthactions_video, max_missing_fraction=0.0,
        official_splits=None, splits_inside_source=True, split_numbers=(1,),
        video_layout=(f"{synthactions.VIDEOS_DIR}/<Class>/v_<Class>_gGG_cCC.avi and"
                      f" {synthactions.SPLITS_DIR}/ (what `generate` writes)"),
        splits_marker="classInd.txt"),
}


def get_spec(dataset: str) -> DatasetSpec:
  """Returns the registry entry of `dataset`, or a ValueError naming the known ones."""
  if dataset not in DATASETS:
    raise ValueError(f"Unknown dataset {dataset!r}; known: {sorted(DATASETS)}.")
  return DATASETS[dataset]


def _sub_folders(folder: Path) -> list[Path]:
  """Sub-folders one level deep, then two (bounded), sorted: where the data may be."""
  try:
    first = sorted(p for p in folder.iterdir() if p.is_dir())
  except OSError:
    return []
  candidates = list(first[:_MAX_LAYOUT_CANDIDATES])
  for sub in first:
    if len(candidates) >= _MAX_LAYOUT_CANDIDATES:
      break
    try:
      candidates += sorted(p for p in sub.iterdir() if p.is_dir())
    except OSError:
      continue
  return candidates[:_MAX_LAYOUT_CANDIDATES]


def resolve_splits_dir(spec: DatasetSpec, source_dir: Path, splits_dir) -> Path:
  """Returns the split folder to read: the user's, the source's or the shipped one."""
  if splits_dir is not None:
    return Path(splits_dir)
  if spec.splits_inside_source:
    # The generated folder, or its videos/ sub-folder, or a folder with the lists in it.
    for candidate in (source_dir / synthactions.SPLITS_DIR,
                      source_dir.parent / synthactions.SPLITS_DIR, source_dir):
      if any(candidate.glob(spec.splits_marker)):
        return candidate
    raise LayoutError(f"Neither {source_dir} nor {source_dir / synthactions.SPLITS_DIR}"
                      f" holds {spec.splits_marker}: is {source_dir} the folder SynthActions"
                      " was generated in?")
  if spec.official_splits is None:
    raise LayoutError(f"{spec.name} needs --splits-dir: the folder with its annotation"
                      " CSVs (ssvbench does not ship them).")
  return splits_lib.official_splits_dir(spec.official_splits)


def load_index(dataset: str, source_dir: str | os.PathLike,
               splits_dir: str | os.PathLike | None = None,
               split: int = 1) -> tuple[DatasetIndex, FindVideo]:
  """Parses a dataset's split files.

  Args:
    dataset: a key of `DATASETS`.
    source_dir: the folder holding the videos.
    splits_dir: the split/annotation folder; None uses the shipped official files
      (UCF101, HMDB51) or the ones inside `source_dir` (SynthActions). Required for
      Kinetics.
    split: official split number (1-3 for UCF101/HMDB51, 1 otherwise).

  Returns:
    (index, find_video) where `find_video(source_dir, rel_path)` locates a video.

  Raises:
    ValueError/LayoutError/FileNotFoundError: with the folder, file or line at fault.
  """
  spec = get_spec(dataset)
  if split not in spec.split_numbers:
    raise ValueError(f"{dataset} has splits {spec.split_numbers}, got {split!r}.")
  source_dir = Path(source_dir)
  if not source_dir.is_dir():
    raise LayoutError(f"Source folder {source_dir} does not exist or is not a folder.")
  folder = resolve_splits_dir(spec, source_dir, splits_dir)
  try:
    index = spec.parse(folder, split)
  except FileNotFoundError as error:
    hint = "" if "Did you mean" in str(error) else next(
        (f" Did you mean --splits-dir {c}?" for c in _sub_folders(folder)
         if any(c.glob(spec.splits_marker))), "")
    raise LayoutError(f"{error}{hint}") from error
  return index, spec.find_video


def _suggest_source_dir(spec: DatasetSpec, index: DatasetIndex,
                        source_dir: Path) -> tuple[Path, int, int] | None:
  """Finds the nearby folder where most of a sample of listed videos is found."""
  step = max(1, len(index.entries) // _LAYOUT_SAMPLE)
  sample = [entry.rel_path for entry in index.entries[::step]][:_LAYOUT_SAMPLE]
  best = None
  for candidate in _sub_folders(source_dir) + [source_dir.resolve().parent]:
    hits = sum(spec.find_video(candidate, rel_path) is not None for rel_path in sample)
    if hits and (best is None or hits > best[1]):
      best = (candidate, hits, len(sample))
  return best


def compare_split_files(dataset: str, index: DatasetIndex,
                        splits_dir: str | os.PathLike | None,
                        split: int) -> tuple[list[str], bool | None]:
  """Compares the split files an index was parsed from with the shipped official ones.

  Only the files of `split` are compared (classInd.txt, trainlist0K.txt and
  testlist0K.txt for UCF101; the 51 `<class>_test_splitK.txt` for HMDB51).

  Args:
    dataset: a key of `DATASETS`.
    index: the index parsed from `splits_dir` (`load_index`).
    splits_dir: the user's split folder, or None for the shipped files.
    split: the official split number.

  Returns:
    (differences, official): the human-readable file differences
    (`splits.compare_to_official`), and whether the parsed split equals the official
    one (True even when files differ only in line endings or spaces), or None for
    datasets without shipped split files.
  """
  spec = get_spec(dataset)
  if spec.official_splits is None:
    return [], None
  if splits_dir is None:
    return [], True
  differences = splits_lib.compare_to_official(
      spec.official_splits, splits_dir, spec.split_file_patterns(split))
  if not differences:
    return [], True
  official = spec.parse(splits_lib.official_splits_dir(spec.official_splits), split)
  same = (official.class_names == index.class_names
          and official.entries == index.entries)
  return differences, same


def split_files_warning(dataset: str, splits_dir: str | os.PathLike | None,
                        differences: list[str], official: bool | None,
                        max_listed: int = 10) -> str | None:
  """Returns the warning to print when user split files differ from the official ones.

  Args:
    dataset, splits_dir: as for `load_index`.
    differences, official: from `compare_split_files`.
    max_listed: differences listed before "... and N more".

  Returns:
    A multi-line warning naming the differing files, or None when there is none.
  """
  if not differences:
    return None
  if official:
    verdict = ("they parse to the official split (only line endings or spaces differ),"
               " so results stay comparable")
  else:
    verdict = ("the split they define is NOT the official one: results on this store"
               " are not comparable with published ones (the manifest records"
               " official_split_files=false)")
  lines = [f"warning: the {dataset} split files in {splits_dir} differ from the official"
           f" ones shipped with ssvbench; {verdict}:"]
  lines += [f"  {difference}" for difference in differences[:max_listed]]
  if len(differences) > max_listed:
    lines.append(f"  ... and {len(differences) - max_listed} more differences")
  return "\n".join(lines)


def inspect_source(dataset: str, source_dir: str | os.PathLike,
                   splits_dir: str | os.PathLike | None = None, split: int = 1, *,
                   skip_splits: Sequence[str] = ("unused",),
                   max_missing_fraction: float | None = None,
                   ) -> tuple[DatasetIndex, FindVideo, dict]:
  """Parses the split files and checks a dataset copy without decoding any video.

  Args:
    dataset, source_dir, splits_dir, split: as for `load_index`.
    skip_splits: splits that preparation will not decode (HMDB51's `unused` unless
      asked); they are counted but excluded from the missing fraction.
    max_missing_fraction: the tolerated fraction (default: the dataset's).

  Returns:
    (index, find_video, report): `load_index`'s pair and the JSON-able report of
    `dry_run`.

  Raises:
    LayoutError: when no listed video is found at all; the message names the expected
      layout and, if one is found nearby, the folder to pass instead.
  """
  spec = get_spec(dataset)
  source_dir = Path(source_dir)
  index, find_video = load_index(dataset, source_dir, splits_dir, split)
  folder = resolve_splits_dir(spec, source_dir, splits_dir)
  differences, official = compare_split_files(dataset, index, splits_dir, split)
  found = [find_video(source_dir, entry.rel_path) is not None for entry in index.entries]
  if index.entries and not any(found):
    example = source_dir / index.entries[0].rel_path
    message = (f"None of the {len(index.entries)} videos listed for {dataset} was found"
               f" under {source_dir} (expected {spec.video_layout}, e.g. {example}).")
    suggestion = _suggest_source_dir(spec, index, source_dir)
    if suggestion is not None:
      message += (f" {suggestion[1]} of {suggestion[2]} sampled videos are under"
                  f" {suggestion[0]}: pass --source-dir {suggestion[0]}.")
    raise LayoutError(message)
  per_split = {}
  for split_name in SPLITS:
    rows = [(e, f) for e, f in zip(index.entries, found) if e.split == split_name]
    if rows:
      missing = [e.rel_path for e, f in rows if not f]
      per_split[split_name] = dict(listed=len(rows), found=len(rows) - len(missing),
                                   missing=len(missing),
                                   missing_examples=missing[:_NUM_MISSING_EXAMPLES])
  num_missing = found.count(False)
  skipped = [name for name in per_split if name in skip_splits]
  wanted = [counts for name, counts in per_split.items() if name not in skipped]
  num_wanted = sum(counts["listed"] for counts in wanted)
  missing_fraction = (sum(counts["missing"] for counts in wanted) / num_wanted
                      if num_wanted else 0.0)
  if max_missing_fraction is None:
    max_missing_fraction = spec.max_missing_fraction
  report = dict(
      dataset=dataset, source_dir=str(source_dir), splits_dir=str(folder), split=split,
      num_classes=index.num_classes, official_split_files=official,
      split_file_differences=differences, splits=per_split, skipped_splits=skipped,
      listed=len(found), found=len(found) - num_missing, missing=num_missing,
      missing_fraction=missing_fraction, max_missing_fraction=max_missing_fraction,
      ok=missing_fraction <= max_missing_fraction)
  return index, find_video, report


def dry_run(dataset: str, source_dir: str | os.PathLike,
            splits_dir: str | os.PathLike | None = None, split: int = 1, *,
            skip_splits: Sequence[str] = ("unused",),
            max_missing_fraction: float | None = None) -> dict:
  """Checks a dataset copy and its split files without decoding any video.

  Args:
    dataset, source_dir, splits_dir, split: as for `load_index`.
    skip_splits, max_missing_fraction: as for `inspect_source`.

  Returns:
    A JSON-able dict: dataset, source and split folders, split number, number of
    classes, whether the split files parse to the official split
    (`official_split_files`, None without shipped files) and how their files differ,
    `splits` with per split {listed, found, missing, missing_examples}, the skipped
    splits, the totals over all listed videos, the missing fraction of the videos to
    prepare (skipped splits excluded), the tolerated fraction and `ok` (within it).

  Raises:
    LayoutError: when no listed video is found at all (see `inspect_source`).
  """
  return inspect_source(dataset, source_dir, splits_dir, split, skip_splits=skip_splits,
                        max_missing_fraction=max_missing_fraction)[2]
