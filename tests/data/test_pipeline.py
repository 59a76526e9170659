"""Tests of clip sampling, augmentation and the grain train/eval pipelines.

Videos are tiny (16 frames of 20x24) and written to a real ArrayRecord store with the
store's record format, so the tests go through the same path as prepared data. Frame
content encodes what the tests need to recover: the frame index (a uniform grey level
or the red channel) and the column (a horizontal ramp).
"""

import io
import math

import ml_collections
import msgpack
import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordWriter
from PIL import Image

from ssvbench.data import pipeline
from ssvbench.data import transforms

HEIGHT, WIDTH, LENGTH = 20, 24, 16
LEVEL_STEP = 15  # Grey level per frame index in index-encoded videos.


def _jpeg(frame: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
  return buffer.getvalue()


def _write_store(path, videos):
  """Writes [(frames uint8 [T,H,W,3], label)] in the store's record format."""
  writer = ArrayRecordWriter(str(path), "group_size:1")
  for number, (frames, label) in enumerate(videos):
    writer.write(msgpack.packb({"video_id": f"video_{number}", "label": label,
                                "fps": 25.0, "frames": [_jpeg(f) for f in frames]},
                               use_bin_type=True))
  writer.close()
  return str(path)


def _index_video(length=LENGTH, offset=0):
  """Uniform grey frames whose level encodes the frame index."""
  levels = LEVEL_STEP * np.arange(length) + offset
  return np.broadcast_to(levels[:, None, None, None].astype(np.uint8),
                         (length, HEIGHT, WIDTH, 3)).copy()


def _static_colour_video(seed):
  """All frames identical, colourful and spatially varied."""
  rng = np.random.default_rng(seed)
  small = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
  frame = np.asarray(Image.fromarray(small).resize((WIDTH, HEIGHT), Image.BILINEAR))
  return np.broadcast_to(frame, (LENGTH, HEIGHT, WIDTH, 3)).copy()


@pytest.fixture(scope="module")
def index_store(tmp_path_factory):
  """16 index-encoded videos (different offsets), label = number % 4."""
  path = tmp_path_factory.mktemp("index") / "train.array_record"
  return _write_store(path, [(_index_video(offset=n), n % 4) for n in range(16)])


@pytest.fixture(scope="module")
def colour_store(tmp_path_factory):
  """10 static colourful videos, plus one of 3 frames (shorter than any clip)."""
  videos = [(_static_colour_video(n), n % 3) for n in range(10)]
  videos.append((_static_colour_video(99)[:3], 1))
  path = tmp_path_factory.mktemp("colour") / "train.array_record"
  return _write_store(path, videos)


def _take(dataset, count):
  iterator = iter(dataset)
  return [next(iterator) for _ in range(count)]


def _train(store, **overrides):
  kwargs = dict(global_batch_size=4, seed=3, num_clips=2, num_frames=4, frame_stride=2,
                crop_size=16)
  kwargs.update(overrides)
  return pipeline.make_train_dataset(store, **kwargs)


def _assert_batches_equal(first, second):
  assert len(first) == len(second)
  for a, b in zip(first, second):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


# --------------------------------------------------------------------------- train


def test_train_shapes_dtypes_and_labels(colour_store):
  batch = _take(_train(colour_store, num_clips=3), 1)[0]
  assert batch["clips"].shape == (4, 3, 4, 16, 16, 3)
  assert batch["clips"].dtype == np.uint8
  assert batch["label"].dtype == np.int32 and batch["index"].dtype == np.int32
  labels = [(n % 3 if n < 10 else 1) for n in batch["index"]]
  np.testing.assert_array_equal(batch["label"], labels)


def test_train_same_seed_same_batches_other_seed_differs(colour_store):
  first = _take(_train(colour_store), 3)
  _assert_batches_equal(first, _take(_train(colour_store), 3))
  other = _take(_train(colour_store, seed=4), 3)
  assert any(not np.array_equal(a["clips"], b["clips"]) for a, b in zip(first, other))


def test_train_iterator_checkpoint_restores_the_stream(colour_store):
  iterator = iter(_train(colour_store))
  for _ in range(2):
    next(iterator)
  state = iterator.get_state()
  expected = [next(iterator) for _ in range(4)]  # Crosses an epoch boundary (11 videos).
  restored = iter(_train(colour_store))
  restored.set_state(state)
  _assert_batches_equal(expected, [next(restored) for _ in range(4)])


def test_epochs_visit_each_video_once_and_reshuffle(index_store):
  batches = _take(_train(index_store, augment=None), 8)  # 2 epochs of 16 videos.
  indices = np.concatenate([b["index"] for b in batches])
  assert sorted(indices[:16]) == list(range(16))
  assert sorted(indices[16:]) == list(range(16))
  assert not np.array_equal(indices[:16], indices[16:])
  unshuffled = _take(_train(index_store, augment=None, shuffle=False), 4)
  np.testing.assert_array_equal(np.concatenate([b["index"] for b in unshuffled]),
                                np.arange(16))


def test_finite_epochs_end(index_store):
  batches = list(_train(index_store, global_batch_size=8, num_epochs=1))
  assert len(batches) == 2


def test_process_shards_are_disjoint_and_rebuild_the_global_batch(index_store):
  single = _take(_train(index_store, global_batch_size=8), 2)
  shards = [_take(_train(index_store, global_batch_size=8, process_index=p,
                         process_count=2), 2) for p in range(2)]
  seen = np.concatenate([b["index"] for shard in shards for b in shard])
  assert sorted(seen) == list(range(16))  # First epoch: disjoint and covering.
  for step in range(2):
    for key in ("clips", "label", "index"):
      rebuilt = np.concatenate([shards[p][step][key] for p in range(2)])
      np.testing.assert_array_equal(rebuilt, single[step][key])


def test_bad_process_and_batch_arguments(index_store):
  with pytest.raises(ValueError, match="multiple of process_count"):
    _train(index_store, global_batch_size=5, process_count=2)
  with pytest.raises(ValueError, match="process_index"):
    _train(index_store, process_index=2, process_count=2)
  with pytest.raises(FileNotFoundError, match="missing.array_record"):
    _train(index_store.replace("train.array_record", "missing.array_record"))


def _recover_frame_indices(clips, offsets):
  """[B, clips, T] frame indices from index-encoded grey levels (no colour ops)."""
  levels = clips.astype(np.float64).mean(axis=(-3, -2, -1))
  return np.rint((levels - offsets[:, None, None]) / LEVEL_STEP).astype(int)


def test_temporal_sampling_in_the_pipeline(index_store):
  batches = _take(_train(index_store, augment=None, num_frames=4, frame_stride=2), 8)
  for batch in batches:
    frames = _recover_frame_indices(batch["clips"], batch["index"].astype(float))
    np.testing.assert_array_equal(np.diff(frames, axis=-1), 2)  # Stride kept.
    starts = frames[:, :, 0]
    assert (starts >= 0).all() and (starts + 6 <= LENGTH - 1).all()
    assert (starts[:, 1] >= starts[:, 0]).all()  # Clip 0 is the earliest.


def test_short_video_clamps_instead_of_failing(colour_store):
  batches = _take(_train(colour_store, global_batch_size=11, shuffle=False,
                         num_frames=8, frame_stride=3), 1)
  assert batches[0]["clips"].shape == (11, 2, 8, 16, 16, 3)
  indices = transforms.clip_frame_indices(0, 8, 3, 3)
  np.testing.assert_array_equal(indices, [0, 2, 2, 2, 2, 2, 2, 2])


def test_static_video_gives_identical_frames_within_each_augmented_clip(colour_store):
  batches = _take(_train(colour_store, global_batch_size=11, num_frames=4), 2)
  plain = _take(_train(colour_store, global_batch_size=11, num_frames=4,
                       augment={"color_jitter": False, "grayscale": False}), 2)
  for batch in batches:
    clips = batch["clips"].astype(int)
    np.testing.assert_array_equal(clips, np.broadcast_to(clips[:, :, :1], clips.shape))
  # Jitter did act: same crops (same draws until the colour ops), different colours.
  changed = [not np.array_equal(a["clips"][:, 0], b["clips"][:, 0])
             for a, b in zip(batches, plain)]
  assert any(changed)


def test_flip_is_shared_by_the_clips_of_a_video():
  ramp = np.broadcast_to((10 * np.arange(WIDTH)).astype(np.uint8)[None, :, None],
                         (HEIGHT, WIDTH, 3))
  frames = [Image.fromarray(np.ascontiguousarray(ramp))] * LENGTH
  config = transforms.AugmentConfig.from_spec({"enabled": False, "random_crop": True,
                                               "flip": True})
  orientations = []
  for seed in range(40):
    clips = transforms.train_views(
        np.random.default_rng(seed), lambda idx: [frames[i] for i in idx], LENGTH,
        HEIGHT, WIDTH, num_clips=4, num_frames=2, frame_stride=1, crop_size=8,
        augment=config)
    # Column means rise left to right unless the clip was flipped.
    column_means = clips[..., 0].astype(float).mean(axis=(1, 2))  # [clips, width]
    slopes = np.sign(column_means[:, -1] - column_means[:, 0])
    assert len(set(slopes)) == 1, f"seed {seed}: clips flipped independently {slopes}"
    orientations.append(slopes[0])
  assert set(orientations) == {-1, 1}


def test_disabled_augmentation_is_the_centre_square():
  frame = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
  clips = transforms.train_views(
      np.random.default_rng(1), lambda idx: [Image.fromarray(frame)] * len(idx), LENGTH,
      HEIGHT, WIDTH, num_clips=2, num_frames=2, frame_stride=1, crop_size=HEIGHT,
      augment=transforms.AugmentConfig.from_spec({"enabled": False}))
  # Crop side == frame height: a pure crop of columns [2, 22), no resampling.
  np.testing.assert_array_equal(clips[0, 0], frame[:, 2:22])


# ----------------------------------------------------------------------- sampling


def test_clip_delays_stay_in_bounds_and_decrease_linearly():
  rng = np.random.default_rng(0)
  total, span, limit = 40, 7, 20
  delays = []
  for _ in range(6000):
    starts = transforms.sample_train_clip_starts(rng, total, span, 3, max_interval=limit)
    assert starts[0] >= 0 and starts.max() + span <= total
    delays.extend(starts[1:] - starts[0])
  delays = np.array(delays)
  assert delays.min() >= 0 and delays.max() <= limit
  k = np.arange(limit + 1)
  expected = (2 * (limit - k) + 1) / (limit + 1) ** 2  # Linear decrease, sums to 1.
  assert math.isclose(expected.sum(), 1.0)
  observed = np.bincount(delays, minlength=limit + 1) / len(delays)
  np.testing.assert_allclose(observed, expected, atol=0.012)
  assert observed[:5].sum() > 5 * observed[-5:].sum()  # 185/441 vs 25/441.


def test_clip_starts_for_short_and_exact_videos():
  rng = np.random.default_rng(0)
  np.testing.assert_array_equal(transforms.sample_train_clip_starts(rng, 5, 9, 2), [0, 0])
  np.testing.assert_array_equal(transforms.sample_train_clip_starts(rng, 9, 9, 3), [0] * 3)


def test_random_crop_boxes_respect_scale_and_aspect():
  rng = np.random.default_rng(0)
  for _ in range(500):
    left, top, right, bottom = transforms.sample_crop_box(rng, 90, 120, (0.3, 1.0),
                                                          (3 / 4, 4 / 3))
    assert 0 <= left < right <= 120 and 0 <= top < bottom <= 90
    area = (right - left) * (bottom - top) / (90 * 120)
    assert 0.28 <= area <= 1.0
    assert 0.7 <= (right - left) / (bottom - top) <= 1.4


# ------------------------------------------------------------------------- colour


def _sequential_colour(image, ops):
  """Independent reference: each op on the float image, contrast from its own mean."""
  luma = np.array([0.299, 0.587, 0.114])
  yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                  [0.211, -0.523, 0.312]])
  x = image.astype(np.float64) / 255
  for name, factor in ops.ops:
    gray = (x @ luma)[..., None]
    if name == "brightness":
      x = x * factor
    elif name == "contrast":
      x = gray.mean() + factor * (x - gray.mean())
    elif name == "saturation":
      x = gray + factor * (x - gray)
    elif name == "grayscale":
      x = np.repeat(gray, 3, axis=-1)
    elif name == "hue":
      y, i, q = np.moveaxis(x @ yiq.T, -1, 0)
      angle = 2 * np.pi * factor
      i, q = i * np.cos(angle) - q * np.sin(angle), i * np.sin(angle) + q * np.cos(angle)
      x = np.stack([y, i, q], axis=-1) @ np.linalg.inv(yiq).T
  return np.clip(np.rint(x * 255), 0, 255)


