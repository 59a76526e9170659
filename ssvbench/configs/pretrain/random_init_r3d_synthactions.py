"""Random-initialisation lower bound: the CPU backbone as initialised, never trained.

Run: ssvbench pretrain --config configs/pretrain/random_init_r3d_synthactions.py --workdir runs/random
"""

from ssvbench import recipes


def get_config(arg=None):
  return recipes.synthactions_pretrain("random_init", runlocal=recipes.runlocal_variant(arg))
