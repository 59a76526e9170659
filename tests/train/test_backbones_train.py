"""Every backbone family trains with CVRL in runlocal on 1 and 8 devices, and its parameters
shard over a 'model' mesh axis without changing the numbers.

r3d_tiny's 1-vs-8-device check is test_train.test_loss_does_not_depend_on_device_count;
here are the other families, at their CPU sizes (the torchvision-shaped MC3 / R(2+1)D
through width/depth overrides, like the CPU variants of the registry). S3D is the costly
one: ~57 convolutions and 385 parameter arrays make ~70 s of compiles per device count
(init ~20 s, step ~50 s) however small its widths, so it runs at the one clip size its
stride-32 network accepts (8x32x32) and nothing else here does.
"""

import json

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from conftest import tiny_pretrain_config
from ssvbench import runs
from ssvbench.train import sharding, trainer

SMALL = dict(widths=(4, 8, 16, 32), blocks=(1, 1, 1, 1))
BACKBONES = {
    "mc3_18": SMALL,
    "r2plus1d_18": SMALL,
    "slow_tiny": {},
    "vit3d_tiny": dict(depth=1, tubelet=(2, 4, 4)),
    "s3d_tiny": {},
}
# S3D's network has stride 32: the recipe's 16x16 crops would end before its last pool.
CROP_SIZE = {"s3d_tiny": 32}


def _config(store, backbone, overrides, **mesh):
  config = tiny_pretrain_config(store, num_steps=2, log_every=1, checkpoint_every=2)
  config.model.backbone = backbone
  config.model.overrides = dict(overrides)
  config.data.crop_size = CROP_SIZE.get(backbone, config.data.crop_size)
  config.mesh.update(mesh)
  return config


def _losses(workdir):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [r["loss"] for r in map(json.loads, lines)]


def _train_losses(config, steps=2):
  """The trainer's state, step and data stream, without its checkpoints and logs (those
  are tested once, in test_train and below): the per-backbone cost is the compiles."""
  mesh = sharding.make_mesh(config.mesh)
  store = trainer.open_store(config)
  optimizer = trainer.make_optimizer(config.optim, steps)
  method, graphdef, state = trainer.create_train_state(config, store.num_classes, optimizer,
                                                       mesh)
  train_step = trainer.make_train_step(method, graphdef, optimizer, mesh,
                                       trainer.shardings_of(state))
  data = trainer.make_data_iterator(config, store, method)
  losses = []
  for _ in range(steps):
    local = next(data)
    batch = sharding.global_batch({"clips": local["clips"], "label": local["label"]}, mesh)
    state, metrics = train_step(state, batch)
    losses.append(float(metrics["loss"]))
  return losses


@pytest.mark.slow
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_cvrl_trains_every_backbone_on_1_and_8_devices(tiny_store, backbone):
  losses = {devices: _train_losses(_config(tiny_store, backbone, BACKBONES[backbone],
                                           data=devices))
            for devices in (1, 8)}
  assert all(np.isfinite(losses[1]))
  np.testing.assert_allclose(losses[8], losses[1], rtol=1e-4)


@pytest.mark.slow
def test_fsdp_training_matches_data_parallel_and_checkpoints(tiny_store, tmp_path):
  """ViT (the family FSDP is for) trained with its weights split over 'model' devices."""
  data_parallel = _config(tiny_store, "vit3d_tiny", BACKBONES["vit3d_tiny"], data=8)
  fsdp = _config(tiny_store, "vit3d_tiny", BACKBONES["vit3d_tiny"], data=4, model=2)
  fsdp.param_sharding = "fsdp"
  result = trainer.train(fsdp, tmp_path / "fsdp", progress=False)
  assert result.step == 2
  np.testing.assert_allclose(_losses(tmp_path / "fsdp"), _train_losses(data_parallel),
                             rtol=1e-4)
  # The checkpoint, written sharded, restores (replicated) for evaluation.
  assert runs.load_trained_model(tmp_path / "fsdp")[2] == 2


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["r3d_tiny", "vit3d_tiny"])
def test_fsdp_shards_parameters_and_optimizer_state(tiny_store, backbone):
  config = _config(tiny_store, backbone, BACKBONES.get(backbone, {}), data=4, model=2)
  config.param_sharding = "fsdp"
  mesh = sharding.make_mesh(config.mesh)
  optimizer = trainer.make_optimizer(config.optim, 2)
  _, _, state = trainer.create_train_state(config, 4, optimizer, mesh, abstract_only=True)
  params = {path: leaf for path, leaf in jax.tree_util.tree_leaves_with_path(state["params"])}
  split = [path for path, leaf in params.items() if "model" in leaf.sharding.spec]
  # Most weights (every conv kernel / dense kernel with an even output axis) are split.
  assert len(split) > len(params) // 2, (len(split), len(params))
  # Adam's two moments of each parameter live where the parameter does.
  for path, leaf in jax.tree_util.tree_leaves_with_path(state["opt_state"]):
    owner = [params[p] for p in params if path[-len(p):] == p]
    if owner:
      assert leaf.sharding.spec == owner[0].sharding.spec, path
  moments = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(state["opt_state"])
             if "model" in leaf.sharding.spec]
  assert len(moments) == 2 * len(split)
  # The step counter, rng and batch statistics stay replicated.
  assert state["step"].sharding.spec == PartitionSpec()
  for path, leaf in jax.tree_util.tree_leaves_with_path(state["rest"]):
    assert leaf.sharding.spec == PartitionSpec(), path


def test_unknown_param_sharding_names_the_key(tiny_store):
  config = _config(tiny_store, "r3d_tiny", {})
  config.param_sharding = "zero3"
  with pytest.raises(ValueError, match=r"config.param_sharding='zero3'.*replicated, tensor, fsdp"):
    trainer.create_train_state(config, 4, trainer.make_optimizer(config.optim, 2),
                               sharding.make_mesh(config.mesh))
