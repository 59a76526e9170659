"""Video ViT: parameter counts of the reference, shapes, and the maths against numpy.

Reference numbers: VideoMAE's ViT-B/16 (tubelet 2, fused qkv with q/v biases, mean
pooling + fc_norm) has 86,227,200 parameters without its classifier, 86,534,800 with the
400-way Kinetics head (the paper rounds to 87M); ViT-S/16 has 21,879,936 (22.03M with
the head; "22M"). The counts below come from the layer list alone; the models' from
``nnx.eval_shape`` (nothing is materialised).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec

from ssvbench.models import sharding_rules, vit3d
from ssvbench.models.registry import available_backbones, build_backbone
from ssvbench.train import sharding


def _param_count(model) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _independent_vit_count(width, depth, tubelet=(2, 16, 16), mlp_ratio=4):
  patch_embed = 3 * int(np.prod(tubelet)) * width + width
  block = (2 * width                         # norm1
           + width * 3 * width + 2 * width   # qkv weight, q_bias, v_bias
           + width * width + width           # proj
           + 2 * width                       # norm2
           + width * mlp_ratio * width + mlp_ratio * width   # fc1
           + mlp_ratio * width * width + width)              # fc2
  return patch_embed + depth * block + 2 * width  # + fc_norm


@pytest.mark.parametrize("name,width,expected", [
    ("vit3d_b16", 768, 86_227_200), ("vit3d_s16", 384, 21_879_936)])
def test_parameter_counts_match_videomae(name, width, expected):
  model = nnx.eval_shape(lambda: build_backbone(name, rngs=nnx.Rngs(0)))
  assert model.feature_dim == width
  assert _independent_vit_count(width, 12) == expected
  assert _param_count(model) == expected
  kinetics_head = width * 400 + 400
  assert expected + kinetics_head == {"vit3d_b16": 86_534_800, "vit3d_s16": 22_033_936}[name]


def test_reference_shapes_and_cpu_variants():
  model = nnx.eval_shape(lambda: build_backbone("vit3d_b16", rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(model)
  clips = jax.ShapeDtypeStruct((2, 16, 224, 224, 3), jnp.float32)
  tokens = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s).embed(x), state, clips)
  assert tokens.shape == (2, 8 * 14 * 14, 768)  # VideoMAE's 1568 tokens.
  pooled = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, clips)
  assert pooled.shape == (2, 768) and pooled.dtype == jnp.float32
  assert {"vit3d_tiny", "vit3d_cpu", "vit3d_s16", "vit3d_b16"} <= set(available_backbones())
  tiny = nnx.eval_shape(lambda: build_backbone("vit3d_tiny", rngs=nnx.Rngs(0)))
  assert tiny.feature_dim == 64
  assert _param_count(tiny) == _independent_vit_count(64, 4, (2, 8, 8))


def test_tubelet_embedding_is_a_strided_convolution():
  embed = vit3d.TubeletEmbed((2, 4, 4), 5, dtype=jnp.float32, rngs=nnx.Rngs(0))
  x = np.random.default_rng(1).standard_normal((2, 4, 8, 12, 3), np.float32)
  conv = jax.lax.conv_general_dilated(x, embed.kernel[...], (2, 4, 4), "VALID",
                                      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
  np.testing.assert_allclose(np.asarray(jax.jit(lambda x: embed(x))(x)),
                             np.asarray(conv).reshape(2, -1, 5) + np.asarray(embed.bias[...]),
                             atol=1e-5)
  with pytest.raises(ValueError, match="W=12 is not divisible by the tubelet size 8"):
    vit3d.TubeletEmbed((2, 8, 8), 5, dtype=jnp.float32, rngs=nnx.Rngs(0))(
        jnp.zeros((1, 4, 8, 12, 3)))


def test_sincos_table_is_videomaes():
  table = vit3d.sincos_table(7, 6)
  for position in range(7):
    for j in range(6):
      angle = position / np.power(10000, 2 * (j // 2) / 6)
      expected = np.sin(angle) if j % 2 == 0 else np.cos(angle)
      assert table[position, j] == pytest.approx(expected, abs=1e-6)


def _numpy_layer_norm(x, scale, bias, eps=1e-6):
  mean = x.mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + eps) * scale + bias


def _numpy_forward(model, x):
  """The whole ViT written with numpy, from the parameters."""
  from scipy.special import erf
  p = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model)))
  batch, frames, height, width, _ = x.shape
  kt, kh, kw = model.spec.tubelet
  tokens = []
  for t in range(frames // kt):
    for h in range(height // kh):
      for w in range(width // kw):
        patch = x[:, t * kt:(t + 1) * kt, h * kh:(h + 1) * kh, w * kw:(w + 1) * kw]
        tokens.append(np.einsum("bthwc,thwcd->bd", patch, p["patch_embed"]["kernel"]))
  tokens = np.stack(tokens, 1) + p["patch_embed"]["bias"]
  tokens = tokens + vit3d.sincos_table(tokens.shape[1], model.spec.width)
  heads = model.spec.num_heads
  head_dim = model.spec.width // heads
  for block in p["blocks"].values():
    y = _numpy_layer_norm(tokens, block["norm1"]["scale"], block["norm1"]["bias"])
    attn = block["attn"]
    q = y @ attn["qkv_kernel"][:, 0] + attn["q_bias"]
    k = y @ attn["qkv_kernel"][:, 1]
    v = y @ attn["qkv_kernel"][:, 2] + attn["v_bias"]
    out = np.zeros_like(q)
    for head in range(heads):
      cols = slice(head * head_dim, (head + 1) * head_dim)
      logits = q[..., cols] @ k[..., cols].transpose(0, 2, 1) / np.sqrt(head_dim)
      weights = np.exp(logits - logits.max(-1, keepdims=True))
      weights /= weights.sum(-1, keepdims=True)
      out[..., cols] = weights @ v[..., cols]
    tokens = tokens + out @ attn["proj_kernel"] + attn["proj_bias"]
    y = _numpy_layer_norm(tokens, block["norm2"]["scale"], block["norm2"]["bias"])
    mlp = block["mlp"]
    hidden = y @ mlp["fc1_kernel"] + mlp["fc1_bias"]
    hidden = 0.5 * hidden * (1 + erf(hidden / np.sqrt(2)))
    tokens = tokens + hidden @ mlp["fc2_kernel"] + mlp["fc2_bias"]
  norm = p["norm"]
  if model.spec.final_norm == "tokens":
    return _numpy_layer_norm(tokens, norm["scale"], norm["bias"]).mean(1)
  return _numpy_layer_norm(tokens.mean(1), norm["scale"], norm["bias"])


@pytest.mark.parametrize("final_norm", ["pooled", "tokens"])
def test_forward_matches_numpy(final_norm):
  model = build_backbone("vit3d_tiny", rngs=nnx.Rngs(0), depth=2, final_norm=final_norm)
  # Non-trivial LayerNorm and bias parameters, so that every term is exercised.
  rng = np.random.default_rng(5)
  leaves, treedef = jax.tree.flatten(nnx.state(model))
  nnx.update(model, jax.tree.unflatten(treedef, [
      np.asarray(leaf) + 0.05 * rng.standard_normal(leaf.shape, np.float32)
      for leaf in leaves]))
  x = rng.standard_normal((2, 4, 16, 16, 3), np.float32)
  graphdef, state = nnx.split(model)
  got = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, x)
  np.testing.assert_allclose(np.asarray(got), _numpy_forward(model, x.astype(np.float64)),
                             atol=2e-4, rtol=2e-4)


def test_bfloat16_compute_keeps_float32_parameters():
  clips = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 32, 32, 3))
  outputs = {}
  for dtype in (jnp.float32, jnp.bfloat16):
    model = build_backbone("vit3d_tiny", rngs=nnx.Rngs(0), dtype=dtype, depth=2)
    assert {p.dtype for p in jax.tree.leaves(nnx.state(model, nnx.Param))} == {
        np.dtype(np.float32)}
    graphdef, state = nnx.split(model)
    outputs[dtype] = np.asarray(jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, clips))
  assert outputs[jnp.bfloat16].dtype == np.float32
  np.testing.assert_allclose(outputs[jnp.bfloat16], outputs[jnp.float32], atol=0.1)
  assert not np.array_equal(outputs[jnp.bfloat16], outputs[jnp.float32])


def test_logical_annotations_shard_over_the_model_axis():
  model = build_backbone("vit3d_tiny", rngs=nnx.Rngs(0), depth=2)
  graphdef, state = nnx.split(model)
  mesh = sharding.make_mesh({"data": 4, "model": 2})
  clips = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 32, 32, 3))
  forward = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
  reference = np.asarray(forward(state, clips))
  expected_specs = {
      "tensor": {"fc1_kernel": PartitionSpec(None, "model"),
                 "qkv_kernel": PartitionSpec(None, None, "model"),
                 "proj_kernel": PartitionSpec("model", None)},
      "fsdp": {"fc1_kernel": PartitionSpec("model", None),
               "qkv_kernel": PartitionSpec("model", None, None),
               "proj_kernel": PartitionSpec(None, "model")},
  }
  for rules, expected in expected_specs.items():
    shardings = sharding_rules.named_shardings(state, mesh, rules)
    block = shardings["blocks"][0]
    assert block["mlp"]["fc1_kernel"].spec == expected["fc1_kernel"]
    assert block["attn"]["qkv_kernel"].spec == expected["qkv_kernel"]
    assert block["attn"]["proj_kernel"].spec == expected["proj_kernel"]
    placed = jax.device_put(state, shardings)
    shard = placed["blocks"][0]["mlp"]["fc1_kernel"].addressable_shards[0].data
    assert shard.size == 64 * 256 // 2
    np.testing.assert_allclose(np.asarray(forward(placed, clips)), reference, atol=1e-5)
  replicated = sharding_rules.partition_specs(state, mesh, "replicated")
  assert all(spec == PartitionSpec() or all(a is None for a in spec)
             for spec in jax.tree.leaves(replicated,
                                         is_leaf=lambda x: isinstance(x, PartitionSpec)))
  with pytest.raises(ValueError, match="valid: replicated, tensor, fsdp"):
    sharding_rules.partition_specs(state, mesh, "zero3")


def test_learned_positions_and_bad_overrides():
  model = build_backbone("vit3d_tiny", rngs=nnx.Rngs(0), depth=1, pos_embedding="learned",
                         grid=(4, 4, 4))
  assert model.pos_embed.shape == (64, 64)
  with pytest.raises(ValueError, match=r"built for token grid \(4, 4, 4\), the clip gives "
                                       r"\(2, 4, 4\)"):
    model(jnp.zeros((1, 4, 32, 32, 3)))
  with pytest.raises(ValueError, match="needs grid"):
    build_backbone("vit3d_tiny", rngs=nnx.Rngs(0), pos_embedding="learned")
  with pytest.raises(ValueError, match="valid: .*final_norm"):
    build_backbone("vit3d_tiny", rngs=nnx.Rngs(0), widths=(1, 2))
  with pytest.raises(ValueError, match="not divisible by num_heads"):
    build_backbone("vit3d_tiny", rngs=nnx.Rngs(0), num_heads=5)
