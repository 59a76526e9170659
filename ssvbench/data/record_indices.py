"""A run's training subset as a file named by its hash, not a list inside config.json.

Why: fine-tuning trains on a split minus its carved validation part. Writing every index
into config.json made the file huge at Kinetics-400 scale (~228k integers) and unreadable.
Instead the indices go to `<workdir>/record_indices/<sha256[:16]>.npy` and the config
records `{file, sha256, count}`: the config still identifies the subset exactly (a
different subset is a different hash, so a resume with other indices is refused by the
usual config comparison), and the file is checked against the hash when read.
"""

from __future__ import annotations

import hashlib
import pathlib
from typing import Any, Mapping

import numpy as np

SUBDIR = "record_indices"


def _digest(indices: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(indices, np.int64).tobytes()).hexdigest()


def reference(indices) -> dict[str, Any]:
  """The config entry naming `indices` (nothing is written)."""
  indices = np.asarray(indices, np.int64)
  digest = _digest(indices)
  return {"file": f"{SUBDIR}/{digest[:16]}.npy", "sha256": digest, "count": int(len(indices))}


def write(workdir: str | pathlib.Path, indices) -> dict[str, Any]:
  """Writes the indices file into `workdir` (idempotent) and returns its config entry."""
  entry = reference(indices)
  path = pathlib.Path(workdir) / entry["file"]
  if not path.is_file():
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, np.asarray(indices, np.int64))
    tmp.replace(path)
  return entry


def read(workdir: str | pathlib.Path, entry: Any) -> np.ndarray | None:
  """The indices a config entry names: None, a plain list (run directories written before
  the file form), or a {file, sha256, count} entry read from `workdir` and checked."""
  if entry is None:
    return None
  if not (isinstance(entry, Mapping) or hasattr(entry, "keys")):  # Mapping or ConfigDict
    return np.asarray(list(entry), np.int64)
  path = pathlib.Path(workdir) / entry["file"]
  if not path.is_file():
    raise FileNotFoundError(f"{path}: the record indices this run's config names are missing.")
  indices = np.load(path, allow_pickle=False)
  if _digest(indices) != entry["sha256"] or len(indices) != entry["count"]:
    raise ValueError(f"{path}: its content does not match the sha256 recorded in the config.")
  return indices
