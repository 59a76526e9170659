"""Training-step speed of the 3D ResNets on CPU: JAX (native conv vs auto) against PyTorch.

Why: every CPU run of ssvbench (quickstart, tests, CI) is bounded by how fast XLA trains
3D CNNs on CPU (issue 7). This prints, for each backbone at its benchmark shape, a
SimCLR-like step (backbone + MLP head + NT-Xent over two views, forward, backward, SGD with
momentum) in JAX with XLA's native convolution, in JAX with ``Conv3D(impl='auto')``, and
the same architecture and step in PyTorch, run interleaved in one process so that both
see the same machine load. It reports clips/s, the JAX/PyTorch ratio, model FLOPs per clip
(XLA's cost analysis of the native forward; training = 3x forward), achieved GFLOP/s and
the fraction of the 2048^3 matmul peak of each framework, measured in the same run.

``--layer-profile`` adds, per distinct convolution of the backbone, forward + input
gradient + kernel gradient time for each JAX formulation and for torch, i.e. what the gap
between the two frameworks is made of.

Run (1 device; do not set --xla_force_host_platform_device_count):
  python benchmarks/bench_backbones.py --backbones r3d_18,r3d_cpu --rounds 3
  python benchmarks/bench_backbones.py --backbones r3d_cpu --dtypes bfloat16
  python benchmarks/bench_backbones.py --backbones r3d_18 --layer-profile
Needs the ``bench`` extra (``pip install torch==2.13.0``).
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

from ssvbench.models import conv as conv_lib
from ssvbench.models.registry import available_backbones, build_backbone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jax_step import (LEARNING_RATE, PROJECTION_DIM, TEMPERATURE,  # noqa: E402
                      forward_flops_per_clip, make_jax_step)
from torch_reference import build_torch_backbone  # noqa: E402

# Benchmark shape per backbone: (clips per step = 2 views x videos, frames, height=width).
SHAPES = {
    "r3d_18": (16, 8, 64),
    "r3d_34": (16, 8, 64),
    "r3d_50": (16, 8, 64),
    "mc3_18": (16, 8, 64),
    "r2plus1d_18": (16, 8, 64),
    "r3d_cpu": (64, 8, 32),
    "r3d_tiny": (64, 8, 32),
}


def make_torch_step(backbone_name: str, dtype: str):
  backbone = build_torch_backbone(backbone_name)
  width = backbone.feature_dim
  model = torch.nn.Sequential(backbone, torch.nn.Linear(width, width), torch.nn.ReLU(),
                              torch.nn.Linear(width, PROJECTION_DIM))
  optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9)

  def loss_fn(features):
    features = torch.nn.functional.normalize(features.float(), dim=-1)
    count = features.shape[0] // 2
    logits = features @ features.T / TEMPERATURE
    logits = logits.masked_fill(torch.eye(2 * count, dtype=torch.bool), -1e9)
    labels = torch.cat([torch.arange(count, 2 * count), torch.arange(count)])
    return torch.nn.functional.cross_entropy(logits, labels)

  def step(clips):
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=(dtype == "bfloat16")):
      loss = loss_fn(model(clips))
    loss.backward()
    optimizer.step()
    return loss.item()

  return step


def matmul_peaks(dtype_name: str, rounds: int = 5) -> tuple[float, float]:
  """2048^3 matmul GFLOP/s of (JAX, torch), interleaved."""
  size = 2048
  jax_dtype = jnp.bfloat16 if dtype_name == "bfloat16" else jnp.float32
  torch_dtype = torch.bfloat16 if dtype_name == "bfloat16" else torch.float32
  a = jax.random.normal(jax.random.key(0), (size, size), jax_dtype)
  matmul = jax.jit(lambda m: m @ m)
  matmul(a).block_until_ready()
  ta = torch.randn(size, size, dtype=torch_dtype)
  ta @ ta
  best_jax = best_torch = float("inf")
  for _ in range(rounds):
    start = time.perf_counter()
    matmul(a).block_until_ready()
    best_jax = min(best_jax, time.perf_counter() - start)
    start = time.perf_counter()
    ta @ ta
    best_torch = min(best_torch, time.perf_counter() - start)
  flops = 2 * size ** 3
  return flops / best_jax / 1e9, flops / best_torch / 1e9


def benchmark_backbone(name: str, impls, dtype_name: str, rounds: int, steps: int):
  clips_per_step, frames, size = SHAPES[name]
  dtype = jnp.bfloat16 if dtype_name == "bfloat16" else jnp.float32
  forward_flops = forward_flops_per_clip(name, frames, size)
  train_flops = 3 * forward_flops
  rng = np.random.default_rng(0)
  clips = rng.normal(size=(clips_per_step, frames, size, size, 3)).astype(np.float32)
  runners = {}
  for impl in impls:
    step, state = make_jax_step(name, impl, dtype)
    jax_clips = jnp.asarray(clips)
    start = time.perf_counter()
    state, loss = step(state, jax_clips)
    loss.block_until_ready()
    print(f"  [{name} jax/{impl}] compile + first step {time.perf_counter() - start:.1f}s",
          flush=True)
    holder = {"state": state}

    def run(step=step, holder=holder, jax_clips=jax_clips):
      holder["state"], loss = step(holder["state"], jax_clips)
      return float(loss)
    runners[f"jax/{impl}"] = run
  torch_step = make_torch_step(name, dtype_name)
  torch_clips = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).contiguous()
  torch_step(torch_clips)
  runners["torch"] = lambda: torch_step(torch_clips)
  times = collections.defaultdict(list)
  for _ in range(rounds):
    for label, run in runners.items():
      for _ in range(steps):
        start = time.perf_counter()
        run()
        times[label].append(time.perf_counter() - start)
  peak_jax, peak_torch = matmul_peaks(dtype_name)
  print(f"\n{name} {dtype_name}: {clips_per_step} clips of {frames}x{size}x{size}, "
        f"forward {forward_flops / 1e9:.3f} GFLOP/clip, training 3x = "
        f"{train_flops / 1e9:.3f} GFLOP/clip; matmul peak jax {peak_jax:.0f}, "
        f"torch {peak_torch:.0f} GFLOP/s")
  torch_time = statistics.median(times["torch"])
  for label, values in times.items():
    median = statistics.median(values)
    achieved = train_flops * clips_per_step / median / 1e9
    peak = peak_torch if label == "torch" else peak_jax
    print(f"  {label:14s} step median {median:7.3f}s (min {min(values):.3f}, n={len(values)})"
          f"  {clips_per_step / median:8.1f} clips/s  x{torch_time / median:5.2f} of torch"
          f"  {achieved:6.1f} GFLOP/s = {achieved / peak:5.1%} of its matmul peak")
  return times


def record_conv_layers(name: str, clips_per_step: int, frames: int, size: int):
  """Distinct (input shape, kernel, strides, padding, out) convs of a backbone, counted."""
  layers = collections.Counter()
  original_call = conv_lib.Conv3D.__call__

  def recording_call(self, x):
    layers[(tuple(x.shape), self.kernel_size, self.strides, self.padding,
            self.out_features)] += 1
    return original_call(self, x)

  conv_lib.Conv3D.__call__ = recording_call
  try:
    model = nnx.eval_shape(lambda: build_backbone(name, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    jax.eval_shape(lambda s, x: nnx.merge(graphdef, s, copy=True)(x), state,
                   jax.ShapeDtypeStruct((clips_per_step, frames, size, size, 3),
                                        jnp.float32))
  finally:
    conv_lib.Conv3D.__call__ = original_call
  return layers


def layer_profile(name: str, impls, rounds: int):
  """Per conv layer: forward + d_input + d_kernel seconds, JAX formulations vs torch."""
  clips_per_step, frames, size = SHAPES[name]
  layers = record_conv_layers(name, clips_per_step, frames, size)
  totals = collections.defaultdict(float)
  total_flops = 0.0
  print(f"\nPer-layer profile of {name} ({clips_per_step} clips {frames}x{size}x{size}): "
        "fwd + d_input + d_kernel seconds (stem: no d_input), min of "
        f"{rounds}; auto's choice in brackets")
  for index, ((shape, kernel_size, strides, padding, out_features), count) in enumerate(
      layers.items()):
    first_layer = index == 0
    x = jax.random.normal(jax.random.key(0), shape)
    kernel = 0.05 * jax.random.normal(jax.random.key(1), kernel_size + (shape[-1],
                                                                        out_features))
    out_shape = jax.eval_shape(
        lambda a, b: conv_lib.conv_native(a, b, strides, padding), x, kernel).shape
    d_out = jax.random.normal(jax.random.key(2), out_shape)
    flops = (2 * np.prod(out_shape) * np.prod(kernel_size) * shape[-1] *
             (2 if first_layer else 3))
    runners = {}
    for impl in impls:
      def fwd_bwd(x, kernel, d_out, impl=impl):
        _, pullback = jax.vjp(lambda a, b: conv_lib.conv3d(a, b, strides, padding, impl),
                              x, kernel)
        d_input, d_kernel = pullback(d_out)
        return (d_input[:1, :1, :1, :1] if first_layer else d_input), d_kernel
      compiled = jax.jit(fwd_bwd)
      jax.block_until_ready(compiled(x, kernel, d_out))
      runners[impl] = (lambda c=compiled: jax.block_until_ready(c(x, kernel, d_out)))
    tx = torch.randn(shape[0], shape[4], *shape[1:4], requires_grad=not first_layer)
    tk = (0.05 * torch.randn(out_features, shape[4], *kernel_size)).requires_grad_(True)
    tdy = torch.randn(out_shape[0], out_features, *out_shape[1:4])
    torch_padding = tuple(low for low, _ in padding)

    def torch_fwd_bwd():
      torch.nn.functional.conv3d(tx, tk, stride=strides, padding=torch_padding).backward(tdy)
      tx.grad = None
      tk.grad = None
    torch_fwd_bwd()
    runners["torch"] = torch_fwd_bwd
    best = {label: float("inf") for label in runners}
    for _ in range(rounds):
      for label, run in runners.items():
        start = time.perf_counter()
        run()
        best[label] = min(best[label], time.perf_counter() - start)
    for label, seconds in best.items():
      totals[label] += seconds * count
    total_flops += flops * count
    choice = conv_lib.choose_cpu_implementation(shape, kernel_size, strides, out_features)
    cells = " ".join(f"{label} {seconds:7.3f}" for label, seconds in best.items())
    print(f"  x{count} {str(shape):22s} k{kernel_size} s{strides} ->{out_features:<4d} "
          f"[{choice}] {flops / 1e9:6.2f} GFLOP: {cells}", flush=True)
  cells = "  ".join(f"{label} {seconds:.3f}s ({total_flops / seconds / 1e9:.0f} GFLOP/s)"
                    for label, seconds in totals.items())
  print(f"  all convs ({total_flops / 1e9:.1f} GFLOP): {cells}")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--backbones", default="r3d_18,r3d_cpu")
  parser.add_argument("--impls", default="native,auto",
                      help="JAX conv formulations for the step, e.g. native,auto")
  parser.add_argument("--dtypes", default="float32", help="float32 and/or bfloat16")
  parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
  parser.add_argument("--steps", type=int, default=2, help="timed steps per round")
  parser.add_argument("--layer-profile", action="store_true")
  parser.add_argument("--profile-impls", default="native,auto")
  args = parser.parse_args(argv)
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    print("warning: XLA_FLAGS forces several host devices; the benchmark is for 1 device")
  print(f"jax {jax.__version__} ({jax.device_count()} {jax.default_backend()} device), "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"load average {os.getloadavg()[0]:.1f}")
  for name in args.backbones.split(","):
    if name not in SHAPES:
      raise SystemExit(f"--backbones: {name!r} has no benchmark shape; valid: "
                       f"{sorted(set(SHAPES) & set(available_backbones()))}")
    for dtype_name in args.dtypes.split(","):
      benchmark_backbone(name, args.impls.split(","), dtype_name, args.rounds, args.steps)
    if args.layer_profile:
      layer_profile(name, args.profile_impls.split(","), args.rounds)
  print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  main()
