"""SynthActions: a small, seeded action benchmark written as real videos in UCF101 layout.

Why it exists: a benchmark suite needs a dataset that a laptop can generate, pre-train
on and evaluate in minutes, yet one where the numbers mean something. A class here is
an actor's SHAPE times its MOTION; everything else is a nuisance drawn independently of
the class: per group (a shared scene, like UCF101's gGG) the background colour and its
low-frequency texture, the actor's colour, size, orientation and region, and per clip
jitter of all of them plus speed and pixel noise; by default each video is filmed in two
camera shots that re-frame the scene while the action continues (`nuisance.shots`), so
that two clips of one video share the action and little else. Colour therefore carries
no label, so features dominated by colour (a random network) do poorly, while features
that capture shape and motion (what contrastive learning with colour augmentation is
pushed towards) do well. Classes that share a shape and differ only in motion (SquareUp vs SquareDown,
DiscGrow vs DiscShrink) cannot be told apart from one frame: they measure temporal
understanding. The default classes mean the same thing in a mirror image, because video
SSL pipelines flip horizontally (Left/Right and RotateCW/RotateCCW exist but are opt-in).

The output goes through the same path as real data: mpeg4 (Xvid-like, as UCF101) AVI
files at constant quantiser, `ucfTrainTestlist/` lists with CRLF line endings read by
`parse_ucf101`, whole groups g01..gKK in the test list. Encoding is single-threaded, so
a seed gives byte-identical files for a given libavcodec (recorded in
`synthactions.json`).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import time
import zlib
from typing import Any, Mapping

import av
import ml_collections
import numpy as np
import tqdm

from ssvbench.data import synthactions_scenes as scenes

GENERATOR_VERSION = "synthactions-v1"
METADATA_FILE = "synthactions.json"
VIDEOS_DIR = "videos"
SPLITS_DIR = "ucfTrainTestlist"

# Flip-invariant classes: three shape-only and several motion-only contrasts.
DEFAULT_CLASSES = (
    "SquareUp", "SquareDown", "SquareGrow",
    "DiscGrow", "DiscShrink", "DiscBounce",
    "TriangleUp", "TriangleDown", "TriangleSpin",
    "CrossSpin", "CrossSlide",
    "RingBlink",
)


def default_config() -> ml_collections.ConfigDict:
  """Returns the default SynthActions configuration, v3 (12 classes, 2,976 videos of 20x20).

  Sized for the claims the quickstart makes: 84 test groups of 2 videos per class give
  2,016 test videos, so the 95% confidence interval of a top-1 near 30% is about +-2
  points (1.96 * sqrt(0.3 * 0.7 / 2016) = 0.020); 40 training groups give 960 training
  videos of 480 distinct scenes (many scenes, few videos each, so that memorising scenes
  does not pay). 8-frame clips at frame stride 2 span half a video, 20x20 frames leave
  room for the pipeline's 16x16 crops, and 32-frame videos of two camera shots
  (`nuisance.shots`) make clips from either side of the cut share the action only.

  Generator seed 1: the pre-training recipe was tuned on a development copy drawn with
  seed 0, so the benchmark's own test videos were never looked at while choosing it.
  `v2_config()` is the previous default (960 videos, 180 of them test).
  """
  config = ml_collections.ConfigDict()
  config.seed = 1
  config.classes = DEFAULT_CLASSES
  config.num_groups = 124  # Groups (scenes) per class.
  config.num_test_groups = 84  # g01..g84 form the test list.
  config.clips_per_group = 2
  config.num_frames = 32
  config.resolution = 20  # Square frames; must be even (yuv420p).
  config.fps = 12
  config.codec = "mpeg4"  # Or "libx264".
  config.quality = 2  # mpeg4: constant quantiser (1 best .. 31); libx264: CRF.
  config.nuisance = scenes.default_nuisance()
  return config


def v2_config() -> ml_collections.ConfigDict:
  """The second default (960 videos of 20x20, two shots; 180 test videos): protocol 2.0."""
  config = default_config()
  config.update(dict(seed=0, num_groups=40, num_test_groups=10, clips_per_group=2))
  return config


def v1_config() -> ml_collections.ConfigDict:
  """The first default (600 videos of 40x40, one shot; see `scenes.v1_nuisance`)."""
  config = default_config()
  config.update(dict(seed=0, num_groups=10, num_test_groups=3, clips_per_group=5, resolution=40))
  config.nuisance = scenes.v1_nuisance()
  return config


ADDED_NUISANCE_DEFAULTS = {"region_spread": 1.0, "hue_drift": 0.0, "gain_drift": 0.0,
                           "shots": 1}


def _as_config(config: Any) -> ml_collections.ConfigDict:
  """Accepts a ConfigDict or a mapping; checks keys against the defaults and values."""
  reference = default_config()
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  if not isinstance(config, Mapping):
    raise TypeError(f"SynthActions config must be a ConfigDict or mapping, got {config!r}.")
  # Nuisances added after v1 default to "off", so older copies' configs still load.
  config = {**config, "nuisance": {**ADDED_NUISANCE_DEFAULTS, **config.get("nuisance", {})}}
  for section, given, expected in (("config", config, reference),
                                   ("config.nuisance", config.get("nuisance", {}),
                                    reference.nuisance)):
    unknown = sorted(set(given) - set(expected))
    missing = sorted(set(expected) - set(given))
    if unknown or missing:
      raise ValueError(f"SynthActions {section}: unknown keys {unknown}, missing keys "
                       f"{missing}; valid keys are {sorted(expected)}.")
  config = ml_collections.ConfigDict(config)
  config.classes = tuple(config.classes)
  checks = (
      ("num_groups", 2 <= config.num_groups <= 999, "an integer in 2..999"),
      ("num_test_groups", 1 <= config.num_test_groups < config.num_groups,
       "an integer in 1..num_groups-1"),
      ("clips_per_group", 1 <= config.clips_per_group <= 99, "an integer in 1..99"),
      ("num_frames", config.num_frames >= 2, "at least 2"),
      ("resolution", config.resolution >= 16 and config.resolution % 2 == 0,
       "an even integer >= 16"),
      ("fps", config.fps > 0, "positive"),
      ("codec", config.codec in ("mpeg4", "libx264"), "'mpeg4' or 'libx264'"),
      ("classes", len(config.classes) >= 2
       and len(set(config.classes)) == len(config.classes), "at least 2 distinct names"),
  )
  for key, valid, expected in checks:
    if not valid:
      raise ValueError(f"SynthActions config.{key}={config[key]!r}: expected {expected}.")
  scenes.check_nuisance(config.nuisance)
  for name in config.classes:
    scenes.parse_class_name(name)  # Raises with the valid shapes and motions.
  return config


def class_attributes(config: Any) -> list[dict[str, Any]]:
  """Returns per class (label order) its name, label, shape, motion and mirror flag."""
  config = _as_config(config)
  attributes = []
  for label, name in enumerate(config.classes):
    shape, motion = scenes.parse_class_name(name)
    attributes.append(dict(name=name, label=label, shape=shape, motion=motion,
                           mirror_sensitive=motion in scenes.MIRROR_SENSITIVE_MOTIONS))
  return attributes


def motion_only_pairs(config: Any) -> list[dict[str, Any]]:
  """Returns the class pairs that share a shape and differ only in motion.

  Args:
    config: a SynthActions config.

  Returns:
    One dict per pair: `classes` (two names in label order), `shape`, `motions`, and
    `time_reversed` (the motions are each other's time reversal, e.g. up/down).
  """
  attributes = class_attributes(config)
  pairs = []
  for i, first in enumerate(attributes):
    for second in attributes[i + 1:]:
      if first["shape"] == second["shape"]:
        reverse = scenes.TIME_REVERSE.get(first["motion"])
        pairs.append(dict(classes=[first["name"], second["name"]], shape=first["shape"],
                          motions=[first["motion"], second["motion"]],
                          time_reversed=reverse == second["motion"]))
  return pairs


def motion_only_classes(config: Any) -> list[str]:
  """Returns the classes (label order) that belong to a motion-only pair."""
  members = {name for pair in motion_only_pairs(config) for name in pair["classes"]}
  return [name for name in _as_config(config).classes if name in members]


def video_rel_path(class_name: str, group: int, clip: int) -> str:
  """Returns `<Class>/v_<Class>_gGG_cCC.avi` (1-based group and clip, as UCF101)."""
  return f"{class_name}/v_{class_name}_g{group:02d}_c{clip:02d}.avi"


def video_scene(config: Any, class_name: str, group: int, clip: int) -> scenes.Scene:
  """Draws the scene of one video (deterministic in seed, class, group and clip).

  Args:
    config: a SynthActions config.
    class_name: one of `config.classes`.
    group: 1-based group number.
    clip: 1-based clip number within the group.

  Returns:
    The `Scene` (trajectory, colours, texture) that `render_video` draws; for a video of
    several shots (`nuisance.shots`), the first shot's scene (see `video_shots`).
  """
  return video_shots(config, class_name, group, clip)[0][1]


def video_shots(config: Any, class_name: str, group: int,
                clip: int) -> list[tuple[slice, scenes.Scene]]:
  """Returns (frames, scene) per camera shot of one video (arguments as `video_scene`)."""
  config = _as_config(config)
  _check_video(config, class_name, group, clip)
  return [(frames, scene) for frames, scene, _ in _shots(config, class_name, group, clip)]


def _check_video(config: ml_collections.ConfigDict, class_name: str, group: int,
                 clip: int):
  if class_name not in config.classes:
    raise ValueError(f"Unknown SynthActions class {class_name!r}; config has "
                     f"{list(config.classes)}.")
  if not (1 <= group <= config.num_groups and 1 <= clip <= config.clips_per_group):
    raise ValueError(f"SynthActions group {group} / clip {clip} out of range: expected "
                     f"1..{config.num_groups} / 1..{config.clips_per_group}.")


def _shots(config: ml_collections.ConfigDict, class_name: str, group: int, clip: int):
  """Returns (frames, scene, noise generator) per shot."""
  shape, motion = scenes.parse_class_name(class_name)
  # Seeds derive from the class name, not its position, so adding a class leaves the
  # videos of the others unchanged. Distinct leading tags, because numpy's SeedSequence
  # ignores trailing zeros in its entropy. Camera 0 keeps the one-shot seeds, so a
  # one-shot video is the v1 video; camera k > 0 appends its own tag.
  key = zlib.crc32(class_name.encode())
  rngs = []
  for camera in range(config.nuisance.shots):
    tag = [] if camera == 0 else [0x5407, camera]
    rngs.append((np.random.default_rng([0x5CE4E, config.seed, key, group, *tag]),
                 np.random.default_rng([0xC11B, config.seed, key, group, clip, *tag])))
  shots = scenes.sample_shots(rngs, shape, motion, config.num_frames, config.nuisance)
  return [(frames, scene, clip_rng) for (frames, scene), (_, clip_rng) in zip(shots, rngs)]


def render_video(config: Any, class_name: str, group: int, clip: int) -> np.ndarray:
  """Renders one video's frames, before encoding (arguments as `video_scene`).

  Returns:
    uint8 array [num_frames, resolution, resolution, 3] (RGB).
  """
  config = _as_config(config)
  _check_video(config, class_name, group, clip)
  return _render(config, class_name, group, clip)


def _render(config: ml_collections.ConfigDict, class_name: str, group: int,
            clip: int) -> np.ndarray:
  parts = []
  for frames, scene, clip_rng in _shots(config, class_name, group, clip):
    # The pixel noise continues the shot's generator, after the scene's draws.
    parts.append(scenes.render(scenes.frames_of(scene, frames), config.resolution, clip_rng))
  return np.concatenate(parts)


def _encode(path: pathlib.Path, frames: np.ndarray, config: ml_collections.ConfigDict):
  """Writes frames as an AVI file (atomically: a temporary name, then a rename)."""
  temporary = path.with_name(path.name + ".partial")
  with av.open(str(temporary), "w", format="avi") as container:
    stream = container.add_stream(config.codec, rate=config.fps)
    stream.width = stream.height = config.resolution
    stream.pix_fmt = "yuv420p"
    # One thread: multi-threaded encoders may split work differently from run to run.
    stream.codec_context.thread_count = 1
    if config.codec == "mpeg4":
      stream.options = {"qmin": str(config.quality), "qmax": str(config.quality)}
    else:
      stream.options = {"crf": str(config.quality), "threads": "1"}
    for index, image in enumerate(frames):
      frame = av.VideoFrame.from_ndarray(image, format="rgb24")
      frame.pts = index
      container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
  os.replace(temporary, path)


def _list_lines(config: ml_collections.ConfigDict) -> dict[str, list[str]]:
  """Returns the lines of classInd.txt, trainlist01.txt and testlist01.txt."""
  lines = {"classInd.txt": [], "trainlist01.txt": [], "testlist01.txt": []}
  for label, name in enumerate(config.classes):
    lines["classInd.txt"].append(f"{label + 1} {name}")
    for group in range(1, config.num_groups + 1):
      for clip in range(1, config.clips_per_group + 1):
        rel_path = video_rel_path(name, group, clip)
        if group <= config.num_test_groups:
          lines["testlist01.txt"].append(rel_path)
        else:
          lines["trainlist01.txt"].append(f"{rel_path} {label + 1}")
  return lines


def _metadata(config: ml_collections.ConfigDict, complete: bool) -> dict[str, Any]:
  return dict(
      generator_version=GENERATOR_VERSION,
      complete=complete,
      config=json.loads(json.dumps(config.to_dict())),
      library_versions=dict(av=av.__version__,
                            libavcodec=list(av.library_versions["libavcodec"]),
                            numpy=np.__version__),
      classes=class_attributes(config),
      motion_only_pairs=motion_only_pairs(config),
      motion_only_classes=motion_only_classes(config),
      test_groups=[f"g{g:02d}" for g in range(1, config.num_test_groups + 1)],
      videos_dir=VIDEOS_DIR,
      splits_dir=SPLITS_DIR,
  )


def _write_text(path: pathlib.Path, text: str):
  temporary = path.with_name(path.name + ".partial")
  temporary.write_bytes(text.encode())
  os.replace(temporary, path)


def generate(out_dir: os.PathLike | str, config: Any = None, *, overwrite: bool = False,
             progress: bool | None = None) -> dict[str, Any]:
  """Generates SynthActions under `out_dir` (or reuses an identical complete copy).

  Args:
    out_dir: output directory; receives `videos/`, `ucfTrainTestlist/` and
      `synthactions.json`.
    config: a SynthActions config (`default_config()` if None).
    overwrite: replace an existing copy made with a different config (or a foreign
      `videos/` tree). Without it such a copy is an error; an identical complete copy is
      reused, an interrupted one of the same config is completed.
    progress: show a tqdm bar; None shows it only on a terminal.

  Returns:
    Summary: paths, `num_classes`, `num_videos`, `num_train`, `num_test`, `reused`,
    `seconds`.
  """
  start = time.perf_counter()
  config = _as_config(default_config() if config is None else config)
  out_dir = pathlib.Path(out_dir)
  videos_dir, splits_dir = out_dir / VIDEOS_DIR, out_dir / SPLITS_DIR
  metadata_path = out_dir / METADATA_FILE
  metadata = _metadata(config, complete=True)
  lines = _list_lines(config)
  rel_paths = [video_rel_path(name, group, clip) for name in config.classes
               for group in range(1, config.num_groups + 1)
               for clip in range(1, config.clips_per_group + 1)]
  summary = dict(
      out_dir=str(out_dir), videos_dir=str(videos_dir), splits_dir=str(splits_dir),
      metadata_path=str(metadata_path), num_classes=len(config.classes),
      num_videos=len(rel_paths), num_train=len(lines["trainlist01.txt"]),
      num_test=len(lines["testlist01.txt"]))

  existing = json.loads(metadata_path.read_text()) if metadata_path.is_file() else None
  if existing is not None and isinstance(existing.get("config"), dict):
    try:  # An older copy's config, completed with the nuisances added since (all off).
      existing["config"] = json.loads(json.dumps(_as_config(existing["config"]).to_dict()))
    except (ValueError, TypeError):
      pass  # Not a config we can read: it compares unequal below.
  same_config = existing is not None and {**existing, "complete": True} == metadata
  if same_config and existing["complete"] and all(
      (videos_dir / p).is_file() for p in rel_paths):
    return {**summary, "reused": True, "seconds": time.perf_counter() - start}
  if not same_config and (existing is not None or videos_dir.exists()
                          or splits_dir.exists()):
    if not overwrite:
      raise FileExistsError(
          f"{out_dir} already holds a SynthActions copy (or a videos/ tree) made with a "
          f"different config or generator; pass overwrite=True to replace it, or choose "
          f"another directory.")
    for stale in (videos_dir, splits_dir):
      if stale.exists():
        shutil.rmtree(stale)

  out_dir.mkdir(parents=True, exist_ok=True)
  # Written first with complete=False, so an interrupted run is recognised as ours.
  _write_text(metadata_path, json.dumps(_metadata(config, complete=False), indent=2))
  for rel_path in tqdm.tqdm(rel_paths, desc="SynthActions", unit="video",
                            disable=None if progress is None else not progress):
    class_name, file_name = rel_path.split("/")
    group, clip = (int(part[1:]) for part in file_name[:-4].split("_")[-2:])
    path = videos_dir / rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    _encode(path, _render(config, class_name, group, clip), config)
  splits_dir.mkdir(parents=True, exist_ok=True)
  for file_name, file_lines in lines.items():
    # CRLF, as the official UCF101 lists.
    _write_text(splits_dir / file_name, "".join(line + "\r\n" for line in file_lines))
  _write_text(metadata_path, json.dumps(metadata, indent=2))
  return {**summary, "reused": False, "seconds": time.perf_counter() - start}