def test_composed_colour_map_matches_sequential_ops():
  rng = np.random.default_rng(5)
  clip = rng.integers(40, 200, (3, 6, 7, 3), dtype=np.uint8)
  config = transforms.AugmentConfig(color_jitter_prob=1.0, grayscale_prob=0.5,
                                    brightness=0.2, contrast=0.2, saturation=0.2)
  orders = set()
  for _ in range(30):
    ops = transforms.sample_color_ops(rng, config)
    orders.add(tuple(name for name, _ in ops.ops[:4]))
    ours = transforms.apply_color_ops(clip, ops).astype(int)
    np.testing.assert_allclose(ours, _sequential_colour(clip, ops), atol=1)
  assert len(orders) > 5  # Random order really is random.


def test_hue_rotation_keeps_grey_and_full_turn_is_identity():
  grey = np.full((1, 2, 2, 3), 77, np.uint8)
  turn = transforms.ColorOps((("hue", 0.3),))
  np.testing.assert_array_equal(transforms.apply_color_ops(grey, turn), grey)
  colour = np.array([[[[200, 30, 90]]]], np.uint8)
  full = transforms.ColorOps((("hue", 0.5), ("hue", 0.5)))
  np.testing.assert_array_equal(transforms.apply_color_ops(colour, full), colour)


