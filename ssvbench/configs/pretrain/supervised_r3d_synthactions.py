"""Supervised cross-entropy upper bound, same backbone and budget as the CVRL recipe.

Run: ssvbench pretrain --config configs/pretrain/supervised_r3d_synthactions.py --workdir runs/sup
"""

from ssvbench import recipes


def get_config(arg=None):
  return recipes.synthactions_pretrain("supervised", runlocal=recipes.runlocal_variant(arg))
