"""Per-video predictions saved beside a record, so records can be compared later.

A paired test between two methods needs to know, video by video, what each got right.
Re-running an evaluation for that is slow and, across machines, not even the same
computation; so every evaluation writes its per-unit outcomes (`stats.outcome`) to a
small sidecar file beside the results file, and the record names it and pins its hash:

    record['predictions'] = {'file': '<run>-<hash12>.predictions.npz',
                             'sha256': '<64 hex of the file>'}

`file` is relative to the directory of the results file (or of the evaluate-features
JSON) that holds the record; `hash12` is a digest of the record's identity (protocol,
manifest, checkpoint, seeds, metrics), so the same evaluation always gets the same name.

The sidecar (numpy .npz, compressed, no pickles, fixed member times so that the same
outcomes give the same bytes; an existing sidecar of the same name with other content is
never replaced: the new one gets a content-hash suffix) holds:
  * `video_ids`: str [N] test video ids (row numbers as strings when the features had
    none), in the order of the outcomes;
  * `meta`: a JSON string {'format': 1, 'metrics': {metric: {'key', 'statistic', 'unit'}}};
  * per metric, under its key `m<i>`: `m<i>_outcomes` [R, N] (uint8 for hit/miss, else
    float64), and when known `m<i>_labels` [N] and `m<i>_predicted` [R, N] (top-1);
    a metric scored on a subset of the test videos (class subsets) has `m<i>_rows`,
    its videos' positions in `video_ids`. Episode-unit metrics index episodes instead.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import re
import zipfile
from typing import Any, Mapping

import numpy as np

SIDECAR_FORMAT = 1
SUFFIX = ".predictions.npz"
_IDENTITY_FIELDS = ("run_name", "method", "backbone", "dataset", "split", "protocol",
                    "manifest_hash", "checkpoint", "seeds", "metrics", "inputs")


class SidecarError(ValueError):
  """A predictions sidecar that is missing, altered or unreadable."""


def file_sha256(path: str | os.PathLike) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as handle:
    for block in iter(lambda: handle.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def sidecar_name(record: Mapping[str, Any]) -> str:
  """Deterministic file name of a record's (or evaluate-features result's) sidecar."""
  identity = {field: record[field] for field in _IDENTITY_FIELDS if field in record}
  digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
  stem = str(record.get("run_name") or record.get("protocol", {}).get("name", "eval"))
  stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "eval"
  return f"{stem}-{digest.hexdigest()[:12]}{SUFFIX}"


def write_sidecar(directory: str | os.PathLike, name: str,
                  predictions: Mapping[str, Mapping[str, Any]],
                  video_ids: np.ndarray | None) -> dict[str, str]:
  """Writes the sidecar `directory/name`; returns {'file': name, 'sha256': ...}."""
  if not predictions:
    raise ValueError("write_sidecar: no predictions to save.")
  if os.path.isabs(name) or "/" in name or "\\" in name:
    raise ValueError(f"write_sidecar: {name!r} must be a plain file name.")
  num_units = {np.shape(p["outcomes"])[1] for p in predictions.values()
               if p.get("unit", "video") == "video" and p.get("rows") is None}
  if len(num_units) > 1:
    raise ValueError(f"write_sidecar: per-video outcomes of different lengths {num_units}.")
  arrays: dict[str, np.ndarray] = {}
  meta: dict[str, Any] = {"format": SIDECAR_FORMAT, "metrics": {}}
  for index, (metric, packed) in enumerate(sorted(predictions.items())):
    key = f"m{index}"
    outcomes = np.asarray(packed["outcomes"], np.float64)
    binary = bool(np.all((outcomes == 0) | (outcomes == 1)))
    arrays[f"{key}_outcomes"] = outcomes.astype(np.uint8) if binary else outcomes
    for field in ("labels", "predicted", "rows"):
      if packed.get(field) is not None:
        arrays[f"{key}_{field}"] = np.asarray(packed[field], np.int64)
    meta["metrics"][metric] = {"key": key, "statistic": packed["statistic"],
                               "unit": packed.get("unit", "video")}
  if video_ids is None:
    video_ids = np.arange(num_units.pop() if num_units else 0).astype(str)
  arrays["video_ids"] = np.asarray(video_ids).astype(str)
  arrays["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
  content = _npz_bytes(arrays)
  digest = hashlib.sha256(content).hexdigest()
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  path = directory / name
  if path.is_file() and file_sha256(path) != digest:
    # Never replace a sidecar another record pins by hash: take a content-named sibling.
    name = name[:-len(SUFFIX)] + f"-{digest[:8]}" + SUFFIX
    path = directory / name
  if not path.is_file():
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)
  return {"file": name, "sha256": digest}


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
  """A compressed .npz with fixed member times: the same arrays give the same bytes."""
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    for key in sorted(arrays):
      info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
      info.compress_type = zipfile.ZIP_DEFLATED
      member = io.BytesIO()
      np.lib.format.write_array(member, np.asarray(arrays[key]), allow_pickle=False)
      archive.writestr(info, member.getvalue())
  return buffer.getvalue()


def load_sidecar(path: str | os.PathLike,
                 sha256: str | None = None) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
  """Reads a sidecar: (video_ids [N], {metric: outcomes as `stats.outcome` packs}).

  Raises:
    SidecarError: missing file, hash mismatch (when `sha256` is given), bad content.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise SidecarError(f"predictions sidecar {path} does not exist.")
  if sha256 is not None and file_sha256(path) != sha256:
    raise SidecarError(f"predictions sidecar {path} does not match the record's sha256 "
                       "(altered or replaced).")
  try:
    with np.load(path, allow_pickle=False) as data:
      meta = json.loads(str(data["meta"]))
      video_ids = data["video_ids"]
      packs = {}
      for metric, info in meta["metrics"].items():
        key = info["key"]
        packed = {"outcomes": data[f"{key}_outcomes"].astype(np.float64),
                  "statistic": info["statistic"], "unit": info["unit"]}
        for field in ("labels", "predicted", "rows"):
          if f"{key}_{field}" in data:
            packed[field] = data[f"{key}_{field}"]
        packs[metric] = packed
  except (OSError, KeyError, ValueError) as error:
    raise SidecarError(f"predictions sidecar {path} is unreadable ({error}).") from None
  if meta.get("format") != SIDECAR_FORMAT:
    raise SidecarError(f"predictions sidecar {path} has format {meta.get('format')}; this "
                       f"ssvbench reads format {SIDECAR_FORMAT}.")
  return video_ids, packs


def load_for_record(record: Mapping[str, Any], base_dir: str | os.PathLike):
  """The sidecar a record names, resolved against `base_dir`, hash-checked."""
  info = record.get("predictions")
  if not info:
    raise SidecarError(f"record '{record.get('run_name', '?')}' has no predictions sidecar "
                       "(evaluated before sidecars existed, or written without one).")
  return load_sidecar(pathlib.Path(base_dir) / info["file"], info["sha256"])


def attach(record: dict[str, Any], directory: str | os.PathLike,
           predictions: Mapping[str, Mapping[str, Any]],
           video_ids: np.ndarray | None) -> dict[str, Any]:
  """Writes the sidecar of `record` into `directory` and sets record['predictions']."""
  if predictions:
    record["predictions"] = write_sidecar(directory, sidecar_name(record), predictions,
                                          video_ids)
  return record
