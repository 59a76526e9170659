"""Tests of the SynthActions generator: layout, determinism, decoding and class semantics."""

import json

import av
import numpy as np
import pytest
from scipy import stats

from ssvbench.data import synthactions, synthactions_scenes, ucf101

TINY_CLASSES = ("SquareUp", "SquareDown", "DiscGrow", "DiscShrink")


def tiny_config(seed=0, **nuisance):
  # From the one-shot v1 set, whose frames the geometric checks below segment directly;
  # test_shots_* covers the cuts of the current default.
  config = synthactions.v1_config()
  config.seed = seed
  config.classes = TINY_CLASSES
  config.num_groups = 3
  config.num_test_groups = 1
  config.clips_per_group = 2
  config.num_frames = 8
  config.resolution = 32
  config.nuisance.update(nuisance)
  return config


def decode(path):
  with av.open(str(path)) as container:
    return np.stack([frame.to_ndarray(format="rgb24")
                     for frame in container.decode(video=0)])


@pytest.fixture(scope="module")
def tiny_copy(tmp_path_factory):
  out_dir = tmp_path_factory.mktemp("synth") / "tiny"
  return out_dir, synthactions.generate(out_dir, tiny_config(), progress=False)


def test_layout_parses_as_ucf101(tiny_copy):
  out_dir, summary = tiny_copy
  assert (summary["num_videos"], summary["num_train"], summary["num_test"]) == (24, 16, 8)
  assert summary["reused"] is False
  index = ucf101.parse_ucf101(out_dir / "ucfTrainTestlist", dataset_name="synthactions")
  assert index.class_names == list(TINY_CLASSES)
  assert len(index.split("train")) == 16 and len(index.split("test")) == 8
  # Whole groups: g01 is the test group of every class, never in train.
  train_groups = {e.group for e in index.split("train")}
  test_groups = {e.group for e in index.split("test")}
  assert not train_groups & test_groups
  assert test_groups == {f"{name}_g01" for name in TINY_CLASSES}
  for entry in index.entries:
    assert entry.rel_path.split("/")[0] == TINY_CLASSES[entry.label]
    assert ucf101.find_video(out_dir / "videos", entry.rel_path) == (
        out_dir / "videos" / entry.rel_path)
  # Official formats: CRLF on every line, label column 1-based.
  for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
    raw = (out_dir / "ucfTrainTestlist" / name).read_bytes()
    assert raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n")
  first_train = (out_dir / "ucfTrainTestlist" / "trainlist01.txt").read_bytes()
  assert first_train.startswith(b"SquareUp/v_SquareUp_g02_c01.avi 1\r\n")
  assert not list(out_dir.rglob("*.partial"))


def test_videos_decode_to_configured_shape_and_match_render(tiny_copy):
  out_dir, _ = tiny_copy
  # The scene is drawn before the pixel noise, so this renders the same clips clean.
  noise_free = tiny_config(pixel_noise=0.0)
  for name in TINY_CLASSES:
    for group, clip in ((1, 1), (3, 2)):
      frames = decode(out_dir / "videos" / synthactions.video_rel_path(name, group, clip))
      assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
      clean = synthactions.render_video(noise_free, name, group, clip).astype(float)
      other = synthactions.render_video(noise_free, name, 2, 1).astype(float)
      error = np.abs(frames - clean).mean()
      # yuv420p chroma subsampling, the quantiser and the pixel noise (std 5 levels)
      # cost a few levels out of 255; another clip is far further away.
      assert error < 6.0, (name, group, clip, error)
      assert np.abs(frames - other).mean() > 5 * error


