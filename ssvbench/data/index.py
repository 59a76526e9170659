"""The dataset index: the one description of "which videos, with which labels, in which split".

Every source (SynthActions, UCF101, HMDB51, Kinetics) is parsed into a `DatasetIndex`;
preparation, manifests and evaluation only ever see this structure, so that all datasets
travel one path from disk to result.
"""

from __future__ import annotations

import dataclasses

# Split names used throughout ssvbench. `unused` is HMDB51's id 0.
SPLITS = ("train", "val", "test", "unused")


@dataclasses.dataclass(frozen=True)
class VideoEntry:
  """One listed video.

  Attributes:
    video_id: stable identifier, unique within the index (e.g. the path relative to the
      source directory without its extension).
    rel_path: path of the video file relative to the source directory.
    label: 0-based class index, or -1 when the split carries no label (K400 test).
    split: one of `SPLITS`.
    group: key of the leakage unit (UCF101 gGG, HMDB51 source film, Kinetics video id);
      carved validation splits never split a group.
  """

  video_id: str
  rel_path: str
  label: int
  split: str
  group: str


@dataclasses.dataclass
class DatasetIndex:
  """A parsed dataset: its class names and its listed videos, in a deterministic order."""

  name: str
  class_names: list[str]
  entries: list[VideoEntry]

  def split(self, name: str) -> list[VideoEntry]:
    """Returns the entries of one split, in index order."""
    return [e for e in self.entries if e.split == name]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)
