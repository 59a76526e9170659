"""The SynthActions suite: the synthactions protocol on the run's own store (CPU-sized).

Run: ssvbench benchmark --suite configs/suites/synthactions.py --workdir RUN [--steps all]

`store=None` evaluates on the store the run was pre-trained on (its test split is never
seen in pre-training); `--store synthactions=DIR` names another.
"""

import ml_collections


def get_config(arg=None):
  del arg
  config = ml_collections.ConfigDict()
  config.name = "synthactions"
  config.entries = [dict(name="synthactions", protocol="synthactions", store=None,
                         split=None)]
  return config
