"""Backbone variants: parameter counts and shapes of the reference, and the BN contract.

Reference numbers (torchvision.models.video weights metadata, ``num_params``, which counts
the 400-way Kinetics classifier): r3d_18 33,371,472; mc3_18 11,695,440; r2plus1d_18
31,505,325. Our backbones have no classifier, so they must have exactly
num_params - (512 * 400 + 400). r3d_34 / r3d_50 have no torchvision release; they are
checked against an independent count of the same VideoResNet layout written out below.
Counts use ``nnx.eval_shape`` (no parameters are materialised, nothing runs).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from ssvbench.models.registry import available_backbones, build_backbone

TORCHVISION_NUM_PARAMS_WITH_FC = {
    "r3d_18": 33_371_472,
    "mc3_18": 11_695_440,
    "r2plus1d_18": 31_505_325,
}
KINETICS_FC = 512 * 400 + 400


def _param_count(model) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _abstract(name, **overrides):
  return nnx.eval_shape(lambda: build_backbone(name, rngs=nnx.Rngs(0), **overrides))


def _conv_bn(cin, cout, taps):
  return cin * cout * taps + 2 * cout


def _independent_resnet_count(block, blocks, widths, stem_width=64):
  """VideoResNet (3x3x3 everywhere) parameter count, from the layer list alone."""
  total = _conv_bn(3, stem_width, 3 * 7 * 7)
  in_planes = stem_width
  for stage, (count, planes) in enumerate(zip(blocks, widths)):
    for index in range(count):
      stride = 2 if (stage > 0 and index == 0) else 1
      if block == "basic":
        out_planes = planes
        total += _conv_bn(in_planes, planes, 27) + _conv_bn(planes, planes, 27)
      else:
        out_planes = planes * 4
        total += (_conv_bn(in_planes, planes, 1) + _conv_bn(planes, planes, 27) +
                  _conv_bn(planes, out_planes, 1))
      if stride != 1 or in_planes != out_planes:
        total += _conv_bn(in_planes, out_planes, 1)
      in_planes = out_planes
  return total


@pytest.mark.parametrize("name", sorted(TORCHVISION_NUM_PARAMS_WITH_FC))
def test_parameter_count_matches_torchvision(name):
  model = _abstract(name)
  assert model.feature_dim == 512
  assert _param_count(model) == TORCHVISION_NUM_PARAMS_WITH_FC[name] - KINETICS_FC


@pytest.mark.parametrize("name,block,blocks,dim", [
    ("r3d_18", "basic", (2, 2, 2, 2), 512),
    ("r3d_34", "basic", (3, 4, 6, 3), 512),
    ("r3d_50", "bottleneck", (3, 4, 6, 3), 2048),
])
def test_parameter_count_matches_independent_count(name, block, blocks, dim):
  model = _abstract(name)
  assert model.feature_dim == dim
  assert _param_count(model) == _independent_resnet_count(block, blocks,
                                                          (64, 128, 256, 512))


def test_cpu_variants_and_overrides():
  tiny = _abstract("r3d_tiny")
  assert tiny.feature_dim == 64
  assert _param_count(tiny) == _independent_resnet_count("basic", (1,) * 4,
                                                         (8, 16, 32, 64), stem_width=8)
  cpu = _abstract("r3d_cpu")
  assert cpu.feature_dim == 128
  wide = _abstract("r3d_tiny", widths=(4, 8, 16, 24), blocks=(1, 2, 1, 1))
  assert wide.feature_dim == 24
  assert _param_count(wide) == _independent_resnet_count(
      "basic", (1, 2, 1, 1), (4, 8, 16, 24), stem_width=4)
  assert set(available_backbones()) >= {"r3d_18", "r3d_34", "r3d_50", "mc3_18",
                                        "r2plus1d_18", "r3d_tiny", "r3d_cpu"}


def test_unknown_names_and_overrides_list_valid_ones():
  with pytest.raises(ValueError, match="valid names: .*r3d_18"):
    build_backbone("r3d_19", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="valid: .*widths"):
    build_backbone("r3d_tiny", rngs=nnx.Rngs(0), width=(1, 2, 3, 4))
  with pytest.raises(ValueError, match="widths has 3 entries"):
    build_backbone("r3d_tiny", rngs=nnx.Rngs(0), widths=(1, 2, 3))


@pytest.mark.parametrize("name,clip,dim", [
    ("r3d_18", (16, 112, 112), 512),
    ("r3d_50", (8, 32, 32), 2048),
    ("mc3_18", (8, 32, 32), 512),
    ("r2plus1d_18", (8, 32, 32), 512),
    ("r3d_cpu", (8, 32, 32), 128),
    ("r3d_tiny", (1, 8, 8), 64),
])
def test_output_shapes_including_small_clips(name, clip, dim):
  model = _abstract(name)
  graphdef, state = nnx.split(model)

  def apply(state, clips):
    return nnx.merge(graphdef, state, copy=True)(clips)

  out = jax.eval_shape(apply, state, jax.ShapeDtypeStruct((2,) + clip + (3,), jnp.float32))
  assert out.shape == (2, dim) and out.dtype == jnp.float32


def _tiny_apply(impl, dtype=jnp.float32):
  model = build_backbone("r3d_tiny", rngs=nnx.Rngs(0), conv_impl=impl, dtype=dtype)
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)

  def apply(params, batch_stats, clips, train):
    network = nnx.merge(graphdef, params, batch_stats, copy=True)
    network.train() if train else network.eval()
    features = network(clips)
    return features, nnx.state(network, nnx.BatchStat)

  return apply, params, batch_stats


CLIPS = jax.random.normal(jax.random.key(0), (8, 4, 16, 16, 3))


def test_tiny_forward_train_eval_and_fast_path_equals_native():
  apply_auto, params, stats = _tiny_apply("auto")
  apply_native, _, _ = _tiny_apply("native")

  @jax.jit
  def run(params, stats, clips):
    train_auto, new_stats = apply_auto(params, stats, clips, True)
    train_native, _ = apply_native(params, stats, clips, True)
    eval_auto, unchanged = apply_auto(params, stats, clips, False)
    return train_auto, train_native, eval_auto, new_stats, unchanged

  train_auto, train_native, eval_auto, new_stats, unchanged = run(params, stats, CLIPS)
  assert train_auto.shape == (8, 64) and bool(jnp.all(jnp.isfinite(train_auto)))
  np.testing.assert_allclose(train_auto, train_native, rtol=1e-4, atol=1e-5)
  # Train mode normalises with batch statistics and updates the running ones.
  assert not np.allclose(train_auto, eval_auto)
  old_means = jax.tree.leaves(stats)
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(new_stats), old_means))
  for a, b in zip(jax.tree.leaves(unchanged), old_means):
    np.testing.assert_array_equal(a, b)


def test_batch_statistics_are_global_when_the_batch_is_sharded():
  """Sharding the batch over 8 devices must not change train-mode outputs or BN stats."""
  apply, params, stats = _tiny_apply("auto")
  mesh = jax.make_mesh((jax.device_count(),), ("data",))
  sharded_clips = jax.device_put(CLIPS, NamedSharding(mesh, PartitionSpec("data")))
  step = jax.jit(lambda p, s, c: apply(p, s, c, True))
  whole_features, whole_stats = step(params, stats, CLIPS)
  shard_features, shard_stats = step(params, stats, sharded_clips)
  np.testing.assert_allclose(shard_features, whole_features, rtol=1e-4, atol=1e-5)
  for a, b in zip(jax.tree.leaves(shard_stats), jax.tree.leaves(whole_stats)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_bfloat16_compute_keeps_float32_parameters():
  apply, params, stats = _tiny_apply("auto", dtype=jnp.bfloat16)
  features, _ = jax.jit(lambda p, s, c: apply(p, s, c, True))(params, stats, CLIPS)
  assert features.dtype == jnp.float32
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  apply32, _, _ = _tiny_apply("auto")
  reference, _ = jax.jit(lambda p, s, c: apply32(p, s, c, True))(params, stats, CLIPS)
  # bf16 has 8 mantissa bits: agreement to a few percent of the feature scale.
  scale = float(jnp.max(jnp.abs(reference)))
  assert float(jnp.max(jnp.abs(features - reference))) < 0.05 * scale
