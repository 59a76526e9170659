"""SynthActions scenes: what a class means (shape x motion) and how a clip is drawn.

Kept apart from the file layout and encoding (`synthactions.py`) because this is the
part that decides what the benchmark measures. The rules that matter:
- Every nuisance (colours, texture, size, orientation, region, speed, noise) is drawn
  from a distribution that does not depend on the class, so only shape and motion
  carry the label.
- Within a motion-only pair the single-frame statistics match: trajectories are
  centred on the clip's centre, scale changes are symmetric in log-scale and spins start
  at a uniform angle, so a frame's position, size or angle says nothing about whether
  the actor moves up or down, grows or shrinks. Only the order of frames does.
- Actor and background differ in luma by at least `min_contrast`, so the actor stays
  visible after grayscale augmentation.
Geometry is in units of the frame side; the shapes are signed-distance functions, whose
clipped values give one pixel of antialiasing, so sub-pixel motion stays smooth.
"""

from __future__ import annotations

import colorsys
import dataclasses
import ml_collections
import numpy as np

SHAPES = ("square", "disc", "triangle", "cross", "ring")
# Class-name suffix -> motion id.
MOTIONS = {
    "Up": "up", "Down": "down", "Left": "left", "Right": "right", "Slide": "slide",
    "Grow": "grow", "Shrink": "shrink", "Spin": "spin", "RotateCW": "rotate_cw",
    "RotateCCW": "rotate_ccw", "Bounce": "bounce", "Zigzag": "zigzag", "Blink": "blink",
    "Still": "still",
}
TIME_REVERSE = {"up": "down", "down": "up", "left": "right", "right": "left",
                "grow": "shrink", "shrink": "grow", "rotate_cw": "rotate_ccw",
                "rotate_ccw": "rotate_cw"}
# A horizontal flip turns these into their partner; pipelines that flip would corrupt
# their labels. (Slide, Spin and Zigzag draw their direction per clip instead.)
MIRROR_SENSITIVE_MOTIONS = frozenset({"left", "right", "rotate_cw", "rotate_ccw"})
_ROTATION_INVISIBLE = frozenset({"disc", "ring"})

# Bounding radius of each unit shape (for keeping the actor inside the frame).
_SHAPE_EXTENT = {"square": 0.85 * np.sqrt(2), "disc": 1.0, "triangle": 1.25,
                 "cross": float(np.hypot(1.1, 0.38)), "ring": 1.05}
_TRAVEL = 0.40  # Translation over the whole video.
_GROW_LOG = float(np.log(2.2))  # Size ratio last/first frame of Grow.
_SPIN_TOTAL = 1.5 * np.pi  # Rotation over the whole video.
_BOUNCE_HEIGHT, _BOUNCES = 0.30, 3.0
_ZIGZAG_HEIGHT, _ZIGZAG_PERIODS = 0.12, 3.0
_BLINKS = 4.0  # On/off cycles per video.


def default_nuisance() -> ml_collections.ConfigDict:
  """Returns the default nuisance strengths (the quickstart's SynthActions).

  Chosen so that pre-training cannot match two clips of a video by a cue other than
  shape and motion (measured with `benchmarks/synthactions_shortcuts.py`): a cut between
  two cameras half-way (`shots=2`) re-frames position, size, backdrop and contrast
  polarity; white-balance and exposure drift within a video; regions anywhere with full
  per-clip jitter. The actor is large (a fifth to a third of the 20-pixel frame's side)
  so that its shape survives the 16x16 crops, and the backdrop nearly plain.
  """
  return ml_collections.ConfigDict(dict(
      background_texture=0.05,  # Amplitude of the low-frequency background pattern.
      pixel_noise=0.02,  # Std of per-pixel, per-frame Gaussian noise (1 = full range).
      colour_jitter=0.04,  # Per-clip std added to the group's colours.
      min_contrast=0.3,  # Minimum |luma(actor) - luma(background)|.
      actor_size=(0.2, 0.3),  # Range of the group's actor radius (frame sides).
      size_jitter=0.08,  # Per-clip relative size jitter.
      region_spread=1.0,  # Spread of the groups' regions around the centre (1 = anywhere).
      position_jitter=1.0,  # Per-clip jitter of the region, fraction of free range.
      speed_jitter=0.25,  # Per-clip relative jitter of speed and periods.
      orientation=20.0,  # Max |orientation| (degrees) of a non-spinning actor.
      hue_drift=0.5,  # Max |hue rotation| over a video, in turns (white-balance drift).
      gain_drift=0.4,  # Max |log brightness change| over a video (exposure drift).
      shots=2,  # Camera shots per video: each re-frames the same action (see sample_shots).
  ))


