"""Supervised contrastive (SupCon) upper bound, same backbone and budget, on SynthActions.

Uses the training labels (positives: all clips of the same class), T = 0.1.
Same backbone (r3d_cpu), clips (2 x 8 frames at stride 2, 16x16), batch 32, 300 steps and
AdamW schedule as every SynthActions recipe, so the methods compare under one budget.
Video options (rho views, Background Erasing, intra-video negatives, frame differences) are
set under config.method.video, e.g. `--config.method.num_views=3`.

Run (after `ssvbench prepare synthactions --out ssvbench_data/synthactions`):
  ssvbench pretrain --config configs/pretrain/supcon_r3d_synthactions.py --workdir runs/supcon
  ssvbench evaluate --workdir runs/supcon --protocol synthactions
Smoke run: append `:runlocal`. Results under the common budget: results/synthactions_method_zoo.md
(benchmarks/method_zoo_leaderboard.py).
"""

from ssvbench import recipes


def get_config(arg=None):
  return recipes.synthactions_pretrain("supcon", runlocal=recipes.runlocal_variant(arg))