def test_augment_spec_parsing():
  assert transforms.AugmentConfig.from_spec(None).color_jitter is False
  fine_tune = transforms.AugmentConfig.from_spec(
      {"enabled": False, "random_crop": True, "flip": True})
  assert (fine_tune.random_crop, fine_tune.flip, fine_tune.color_jitter,
          fine_tune.grayscale) == (True, True, False, False)
  assert transforms.AugmentConfig.from_spec({"crop_scale": [0.5, 1]}).crop_scale == (0.5, 1)
  from_config_dict = transforms.AugmentConfig.from_spec(
      ml_collections.ConfigDict({"enabled": False, "flip": True, "flip_prob": 0.3}))
  assert (from_config_dict.flip, from_config_dict.flip_prob,
          from_config_dict.random_crop) == (True, 0.3, False)
  with pytest.raises(ValueError, match="unknown augment key.*'hue'"):
    transforms.AugmentConfig.from_spec({"hues": 0.1})
  with pytest.raises(ValueError, match="flip_prob"):
    transforms.AugmentConfig.from_spec({"flip_prob": 1.5})


# --------------------------------------------------------------------------- eval


def test_eval_visits_every_video_once_pads_and_masks(index_store):
  batches = list(pipeline.make_eval_dataset(index_store, batch_size=6, num_frames=4,
                                            crop_size=16))
  assert len(batches) == pipeline.num_eval_batches(16, 6) == 3
  index = np.concatenate([b["index"] for b in batches])
  mask = np.concatenate([b["mask"] for b in batches])
  np.testing.assert_array_equal(index[mask], np.arange(16))
  np.testing.assert_array_equal(mask, np.arange(18) < 16)
  assert not batches[-1]["views"][-2:].any()
  assert batches[0]["views"].shape == (6, 1, 4, 16, 16, 3)


