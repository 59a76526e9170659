"""The SynthActions generator config (`ssvbench prepare synthactions --config ...`).

Variants: default (v3: 12 classes, 2,976 videos of 20x20 of which 2,016 test, two camera
shots each: the quickstart set, evaluated with protocol synthactions 3.0), `v2` (the
second default: 960 videos, 180 test; `--protocol synthactions:v2`), `v1` (the first
default: 12 x 50 videos of 40x40, one shot; `--protocol synthactions:v1`) and `tiny`
(4 classes, 24 videos of 16 frames, for tests and smoke runs).
Run: ssvbench prepare synthactions --out ssvbench_data/synthactions [--config configs/synthactions.py:tiny]
"""

from ssvbench.data import synthactions


def get_config(arg=None):
  config = synthactions.default_config()
  if arg == "v1":
    config = synthactions.v1_config()
  elif arg == "v2":
    config = synthactions.v2_config()
  elif arg == "tiny":
    config.seed = 0
    config.classes = config.classes[:4]
    config.num_groups = 3
    config.num_test_groups = 1
    config.clips_per_group = 2
    config.num_frames = 16
  elif arg is not None:
    raise ValueError(f"configs/synthactions.py: unknown variant {arg!r}; valid: v1, v2, tiny.")
  return config
