"""A backbone's input normalisation: which pixel statistics its weights were trained on.

Why it is part of the model: a network only means something on the inputs it was trained
on. ssvbench's own runs use one convention (pixels scaled to [0, 1], then mean 0.45 /
std 0.225 on every channel), but published checkpoints differ: torchvision's Kinetics
video weights expect per-channel Kinetics statistics, CoCLR and VideoMAE ImageNet's.
Feeding an imported checkpoint ssvbench's convention shifts its inputs by 0.1-0.43 std
per channel. So the normalisation travels with the backbone (an attribute set by
`models.registry.build_backbone` from `config.model.input_norm`), every run records it in
its config, and feature extraction and fine-tuning read it from the backbone they run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class InputNorm:
  """uint8 pixels -> `value_range` (linearly), then (x - mean) / std per RGB channel."""

  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  value_range: tuple[float, float] = (0.0, 1.0)

  def __post_init__(self):
    for name in ("mean", "std"):
      value = tuple(float(v) for v in getattr(self, name))
      if len(value) != 3:
        raise ValueError(f"input_norm.{name} must have 3 values (R, G, B), got {value}.")
      object.__setattr__(self, name, value)
    if min(self.std) <= 0:
      raise ValueError(f"input_norm.std must be positive, got {self.std}.")
    value_range = tuple(float(v) for v in self.value_range)
    if value_range != (0.0, 1.0):
      # Every supported source scales pixels to [0, 1]; other ranges are not implemented.
      raise ValueError(f"input_norm.value_range must be (0.0, 1.0), got {value_range}.")
    object.__setattr__(self, "value_range", value_range)

  def to_dict(self) -> dict[str, list[float]]:
    return {"mean": list(self.mean), "std": list(self.std),
            "value_range": list(self.value_range)}


# ssvbench's own convention since its first run (Kinetics statistics rounded, as in
# SlowFast/pytorchvideo); the default of every run whose config does not say otherwise.
SSVBENCH = InputNorm(mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225))
# torchvision.models.video (r3d_18, mc3_18, r2plus1d_18, s3d): Kinetics-400 statistics.
TORCHVISION_KINETICS = InputNorm(mean=(0.43216, 0.394666, 0.37645),
                                 std=(0.22803, 0.22145, 0.216989))
# ImageNet statistics: CoCLR (main_coclr.py / main_classifier.py normalise with them) and
# VideoMAE (IMAGENET_DEFAULT_MEAN / _STD).
IMAGENET = InputNorm(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
DEFAULT = SSVBENCH
NAMED = {"ssvbench": SSVBENCH, "torchvision_kinetics": TORCHVISION_KINETICS,
         "imagenet": IMAGENET}


def from_config(value: Mapping[str, Any] | InputNorm | str | None) -> InputNorm:
  """The InputNorm a config names: None (the default), a name from NAMED, or a mapping
  with mean, std and optionally value_range."""
  if value is None:
    return DEFAULT
  if isinstance(value, InputNorm):
    return value
  if isinstance(value, str):
    if value not in NAMED:
      raise ValueError(f"unknown input normalisation {value!r}; valid: {', '.join(NAMED)}, "
                       "or mean/std values.")
    return NAMED[value]
  value = dict(value)
  unknown = sorted(set(value) - {"mean", "std", "value_range"})
  if unknown or "mean" not in value or "std" not in value:
    raise ValueError(f"input_norm needs mean and std (and optionally value_range), got keys "
                     f"{sorted(value)}.")
  return InputNorm(**value)


def of(backbone: Any) -> InputNorm:
  """The normalisation a backbone was built with (DEFAULT for one built without)."""
  return getattr(backbone, "input_norm", None) or DEFAULT