def test_eval_process_rows_rebuild_the_global_batch(index_store):
  kwargs = dict(batch_size=6, num_temporal_views=2, num_frames=4, crop_size=16)
  single = list(pipeline.make_eval_dataset(index_store, **kwargs))
  shards = [list(pipeline.make_eval_dataset(index_store, process_index=p,
                                            process_count=2, **kwargs)) for p in range(2)]
  assert [len(s) for s in shards] == [3, 3]
  for step in range(3):
    for key in single[step]:
      rebuilt = np.concatenate([shards[0][step][key], shards[1][step][key]])
      np.testing.assert_array_equal(rebuilt, single[step][key])


def _encoded_frames(length):
  """Red = 15 * frame index, green = 10 * column: both recoverable after resizing."""
  frames = []
  for t in range(length):
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frame[..., 0] = LEVEL_STEP * t
    frame[..., 1] = 10 * np.arange(WIDTH)[None, :]
    frames.append(Image.fromarray(frame))
  return frames


def _eval_views(length, **kwargs):
  frames = _encoded_frames(length)
  return transforms.eval_views(lambda idx: [frames[i] for i in idx], length, HEIGHT,
                               WIDTH, **kwargs)


def test_eval_views_are_centred_and_deterministic():
  kwargs = dict(num_temporal_views=3, num_spatial_crops=3, num_frames=4, frame_stride=2,
                crop_size=10)
  views = _eval_views(LENGTH, **kwargs)
  np.testing.assert_array_equal(views, _eval_views(LENGTH, **kwargs))
  assert views.shape == (9, 4, 10, 10, 3)
  frames = np.rint(views[..., 0].mean(axis=(-2, -1)) / LEVEL_STEP).astype(int)
  # Span 7 in 16 frames: centres 3.5, 8, 12.5 -> starts 0, 5, 9 (first and last frame).
  expected = np.repeat([[0, 2, 4, 6], [5, 7, 9, 11], [9, 11, 13, 15]], 3, axis=0)
  np.testing.assert_array_equal(frames, expected)
  # Squares of side 20 at columns 0, 2, 4: mean column 9.5, 11.5, 13.5 (ramp 10/column).
  column = views[..., 1].astype(float).mean(axis=(1, 2, 3)) / 10
  np.testing.assert_allclose(column, np.tile([9.5, 11.5, 13.5], 3), atol=0.15)


