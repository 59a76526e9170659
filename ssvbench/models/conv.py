"""A 3D convolution layer that runs the fastest exact formulation for the backend.

Why this exists: XLA's CPU backend lowers some 3D convolutions very poorly. The input
gradient of a strided convolution becomes a convolution with input ("lhs") dilation, which
falls off the fast Eigen path (issue 7 measured a 64->128 stride-2 layer: forward 64 ms,
input gradient 2,760 ms); 1x1x1 strided shortcuts and narrow-channel stems are also slow.
Every one of these has an algebraically identical rewrite that XLA compiles well:

* ``'s2d'`` (space-to-depth): a stride-``s`` convolution equals a stride-1 convolution over
  the input regrouped into ``s``-phase blocks (channels x s per strided dim) with the kernel
  regrouped into ceil(k/s) blocks, zero-filled where 2a+r >= k. Its autodiff only contains
  stride-1 convolutions and reshapes.
* ``'im2col'``: patch extraction (k shifted slices, concatenated on channels) and one
  matmul. Best where channels are narrow or the spatial extent is small, because it turns
  the whole layer into one large GEMM.
* ``'subsample'``: a 1x1x1 strided convolution is a strided slice followed by a matmul.

The parameters are exactly ``nnx.Conv``'s (``kernel`` [kt, kh, kw, cin, cout], optional
``bias`` [cout]), so a checkpoint does not depend on which formulation ran. On GPU/TPU
``'auto'`` always uses XLA's native convolution, which is what those backends are tuned for.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

IMPLEMENTATIONS = ("auto", "native", "s2d", "im2col", "subsample", "gemm")
# The logical name of a convolution's output-channel axis (kernel, bias, BatchNorm).
CONV_OUT = "conv_out"
_DIMENSION_NUMBERS = ("NDHWC", "DHWIO", "NDHWC")

Triple = tuple[int, int, int]
Padding = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def _as_triple(value: int | Sequence[int], name: str) -> Triple:
  if isinstance(value, int):
    return (value, value, value)
  value = tuple(int(v) for v in value)
  if len(value) != 3:
    raise ValueError(f"Conv3D: {name} must be an int or 3 ints (T, H, W), got {value!r}")
  return value  # type: ignore[return-value]


def _as_padding(padding, kernel_size: Triple) -> Padding:
  """Explicit (low, high) padding per dim; ints mean symmetric like torch.nn.Conv3d."""
  if isinstance(padding, str):
    if padding.upper() == "VALID":
      return ((0, 0), (0, 0), (0, 0))
    if padding.upper() == "TORCH_SAME":
      return tuple((k // 2, k // 2) for k in kernel_size)  # type: ignore[return-value]
    raise ValueError(
        f"Conv3D: padding string must be 'VALID' or 'TORCH_SAME', got {padding!r}; pass "
        "explicit ints or (low, high) pairs for anything else")
  if isinstance(padding, int):
    return ((padding, padding),) * 3  # type: ignore[return-value]
  pairs = []
  for entry in padding:
    if isinstance(entry, int):
      pairs.append((entry, entry))
    else:
      low, high = entry
      pairs.append((int(low), int(high)))
  if len(pairs) != 3:
    raise ValueError(f"Conv3D: padding must have 3 entries (T, H, W), got {padding!r}")
  return tuple(pairs)  # type: ignore[return-value]


def output_shape(spatial: Triple, kernel_size: Triple, strides: Triple,
                 padding: Padding) -> Triple:
  """Output (T, H, W) of a convolution, as torch/XLA compute it (floor division)."""
  out = []
  for size, k, s, (low, high) in zip(spatial, kernel_size, strides, padding):
    out.append((size + low + high - k) // s + 1)
  return tuple(out)  # type: ignore[return-value]


def conv_native(x: jax.Array, kernel: jax.Array, strides: Triple,
                padding: Padding) -> jax.Array:
  """XLA's own convolution (the reference every other path must equal)."""
  return lax.conv_general_dilated(
      x, kernel, window_strides=strides, padding=padding,
      dimension_numbers=_DIMENSION_NUMBERS)


