"""Kinetics-600 frozen-feature protocol, v1.0.

Run on features extracted with this protocol's views:
  ssvbench evaluate-features --protocol kinetics600 --train train.npz --test test.npz
Smoke variant (fewer episodes, epochs and seeds; a different fingerprint): `kinetics600:runlocal`.

Test = the val CSV (30,000 listed clips). Views: 10 x 3 as Kinetics-400. No episodic
few-shot: the CMN class split is defined on Kinetics-400 and one of its classes
(filling eyebrows) has no same-named Kinetics-600 class; run the kinetics400
protocol for episodic numbers. Never pre-train on K600/K700 and test on K400 val
(most K400 val clips are in their train splits).
Train features may be saved view-averaged ([N, D]: 240k x 2048 is 2 GB, while 30 views
would be 59 GB): every evaluator averages the training views anyway.
"""

import ml_collections

VARIANTS = (None, "runlocal")


def get_config(arg=None):
  """Returns the protocol spec; `runlocal` shrinks the costly settings for a CPU smoke run."""
  if arg not in VARIANTS:
    raise ValueError(f"kinetics600 protocol: unknown variant {arg!r}; valid: {VARIANTS}.")
  runlocal = arg == "runlocal"
  config = ml_collections.ConfigDict()
  config.name = "kinetics600"
  config.version = "1.0"
  config.variant = arg or "default"
  config.dataset = "kinetics600"
  config.description = "Kinetics-600 val as test, frozen-feature evaluators (no episodic split)."
  config.num_classes = 600
  config.splits = dict(train="train", test="val")
  config.views = dict(num_temporal_views=10, num_spatial_crops=3, num_frames=16,
                      frame_stride=4, crop_size=224, resize_short_side=256,
                      temporal_positions="10 clip centres at linspace(L/2, T - L/2, 10)",
                      spatial_positions="left, centre, right (short side scaled to the crop size)")
  config.feature = dict(source="backbone", pooling="global average over time and space",
                        normalisation="none (each evaluator normalises as documented)")
  config.validation = dict(fraction=0.05, seed=0, group_key="YouTube id (one clip per video)")

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
  config.evals.diagnostics = dict(type="diagnostics", split="test", max_samples=4096, seed=0)

  # Full fine-tuning (ssvbench finetune --workdir RUN --protocol kinetics600). The supervised
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
