"""MoCo v2 (EMA key encoder, queue of past keys) with the CPU 3D ResNet on SynthActions.

Queue of 256 keys (64 per step: 32 videos x 2 clips), momentum 0.99 (constant), T = 0.2.
Same backbone (r3d_cpu), clips (2 x 8 frames at stride 2, 16x16), batch 32, 300 steps and
AdamW schedule as every SynthActions recipe, so the methods compare under one budget.
Video options (rho views, Background Erasing, intra-video negatives, frame differences) are
set under config.method.video, e.g. `--config.method.num_views=3`.

Run (after `ssvbench prepare synthactions --out ssvbench_data/synthactions`):
  ssvbench pretrain --config configs/pretrain/moco_v2_r3d_synthactions.py --workdir runs/moco_v2
  ssvbench evaluate --workdir runs/moco_v2 --protocol synthactions
Smoke run: append `:runlocal`. Results under the common budget: results/synthactions_method_zoo.md
(benchmarks/method_zoo_leaderboard.py).
"""

from ssvbench import recipes


def get_config(arg=None):
  return recipes.synthactions_pretrain("moco_v2", runlocal=recipes.runlocal_variant(arg))
