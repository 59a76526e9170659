"""rho-MoCo, Slow-R50 8x8 on Kinetics-400 (Feichtenhofer et al., CVPR 2021): the published recipe.

Should reproduce (SlowFast projects/contrastive_ssl README, 200 epochs): Kinetics-400 linear
66.6 top-1 with rho = 2, 71.0 with rho = 4 (variant `rho4`); UCF101 split-1 fine-tune 91.3
(rho = 2). Those numbers use SlowFast's own linear protocol (frozen Slow-R50, SGD lr 0.5 at
batch 64, 60 epochs, 10 x 3 test views of 8x8 clips); ssvbench's `kinetics400` protocol v1.0
fixes its own views and probe, so compare under one protocol, not across them.

Hyper-parameters of the public config (SlowFast configs/contrastive_ssl/MoCo_SlowR50_8x8.yaml):
rho clips of 8 frames at stride 8, 224 crops (relative area 0.2-0.766, aspect 3/4-4/3,
colour jitter 0.6/0.6/0.6 hue 0.15, grayscale 0.2); 3-layer MLP head 2048 -> 128 with BN;
T = 0.1; queue 65,536 filled with the keys of every clip; momentum 0.994 annealed to 1 on a
cosine; SGD momentum 0.9, lr 0.1 at batch 64 (per 8-GPU machine: SlowFast scales both with
the number of machines), weight decay 1e-4 (none on BN there; here on every weight),
cosine schedule, 35 warm-up epochs, 200 epochs. Steps assume the 240,258 training clips of
the common Kinetics-400 mirror: 200 * 240,258 / 64 = 750,806 (adjust to your manifest).

Backbone: `slow_r50` (Slow pathway R50: temporal kernels only in res4/res5, no temporal
downsampling) comes from ssvbench/models/slowfast.py, which was being added when this
config was written; until the registry lists it, this config builds only in its
`runlocal` variant, which uses `r3d_tiny`.

Run:
  ssvbench prepare kinetics400 --source-dir /data/kinetics400 --out ssvbench_data/kinetics400
  ssvbench pretrain --config configs/pretrain/rho_moco_slow_r50_kinetics400.py --workdir runs/rho_moco
  ssvbench evaluate --workdir runs/rho_moco --protocol kinetics400
Variants (comma-separated): `rho4` (4 clips per video), `runlocal` (CPU smoke run).
"""

import ml_collections

from ssvbench import recipes

VARIANTS = ("rho4", "runlocal")
TRAIN_CLIPS = 240_258  # Kinetics-400 train clips of the common mirror.
BATCH, EPOCHS, WARMUP_EPOCHS = 64, 200, 35


def get_config(arg=None):
  variants = set(filter(None, (arg or "").split(",")))
  if variants - set(VARIANTS):
    raise ValueError(f"rho_moco_slow_r50_kinetics400: unknown variant(s) "
                     f"{sorted(variants - set(VARIANTS))}; valid: {VARIANTS}.")
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = ml_collections.ConfigDict(dict(
      store_dir="ssvbench_data/kinetics400", split="train", num_frames=8, frame_stride=8,
      crop_size=224, worker_count=8,
      augment=dict(enabled=True, crop_scale=(0.2, 0.766), crop_aspect=(0.75, 1.3333),
                   flip_prob=0.5, color_jitter_prob=0.8, brightness=0.6, contrast=0.6,
                   saturation=0.6, hue=0.15, grayscale_prob=0.2)))
  config.model = ml_collections.ConfigDict(dict(backbone="slow_r50", dtype="bfloat16",
                                                input_norm=recipes.DEFAULT_INPUT_NORM))
  config.method = ml_collections.ConfigDict(dict(
      name="moco_v2", temperature=0.1, queue_size=65536, momentum=0.994,
      momentum_schedule="cosine", momentum_steps=0, num_views=4 if "rho4" in variants else 2,
      proj_hidden_dim=2048, proj_dim=128, proj_depth=3))
  steps = EPOCHS * TRAIN_CLIPS // BATCH
  config.train = ml_collections.ConfigDict(dict(
      batch_size=BATCH, num_steps=steps, log_every=100, eval_every=0, checkpoint_every=5000,
      keep_checkpoints=2))
  config.optim = ml_collections.ConfigDict(dict(
      name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
      warmup_steps=WARMUP_EPOCHS * TRAIN_CLIPS // BATCH, final_lr_fraction=0.0))
  # Devices: 'data' splits the batch (-1: all the rest); 'model' splits parameters when
  # param_sharding is 'fsdp' or 'tensor' (ssvbench.models.sharding_rules), e.g.
  # --config.mesh.model=2 --config.param_sharding=fsdp.
  config.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))
  config.param_sharding = "replicated"
  if "runlocal" in variants:
    config.data.update(dict(num_frames=8, frame_stride=2, crop_size=32, worker_count=0))
    config.model.update(dict(backbone="r3d_tiny", dtype="float32"))
    config.method.update(dict(queue_size=64, proj_hidden_dim=64))
    config.train.update(dict(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2))
    config.optim.warmup_steps = 1
  # The momentum schedule spans the run, whatever num_steps becomes.
  config.method.momentum_steps = config.train.get_ref("num_steps")
  return config