def test_metadata_and_reuse(tiny_copy, tmp_path):
  out_dir, _ = tiny_copy
  metadata = json.loads((out_dir / "synthactions.json").read_text())
  assert metadata["complete"] is True
  assert metadata["config"]["classes"] == list(TINY_CLASSES)
  assert [c["shape"] for c in metadata["classes"]] == ["square", "square", "disc", "disc"]
  assert metadata["motion_only_classes"] == list(TINY_CLASSES)
  assert synthactions.generate(out_dir, tiny_config(), progress=False)["reused"] is True
  # A different config into the same directory needs overwrite=True.
  with pytest.raises(FileExistsError, match="overwrite=True"):
    synthactions.generate(out_dir, tiny_config(seed=1), progress=False)
  other = tmp_path / "other"
  synthactions.generate(other, tiny_config(seed=1), progress=False)
  redone = synthactions.generate(other, tiny_config(seed=0), overwrite=True,
                                 progress=False)
  assert redone["reused"] is False
  same = out_dir / "videos" / "DiscGrow" / "v_DiscGrow_g02_c01.avi"
  assert (other / "videos" / "DiscGrow" / "v_DiscGrow_g02_c01.avi").read_bytes() == (
      same.read_bytes())


def test_deterministic_for_a_seed(tiny_copy, tmp_path):
  out_dir, _ = tiny_copy
  again = tmp_path / "again"
  synthactions.generate(again, tiny_config(), progress=False)
  files = sorted(p.relative_to(out_dir) for p in out_dir.rglob("*") if p.is_file())
  assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
  for rel in files:  # Byte-identical, videos included.
    assert (out_dir / rel).read_bytes() == (again / rel).read_bytes(), rel
  reseeded = tmp_path / "reseeded"
  synthactions.generate(reseeded, tiny_config(seed=7), progress=False)
  for name in TINY_CLASSES:
    rel = synthactions.video_rel_path(name, 2, 1)
    assert not np.array_equal(decode(out_dir / "videos" / rel),
                              decode(reseeded / "videos" / rel))


def test_motion_only_pairs_differ_only_in_motion():
  config = synthactions.default_config()
  attributes = {a["name"]: a for a in synthactions.class_attributes(config)}
  pairs = synthactions.motion_only_pairs(config)
  # Independent enumeration: every two classes whose names share the shape prefix.
  expected = {(a, b) for i, a in enumerate(config.classes)
              for b in config.classes[i + 1:]
              if synthactions_scenes.parse_class_name(a)[0]
              == synthactions_scenes.parse_class_name(b)[0]}
  assert {tuple(p["classes"]) for p in pairs} == expected
  for pair in pairs:
    first, second = (attributes[name] for name in pair["classes"])
    assert first["shape"] == second["shape"] == pair["shape"]
    assert first["motion"] != second["motion"]
  reversed_pairs = {tuple(p["classes"]) for p in pairs if p["time_reversed"]}
  assert reversed_pairs == {("SquareUp", "SquareDown"), ("DiscGrow", "DiscShrink"),
                            ("TriangleUp", "TriangleDown")}
  members = synthactions.motion_only_classes(config)
  assert members == [n for n in config.classes if n != "RingBlink"]
  # Default classes keep their meaning under the pipeline's horizontal flip.
  assert not any(a["mirror_sensitive"] for a in attributes.values())
  assert 10 <= len(config.classes) <= 16


def _actor_stats(frame):
  """Centroid y and area of the pixels far from the (uniform) background colour."""
  border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]]).astype(float)
  background = np.median(border, axis=0)
  mask = np.linalg.norm(frame.astype(float) - background, axis=-1) > 60
  rows = np.nonzero(mask)[0]
  return rows.mean(), mask.sum()