def v1_nuisance() -> ml_collections.ConfigDict:
  """The nuisance strengths of SynthActions' first default (40-pixel frames, one shot):
  on it contrastive pre-training matched clips by the actor's position and the backdrop's
  luminance and did not beat a random network (kept to reproduce those runs)."""
  nuisance = default_nuisance()
  nuisance.update(dict(background_texture=0.2, actor_size=(0.12, 0.17), position_jitter=0.15,
                       hue_drift=0.0, gain_drift=0.0, shots=1))
  return nuisance


def check_nuisance(nuisance: ml_collections.ConfigDict):
  """Raises ValueError naming the key if a nuisance strength is out of range."""
  low, high = nuisance.actor_size
  checks = (
      ("background_texture", 0 <= nuisance.background_texture <= 1, "in [0, 1]"),
      ("pixel_noise", 0 <= nuisance.pixel_noise <= 0.5, "in [0, 0.5]"),
      ("colour_jitter", 0 <= nuisance.colour_jitter <= 0.5, "in [0, 0.5]"),
      ("min_contrast", 0 < nuisance.min_contrast <= 0.6, "in (0, 0.6]"),
      ("actor_size", 0.02 <= low <= high <= 0.3, "(low, high) with 0.02<=low<=high<=0.3"),
      ("size_jitter", 0 <= nuisance.size_jitter < 1, "in [0, 1)"),
      ("region_spread", 0 <= nuisance.region_spread <= 1, "in [0, 1]"),
      ("position_jitter", 0 <= nuisance.position_jitter <= 1, "in [0, 1]"),
      ("speed_jitter", 0 <= nuisance.speed_jitter < 1, "in [0, 1)"),
      ("orientation", 0 <= nuisance.orientation <= 180, "in [0, 180] degrees"),
      ("hue_drift", 0 <= nuisance.hue_drift <= 0.5, "in [0, 0.5] turns"),
      ("gain_drift", 0 <= nuisance.gain_drift <= 1, "in [0, 1]"),
      ("shots", isinstance(nuisance.shots, int) and 1 <= nuisance.shots <= 16,
       "an integer in 1..16"),
  )
  for key, valid, expected in checks:
    if not valid:
      raise ValueError(f"SynthActions config.nuisance.{key}={nuisance[key]!r}: expected "
                       f"{expected}.")


def parse_class_name(name: str) -> tuple[str, str]:
  """Splits a class name such as 'DiscGrow' into ('disc', 'grow').

  Raises:
    ValueError: naming the valid shapes and motions, or a rotation of a disc or ring
      (invisible, so the class would be unlearnable).
  """
  for shape in SHAPES:
    prefix = shape.capitalize()
    if name.startswith(prefix) and name[len(prefix):] in MOTIONS:
      motion = MOTIONS[name[len(prefix):]]
      if shape in _ROTATION_INVISIBLE and motion in ("spin", "rotate_cw", "rotate_ccw"):
        raise ValueError(f"SynthActions class {name!r}: a {shape} looks the same at "
                         "every angle, so its rotation cannot be seen.")
      return shape, motion
  raise ValueError(f"SynthActions class {name!r} is not <Shape><Motion> with Shape in "
                   f"{[s.capitalize() for s in SHAPES]} and Motion in {list(MOTIONS)}.")


@dataclasses.dataclass(frozen=True)
class Scene:
  """Everything needed to draw one clip; per-frame arrays have length num_frames."""

  shape: str
  motion: str
  centre_x: np.ndarray
  centre_y: np.ndarray
  radius: np.ndarray
  angle: np.ndarray  # Radians; positive turns clockwise on screen (y points down).
  visible: np.ndarray
  actor_rgb: np.ndarray
  background_rgb: np.ndarray
  texture_tint: np.ndarray  # RGB direction the texture pushes the background towards.
  texture_amplitude: float
  gradient_angle: float
  wave_vector: np.ndarray  # Cycles per frame side, (x, y).
  wave_phase: float
  pixel_noise: float
  hue_angle: np.ndarray  # Per-frame rotation (radians) of every colour about the grey axis.
  gain: np.ndarray  # Per-frame brightness factor.


