"""Checks of `evaluate-features` inputs and output that end in one clear line, not a traceback.

Why: a user's feature file is the input most likely to be wrong, and numpy's own errors
mislead (a text file is reported as "pickled data", a zero-byte file as EOFError, a
truncated one as BadZipFile, a `.npy` array fails inside a `with`). These checks look
at the file's first bytes and wrap every way `np.load` can fail, so each case is a
`FeatureError` naming the file and what was expected. The result file is written with
an exclusive create (a hard link of a finished temporary file), so an existing result
is never replaced unless asked, and of several concurrent runs with the same `--out`
exactly one succeeds and the others fail loudly.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import numpy as np

from ssvbench.evaluators.features import FeatureError, read_npz

def labels_of(path: str | pathlib.Path) -> np.ndarray:
  """The integer `labels` of a feature file (checked, for counting classes)."""
  arrays = read_npz(path)
  if "labels" not in arrays:
    raise FeatureError(f"{path}: missing key 'labels'; found {sorted(arrays)}.")
  labels = arrays["labels"]
  if not np.issubdtype(labels.dtype, np.integer):
    raise FeatureError(f"{path}: 'labels' must be integer class indices, got {labels.dtype} "
                       f"(e.g. {labels.ravel()[:3].tolist()}); map class names to indices.")
  if labels.size == 0:
    raise FeatureError(f"{path}: 'labels' is empty.")
  return labels


def check_out(out: str | os.PathLike | None, overwrite: bool) -> None:
  """Refuses, before any work, to replace an existing result file."""
  if out is None:
    return
  out = pathlib.Path(out)
  if out.is_dir():
    raise FeatureError(f"--out {out} is a folder; expected a file name for the result JSON.")
  if out.exists() and not overwrite:
    raise FeatureError(f"--out {out} exists; pass --overwrite to replace it, or choose "
                       "another name.")


def write_out(out: str | os.PathLike, text: str, overwrite: bool) -> None:
  """Writes `text` to `out` whole (temporary file, fsync, then link/rename).

  Without `overwrite` the final step is an exclusive hard link, which fails if `out`
  appeared meanwhile (another run with the same --out): one result, never a mix.
  """
  out = pathlib.Path(out)
  handle, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent or ".")
  try:
    with os.fdopen(handle, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    if overwrite:
      os.replace(tmp, out)
    else:
      try:
        os.link(tmp, out)
      except FileExistsError:
        raise FeatureError(f"--out {out} was written by another run meanwhile; this result "
                           "was not saved (pass --overwrite to replace it).") from None
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


def unseen_class_warnings(train, test, val=None) -> list[str]:
  """Classes of test (or val) that train never shows: no evaluator can predict them, so
  their videos count as errors. Allowed, but said (logged and recorded in the result)."""
  import logging
  seen = set(np.unique(train.labels).tolist())
  warnings = []
  for name, feature_set in (("test", test), ("val", val)):
    if feature_set is None:
      continue
    unseen = sorted(set(np.unique(feature_set.labels).tolist()) - seen)
    if unseen:
      count = int(np.isin(feature_set.labels, unseen).sum())
      warnings.append(f"{name} has {len(unseen)} class(es) absent from train "
                      f"{unseen[:10]} ({count} video(s)); they can only be scored as errors.")
      logging.warning("%s: %s", feature_set.source, warnings[-1])
  return warnings
