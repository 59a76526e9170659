"""Frozen features as the evaluators see them: one validated `FeatureSet` per split.

Every frozen-feature number ssvbench reports is computed from a `FeatureSet`, whether
the features came from our own extraction or from a user's `.npz` file. Validation
happens once, here, so that an evaluator never has to guess: a NaN, a label outside
the class list, a feature dimension that differs between train and test, or a video
present in both train and test is an error naming the file and what was expected,
rather than a silently wrong accuracy.

Multi-view features ([N, V, D]) keep their views; `video_features()` averages them
per video, which is how every evaluator except the diagnostics' alignment consumes
them (averaging is linear, so for the linear probe it equals averaging per-view
logits).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import zipfile
from typing import Sequence

import numpy as np

from ssvbench.data import validation as validation_lib

# Keys of the feature .npz format (`ssvbench evaluate-features`).
REQUIRED_KEYS = ("features", "labels")
OPTIONAL_KEYS = ("video_ids", "groups")


class FeatureError(ValueError):
  """Features that cannot be evaluated; the message names the source and the problem."""


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureSet:
  """Frozen features of one split.

  Attributes:
    features: float32 [N, D] (one view) or [N, V, D] (V views per video).
    labels: int64 [N], each in [0, num_classes).
    num_classes: size of the class list the labels index into.
    video_ids: optional str [N], unique; used to detect train/test overlap.
    groups: optional str [N], leakage groups for carving validation.
    source: where the features came from (a path or a description), for error messages.
  """

  features: np.ndarray
  labels: np.ndarray
  num_classes: int
  video_ids: np.ndarray | None = None
  groups: np.ndarray | None = None
  source: str = "<in memory>"

  def __post_init__(self):
    features = np.asarray(self.features)
    where = self.source
    if features.ndim not in (2, 3):
      raise FeatureError(f"{where}: 'features' must have shape [N, D] or [N, V, D], got "
                         f"shape {features.shape}.")
    if not np.issubdtype(features.dtype, np.floating):
      raise FeatureError(f"{where}: 'features' must be floating point, got {features.dtype}.")
    if min(features.shape) == 0:
      raise FeatureError(f"{where}: 'features' is empty (shape {features.shape}).")
    features = np.ascontiguousarray(features, dtype=np.float32)
    # Checked by blocks of rows: a full boolean mask of a Kinetics gallery is 0.5 GB.
    bad_rows = np.concatenate([
        start + np.nonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))[0]
        for start in range(0, len(features), 8192)
        for block in [features[start:start + 8192]]])
    if len(bad_rows):
      raise FeatureError(f"{where}: 'features' has NaN or infinite values in {len(bad_rows)} "
                         f"video(s), first at rows {bad_rows[:5].tolist()}.")
    labels = np.asarray(self.labels)
    if labels.shape != (features.shape[0],):
      raise FeatureError(f"{where}: 'labels' must have shape [{features.shape[0]}] (one per "
                         f"video), got {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
      raise FeatureError(f"{where}: 'labels' must be integers, got {labels.dtype}.")
    labels = labels.astype(np.int64)
    if self.num_classes < 1:
      raise FeatureError(f"{where}: num_classes must be positive, got {self.num_classes}.")
    outside = (labels < 0) | (labels >= self.num_classes)
    if outside.any():
      rows = np.nonzero(outside)[0]
      raise FeatureError(
          f"{where}: {len(rows)} label(s) outside the class list [0, {self.num_classes}), e.g."
          f" label {int(labels[rows[0]])} at row {int(rows[0])}.")
    object.__setattr__(self, "features", features)
    object.__setattr__(self, "labels", labels)
    for key in OPTIONAL_KEYS:
      value = getattr(self, key)
      if value is None:
        continue
      value = np.asarray(value).astype(str)
      if value.shape != labels.shape:
        raise FeatureError(f"{where}: '{key}' must have shape {labels.shape}, got {value.shape}.")
      object.__setattr__(self, key, value)
    if self.video_ids is not None:
      unique, counts = np.unique(self.video_ids, return_counts=True)
      if (counts > 1).any():
        raise FeatureError(f"{where}: 'video_ids' must be unique; {unique[counts > 1][:3].tolist()}"
                           " appear more than once.")

  @property
  def num_videos(self) -> int:
    return self.features.shape[0]

  @property
  def num_views(self) -> int:
    return 1 if self.features.ndim == 2 else self.features.shape[1]

  @property
  def dim(self) -> int:
    return self.features.shape[-1]

  def video_features(self) -> np.ndarray:
    """Returns [N, D] float32 features, views averaged per video (no copy for [N, D])."""
    if self.features.ndim == 2:
      return self.features
    return self.features.mean(axis=1, dtype=np.float32)

  def view_features(self) -> np.ndarray:
    """Returns [N, V, D] float32 features (V = 1 for single-view sets)."""
    return self.features if self.features.ndim == 3 else self.features[:, None, :]

  def leakage_groups(self) -> np.ndarray:
    """Groups for carving: `groups`, else `video_ids`, else the row index (by video)."""
    if self.groups is not None:
      return self.groups
    if self.video_ids is not None:
      return self.video_ids
    return np.arange(self.num_videos).astype(str)

  def subset(self, rows: np.ndarray, source: str | None = None) -> "FeatureSet":
    """Returns the videos selected by a boolean mask or an index array, in order."""
    pick = lambda a: None if a is None else a[rows]
    return FeatureSet(self.features[rows], self.labels[rows], self.num_classes,
                      pick(self.video_ids), pick(self.groups), source or self.source)


_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_NPY_MAGIC = b"\x93NUMPY"
_FORMAT = "an .npz written by np.savez(path, features=..., labels=...)"


def unit_rows(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
  """Rows scaled to unit L2 norm on the host, in x's dtype (a zero row stays zero): the
  one normalisation the frozen-feature evaluators use."""
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def read_npz(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """All arrays of a feature file, or a FeatureError saying why it is not one."""
  path = pathlib.Path(path)
  if not path.exists():
    raise FeatureError(f"feature file not found: {path}.")
  if not path.is_file():
    raise FeatureError(f"{path} is not a file; expected {_FORMAT}.")
  with open(path, "rb") as handle:
    head = handle.read(8)
  if not head:
    raise FeatureError(f"{path} is empty (0 bytes); expected {_FORMAT}.")
  if head.startswith(_NPY_MAGIC):
    raise FeatureError(f"{path} is a single .npy array; expected {_FORMAT} (both arrays "
                       "in one file).")
  if not head.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
    raise FeatureError(f"{path} is not an .npz file (it does not start like a zip archive); "
                       f"expected {_FORMAT}.")
  try:
    with np.load(path, allow_pickle=False) as data:
      return {key: data[key] for key in data.files}
  except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
    reason = " ".join(str(error).split()) or type(error).__name__
    if "pickle" in reason:
      reason = "it holds Python objects (e.g. strings saved as dtype=object); save plain arrays"
    raise FeatureError(f"{path} is truncated or corrupt ({reason}); expected {_FORMAT}.") \
        from None


def load_npz(path: str | pathlib.Path, num_classes: int) -> FeatureSet:
  """Loads and validates a feature file.

  Args:
    path: an .npz with `features` ([N, D] or [N, V, D] float), `labels` ([N] int) and
      optionally `video_ids` and `groups` ([N] strings).
    num_classes: size of the protocol's class list; labels must lie in [0, num_classes).

  Returns:
    The validated FeatureSet.

  Raises:
    FeatureError: a missing file or key, or any violation listed in `FeatureSet`.
  """
  path = pathlib.Path(path)
  arrays = read_npz(path)
  missing = [key for key in REQUIRED_KEYS if key not in arrays]
  if missing:
    raise FeatureError(f"{path}: missing key(s) {missing}; a feature file holds "
                       f"{list(REQUIRED_KEYS)} and optionally {list(OPTIONAL_KEYS)}, found "
                       f"{sorted(arrays)}.")
  unknown = sorted(set(arrays) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
  if unknown:
    logging.warning("%s: ignoring unknown key(s) %s.", path, unknown)
  return FeatureSet(arrays["features"], arrays["labels"], num_classes,
                    arrays.get("video_ids"), arrays.get("groups"), source=str(path))


def save_npz(path: str | pathlib.Path, feature_set: FeatureSet) -> None:
  """Writes a FeatureSet in the format `load_npz` reads."""
  arrays = {"features": feature_set.features, "labels": feature_set.labels}
  for key in OPTIONAL_KEYS:
    if getattr(feature_set, key) is not None:
      arrays[key] = getattr(feature_set, key)
  np.savez(path, **arrays)


def infer_num_classes(label_arrays: Sequence[np.ndarray]) -> int:
  """Class count when a protocol leaves it to the data: one past the largest label."""
  largest = max(int(np.max(labels)) for labels in label_arrays if len(labels))
  return largest + 1


def check_compatible(train: FeatureSet, test: FeatureSet, val: FeatureSet | None = None) -> None:
  """Checks that the splits can be evaluated together.

  Raises:
    FeatureError: different feature dimensions or class lists, or a video present in two
      splits (by `video_ids`, when both splits carry them).
  """
  named = [("train", train), ("test", test)] + ([("val", val)] if val is not None else [])
  for name, feature_set in named[1:]:
    if feature_set.dim != train.dim:
      raise FeatureError(f"feature dimension mismatch: train ({train.source}) has D={train.dim} "
                         f"but {name} ({feature_set.source}) has D={feature_set.dim}.")
    if feature_set.num_classes != train.num_classes:
      raise FeatureError(f"class list mismatch: train has {train.num_classes} classes, {name} "
                         f"has {feature_set.num_classes}.")
  for i, (name_a, set_a) in enumerate(named):
    for name_b, set_b in named[i + 1:]:
      if set_a.video_ids is None or set_b.video_ids is None:
        continue
      shared = np.intersect1d(set_a.video_ids, set_b.video_ids)
      if len(shared):
        raise FeatureError(f"{len(shared)} video(s) appear in both {name_a} ({set_a.source}) and "
                           f"{name_b} ({set_b.source}), e.g. {shared[:3].tolist()}; splits must "
                           "be disjoint.")
  if val is not None and val.num_videos == test.num_videos and np.array_equal(
      val.features, test.features):
    raise FeatureError("the validation features are identical to the test features: selecting "
                       "hyper-parameters on them would select on test.")


def carve_split(train: FeatureSet, fraction: float, seed: int) -> tuple[FeatureSet, FeatureSet]:
  """Carves validation out of train by leakage group (`ssvbench.data.validation`).

  Args:
    train: the full training split.
    fraction: fraction of each class's groups sent to validation.
    seed: carving seed.

  Returns:
    (fit, val): disjoint subsets of train whose union is train.

  Raises:
    FeatureError: if no class has two groups, so nothing can be carved without a leak.
  """
  mask = validation_lib.carve_validation(train.labels, train.leakage_groups(), fraction, seed)
  if not mask.any():
    raise FeatureError(f"{train.source}: cannot carve a validation split: no class has two or "
                       "more groups. Pass --val, or provide 'groups'/'video_ids'.")
  return (train.subset(~mask, f"{train.source} (fit part)"),
          train.subset(mask, f"{train.source} (carved validation)"))
