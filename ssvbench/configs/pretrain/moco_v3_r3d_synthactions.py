"""MoCo v3 (EMA key encoder, in-batch negatives, predictor, 2*tau scaling) on SynthActions.

Momentum 0.99 rising to 1 on a cosine over the run, T = 0.2, 3-layer projector with BN.
Same backbone (r3d_cpu), clips (2 x 8 frames at stride 2, 16x16), batch 32, 300 steps and
AdamW schedule as every SynthActions recipe, so the methods compare under one budget.
Video options (rho views, Background Erasing, intra-video negatives, frame differences) are
set under config.method.video, e.g. `--config.method.num_views=3`.

Run (after `ssvbench prepare synthactions --out ssvbench_data/synthactions`):
  ssvbench pretrain --config configs/pretrain/moco_v3_r3d_synthactions.py --workdir runs/moco_v3
  ssvbench evaluate --workdir runs/moco_v3 --protocol synthactions
Smoke run: append `:runlocal`. Results under the common budget: results/synthactions_method_zoo.md
(benchmarks/method_zoo_leaderboard.py).
"""

from ssvbench import recipes


def get_config(arg=None):
  return recipes.synthactions_pretrain("moco_v3", runlocal=recipes.runlocal_variant(arg))
