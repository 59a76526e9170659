"""CVRL (SimCLR on two clips per video) with the CPU 3D ResNet on SynthActions.

Run (after `ssvbench prepare synthactions --out ssvbench_data/synthactions`):
  ssvbench pretrain --config configs/pretrain/simclr_r3d_synthactions.py --workdir runs/cvrl
Smoke run: append `:runlocal`.
"""

from ssvbench import recipes


def get_config(arg=None):
  return recipes.synthactions_pretrain("simclr", runlocal=recipes.runlocal_variant(arg))