def test_opposite_motions_move_opposite_ways(tmp_path):
  # Nuisances off, so the actor can be segmented by colour alone.
  config = tiny_config(background_texture=0.0, pixel_noise=0.0, colour_jitter=0.0)
  synthactions.generate(tmp_path, config, progress=False)
  changes = {}
  for name in TINY_CLASSES:
    for group in (1, 2, 3):
      for clip in (1, 2):
        frames = decode(tmp_path / "videos" / synthactions.video_rel_path(name, group, clip))
        (first_y, first_area), (last_y, last_area) = map(_actor_stats, frames[[0, -1]])
        changes.setdefault(name, []).append((last_y - first_y, last_area / first_area))
  dy = {name: np.array(v)[:, 0] for name, v in changes.items()}
  area_ratio = {name: np.array(v)[:, 1] for name, v in changes.items()}
  # Image rows grow downwards; travel is 0.4 of 32 pixels, size ratio about 2.2.
  assert np.all(dy["SquareUp"] < -8) and np.all(dy["SquareDown"] > 8)
  assert np.all(np.abs(area_ratio["SquareUp"] - 1) < 0.2)
  assert np.all(area_ratio["DiscGrow"] > 2.5) and np.all(area_ratio["DiscShrink"] < 0.4)
  assert np.all(np.abs(dy["DiscGrow"]) < 2)


def test_single_frames_and_colours_carry_no_label():
  config = synthactions.default_config()
  config.num_groups, config.clips_per_group = 99, 4
  frame_picker = np.random.default_rng(0)

  def one_frame_per_video(name, attribute):
    # One random frame per video keeps the samples independent (frames of a video are
    # not), so the KS p-value is valid.
    return np.array([getattr(synthactions.video_scene(config, name, g, c), attribute)[
        frame_picker.integers(config.num_frames)]
                     for g in range(1, 100) for c in range(1, 5)])

  # Within a time-reversed pair, a frame's position or size has the same distribution.
  for first, second, attribute in (("SquareUp", "SquareDown", "centre_y"),
                                   ("DiscGrow", "DiscShrink", "radius")):
    first_values = one_frame_per_video(first, attribute)
    second_values = one_frame_per_video(second, attribute)
    assert stats.ks_2samp(first_values, second_values).pvalue > 0.01
  # While the whole trajectories do differ.
  up = synthactions.video_scene(config, "SquareUp", 1, 1).centre_y
  down = synthactions.video_scene(config, "SquareDown", 1, 1).centre_y
  assert np.all(np.diff(up) < 0) and np.all(np.diff(down) > 0)
  # Actor colour is drawn the same way for every class.
  weights = np.array([0.299, 0.587, 0.114])
  scenes = {name: [synthactions.video_scene(config, name, g, 1) for g in range(1, 100)]
            for name in ("SquareUp", "RingBlink")}
  for channel in range(3):
    assert stats.ks_2samp([s.actor_rgb[channel] for s in scenes["SquareUp"]],
                          [s.actor_rgb[channel] for s in scenes["RingBlink"]]).pvalue > 0.01
  contrast = [abs((s.actor_rgb - s.background_rgb) @ weights) for s in scenes["RingBlink"]]
  # min_contrast 0.3 at group level, minus the per-clip colour jitter.
  assert min(contrast) > 0.15


def test_bad_config_is_named():
  config = synthactions.default_config()
  config.classes = ("SquareUp", "DiscSpin")
  with pytest.raises(ValueError, match="'DiscSpin'"):
    synthactions.class_attributes(config)
  config.classes = ("SquareUp", "HexagonUp")
  with pytest.raises(ValueError, match="Motion in"):
    synthactions.class_attributes(config)
  config = synthactions.default_config().to_dict()
  config["frames"] = 3
  with pytest.raises(ValueError, match=r"unknown keys \['frames'\]"):
    synthactions.motion_only_pairs(config)
  config = synthactions.default_config()
  config.num_test_groups = config.num_groups
  with pytest.raises(ValueError, match="num_test_groups"):
    synthactions.motion_only_pairs(config)
  config = synthactions.default_config()
  config.nuisance.pixel_noise = -1.0
  with pytest.raises(ValueError, match="nuisance.pixel_noise"):
    synthactions.motion_only_pairs(config)


