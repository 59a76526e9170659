"""The SynthActions quickstart: generate, prepare, pre-train CVRL + baselines, evaluate.

Run: ssvbench quickstart            (this config is the default)
     ssvbench quickstart --config configs/quickstart.py --config.steps.simclr=600
"""

from ssvbench import quickstart


def get_config(arg=None):
  if arg:
    raise ValueError(f"unknown config variant {arg!r}; this config has none.")
  return quickstart.default_config()