def _luma(rgb: np.ndarray) -> float:
  return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _scene_colours(rng: np.random.Generator, min_contrast: float):
  """Draws (actor, background) colours of any hue with a luma gap of min_contrast."""
  for _ in range(1000):
    actor_bright = rng.random() < 0.5
    bright = rng.uniform(0.7, 1.0)
    dark = rng.uniform(0.1, 0.5)
    actor = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.4, 1.0),
                                         bright if actor_bright else dark))
    background = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.2, 0.9),
                                              dark if actor_bright else bright))
    if abs(_luma(actor) - _luma(background)) >= min_contrast:
      return actor, background
  raise ValueError(f"SynthActions: no colours reach min_contrast={min_contrast}.")


def _trajectory(rng: np.random.Generator, motion: str, num_frames: int, speed: float):
  """Returns centred (dx, dy, log_scale, angle, visible) per frame for a motion."""
  s = np.linspace(0.0, 1.0, num_frames)
  zeros = np.zeros(num_frames)
  dx, dy, log_scale, angle = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
  visible = np.ones(num_frames)
  direction = 1.0 if rng.random() < 0.5 else -1.0  # Drawn for every motion (stable rng).
  phase = rng.random()
  travel = _TRAVEL * speed * (s - 0.5)
  if motion in ("up", "down"):
    dy = travel * (-1.0 if motion == "up" else 1.0)
  elif motion in ("left", "right", "slide"):
    dx = travel * {"left": -1.0, "right": 1.0, "slide": direction}[motion]
  elif motion in ("grow", "shrink"):
    log_scale = _GROW_LOG * speed * (s - 0.5) * (1.0 if motion == "grow" else -1.0)
  elif motion in ("spin", "rotate_cw", "rotate_ccw"):
    sign = {"spin": direction, "rotate_cw": 1.0, "rotate_ccw": -1.0}[motion]
    angle = sign * _SPIN_TOTAL * speed * s
  elif motion == "bounce":
    dy = _BOUNCE_HEIGHT * (0.5 - np.abs(np.sin(np.pi * (_BOUNCES * speed * s + phase))))
  elif motion == "zigzag":
    dx = travel * direction
    wave = (_ZIGZAG_PERIODS * speed * s + phase) % 1.0
    dy = _ZIGZAG_HEIGHT * (4.0 * np.abs(wave - 0.5) - 1.0)
  elif motion == "blink":
    period = num_frames / (_BLINKS * speed)
    visible = (((np.arange(num_frames) / period) + phase) % 1.0 < 0.5).astype(float)
  elif motion != "still":
    raise ValueError(f"Unknown SynthActions motion {motion!r}.")
  return dx, dy, log_scale, angle, visible


def sample_scene(group_rng: np.random.Generator, clip_rng: np.random.Generator,
                 shape: str, motion: str, num_frames: int,
                 nuisance: ml_collections.ConfigDict) -> Scene:
  """Draws one clip's scene: group-level appearance, clip-level jitter and trajectory.

  Args:
    group_rng: generator seeded by (seed, class, group); shared by a group's clips.
    clip_rng: generator seeded by (seed, class, group, clip).
    shape: one of SHAPES.
    motion: one of MOTIONS' values.
    num_frames: frames per video.
    nuisance: nuisance strengths (see `default_nuisance`).

  Returns:
    The clip's Scene.
  """
  return _sample_shot(group_rng, clip_rng, shape, motion, num_frames, nuisance)[0]


def sample_shots(camera_rngs: list[tuple[np.random.Generator, np.random.Generator]],
                 shape: str, motion: str, num_frames: int,
                 nuisance: ml_collections.ConfigDict) -> list[tuple[slice, Scene]]:
  """Draws a video filmed as consecutive shots from several cameras of one scene.

  Why: two clips of one video share whatever the video keeps constant, and contrastive
  pre-training matches them on the easiest such cue. With one shot that is the framing
  (the actor's position, size and the backdrop's luminance), which says nothing about
  the class. A cut to another camera re-frames the scene (region, size, orientation,
  backdrop, colours, exposure) while the action goes on: the actor's shape, speed,
  direction and the phase of its motion continue across the cut. Clips on either side
  of a cut then share shape and motion and little else, as clips of real multi-shot
  footage share the action more than the framing.

  Args:
    camera_rngs: one (group_rng, clip_rng) pair per shot; the group generator of camera
      k is shared by the group's videos (a group is filmed by the same cameras).
    shape, motion, num_frames, nuisance: as `sample_scene`.

  Returns:
    (frames, scene) per shot: the video's frames `frames` show `scene`'s frames `frames`.
    The shots split the video into near-equal consecutive parts.
  """
  bounds = np.linspace(0, num_frames, len(camera_rngs) + 1).round().astype(int)
  shots, action = [], None
  for (group_rng, clip_rng), start, stop in zip(camera_rngs, bounds[:-1], bounds[1:]):
    scene, drawn = _sample_shot(group_rng, clip_rng, shape, motion, num_frames, nuisance,
                                action)
    action = action or drawn
    shots.append((slice(int(start), int(stop)), scene))
  return shots


