"""HMDB51 (split 1) frozen-feature protocol, v1.0.

Run on features extracted with this protocol's views:
  ssvbench evaluate-features --protocol hmdb51 --train train.npz --test test.npz
Smoke variant (fewer episodes, epochs and seeds; a different fingerprint): `hmdb51:runlocal`.

Split 1 (70 train / 30 test videos per class; id-0 videos unused). Views: 10
uniformly spaced 16-frame clips (stride 2) x 1 centre crop at 112. Validation is
carved from train by source film. Episodic few-shot uses the 10 ARN test classes,
drawing from their split-1 train and test videos (the ARN lists also use id-0
videos, which split 1 does not extract).
"""

import ml_collections

VARIANTS = (None, "runlocal")

# ARN test classes (fewshot/hmdb_ARN/testlist03.txt); indices into the sorted class names.
# 0-based indices into this protocol's class list, and the names they stand for
# (tests/test_evaluators.py re-derives both from the shared split files).
NOVEL_CLASSES = (
    13, 20, 21, 24, 25, 29, 32, 37, 40, 46,
)
NOVEL_CLASS_NAMES = (
    "fencing", "kick", "kick_ball", "pick", "pour", "pushup", "run", "sit", "smoke",
    "talk",
)


def get_config(arg=None):
  """Returns the protocol spec; `runlocal` shrinks the costly settings for a CPU smoke run."""
  if arg not in VARIANTS:
    raise ValueError(f"hmdb51 protocol: unknown variant {arg!r}; valid: {VARIANTS}.")
  runlocal = arg == "runlocal"
  config = ml_collections.ConfigDict()
  config.name = "hmdb51"
  config.version = "1.0"
  config.variant = arg or "default"
  config.dataset = "hmdb51"
  config.description = "HMDB51 split 1 (id 1 = train, id 2 = test), all frozen-feature evaluators."
  config.num_classes = 51
  config.splits = dict(train="train", test="test", fold=1)
  config.views = dict(num_temporal_views=10, num_spatial_crops=1, num_frames=16,
                      frame_stride=2, crop_size=112, resize_short_side=128,
                      temporal_positions="10 clip centres at linspace(L/2, T - L/2, 10)",
                      spatial_positions="centre")
  config.feature = dict(source="backbone", pooling="global average over time and space",
                        normalisation="none (each evaluator normalises as documented)")
  config.validation = dict(fraction=0.2, seed=0, group_key="source film (video name prefix)")
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

  config.sweeps = ml_collections.ConfigDict()
  config.sweeps.knn_sweep = dict(type="knn_sweep", ks=(10, 20, 50, 100, 200),
                                 temperatures=(0.02, 0.07, 0.1, 0.5))
  return config
