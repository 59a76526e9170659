"""Slow-R50 and S3D: parameter counts of the references, shapes, CPU variants.

Reference numbers: pytorchvideo's ``slow_r50`` (SlowFast's SLOW_8x8_R50) has 32.45M
parameters with its 400-way head (2048 * 400 + 400 = 819,600), so 31,634,496 without;
CoCLR's S3D backbone has 7.9M (7,910,048) and a 1024-d output. The expected counts are
computed here from the layer lists alone; the models' with ``nnx.eval_shape``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ssvbench.models import s3d
from ssvbench.models.registry import build_backbone


def _param_count(model) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _conv_bn(cin, cout, taps):
  return cin * cout * taps + 2 * cout


def _slow_count(depths, widths, temporal_kernels, stem_width=64):
  total = _conv_bn(3, stem_width, 49)
  cin = stem_width
  for depth, inner, kt in zip(depths, widths, temporal_kernels):
    for index in range(depth):
      out = 4 * inner
      total += _conv_bn(cin, inner, kt) + _conv_bn(inner, inner, 9) + _conv_bn(inner, out, 1)
      if index == 0:
        total += _conv_bn(cin, out, 1)
      cin = out
  return total


def _st_conv(cin, cout, k):
  return cin * cout * k * k + 2 * cout + cout * cout * k + 2 * cout


def _s3d_count(gating=False):
  total = _st_conv(3, 64, 7) + _conv_bn(64, 64, 1) + _st_conv(64, 192, 3)
  for cin, (b0, b1a, b1b, b2a, b2b, b3b) in [
      (192, (64, 96, 128, 16, 32, 32)), (256, (128, 128, 192, 32, 96, 64)),
      (480, (192, 96, 208, 16, 48, 64)), (512, (160, 112, 224, 24, 64, 64)),
      (512, (128, 128, 256, 24, 64, 64)), (512, (112, 144, 288, 32, 64, 64)),
      (528, (256, 160, 320, 32, 128, 128)), (832, (256, 160, 320, 32, 128, 128)),
      (832, (384, 192, 384, 48, 128, 128))]:
    total += (_conv_bn(cin, b0, 1) + _conv_bn(cin, b1a, 1) + _st_conv(b1a, b1b, 3)
              + _conv_bn(cin, b2a, 1) + _st_conv(b2a, b2b, 3) + _conv_bn(cin, b3b, 1))
    if gating:
      total += sum(w * w + w for w in (b0, b1b, b2b, b3b))
  return total


@pytest.mark.parametrize("name,dim,expected", [
    ("slow_r50", 2048, _slow_count((3, 4, 6, 3), (64, 128, 256, 512), (1, 1, 3, 3))),
    ("slow_tiny", 256, _slow_count((1, 1, 1, 1), (8, 16, 32, 64), (1, 1, 3, 3), 8)),
    ("s3d", 1024, _s3d_count()),
    ("s3dg", 1024, _s3d_count(gating=True)),
])
def test_parameter_counts(name, dim, expected):
  model = nnx.eval_shape(lambda: build_backbone(name, rngs=nnx.Rngs(0)))
  assert model.feature_dim == dim
  assert _param_count(model) == expected
  if name == "slow_r50":
    assert expected == 31_634_496 and expected + 2048 * 400 + 400 == 32_454_096
  if name == "s3d":
    assert expected == 7_910_048


@pytest.mark.parametrize("name,clip,dim", [
    ("slow_r50", (8, 224, 224), 2048),
    ("s3d", (32, 128, 128), 1024),
])
def test_reference_input_shapes(name, clip, dim):
  model = nnx.eval_shape(lambda: build_backbone(name, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(model)
  out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s, copy=True)(x), state,
                       jax.ShapeDtypeStruct((2,) + clip + (3,), jnp.float32))
  assert out.shape == (2, dim) and out.dtype == jnp.float32


@pytest.mark.slow
def test_cpu_variants_run_on_quickstart_clips():
  # Initialised inside one jit (eager init compiles every initialiser separately).
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: build_backbone("slow_tiny",
                                                                rngs=nnx.Rngs(0))))
  state = jax.jit(lambda: nnx.split(build_backbone("slow_tiny", rngs=nnx.Rngs(0)))[1])()
  clips = np.random.default_rng(0).standard_normal((4, 8, 32, 32, 3), np.float32)
  out = np.asarray(jax.jit(lambda s, x: nnx.merge(graphdef, s, copy=True)(x))(state, clips))
  assert out.shape == (4, 256) and np.all(np.isfinite(out))
  assert np.abs(out[0] - out[1]).max() > 1e-3  # Not a constant network.
  # S3D's CPU variant: traced end to end at the quickstart clip size (its numerics are
  # checked against the PyTorch reference in tests/parity).
  model = nnx.eval_shape(lambda: build_backbone("s3d_tiny", rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(model)
  out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s, copy=True)(x), state,
                       jax.ShapeDtypeStruct((4, 8, 32, 32, 3), jnp.float32))
  assert out.shape == (4, 128)


def test_max_pool_matches_a_loop_with_negative_infinity_padding():
  x = np.random.default_rng(0).standard_normal((1, 3, 5, 4, 2), np.float32) - 10.0
  got = np.asarray(s3d.max_pool3d(jnp.asarray(x), (3, 3, 3), (2, 2, 2), (1, 1, 1)))
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
  expected = np.zeros((1, 2, 3, 2, 2), np.float32)
  for t in range(2):
    for h in range(3):
      for w in range(2):
        window = padded[:, 2 * t:2 * t + 3, 2 * h:2 * h + 3, 2 * w:2 * w + 3]
        expected[:, t, h, w] = window.max(axis=(1, 2, 3))
  np.testing.assert_array_equal(got, expected)


def test_errors_name_the_problem():
  with pytest.raises(ValueError, match="valid: .*temporal_kernels"):
    build_backbone("slow_tiny", rngs=nnx.Rngs(0), blocks=(1, 1, 1, 1))
  with pytest.raises(ValueError, match="widths has 3 entries but depths has 4"):
    build_backbone("slow_tiny", rngs=nnx.Rngs(0), widths=(8, 16, 32))
  model = nnx.eval_shape(lambda: build_backbone("s3d_tiny", rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(model)
  with pytest.raises(ValueError, match="too small"):
    jax.eval_shape(lambda s, x: nnx.merge(graphdef, s, copy=True)(x), state,
                   jax.ShapeDtypeStruct((1, 4, 32, 32, 3), jnp.float32))