def _reshape_keeping_batch_sharding(x: jax.Array, shape: Sequence[int]) -> jax.Array:
  """Reshape that keeps dim 0 (the batch) where it is.

  Under an explicit-sharding mesh JAX refuses to guess the sharding of a reshape's result;
  every reshape here keeps the batch dim intact, so its sharding carries over.
  """
  sharding = jax.typeof(x).sharding
  spec = getattr(sharding, "spec", None)
  if not spec or all(entry is None for entry in spec):
    return x.reshape(shape)
  batch_only = PartitionSpec(spec[0], *([None] * (len(shape) - 1)))
  return jnp.reshape(x, shape, out_sharding=NamedSharding(sharding.mesh, batch_only))


def conv_space_to_depth(x: jax.Array, kernel: jax.Array, strides: Triple,
                        padding: Padding, stride1_conv=None) -> jax.Array:
  """Strided conv as a stride-1 conv over an s-phase regrouping of the padded input.

  Along a dim with stride s and kernel k, output o[i] = sum_j xp[s*i + j] w[j]. Writing
  j = s*a + r and xp[s*m + r] = X[m, r] gives o[i] = sum_{a, r} X[i + a, r] W'[a, r], a
  stride-1 conv over X (r folded into channels) with a ceil(k/s)-tap kernel W', zero where
  s*a + r >= k.
  """
  batch, channels = x.shape[0], x.shape[-1]
  kernel_size = kernel.shape[:3]
  out_spatial = output_shape(x.shape[1:4], kernel_size, strides, padding)
  block_taps = [-(-k // s) for k, s in zip(kernel_size, strides)]
  phase_lengths = [o + a - 1 for o, a in zip(out_spatial, block_taps)]
  # Pad (or crop: the tail beyond s*M is never read) so each dim is exactly s*M long.
  pads = []
  for size, s, m, (low, high) in zip(x.shape[1:4], strides, phase_lengths, padding):
    pads.append((low, s * m - size - low))
  x = lax.pad(x, jnp.zeros((), x.dtype),
              [(0, 0, 0)] + [(lo, hi, 0) for lo, hi in pads] + [(0, 0, 0)])
  (st, sh, sw), (mt, mh, mw) = strides, phase_lengths
  x = _reshape_keeping_batch_sharding(x, (batch, mt, st, mh, sh, mw, sw, channels))
  x = _reshape_keeping_batch_sharding(x.transpose(0, 1, 3, 5, 2, 4, 6, 7),
                                      (batch, mt, mh, mw, st * sh * sw * channels))
  (at, ah, aw) = block_taps
  out_features = kernel.shape[-1]
  kernel = jnp.pad(kernel, [(0, a * s - k) for a, s, k in
                            zip(block_taps, strides, kernel_size)] + [(0, 0), (0, 0)])
  kernel = kernel.reshape(at, st, ah, sh, aw, sw, channels, out_features)
  kernel = kernel.transpose(0, 2, 4, 1, 3, 5, 6, 7).reshape(
      at, ah, aw, st * sh * sw * channels, out_features)
  if stride1_conv is not None:
    return stride1_conv(x, kernel)
  return conv_native(x, kernel, (1, 1, 1), ((0, 0), (0, 0), (0, 0)))


def extract_patches(x: jax.Array, kernel_size: Triple, strides: Triple,
                    padding: Padding) -> jax.Array:
  """[B, T', H', W', kt*kh*kw*C] patches, ordered (dt, dh, dw, c) like the kernel.

  Built one spatial dim at a time (W, then H, then T), so a 3x7x7 stem costs 17 strided
  slices rather than 147: compile time grows with the slice count on XLA:CPU.
  """
  out_spatial = output_shape(x.shape[1:4], kernel_size, strides, padding)
  x = jnp.pad(x, [(0, 0)] + list(padding) + [(0, 0)])
  for axis in (3, 2, 1):  # W, H, T: each step prepends its tap index to the channels.
    taps, stride, count = kernel_size[axis - 1], strides[axis - 1], out_spatial[axis - 1]
    pieces = []
    for offset in range(taps):
      pieces.append(lax.slice_in_dim(x, offset, offset + (count - 1) * stride + 1,
                                     stride, axis=axis))
    x = pieces[0] if taps == 1 else jnp.concatenate(pieces, axis=-1)
  return x


def conv_im2col(x: jax.Array, kernel: jax.Array, strides: Triple,
                padding: Padding) -> jax.Array:
  """Conv as patch extraction plus a single [B*T'H'W', k*C] x [k*C, O] matmul."""
  patches = extract_patches(x, kernel.shape[:3], strides, padding)
  flat_kernel = kernel.reshape(-1, kernel.shape[-1])
  return jnp.einsum("bthwk,ko->bthwo", patches, flat_kernel)


def _flat_kernel(kernel: jax.Array) -> jax.Array:
  return kernel.reshape(-1, kernel.shape[-1])


def _gemm_conv_stride1(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
  patches = extract_patches(x, kernel.shape[:3], (1, 1, 1), padding)
  return jnp.einsum("bthwk,ko->bthwo", patches, _flat_kernel(kernel))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_gemm(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
  """Stride-1 conv as im2col + GEMM, with a VJP made of two more im2col GEMMs.

  Autodiff of ``conv_im2col`` would keep the 27x-sized patches alive until the backward
  pass and scatter a 27x-sized patch gradient back into the input; here the backward pass
  rebuilds the patches from the saved input (cheap, memory-bound) and computes
    d_input  = patches(pad(dy)) @ flip(kernel)^T   (a stride-1 conv of dy),
    d_kernel = patches(x)^T @ dy                    (one GEMM contracting B*T*H*W).
  """
  return _gemm_conv_stride1(x, kernel, padding)


def _conv_gemm_forward(x, kernel, padding):
  return _gemm_conv_stride1(x, kernel, padding), (x, kernel)


def _conv_gemm_backward(padding, residuals, d_out):
  x, kernel = residuals
  kernel_size = kernel.shape[:3]
  # The input gradient of a stride-1 correlation is a correlation of the output gradient
  # with the spatially flipped kernel (in/out swapped), padded by k-1-pad on each side.
  transposed_padding = tuple((k - 1 - low, k - 1 - high)
                             for k, (low, high) in zip(kernel_size, padding))
  flipped = jnp.flip(kernel, axis=(0, 1, 2)).swapaxes(3, 4)
  d_input = _gemm_conv_stride1_any_padding(d_out, flipped, transposed_padding)
  patches = extract_patches(x, kernel_size, (1, 1, 1), padding)
  d_kernel = jnp.einsum("bthwk,bthwo->ko", patches, d_out).reshape(kernel.shape)
  return d_input.astype(x.dtype), d_kernel.astype(kernel.dtype)


def _gemm_conv_stride1_any_padding(x, kernel, padding):
  """Like _gemm_conv_stride1 but negative padding (a crop) is allowed."""
  crops = [(max(-low, 0), max(-high, 0)) for low, high in padding]
  if any(c != (0, 0) for c in crops):
    x = x[:, crops[0][0]:x.shape[1] - crops[0][1], crops[1][0]:x.shape[2] - crops[1][1],
          crops[2][0]:x.shape[3] - crops[2][1]]
    padding = tuple((max(low, 0), max(high, 0)) for low, high in padding)
  return _gemm_conv_stride1(x, kernel, padding)


conv_gemm.defvjp(_conv_gemm_forward, _conv_gemm_backward)


def conv_gemm_any_stride(x: jax.Array, kernel: jax.Array, strides: Triple,
                         padding: Padding) -> jax.Array:
  """'gemm': strided layers go through space-to-depth first, then the GEMM conv."""
  if strides == (1, 1, 1):
    return conv_gemm(x, kernel, padding)
  return conv_space_to_depth(x, kernel, strides, padding,
                             stride1_conv=lambda a, b: conv_gemm(a, b, ((0, 0),) * 3))


def conv_subsample(x: jax.Array, kernel: jax.Array, strides: Triple,
                   padding: Padding) -> jax.Array:
  """1x1x1 conv (any stride, any padding) as a strided slice and a matmul."""
  if kernel.shape[:3] != (1, 1, 1):
    raise ValueError(f"Conv3D impl='subsample' needs a 1x1x1 kernel, got {kernel.shape[:3]}")
  patches = extract_patches(x, (1, 1, 1), strides, padding)
  return jnp.einsum("bthwc,co->bthwo", patches, kernel[0, 0, 0])


_PATHS = {
    "native": conv_native,
    "s2d": conv_space_to_depth,
    "im2col": conv_im2col,
    "subsample": conv_subsample,
    "gemm": conv_gemm_any_stride,
}


def choose_cpu_implementation(input_shape: Sequence[int], kernel_size: Triple,
                              strides: Triple, out_features: int) -> str:
  """The formulation measured fastest on XLA:CPU for this layer shape.

  Args:
    input_shape: [B, T, H, W, C] of the layer input.
    kernel_size: (kt, kh, kw).
    strides: (st, sh, sw).
    out_features: number of output channels.

  Returns:
    One of 'native', 's2d', 'im2col', 'subsample'.
  """
  del out_features
  in_features = input_shape[-1]
  taps = math.prod(kernel_size)
  if taps == 1:
    return "subsample"
  # Narrow inputs (the RGB stem, tiny widths): one GEMM with k*C contraction beats
  # XLA's direct conv, which vectorises over the input channels.
  if in_features * taps <= 1024 and in_features < 32:
    return "im2col"
  # Tiny maps (ResNet stage 4: 1x4x4 at 64x64 input): XLA's direct convolution ran at
  # ~1 GFLOP/s there (r3d_18 layer 4: 3.5 s forward + gradients vs 0.11 s as one GEMM).
  # Only for wide layers: at 32-64 channels the two paths cost the same, and keeping
  # XLA's convolution there leaves the small models' numerics as they were.
  if math.prod(input_shape[1:4]) <= 16 and in_features >= 128:
    return "im2col"
  if any(s > 1 for s in strides):
    return "s2d"
  return "native"


def conv3d(x: jax.Array, kernel: jax.Array, strides: Triple, padding: Padding,
           impl: str = "auto") -> jax.Array:
  """3D convolution, NDHWC input and DHWIO kernel, by the named formulation.

  Args:
    x: [B, T, H, W, C] input.
    kernel: [kt, kh, kw, C, O] kernel.
    strides: (st, sh, sw).
    padding: ((lo, hi),) * 3 explicit zero padding.
    impl: 'auto' (fastest exact path for the backend), 'native' (XLA's convolution),
      's2d', 'im2col' or 'subsample'.

  Returns:
    [B, T', H', W', O] output.
  """
  if impl == "auto":
    if jax.default_backend() != "cpu":
      impl = "native"
    else:
      impl = choose_cpu_implementation(x.shape, kernel.shape[:3], strides,
                                       kernel.shape[-1])
  try:
    path = _PATHS[impl]
  except KeyError:
    raise ValueError(
        f"Conv3D: unknown impl {impl!r}; valid: {', '.join(IMPLEMENTATIONS)}") from None
  return path(x, kernel, strides, padding)


class Conv3D(nnx.Module):
  """3D convolution with ``nnx.Conv``'s parameters and a per-backend fastest exact path.

  Attributes:
    kernel: nnx.Param [kt, kh, kw, in_features, out_features], stored in ``param_dtype``.
    bias: nnx.Param [out_features] or None.
  """

  def __init__(self, in_features: int, out_features: int,
               kernel_size: int | Sequence[int], *,
               strides: int | Sequence[int] = 1,
               padding="TORCH_SAME",
               use_bias: bool = False,
               dtype=None,
               param_dtype=jnp.float32,
               kernel_init=nnx.initializers.variance_scaling(2.0, "fan_out", "normal"),
               bias_init=nnx.initializers.zeros_init(),
               impl: str = "auto",
               rngs: nnx.Rngs):
    """Builds the layer.

    Args:
      in_features: input channels.
      out_features: output channels.
      kernel_size: int or (kt, kh, kw).
      strides: int or (st, sh, sw).
      padding: 'TORCH_SAME' (k//2 each side, torch's ``padding=k//2``), 'VALID', an int,
        or three ints / (low, high) pairs.
      use_bias: add a learned bias.
      dtype: compute dtype (e.g. jnp.bfloat16); None keeps the input's dtype.
      param_dtype: parameter storage dtype.
      kernel_init: kernel initialiser (default: torchvision's kaiming fan_out).
      bias_init: bias initialiser.
      impl: formulation ('auto' or one of IMPLEMENTATIONS); see ``conv3d``.
      rngs: nnx.Rngs with a 'params' stream.
    """
    if impl not in IMPLEMENTATIONS:
      raise ValueError(
          f"Conv3D: unknown impl {impl!r}; valid: {', '.join(IMPLEMENTATIONS)}")
    self.in_features = in_features
    self.out_features = out_features
    self.kernel_size = _as_triple(kernel_size, "kernel_size")
    self.strides = _as_triple(strides, "strides")
    self.padding = _as_padding(padding, self.kernel_size)
    self.dtype = dtype
    self.impl = impl
    # Logical axis names (see ssvbench.models.sharding_rules): output channels may be
    # split over a 'model' mesh axis; metadata only, the values do not depend on it.
    self.kernel = nnx.Param(
        kernel_init(rngs.params(), self.kernel_size + (in_features, out_features),
                    param_dtype),
        out_sharding=(None, None, None, None, CONV_OUT), eager_sharding=False)
    self.bias = (nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype),
                           out_sharding=(CONV_OUT,), eager_sharding=False)
                 if use_bias else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Applies the convolution.

    Args:
      x: [B, T, H, W, in_features].

    Returns:
      [B, T', H', W', out_features] in the compute dtype.
    """
    if x.ndim != 5 or x.shape[-1] != self.in_features:
      raise ValueError(
          f"Conv3D: expected input [B, T, H, W, {self.in_features}], got {x.shape}")
    out_spatial = output_shape(x.shape[1:4], self.kernel_size, self.strides, self.padding)
    if min(out_spatial) < 1:
      raise ValueError(
          f"Conv3D: input {x.shape[1:4]} is too small for kernel {self.kernel_size}, "
          f"strides {self.strides}, padding {self.padding} (output {out_spatial})")
    dtype = self.dtype or x.dtype
    kernel = self.kernel[...].astype(dtype)
    y = conv3d(x.astype(dtype), kernel, self.strides, self.padding, self.impl)
    if self.bias is not None:
      y = y + self.bias[...].astype(dtype)
    return y


def batch_norm(features: int, *, dtype, rngs: nnx.Rngs, zero_scale: bool = False,
               momentum: float = 0.9, epsilon: float = 1e-5) -> nnx.BatchNorm:
  """BatchNorm after a Conv3D, its scale and bias named like the conv's output channels.

  Defaults are torch's BatchNorm3d (flax momentum 0.9 is torch's 0.1; eps 1e-5);
  ``zero_scale`` starts the scale at zero (a residual block's last BN, zero-init).
  """
  scale_init = nnx.initializers.zeros_init() if zero_scale else nnx.initializers.ones_init()
  return nnx.BatchNorm(
      features, momentum=momentum, epsilon=epsilon, dtype=dtype, rngs=rngs,
      scale_init=nnx.with_partitioning(scale_init, (CONV_OUT,), eager_sharding=False),
      bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (CONV_OUT,),
                                      eager_sharding=False))


def max_pool3d(x: jax.Array, kernel: Sequence[int], strides: Sequence[int],
               padding: Sequence[int]) -> jax.Array:
  """torch.nn.MaxPool3d on [B, T, H, W, C]: symmetric padding with -inf, floor sizes.

  The init value is the Python scalar -inf so that JAX recognises a max-pool (which it
  can differentiate); an array init value makes it a generic reduce_window, which has no
  reverse-mode rule.
  """
  return lax.reduce_window(
      x, -jnp.inf, lax.max, (1, *kernel, 1), (1, *strides, 1),
      ((0, 0),) + tuple((p, p) for p in padding) + ((0, 0),))