def test_colour_drift_and_centred_regions():
  """The opt-in nuisances: colour drifts within a video; region_spread=0 centres scenes."""
  config = tiny_config(hue_drift=0.5, gain_drift=0.5)
  scene = synthactions.video_scene(config, "SquareUp", 1, 1)
  assert scene.hue_angle[0] == -scene.hue_angle[-1] != 0  # Centred on the drawn colour.
  assert scene.gain[0] * scene.gain[-1] == pytest.approx(1.0) and scene.gain[0] != 1
  frames = synthactions.render_video(config, "SquareUp", 1, 1).astype(float)
  corner_first, corner_last = frames[0, :3, :3].mean((0, 1)), frames[-1, :3, :3].mean((0, 1))
  assert np.abs(corner_first - corner_last).max() > 10  # The background's colour moved.
  # Off by default, and then the pixels are those of a copy made before drift existed.
  plain = tiny_config()
  assert plain.nuisance.hue_drift == 0 and plain.nuisance.gain_drift == 0
  assert np.all(synthactions.video_scene(plain, "SquareUp", 1, 1).gain == 1)
  centred = tiny_config(region_spread=0.0, position_jitter=0.0)
  for group in (1, 2, 3):
    still = synthactions.video_scene(centred, "SquareUp", group, 1)
    assert np.mean(still.centre_x) == pytest.approx(0.5, abs=1e-6)
  older = plain.to_dict()
  for key in synthactions.ADDED_NUISANCE_DEFAULTS:
    del older["nuisance"][key]
  assert synthactions.class_attributes(older) == synthactions.class_attributes(plain)


def test_shots_reframe_the_scene_and_continue_the_action():
  """nuisance.shots: cuts between a group's cameras change the framing, not the action."""
  config = tiny_config(shots=2, position_jitter=1.0)
  config.classes = (*config.classes, "TriangleSpin")
  shots = synthactions.video_shots(config, "SquareUp", 1, 1)
  assert [(f.start, f.stop) for f, _ in shots] == [(0, 4), (4, 8)]
  (first_frames, first), (second_frames, second) = shots
  # Reframed: another region, size and backdrop.
  assert abs(first.centre_x.mean() - second.centre_x.mean()) > 1e-3
  assert first.radius[0] != second.radius[0]
  assert np.abs(first.background_rgb - second.background_rgb).max() > 0.01
  # The action goes on: the same upward travel per frame on both sides of the cut.
  np.testing.assert_allclose(np.diff(first.centre_y), np.diff(second.centre_y), atol=1e-12)
  assert np.all(np.diff(first.centre_y) < 0)
  # A spin keeps its angle across the cut (same start angle and speed).
  spin = synthactions.video_shots(config, "TriangleSpin", 2, 1)
  np.testing.assert_allclose(spin[0][1].angle, spin[1][1].angle)
  # A group is filmed by the same cameras: camera 1 of two clips of group 1 differs only
  # by the per-clip jitter; other groups have other cameras.
  other_clip = synthactions.video_shots(config, "SquareUp", 1, 2)[1][1]
  other_group = synthactions.video_shots(config, "SquareUp", 2, 1)[1][1]
  assert np.abs(other_clip.background_rgb - second.background_rgb).max() < 0.25
  assert not np.allclose(other_group.background_rgb, second.background_rgb)
  # The rendered video is the shots' frames, one after the other.
  frames = synthactions.render_video(config, "SquareUp", 1, 1)
  assert frames.shape[0] == config.num_frames
  corner = frames[:, :2, :2].astype(float).mean((1, 2, 3))
  assert abs(corner[:4].mean() - corner[4:].mean()) > 2  # The backdrop cuts.
  # The default has two shots; the v1 set had one.
  assert synthactions.default_config().nuisance.shots == 2
  assert synthactions.v1_config().nuisance.shots == 1
  with pytest.raises(ValueError, match="nuisance.shots"):
    synthactions.class_attributes(tiny_config(shots=0))
