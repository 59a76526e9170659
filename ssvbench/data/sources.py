"""The registry of video datasets: how to parse their split files and find their videos.

Every command that touches a dataset (`prepare`, `prepare --dry-run`) goes through
`load_index`, so the choice of split files (the shipped official ones unless the user
passes their own), the video lookup and the tolerated fraction of missing videos are
decided in one place. `dry_run` checks a user's copy without decoding anything: it counts
listed, found and missing videos per split, compares user split files with the official
ones, and when nothing is found it looks around (sub-folders, the parent) for the folder
the user probably meant, because pointing at the wrong level is the commonest mistake.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Callable

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
        splits_marker="classInd.txt"),
    "hmdb51": DatasetSpec(
        name="hmdb51", parse=hmdb51.parse_hmdb51, find_video=hmdb51.find_video,
        max_missing_fraction=0.0, official_splits="hmdb51", splits_inside_source=False,
        split_numbers=(1, 2, 3), video_layout="<class>/<video>.avi (or flat)",
        splits_marker="*_test_split1.txt"),
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


def dry_run(dataset: str, source_dir: str | os.PathLike,
            splits_dir: str | os.PathLike | None = None, split: int = 1) -> dict:
  """Checks a dataset copy and its split files without decoding any video.

  Args:
    dataset, source_dir, splits_dir, split: as for `load_index`.

  Returns:
    A JSON-able dict: dataset, source and split folders, split number, number of
    classes, whether the split files are the official ones and how they differ,
    `splits` with per split {listed, found, missing, missing_examples}, the totals, the
    missing fraction, the dataset's tolerated fraction and `ok` (within it).

  Raises:
    LayoutError: when no listed video is found at all; the message names the expected
      layout and, if one is found nearby, the folder to pass instead.
  """
  spec = get_spec(dataset)
  source_dir = Path(source_dir)
  index, find_video = load_index(dataset, source_dir, splits_dir, split)
  folder = resolve_splits_dir(spec, source_dir, splits_dir)
  differences = None
  if spec.official_splits is not None and splits_dir is not None:
    differences = splits_lib.compare_to_official(spec.official_splits, folder)
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
  missing_fraction = num_missing / len(found) if found else 0.0
  return dict(
      dataset=dataset, source_dir=str(source_dir), splits_dir=str(folder), split=split,
      num_classes=index.num_classes,
      official_split_files=None if spec.official_splits is None else not differences,
      split_file_differences=differences or [],
      splits=per_split, listed=len(found), found=len(found) - num_missing,
      missing=num_missing, missing_fraction=missing_fraction,
      max_missing_fraction=spec.max_missing_fraction,
      ok=missing_fraction <= spec.max_missing_fraction)
