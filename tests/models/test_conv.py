"""Every Conv3D formulation equals XLA's native convolution, forward and backward.

The fast paths are only admissible because they are exact rewrites; these tests hold them
to 1e-5 relative error against ``lax.conv_general_dilated`` in the output and in the
gradients with respect to input and kernel, for the layer shapes the backbones use, and
check the native path itself against a direct numpy loop.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ssvbench.models import conv

# (input [B, T, H, W, C], kernel (kt, kh, kw), strides, padding, out channels): the stem,
# stride-1/2 3x3x3, strided 1x1x1 shortcuts, MC3 1x3x3, (2+1)D halves; odd/even sizes.
LAYER_CASES = [
    ((2, 4, 10, 10, 3), (3, 7, 7), (1, 2, 2), ((1, 1), (3, 3), (3, 3)), 8),
    ((1, 3, 9, 11, 3), (3, 7, 7), (1, 2, 2), ((1, 1), (3, 3), (3, 3)), 4),
    ((2, 4, 6, 6, 8), (3, 3, 3), (1, 1, 1), ((1, 1),) * 3, 8),
    ((2, 4, 6, 6, 8), (3, 3, 3), (2, 2, 2), ((1, 1),) * 3, 16),
    ((1, 5, 7, 5, 6), (3, 3, 3), (2, 2, 2), ((1, 1),) * 3, 5),
    ((2, 1, 2, 2, 40), (3, 3, 3), (1, 1, 1), ((1, 1),) * 3, 40),
    ((2, 2, 4, 4, 40), (3, 3, 3), (2, 2, 2), ((1, 1),) * 3, 48),
    ((2, 4, 6, 6, 8), (1, 1, 1), (2, 2, 2), ((0, 0),) * 3, 16),
    ((1, 5, 7, 7, 6), (1, 1, 1), (1, 2, 2), ((0, 0),) * 3, 4),
    ((1, 3, 7, 6, 6), (1, 3, 3), (1, 2, 2), ((0, 0), (1, 1), (1, 1)), 7),
    ((1, 5, 4, 4, 6), (3, 1, 1), (2, 1, 1), ((1, 1), (0, 0), (0, 0)), 7),
    ((1, 4, 9, 9, 3), (1, 7, 7), (1, 2, 2), ((0, 0), (3, 3), (3, 3)), 5),
    ((1, 4, 6, 5, 4), (2, 3, 3), (2, 2, 1), ((0, 1), (2, 0), (1, 1)), 3),
]


def _paths_for(kernel_size):
  paths = ["auto", "s2d", "im2col"]
  if kernel_size == (1, 1, 1):
    paths.append("subsample")
  return paths


def _relative_error(value, reference):
  value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
  return np.max(np.abs(value - reference)) / max(np.max(np.abs(reference)), 1e-30)


@pytest.mark.parametrize("case_index", range(len(LAYER_CASES)),
                         ids=lambda i: f"{LAYER_CASES[i][0]}-k{LAYER_CASES[i][1]}")
def test_every_path_equals_native_in_output_and_gradients(case_index):
  input_shape, kernel_size, strides, padding, out_features = LAYER_CASES[case_index]
  rng = np.random.default_rng(case_index)
  x = jnp.asarray(rng.normal(size=input_shape), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=kernel_size + (input_shape[-1], out_features)),
                       jnp.float32)
  paths = ["native"] + _paths_for(kernel_size)

  @jax.jit
  def outputs_and_gradients(x, kernel):
    results = {}
    for path in paths:
      y, pullback = jax.vjp(lambda a, b: conv.conv3d(a, b, strides, padding, path), x,
                            kernel)
      # A cotangent that is not all-ones, so every output position is weighted distinctly.
      cotangent = jnp.cos(jnp.arange(y.size, dtype=y.dtype)).reshape(y.shape)
      results[path] = (y,) + pullback(cotangent)
    return results

  results = outputs_and_gradients(x, kernel)
  reference = results.pop("native")
  for path, values in results.items():
    for label, value, expected in zip(("output", "d_input", "d_kernel"), values, reference):
      assert value.shape == expected.shape, (path, label)
      error = _relative_error(value, expected)
      assert error < 1e-5, f"{path} {label}: relative error {error:.2e}"


def test_native_matches_direct_numpy_loop():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1, 3, 5, 4, 2)).astype(np.float32)
  kernel = rng.normal(size=(3, 3, 3, 2, 3)).astype(np.float32)
  strides, padding = (2, 2, 1), ((1, 1), (1, 1), (1, 1))
  padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (1, 1), (0, 0)])
  out_shape = conv.output_shape(x.shape[1:4], (3, 3, 3), strides, padding)
  expected = np.zeros((1,) + out_shape + (3,))
  for t, h, w in itertools.product(*(range(n) for n in out_shape)):
    window = padded[0, t * 2:t * 2 + 3, h * 2:h * 2 + 3, w:w + 3, :]
    expected[0, t, h, w] = np.einsum("thwc,thwco->o", window, kernel)
  for path in ("native", "s2d", "im2col"):
    got = conv.conv3d(jnp.asarray(x), jnp.asarray(kernel), strides, padding, path)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


def test_conv3d_module_has_nnx_conv_parameter_layout():
  layer = nnx.eval_shape(lambda: conv.Conv3D(4, 6, (3, 5, 5), strides=(1, 2, 2),
                                             use_bias=True, rngs=nnx.Rngs(0)))
  reference = nnx.eval_shape(lambda: nnx.Conv(4, 6, (3, 5, 5), use_bias=True,
                                              rngs=nnx.Rngs(0)))
  ours = nnx.state(layer, nnx.Param)
  theirs = nnx.state(reference, nnx.Param)
  assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, theirs)
  assert set(ours.keys()) == {"kernel", "bias"}


def test_conv3d_module_paths_agree_and_respect_dtype():
  x = jax.random.normal(jax.random.key(0), (2, 4, 9, 9, 5))

  @nnx.jit
  def apply_all(x):
    native = conv.Conv3D(5, 7, 3, strides=2, use_bias=True, impl="native",
                         rngs=nnx.Rngs(1))
    fast = conv.Conv3D(5, 7, 3, strides=2, use_bias=True, impl="s2d", rngs=nnx.Rngs(1))
    half = conv.Conv3D(5, 7, 3, strides=2, dtype=jnp.bfloat16, rngs=nnx.Rngs(1))
    return native(x), fast(x), half(x), half.kernel[...]

  native_out, fast_out, half_out, half_kernel = apply_all(x)
  np.testing.assert_allclose(fast_out, native_out, rtol=1e-5, atol=1e-5)
  assert half_out.dtype == jnp.bfloat16
  assert half_kernel.dtype == jnp.float32


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="unknown impl 'fft'"):
    conv.Conv3D(3, 4, 3, impl="fft", rngs=nnx.Rngs(0))
  # Abstract layers: the shape checks run before any parameter is read.
  layer = nnx.eval_shape(lambda: conv.Conv3D(3, 4, 3, rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match=r"expected input \[B, T, H, W, 3\]"):
    layer(jnp.zeros((1, 4, 4, 4, 5)))
  valid = nnx.eval_shape(
      lambda: conv.Conv3D(3, 4, (3, 7, 7), padding="VALID", rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match="too small"):
    valid(jnp.zeros((1, 4, 4, 4, 3)))


def test_auto_picks_a_gemm_for_tiny_maps_and_native_for_wide_ones():
  """Stage 4 of r3d_18 at 64x64 (1x4x4 maps) is one GEMM; stage 1 stays XLA's conv."""
  choose = conv.choose_cpu_implementation
  assert choose((16, 1, 4, 4, 512), (3, 3, 3), (1, 1, 1), 512) == "im2col"
  assert choose((16, 8, 32, 32, 64), (3, 3, 3), (1, 1, 1), 64) == "native"
  assert choose((16, 8, 32, 32, 64), (3, 3, 3), (2, 2, 2), 128) == "s2d"


def test_max_pool3d_is_differentiable():
  """S3D and Slow pool with it; an array init value made it untrainable (no VJP)."""
  from ssvbench.models.conv import max_pool3d
  x = jnp.arange(2 * 2 * 4 * 4 * 1, dtype=jnp.float32).reshape(2, 2, 4, 4, 1)
  y = max_pool3d(x, (1, 2, 2), (1, 2, 2), (0, 0, 0))
  np.testing.assert_array_equal(y[0, 0, :, :, 0], [[5, 7], [13, 15]])
  grad = jax.grad(lambda a: max_pool3d(a, (1, 2, 2), (1, 2, 2), (0, 0, 0)).sum())(x)
  # The gradient flows to each window's maximum only (the bottom-right of every 2x2).
  expected = np.zeros((4, 4), np.float32)
  expected[1::2, 1::2] = 1
  np.testing.assert_array_equal(grad[0, 0, :, :, 0], expected)