def _sample_shot(group_rng, clip_rng, shape, motion, num_frames, nuisance, action=None):
  """Draws one camera's scene; `action` (speed, start angle, trajectory) continues a
  previous shot's action instead of the drawn one. Returns (scene, drawn action)."""
  # Group level: the shared scene.
  actor_rgb, background_rgb = _scene_colours(group_rng, nuisance.min_contrast)
  tint = group_rng.uniform(-1.0, 1.0, 3)
  tint /= np.abs(tint).max()
  gradient_angle = group_rng.uniform(0, 2 * np.pi)
  wave_angle = group_rng.uniform(0, 2 * np.pi)
  wave_vector = group_rng.uniform(0.7, 1.6) * np.array([np.cos(wave_angle),
                                                        np.sin(wave_angle)])
  wave_phase = group_rng.uniform(0, 2 * np.pi)
  base_radius = group_rng.uniform(*nuisance.actor_size)
  orientation = np.deg2rad(group_rng.uniform(-1, 1) * nuisance.orientation)
  region = group_rng.random(2)
  if nuisance.region_spread != 1:
    region = 0.5 + (region - 0.5) * nuisance.region_spread

  # Clip level: jitter around the group, and the motion itself.
  jitter = nuisance.colour_jitter
  actor_rgb = np.clip(actor_rgb + clip_rng.normal(0, jitter, 3), 0, 1)
  background_rgb = np.clip(background_rgb + clip_rng.normal(0, jitter, 3), 0, 1)
  wave_phase += clip_rng.uniform(-0.5, 0.5)
  radius = base_radius * (1 + clip_rng.uniform(-1, 1) * nuisance.size_jitter)
  speed = 1 + clip_rng.uniform(-1, 1) * nuisance.speed_jitter
  region = np.clip(region + clip_rng.uniform(-1, 1, 2) * nuisance.position_jitter, 0, 1)
  start_angle = clip_rng.uniform(0, 2 * np.pi)
  trajectory = _trajectory(clip_rng, motion, num_frames, speed)
  drawn = (speed, start_angle, trajectory)
  if action is not None:  # Another camera on the same action: same motion, same phase.
    speed, start_angle, trajectory = action
  dx, dy, log_scale, angle, visible = trajectory
  # Colour drift over the video, centred so the video's mean colour is the drawn one:
  # clips from different moments of one video differ in colour, as real footage does
  # under changing light, so matching two clips of a video takes shape and motion.
  # Drawn only when enabled, so copies made without drift keep their exact pixels.
  ramp = np.linspace(-0.5, 0.5, num_frames)
  hue_angle, gain = np.zeros(num_frames), np.ones(num_frames)
  if nuisance.hue_drift > 0:
    hue_angle = ramp * 2 * np.pi * clip_rng.uniform(-1, 1) * nuisance.hue_drift
  if nuisance.gain_drift > 0:
    gain = np.exp(ramp * clip_rng.uniform(-1, 1) * nuisance.gain_drift)
  if motion in ("spin", "rotate_cw", "rotate_ccw"):
    angle = angle + start_angle  # Uniform start: one frame's angle says nothing.
  else:
    angle = angle + orientation
  radii = radius * np.exp(log_scale)
  extent = radii * _SHAPE_EXTENT[shape]
  centres = []
  for offset, place in ((dx, region[0]), (dy, region[1])):
    low, high = np.max(extent - offset), np.min(1 - extent - offset)
    if low > high:  # The path does not fit: centre it and let the frame clip it.
      low = high = 0.5 * (low + high)
    centres.append(low + (high - low) * place + offset)
  return Scene(shape=shape, motion=motion, centre_x=centres[0], centre_y=centres[1],
               radius=radii, angle=angle, visible=visible, actor_rgb=actor_rgb,
               background_rgb=background_rgb, texture_tint=tint,
               texture_amplitude=float(nuisance.background_texture),
               gradient_angle=float(gradient_angle), wave_vector=wave_vector,
               wave_phase=float(wave_phase), pixel_noise=float(nuisance.pixel_noise),
               hue_angle=hue_angle, gain=gain), drawn


