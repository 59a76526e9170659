"""The SynthActions generator config (`ssvbench prepare synthactions --config ...`).

Variants: default (12 classes x 50 videos, the quickstart set) and `tiny` (4 classes,
24 videos of 16 frames, for tests and smoke runs).
Run: ssvbench prepare synthactions --out ssvbench_data/synthactions [--config configs/synthactions.py:tiny]
"""

from ssvbench.data import synthactions


def get_config(arg=None):
  config = synthactions.default_config()
  if arg == "tiny":
    config.classes = config.classes[:4]
    config.num_groups = 3
    config.num_test_groups = 1
    config.clips_per_group = 2
    config.num_frames = 16
  elif arg is not None:
    raise ValueError(f"configs/synthactions.py: unknown variant {arg!r}; valid: tiny.")
  return config
