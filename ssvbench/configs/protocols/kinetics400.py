"""Kinetics-400 frozen-feature protocol, v1.0.

Run on features extracted with this protocol's views:
  ssvbench evaluate-features --protocol kinetics400 --train train.npz --test test.npz
Smoke variant (fewer episodes, epochs and seeds; a different fingerprint): `kinetics400:runlocal`.

Test = the val CSV (19,906 listed clips; the manifest records which were present).
Views: 10 uniformly spaced 16-frame clips (stride 4) x 3 spatial crops at 224
(left/centre/right), as CVRL and SlowFast. Validation: 5% of each class's training
videos, carved by YouTube id. Linear probe: 50 epochs at batch 4096. Episodic
few-shot uses the 24 CMN test classes (Zhu & Yang 2018), drawing from all their
train and val clips present (CMN itself fixes 100 clips per class).
Train features may be saved view-averaged ([N, D]: 240k x 2048 is 2 GB, while 30 views
would be 59 GB): every evaluator averages the training views anyway.
"""

import ml_collections

VARIANTS = (None, "runlocal")

# CMN test classes (fewshot/kinetics_CMN/testlist03.txt); indices into the sorted K400 class names.
# 0-based indices into this protocol's class list, and the names they stand for
# (tests/test_evaluators.py re-derives both from the shared split files).
NOVEL_CLASSES = (
    23, 41, 83, 84, 85, 87, 93, 126, 133, 159, 161, 164, 205, 230, 238, 248, 261, 269,
    294, 302, 333, 349, 356, 371,
)
NOVEL_CLASS_NAMES = (
    "blasting sand", "busking", "cutting watermelon", "dancing ballet",
    "dancing charleston", "dancing macarena", "diving cliff", "filling eyebrows",
    "folding paper", "hula hooping", "hurling (sport)", "ice skating", "paragliding",
    "playing drums", "playing monopoly", "playing trumpet", "pushing car",
    "riding elephant", "shearing sheep", "side kick", "stretching arm", "tap dancing",
    "throwing axe", "unboxing",
)


def get_config(arg=None):
  """Returns the protocol spec; `runlocal` shrinks the costly settings for a CPU smoke run."""
  if arg not in VARIANTS:
    raise ValueError(f"kinetics400 protocol: unknown variant {arg!r}; valid: {VARIANTS}.")
  runlocal = arg == "runlocal"
  config = ml_collections.ConfigDict()
  config.name = "kinetics400"
  config.version = "1.0"
  config.variant = arg or "default"
  config.dataset = "kinetics400"
  config.description = "Kinetics-400 val as test, all frozen-feature evaluators."
  config.num_classes = 400
  config.splits = dict(train="train", test="val")
  config.views = dict(num_temporal_views=10, num_spatial_crops=3, num_frames=16,
                      frame_stride=4, crop_size=224, resize_short_side=256,
                      temporal_positions="10 clip centres at linspace(L/2, T - L/2, 10)",
                      spatial_positions="left, centre, right (short side scaled to the crop size)")
  config.feature = dict(source="backbone", pooling="global average over time and space",
                        normalisation="none (each evaluator normalises as documented)")
  config.validation = dict(fraction=0.05, seed=0, group_key="YouTube id (one clip per video)")
  config.class_splits = dict(name="CMN (Zhu & Yang 2018) test classes", novel=NOVEL_CLASSES,
                            novel_names=NOVEL_CLASS_NAMES)

  config.evals = ml_collections.ConfigDict()
  config.evals.knn = dict(type="knn", k=20, temperature=0.07)
  config.evals.linear = dict(type="linear", learning_rates=(1.0, 3.0, 6.0),
                             weight_decays=(0.0, 1e-4, 1e-3),
                             epochs=10 if runlocal else 50, batch_size=4096,
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

  # Full fine-tuning (ssvbench finetune --workdir RUN --protocol kinetics400). The supervised
  # Slow-R50 8x8 Kinetics recipe of SlowFast (configs/Kinetics/SLOW_8x8_R50.yaml): SGD,
  # momentum 0.9, lr 0.1 at batch 64, cosine over 196 epochs with 34 warm-up epochs,
  # weight decay 1e-4, scale-jittered crops + flip. SlowFast also uses dropout 0.5 before
  # the head (ssvbench's head has none). A checkpoint every 14 epochs is scored on the
  # carved validation part (3 x 1 views; test uses 10 x 3). VideoMAE fine-tunes ViTs
  # for 75 epochs with AdamW lr 5e-4 (batch 384), weight decay 0.05.
  config.finetune = dict(
      epochs=1 if runlocal else 196, batch_size=8 if runlocal else 64,
      checkpoint_every_epochs=0.5 if runlocal else 14, seed=0,
      optimizer=dict(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
                     warmup_epochs=0 if runlocal else 34, final_lr_fraction=0.0),
      augment=dict(enabled=False, random_crop=True, crop_scale=(0.3, 1.0),
                   crop_aspect=(0.75, 1.333), flip=True),
      val_views=dict(num_temporal_views=3, num_spatial_crops=1), selection="validation")

  config.sweeps = ml_collections.ConfigDict()
  config.sweeps.knn_sweep = dict(type="knn_sweep", ks=(10, 20, 50, 100, 200),
                                 temperatures=(0.02, 0.07, 0.1, 0.5))
  return config
