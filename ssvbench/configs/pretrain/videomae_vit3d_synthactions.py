"""VideoMAE (tube masking 90%, normalised-pixel loss) with the CPU ViT on SynthActions.

Run (after `ssvbench prepare synthactions --out ssvbench_data/synthactions`):
  ssvbench pretrain --config configs/pretrain/videomae_vit3d_synthactions.py --workdir runs/videomae
  ssvbench evaluate --workdir runs/videomae --protocol synthactions
Smoke run: append `:runlocal` (vit3d_tiny, 4 steps).

Differences from the contrastive recipes, as in VideoMAE: one clip per video, only
random-resized-crop and flip (no colour jitter: the targets are the pixels), AdamW with
weight decay 0.05, and a longer warm-up. The backbone normalises
tokens before pooling (`final_norm='tokens'`), so frozen features use the LayerNorm the
pre-training trained.
"""

import ml_collections

from ssvbench import recipes


def get_config(arg=None):
  runlocal = recipes.runlocal_variant(arg)
  config = recipes.synthactions_pretrain("simclr", runlocal=runlocal)
  config.method = ml_collections.ConfigDict(dict(
      name="videomae", num_views=1, mask_ratio=0.9, normalize_targets=True,
      decoder_width=64, decoder_depth=4, decoder_heads=4))
  config.model = ml_collections.ConfigDict(dict(
      backbone="vit3d_tiny" if runlocal else "vit3d_cpu", dtype="float32",
      # 2x4x4 tubelets: the recipe's 8x16x16 clips then give 4x4x4 = 64 tokens (with
      # the variant's 2x8x8, 16 tokens, of which 90% masking would leave 1 or 2).
      overrides=dict(final_norm="tokens", tubelet=(2, 4, 4)),
      input_norm=recipes.DEFAULT_INPUT_NORM))
  config.data.augment = dict(enabled=True, crop_scale=(0.3, 1.0), crop_aspect=(0.75, 1.333),
                             flip_prob=0.5, color_jitter_prob=0.0, grayscale_prob=0.0)
  config.optim.lr = 1e-3
  config.optim.weight_decay = 0.05
  if runlocal:
    config.method.decoder_width = 32
    config.method.decoder_depth = 2
    config.method.decoder_heads = 2
  else:
    config.optim.warmup_steps = 40
  return config
