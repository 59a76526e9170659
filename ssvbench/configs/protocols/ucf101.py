"""UCF101 (split 1) frozen-feature protocol, v1.0.

Run on features extracted with this protocol's views:
  ssvbench evaluate-features --protocol ucf101 --train train.npz --test test.npz
Smoke variant (fewer episodes, epochs and seeds; a different fingerprint): `ucf101:runlocal`.

Split 1; the 3-split mean is reported separately by running folds 2 and 3. Views:
10 uniformly spaced 16-frame clips (stride 2) x 1 centre crop at 112 (VCOP/IIC).
Validation is carved from trainlist01 by gGG group, so no source video spans it and
the fitting part. Episodic few-shot uses the 21 ARN test classes (Zhang et al.
2020), drawing from all their videos in the standard train and test lists.
"""

import ml_collections

VARIANTS = (None, "runlocal")

# ARN test classes (fewshot/ucf_ARN/testlist03.txt); indices from classInd.txt - 1.
# 0-based indices into this protocol's class list, and the names they stand for
# (tests/test_evaluators.py re-derives both from the shared split files).
NOVEL_CLASSES = (
    13, 20, 21, 24, 25, 29, 32, 37, 40, 43, 47, 68, 70, 73, 76, 80, 82, 85, 87, 91, 96,
)
NOVEL_CLASS_NAMES = (
    "BlowingCandles", "CleanAndJerk", "CliffDiving", "CuttingInKitchen", "Diving",
    "FloorGymnastics", "GolfSwing", "HandstandWalking", "HorseRace", "IceDancing",
    "JumpRope", "PommelHorse", "Punch", "RockClimbingIndoor", "SalsaSpin", "Skiing",
    "SkyDiving", "StillRings", "Surfing", "TennisSwing", "VolleyballSpiking",
)


def get_config(arg=None):
  """Returns the protocol spec; `runlocal` shrinks the costly settings for a CPU smoke run."""
  if arg not in VARIANTS:
    raise ValueError(f"ucf101 protocol: unknown variant {arg!r}; valid: {VARIANTS}.")
  runlocal = arg == "runlocal"
  config = ml_collections.ConfigDict()
  config.name = "ucf101"
  config.version = "1.0"
  config.variant = arg or "default"
  config.dataset = "ucf101"
  config.description = "UCF101 split 1 (trainlist01/testlist01), all frozen-feature evaluators."
  config.num_classes = 101
  config.splits = dict(train="train", test="test", fold=1)
  config.views = dict(num_temporal_views=10, num_spatial_crops=1, num_frames=16,
                      frame_stride=2, crop_size=112, resize_short_side=128,
                      temporal_positions="10 clip centres at linspace(L/2, T - L/2, 10)",
                      spatial_positions="centre")
  config.feature = dict(source="backbone", pooling="global average over time and space",
                        normalisation="none (each evaluator normalises as documented)")
  config.validation = dict(fraction=0.2, seed=0, group_key="gGG (source video group)")
  config.class_splits = dict(name="ARN (Zhang et al. 2020) test classes", novel=NOVEL_CLASSES,
                            novel_names=NOVEL_CLASS_NAMES)

  config.evals = ml_collections.ConfigDict()
  config.evals.knn = dict(type="knn", k=20, temperature=0.07)
  config.evals.linear = dict(type="linear", learning_rates=(1.0, 3.0, 6.0),
                             weight_decays=(0.0, 1e-4, 1e-3),
                             epochs=10 if runlocal else 100, batch_size=1024,
                             seed=0, selection="validation")
  config.evals.retrieval = dict(type="retrieval", ks=(1, 5, 10, 20, 50), center=False)
  config.evals.fewshot_linear = dict(type="fewshot_linear", shots=(1, 5, 10, 25),
                                     seeds=(0,) if runlocal else (0, 1, 2),
                                     l2_grid=tuple(2.0 ** p for p in range(0, 16, 2)),
                                     selection="validation")
  config.evals.fewshot_episodic = dict(type="fewshot_episodic",
                                       novel_classes=config.class_splits.novel, ways=5,
                                       shots=(1, 5), queries=1,
                                       num_episodes=200 if runlocal else 10_000, seed=0,
                                       source="train+test")
  config.evals.diagnostics = dict(type="diagnostics", split="test", max_samples=4096, seed=0)

  # Full fine-tuning (ssvbench finetune --workdir RUN --protocol ucf101). The recipe of
  # the rho-methods UCF101 fine-tune in SlowFast (configs/contrastive_ssl/
  # finetune_ucf_Slow_R50_syn8.yaml, the source of the rho-methods' published fine-tune numbers): SGD,
  # momentum 0.9, lr 0.01 at batch 64, cosine, no warm-up, no weight decay, 200 epochs,
  # crop + flip + colour jitter (0.4/0.4/0.4/0.1) + grayscale 0.2. Differences: SlowFast
  # adds dropout 0.8 before the head (ssvbench's head has none) and scores every 20
  # epochs on the test list; here every 20 epochs is a checkpoint scored on the carved
  # validation part (3 views, test uses all 10). For comparison, VideoMAE (ViT-B) uses
  # AdamW lr 5e-4 at batch 128, weight decay 0.05, 100 epochs, layer decay 0.7.
  config.finetune = dict(
      epochs=2 if runlocal else 200, batch_size=8 if runlocal else 64,
      checkpoint_every_epochs=1 if runlocal else 20, seed=0,
      optimizer=dict(name="sgd", lr=0.01, momentum=0.9, weight_decay=0.0, warmup_epochs=0,
                     final_lr_fraction=0.0),
      augment=dict(enabled=True, crop_scale=(0.3, 1.0), crop_aspect=(0.75, 1.333),
                   flip_prob=0.5, color_jitter_prob=0.8, brightness=0.4, contrast=0.4,
                   saturation=0.4, hue=0.1, grayscale_prob=0.2),
      val_views=dict(num_temporal_views=3, num_spatial_crops=1), selection="validation")

  config.sweeps = ml_collections.ConfigDict()
  config.sweeps.knn_sweep = dict(type="knn_sweep", ks=(10, 20, 50, 100, 200),
                                 temperatures=(0.02, 0.07, 0.1, 0.5))
  return config