def test_single_eval_view_centre_and_short_video_clamp():
  single = _eval_views(LENGTH, num_temporal_views=1, num_spatial_crops=1, num_frames=4,
                       frame_stride=2, crop_size=10)
  frames = np.rint(single[..., 0].mean(axis=(-2, -1)) / LEVEL_STEP).astype(int)
  np.testing.assert_array_equal(frames, [[5, 7, 9, 11]])  # Centre 8, span 7.
  short = _eval_views(3, num_temporal_views=2, num_spatial_crops=1, num_frames=4,
                      frame_stride=2, crop_size=10)
  frames = np.rint(short[..., 0].mean(axis=(-2, -1)) / LEVEL_STEP).astype(int)
  # Span 7 > 3 frames: centred at 1.5 -> start -2 -> [-2, 0, 2, 4] clamped.
  np.testing.assert_array_equal(frames, [[0, 0, 2, 2]] * 2)


def test_corrupt_record_error_names_the_record(tmp_path):
  path = tmp_path / "bad.array_record"
  writer = ArrayRecordWriter(str(path), "group_size:1")
  writer.write(msgpack.packb({"video_id": "x", "label": 0, "fps": 1.0, "frames": []},
                             use_bin_type=True))
  writer.close()
  with pytest.raises(ValueError, match=r"bad.array_record record 0 \(x\).*frames"):
    next(iter(pipeline.make_eval_dataset(str(path), batch_size=1)))


def test_worker_processes_give_the_same_batches(index_store):
  expected = _take(_train(index_store), 3)
  dataset = _train(index_store, worker_count=1)
  iterator = iter(dataset)
  try:
    _assert_batches_equal(expected, [next(iterator) for _ in range(3)])
  finally:
    iterator.close()


def test_decoded_frame_cache_changes_nothing_and_stays_bounded(colour_store, monkeypatch):
  """The process-wide frame cache: same batches with and without it; LRU within budget."""
  monkeypatch.setattr(pipeline, "FRAME_CACHE", pipeline.DecodedFrameCache(0))
  uncached = _take(_train(colour_store), 6)
  cache = pipeline.DecodedFrameCache(2**20)
  monkeypatch.setattr(pipeline, "FRAME_CACHE", cache)
  first, again = _take(_train(colour_store), 6), _take(_train(colour_store), 6)
  _assert_batches_equal(uncached, first)
  _assert_batches_equal(uncached, again)  # Served from the cache the second time.
  assert len(cache._images) > 0
  # Bounded: room for two 20x24 RGB frames; the least recently used one goes first.
  small = pipeline.DecodedFrameCache(2 * HEIGHT * WIDTH * 3)
  images = [Image.fromarray(_index_video(offset=n)[0]) for n in range(3)]
  for n, image in enumerate(images[:2]):
    small.put(bytes([n]), image)
  assert small.get(bytes([0])) is images[0]  # Now 1 is the least recently used.
  small.put(bytes([2]), images[2])
  assert small.get(bytes([1])) is None and small.get(bytes([0])) is images[0]
  assert small._bytes == 2 * HEIGHT * WIDTH * 3
