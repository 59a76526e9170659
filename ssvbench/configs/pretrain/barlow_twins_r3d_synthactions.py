"""Barlow Twins (cross-correlation to the identity over the global batch) on SynthActions.

512-d 3-layer projector, lambda 0.005 (about 1/D, as the paper's 0.0051 for D = 8192).
Same backbone (r3d_cpu), clips (2 x 8 frames at stride 2, 16x16), batch 32, 300 steps and
AdamW schedule as every SynthActions recipe, so the methods compare under one budget.
Video options (rho views, Background Erasing, intra-video negatives, frame differences) are
set under config.method.video, e.g. `--config.method.num_views=3`.

Run (after `ssvbench prepare synthactions --out ssvbench_data/synthactions`):
  ssvbench pretrain --config configs/pretrain/barlow_twins_r3d_synthactions.py --workdir runs/barlow_twins
  ssvbench evaluate --workdir runs/barlow_twins --protocol synthactions
Smoke run: append `:runlocal`. Results under the common budget: results/synthactions_method_zoo.md
(benchmarks/method_zoo_leaderboard.py).
"""

from ssvbench import recipes


def get_config(arg=None):
  return recipes.synthactions_pretrain("barlow_twins", runlocal=recipes.runlocal_variant(arg))
