"""Feature extraction: bit-identical across runs and device counts, padded not dropped, cached.

A randomly initialised r3d_tiny on the tiny store's 8 test videos, 2 views each, 3 videos
per device: with 1 device the split is 3 batches (the last one 2 videos + 1 padding
row), with 8 devices one batch of 24 rows, 16 of them padding.
"""

import re

import jax
import numpy as np
import pytest
from flax import nnx

from ssvbench import runs
from ssvbench.data import pipeline, store as store_lib, transforms
from ssvbench.evaluators import extract
from ssvbench.models import registry
from ssvbench.train import sharding, trainer

VIEWS = dict(num_temporal_views=2, num_spatial_crops=1, num_frames=8, frame_stride=2,
             crop_size=32)
PER_DEVICE_BATCH = 3


def random_backbone(seed: int) -> nnx.Module:
  """A random r3d_tiny in eval mode: the architecture from `build_backbone` (shapes only),
  the weights drawn in numpy (He-normal kernels, identity batch norm). Initialising
  through XLA instead costs a ~2 minute compile on a loaded 2-core CPU with a cold cache."""
  abstract = nnx.eval_shape(lambda: registry.build_backbone("r3d_tiny", rngs=nnx.Rngs(0)))
  graphdef, shapes = nnx.split(abstract)
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = re.search(r"\['(\w+)'\](?:\.value)?$", jax.tree_util.keystr(path)).group(1)
    if name == "kernel":
      fan_in = int(np.prod(leaf.shape[:-1]))
      return rng.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape).astype(leaf.dtype)
    return (np.ones if name in ("scale", "var") else np.zeros)(leaf.shape, leaf.dtype)

  model = nnx.merge(graphdef, jax.tree_util.tree_map_with_path(draw, shapes))
  model.eval()
  return model


@pytest.fixture(scope="module")
def store(tiny_store):
  return store_lib.PreparedStore(tiny_store)


@pytest.fixture(scope="module")
def backbone():
  return random_backbone(0)


def _extract(backbone, store, devices, **kwargs):
  mesh = sharding.make_mesh({"data": devices})
  return extract.extract_features(backbone, store, "test", VIEWS, mesh=mesh,
                                  per_device_batch=PER_DEVICE_BATCH, progress=False, **kwargs)


def test_bit_identical_across_runs_and_device_counts(backbone, store):
  one = _extract(backbone, store, 1)
  again = _extract(backbone, store, 1)
  eight = _extract(backbone, store, 8)
  videos = store.videos("test")
  assert len(videos) % PER_DEVICE_BATCH and len(videos) % (8 * PER_DEVICE_BATCH)  # Padded.
  assert one["features"].shape == (len(videos), 2, backbone.feature_dim)
  assert one["features"].dtype == np.float32 and np.isfinite(one["features"]).all()
  np.testing.assert_array_equal(one["features"], again["features"])
  np.testing.assert_array_equal(one["features"], eight["features"])
  for key in ("labels", "video_ids", "groups"):
    np.testing.assert_array_equal(one[key], eight[key])
  np.testing.assert_array_equal(one["video_ids"], [v["video_id"] for v in videos])
  np.testing.assert_array_equal(one["labels"], [v["label"] for v in videos])
  # Distinct videos give distinct features, so a dropped or repeated row cannot hide.
  flat = one["features"].reshape(len(videos), -1)
  assert len(np.unique(flat, axis=0)) == len(videos)


def test_every_video_once_in_store_order(backbone, store):
  """Reference: views decoded straight from each record with the pure transforms, fed
  through the same forward in batches of 3 with zero padding; row k must be video k."""
  extracted = _extract(backbone, store, 1)["features"]
  source = store.data_source("test")
  views = []
  for index in range(len(source)):
    video = pipeline.VideoRecord(source[index], index, "test")
    views.append(transforms.eval_views(video.load_frames, video.num_frames, video.height,
                                       video.width, **VIEWS))
  views = np.stack(views)
  padding = -len(views) % PER_DEVICE_BATCH
  views = np.concatenate([views, np.zeros((padding,) + views.shape[1:], np.uint8)])
  mesh = sharding.make_mesh({"data": 1})
  graphdef, state = nnx.split(backbone)
  forward = extract._make_forward(graphdef, mesh)
  expected = np.concatenate([
      np.asarray(forward(sharding.replicate(state, mesh), views[i:i + PER_DEVICE_BATCH]))
      for i in range(0, len(views), PER_DEVICE_BATCH)])[:len(source)]
  np.testing.assert_array_equal(extracted, expected)


def test_cache_serves_identical_features_keyed_by_weights(backbone, store, tmp_path,
                                                          monkeypatch):
  weights = runs.params_fingerprint(backbone)
  first = _extract(backbone, store, 8, cache_dir=tmp_path, weights_fingerprint=weights)
  (cached_file,) = tmp_path.glob("*.npz")
  assert cached_file.stem == extract.cache_key(weights, store.manifest_hash, "test", VIEWS)

  def no_decoding(*args, **kwargs):
    raise AssertionError("a cached split must not be decoded again")

  monkeypatch.setattr(extract.pipeline, "make_eval_dataset", no_decoding)
  cached = _extract(backbone, store, 1, cache_dir=tmp_path, weights_fingerprint=weights)
  np.testing.assert_array_equal(cached["features"], first["features"])
  np.testing.assert_array_equal(cached["video_ids"], first["video_ids"])
  monkeypatch.undo()

  other = random_backbone(1)
  other_weights = runs.params_fingerprint(other)
  assert other_weights != weights
  fresh = _extract(other, store, 8, cache_dir=tmp_path, weights_fingerprint=other_weights)
  assert len(list(tmp_path.glob("*.npz"))) == 2
  assert not np.array_equal(fresh["features"], first["features"])
  # The key also follows the data, the split and every view setting.
  key = extract.cache_key(weights, store.manifest_hash, "test", VIEWS)
  assert len({key,
              extract.cache_key(weights, "other-manifest", "test", VIEWS),
              extract.cache_key(weights, store.manifest_hash, "train", VIEWS),
              *(extract.cache_key(weights, store.manifest_hash, "test", dict(VIEWS, **{k: 3}))
                for k in VIEWS)}) == 3 + len(VIEWS)
  with pytest.raises(ValueError, match="fingerprint"):
    _extract(backbone, store, 8, cache_dir=tmp_path)


@pytest.mark.parametrize("damage", ["zero_bytes", "truncated", "wrong_size"])
def test_corrupt_cache_entry_is_recomputed_with_a_warning(damage, backbone, store, tmp_path,
                                                         caplog):
  weights = runs.params_fingerprint(backbone)
  first = _extract(backbone, store, 8, cache_dir=tmp_path, weights_fingerprint=weights)
  (cached_file,) = tmp_path.glob("*.npz")
  data = cached_file.read_bytes()
  if damage == "zero_bytes":  # What a crash after an unsynced rename leaves.
    cached_file.write_bytes(b"")
  elif damage == "truncated":
    cached_file.write_bytes(data[:len(data) // 2])
  else:
    np.savez(cached_file, features=first["features"][:3])
  again = _extract(backbone, store, 8, cache_dir=tmp_path, weights_fingerprint=weights)
  assert "is corrupt" in caplog.text and "recomputing" in caplog.text
  np.testing.assert_array_equal(again["features"], first["features"])
  assert cached_file.read_bytes() == data  # Rewritten whole.
  assert [p.name for p in tmp_path.iterdir()] == [cached_file.name]  # No temporary left.
