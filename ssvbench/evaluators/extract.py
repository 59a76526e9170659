"""Deterministic multi-view feature extraction, sharded over the mesh, with a cache.

Extraction is where benchmarks quietly lose comparability: random augmentation left on,
the last partial batch dropped, numbers that change with the device count. Here the views
are fixed (clip centres and crops from the protocol), every video is visited once (the
last batch is padded and masked), and every device always runs the same per-device
batch shape, so the features are bit-identical whether 1 or 8 devices share the work.
Features are cached on disk keyed by (weights, dataset manifest, split, view spec).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import pathlib
import tempfile
import zipfile
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from flax import nnx

from ssvbench.data import pipeline
from ssvbench.evaluators.protocol import VIEW_KEYS
from ssvbench.methods import base as methods_base
from ssvbench.models import input_norm
from ssvbench.train import sharding


def view_spec(views: Mapping[str, Any]) -> dict[str, int]:
  """The normalised view spec (the part of a protocol that determines the clips)."""
  missing = [k for k in VIEW_KEYS if k not in views]
  if missing:
    raise ValueError(f"view spec is missing {missing}; expected keys {list(VIEW_KEYS)}.")
  return {k: int(views[k]) for k in VIEW_KEYS}


def cache_key(weights_fingerprint: str, manifest_hash: str, split: str,
              views: Mapping[str, Any], norm: input_norm.InputNorm | None = None) -> str:
  """The feature cache's key. The input normalisation is part of it unless it is the
  default (so caches written before it was recorded stay valid)."""
  content = {"weights": weights_fingerprint, "manifest": manifest_hash, "split": split,
             "views": view_spec(views)}
  if norm is not None and norm != input_norm.DEFAULT:
    content["input_norm"] = norm.to_dict()
  payload = json.dumps(content, sort_keys=True)
  return hashlib.sha256(payload.encode()).hexdigest()[:24]


@functools.lru_cache(maxsize=8)
def _make_forward(graphdef, mesh):
  """One jitted forward per (architecture, mesh), shared by every split and call."""
  def forward(state, views):
    backbone = nnx.merge(graphdef, state)
    return methods_base.encode_views(backbone, views).reshape(
        views.shape[0], views.shape[1], -1)
  return jax.jit(forward, in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)),
                 out_shardings=sharding.batch_sharding(mesh))


def run_over_views(module: nnx.Module, source: Any, views: Mapping[str, Any],
                   make_forward: Callable, *, mesh, per_device_batch: int = 8,
                   progress: bool = True, description: str = "views") -> np.ndarray:
  """The one multi-view evaluation loop: `forward(state, views)` on every video of a
  record source, in source order, each video once.

  Feature extraction (`_make_forward`: [B, V, D] features) and fine-tuning's scoring
  (`ssvbench.finetune`: softmax averaged over views) share it, so both see the same
  views, batches and padding. Deterministic: fixed views, a fixed per-device batch, the
  last batch padded and masked.

  Args:
    module: the model (backbone or classifier) in eval mode.
    source: a split's record source, or a `pipeline.RecordSubset` of one.
    views: view spec (see `VIEW_KEYS`).
    make_forward: `(graphdef, mesh) -> jitted forward(state, views)` (cached per
      architecture and mesh by the caller).
    mesh: device mesh.
    per_device_batch: videos per device per call; fixed so results do not depend on the
      number of devices.
    progress: show a progress bar.
    description: progress bar label and error prefix.

  Returns:
    float32 [N, ...]: the forward's outputs of the real (unpadded) videos.
  """
  spec = view_spec(views)
  global_batch = per_device_batch * sharding.data_parallel_size(mesh)
  dataset = pipeline.make_eval_dataset(
      source, num_temporal_views=spec["num_temporal_views"],
      num_spatial_crops=spec["num_spatial_crops"], num_frames=spec["num_frames"],
      frame_stride=spec["frame_stride"], crop_size=spec["crop_size"], batch_size=global_batch,
      process_index=jax.process_index(), process_count=jax.process_count())
  graphdef, state = nnx.split(module)
  forward = make_forward(graphdef, mesh)
  state = sharding.replicate(state, mesh)
  chunks = []
  for batch in tqdm.tqdm(dataset, total=pipeline.num_eval_batches(len(source), global_batch),
                         desc=description, unit="batch", leave=False,
                         disable=not progress or jax.process_index() != 0):
    arrays = sharding.global_batch({"views": batch["views"], "mask": batch["mask"]}, mesh)
    outputs = forward(state, arrays["views"])
    chunks.append(sharding.to_host(outputs)[sharding.to_host(arrays["mask"])])
  outputs = np.concatenate(chunks).astype(np.float32)
  if len(outputs) != len(source):
    raise RuntimeError(f"{description}: got {len(outputs)} videos, expected {len(source)}.")
  return outputs


def extract_features(backbone: nnx.Module, store, split: str, views: Mapping[str, Any], *,
                     mesh=None, per_device_batch: int = 8, cache_dir: str | pathlib.Path | None = None,
                     weights_fingerprint: str | None = None, progress: bool = True) -> dict[str, np.ndarray]:
  """Extracts [N, V, D] features of every video of a split.

  Args:
    backbone: the encoder, in eval mode; its clips are normalised with its own
      `input_norm` (the run's, see ssvbench.models.input_norm).
    store: a `PreparedStore`.
    split: which split of the store.
    views: view spec (see `VIEW_KEYS`).
    mesh: device mesh (default: all devices on the data axis).
    per_device_batch: videos per device per call; fixed so results do not depend on the
      number of devices.
    cache_dir: if given, features are read from / written to `<cache_dir>/<key>.npz`.
    weights_fingerprint: identity of the weights for the cache key (required with cache_dir).
    progress: show a progress bar.

  Returns:
    dict with `features` float32 [N, V, D], `labels` int [N], `video_ids` [N], `groups` [N].
  """
  spec = view_spec(views)
  mesh = mesh if mesh is not None else sharding.make_mesh()
  videos = store.videos(split)
  meta = {
      "labels": np.asarray([v["label"] for v in videos], np.int64),
      "video_ids": np.asarray([v["video_id"] for v in videos]),
      "groups": np.asarray([v["group"] for v in videos]),
  }
  cache_file = None
  if cache_dir is not None:
    if weights_fingerprint is None:
      raise ValueError("extract_features: a cache needs the weights' fingerprint.")
    key = cache_key(weights_fingerprint, store.manifest_hash, split, spec,
                    input_norm.of(backbone))
    cache_file = pathlib.Path(cache_dir) / f"{key}.npz"
    cached = _read_cache(cache_file, len(videos))
    if cached is not None:
      logging.info("features of %s/%s from cache %s", store.dataset, split, cache_file)
      return {"features": cached, **meta}
  if not videos:
    raise ValueError(f"split {split!r} of {store.dataset} has no decoded videos.")

  features = run_over_views(backbone, store.data_source(split), spec, _make_forward,
                            mesh=mesh, per_device_batch=per_device_batch, progress=progress,
                            description=f"extract {split}")
  if cache_file is not None and jax.process_index() == 0:
    _write_cache(cache_file, features)
  return {"features": features, **meta}


def _read_cache(cache_file: pathlib.Path, num_videos: int) -> np.ndarray | None:
  """The cached features, or None when absent or unusable.

  A cache entry is a copy of what extraction computes, so a corrupt one (a zero-byte
  file left by a crash or a full disk, a truncated archive, features of the wrong size)
  is recomputed with a warning rather than failing the evaluation.
  """
  if not cache_file.is_file():
    return None
  try:
    with np.load(cache_file, allow_pickle=False) as cached:
      features = cached["features"]
    if features.ndim < 2 or len(features) != num_videos:
      raise ValueError(f"features of shape {features.shape} for {num_videos} videos")
    return features
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
    logging.warning("feature cache %s is corrupt (%s); recomputing it.", cache_file,
                    " ".join(str(error).split()) or type(error).__name__)
    cache_file.unlink(missing_ok=True)
    return None


def _write_cache(cache_file: pathlib.Path, features: np.ndarray) -> None:
  """Writes a cache entry whole: a private temporary file, fsync'd, then renamed (a rename
  of unsynced data can leave a zero-byte file after a crash)."""
  cache_file.parent.mkdir(parents=True, exist_ok=True)
  handle, tmp = tempfile.mkstemp(prefix=cache_file.stem + ".", suffix=".tmp",
                                 dir=cache_file.parent)
  try:
    with os.fdopen(handle, "wb") as f:
      np.savez(f, features=features)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, cache_file)
  except OSError as error:
    logging.warning("could not write the feature cache %s (%s); continuing without it.",
                    cache_file, error)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)
