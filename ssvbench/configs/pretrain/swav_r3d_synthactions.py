"""SwAV (Sinkhorn codes over the global batch, swapped prediction) on SynthActions.

32 prototypes, epsilon 0.05, 3 Sinkhorn iterations, prototypes frozen for the first epoch
(13 steps); no queue (set config.method.queue_size to add one).
Same backbone (r3d_cpu), clips (2 x 8 frames at stride 2, 16x16), batch 32, 300 steps and
AdamW schedule as every SynthActions recipe, so the methods compare under one budget.
Video options (rho views, Background Erasing, intra-video negatives, frame differences) are
set under config.method.video, e.g. `--config.method.num_views=3`.

Run (after `ssvbench prepare synthactions --out ssvbench_data/synthactions`):
  ssvbench pretrain --config configs/pretrain/swav_r3d_synthactions.py --workdir runs/swav
  ssvbench evaluate --workdir runs/swav --protocol synthactions
Smoke run: append `:runlocal`. Results under the common budget: results/synthactions_method_zoo.md
(benchmarks/method_zoo_leaderboard.py).
"""

from ssvbench import recipes


def get_config(arg=None):
  return recipes.synthactions_pretrain("swav", runlocal=recipes.runlocal_variant(arg))