def _box(u: np.ndarray, v: np.ndarray, half_u: float, half_v: float) -> np.ndarray:
  qu, qv = np.abs(u) - half_u, np.abs(v) - half_v
  outside = np.hypot(np.maximum(qu, 0), np.maximum(qv, 0))
  return outside + np.minimum(np.maximum(qu, qv), 0)


def shape_distance(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Signed distance (negative inside) to a unit-size shape at the origin."""
  if shape == "disc":
    return np.hypot(u, v) - 1.0
  if shape == "ring":
    return np.abs(np.hypot(u, v) - 0.8) - 0.25
  if shape == "square":
    return _box(u, v, 0.85, 0.85)
  if shape == "cross":
    return np.minimum(_box(u, v, 1.1, 0.38), _box(u, v, 0.38, 1.1))
  if shape == "triangle":  # Apex up; max over the three edges' half-planes.
    normals = [(float(np.cos(a)), float(np.sin(a))) for a in np.pi / 2 + np.array([0, 2, 4]) * np.pi / 3]
    return np.max([nu * u + nv * v for nu, nv in normals], axis=0) - 1.25 / 2
  raise ValueError(f"Unknown SynthActions shape {shape!r}; expected one of {SHAPES}.")


def _grey_axis_rotations(angles: np.ndarray) -> np.ndarray:
  """[F, 3, 3] rotations of RGB about the grey axis (a hue shift that keeps grey grey)."""
  k = np.full(3, 1 / np.sqrt(3))
  cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
  cos, sin = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
  return (cos * np.eye(3) + sin * cross + (1 - cos) * np.outer(k, k)).astype(np.float32)


_PER_FRAME_FIELDS = ("centre_x", "centre_y", "radius", "angle", "visible", "hue_angle",
                     "gain")


def frames_of(scene: Scene, frames: slice) -> Scene:
  """The scene restricted to some of its frames (the per-frame arrays sliced)."""
  return dataclasses.replace(scene, **{name: getattr(scene, name)[frames]
                                       for name in _PER_FRAME_FIELDS})


def render(scene: Scene, resolution: int, noise_rng: np.random.Generator) -> np.ndarray:
  """Draws a scene as uint8 RGB frames [num_frames, resolution, resolution, 3]."""
  # Per-frame work in float32 (half the cost); the result is rounded to uint8 anyway.
  coords = ((np.arange(resolution) + 0.5) / resolution).astype(np.float32)
  x, y = coords[None, None, :], coords[None, :, None]
  gradient = (x - 0.5) * np.cos(scene.gradient_angle) + (y - 0.5) * np.sin(
      scene.gradient_angle)
  wave = np.sin(2 * np.pi * (scene.wave_vector[0] * x + scene.wave_vector[1] * y)
                + scene.wave_phase)
  field = 0.6 * np.clip(2 * gradient, -1, 1) + 0.4 * wave  # In [-1, 1].
  background = (scene.background_rgb + scene.texture_amplitude * field[0, :, :, None]
                * scene.texture_tint).astype(np.float32)

  def per_frame(values):
    return values.astype(np.float32)[:, None, None]

  offset_x, offset_y = x - per_frame(scene.centre_x), y - per_frame(scene.centre_y)
  cos, sin = per_frame(np.cos(scene.angle)), per_frame(np.sin(scene.angle))
  # Rotate the pixel offsets into the actor's frame, then measure in actor units.
  u = (cos * offset_x + sin * offset_y) / per_frame(scene.radius)
  v = (-sin * offset_x + cos * offset_y) / per_frame(scene.radius)
  distance_pixels = shape_distance(scene.shape, u, v) * per_frame(scene.radius) * resolution
  coverage = np.clip(0.5 - distance_pixels, 0, 1) * per_frame(scene.visible)
  coverage = coverage[..., None]
  frames = background[None] * (1 - coverage) + scene.actor_rgb.astype(np.float32) * coverage
  if np.any(scene.hue_angle != 0) or np.any(scene.gain != 1):  # Colour drift.
    frames = np.einsum("fhwc,fdc->fhwd", frames, _grey_axis_rotations(scene.hue_angle)
                       * scene.gain.astype(np.float32)[:, None, None])
  if scene.pixel_noise > 0:
    frames = frames + scene.pixel_noise * noise_rng.standard_normal(frames.shape,
                                                                     dtype=np.float32)
  return np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)

