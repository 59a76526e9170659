"""Training-step speed and FLOP/s of every backbone variant on this CPU (JAX only).

Why: a benchmark suite must say what each backbone costs where it runs. For each variant
this prints a SimCLR-like training step's clips/s (forward + backward + SGD, the step of
bench_backbones.py), feature extraction's clips/s (the backbone's forward in eval mode,
jitted as the evaluators run it), the backbone's forward FLOPs per clip (XLA's cost analysis; a
training step counts 3x forward), the achieved GFLOP/s and its fraction of this machine's
2048^3 float32 matmul peak, measured in the same run (before and after, the best of both).

Shapes: the reference-size variants train on 8 clips of 8x64x64 (ViT-S/B: 4x4x4 tubelets
of 2x16x16), the CPU-sized ones on 16 clips of 8x32x32 (S3D needs >= 32 pixels). Torch is
not needed; bench_backbones.py compares the 3D ResNets with PyTorch.

Run (1 device; do not set --xla_force_host_platform_device_count):
  python benchmarks/bench_backbone_flops.py                    # every variant
  python benchmarks/bench_backbone_flops.py --backbones r3d_cpu,vit3d_tiny --steps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np
from flax import nnx

from ssvbench.models.registry import available_backbones, build_backbone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jax_step import forward_flops_per_clip, jax_matmul_peak, make_jax_step  # noqa: E402

CPU_SIZED = ("_tiny", "_cpu")
REFERENCE_SHAPE = (8, 8, 64)  # (clips per step, frames, height = width)
CPU_SHAPE = (16, 8, 32)
RESNETS = ("r3d_", "mc3_", "r2plus1d_")


def shape_of(name: str) -> tuple[int, int, int]:
  return CPU_SHAPE if name.endswith(CPU_SIZED) else REFERENCE_SHAPE


def _timed(run, steps: int) -> tuple[float, float]:
  """(first call incl. compile, median of `steps` further calls) in seconds."""
  start = time.perf_counter()
  run()
  first = time.perf_counter() - start
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  return first, statistics.median(times)


def extraction_step(name: str, conv_impl: str | None):
  """The evaluators' forward: backbone in eval mode, pooled features, one jit."""
  extra = {} if conv_impl is None else {"conv_impl": conv_impl}
  model = build_backbone(name, rngs=nnx.Rngs(0), **extra)
  model.eval()
  graphdef, state = nnx.split(model)
  forward = jax.jit(lambda state, clips: nnx.merge(graphdef, state)(clips))
  return lambda clips: forward(state, clips).block_until_ready()


def benchmark(name: str, steps: int) -> dict:
  clips_per_step, frames, size = shape_of(name)
  conv_impl = "auto" if name.startswith(RESNETS) else None
  flops = forward_flops_per_clip(name, frames, size,
                                 conv_impl="native" if conv_impl else None)
  step, state = make_jax_step(name, conv_impl, jax.numpy.float32)
  clips = jax.numpy.asarray(np.random.default_rng(0).normal(
      size=(clips_per_step, frames, size, size, 3)).astype(np.float32))
  holder = {"state": state}

  def train():
    holder["state"], loss = step(holder["state"], clips)
    loss.block_until_ready()
  compile_seconds, median = _timed(train, steps)
  extract = extraction_step(name, conv_impl)
  _, extract_median = _timed(lambda: extract(clips), steps)
  return dict(name=name, shape=(clips_per_step, frames, size), forward_gflop=flops / 1e9,
              step=median, clips_per_s=clips_per_step / median, compile=compile_seconds,
              achieved=3 * flops * clips_per_step / median / 1e9,
              extract_clips_per_s=clips_per_step / extract_median,
              extract_achieved=flops * clips_per_step / extract_median / 1e9)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--backbones", default="all", help="comma-separated, or 'all'")
  parser.add_argument("--steps", type=int, default=3, help="timed steps per backbone")
  args = parser.parse_args(argv)
  names = available_backbones() if args.backbones == "all" else args.backbones.split(",")
  unknown = sorted(set(names) - set(available_backbones()))
  if unknown:
    raise SystemExit(f"--backbones: unknown {unknown}; valid: {available_backbones()}")
  print(f"jax {jax.__version__} ({jax.device_count()} {jax.default_backend()} device), "
        f"load average {os.getloadavg()[0]:.1f}", flush=True)
  peak = jax_matmul_peak()
  rows = []
  for name in names:
    row = benchmark(name, args.steps)
    rows.append(row)
    print(f"  {name}: {row['step']:.3f}s/step (compile {row['compile']:.0f}s)", flush=True)
  peak = max(peak, jax_matmul_peak())
  print(f"\nfloat32 matmul peak (2048^3, best of before/after): {peak:.0f} GFLOP/s; "
        f"load average at the end {os.getloadavg()[0]:.1f}")
  print("| backbone | clips x T x H=W | forward GFLOP/clip | train step (s) | train clips/s "
        "| train GFLOP/s | of matmul peak | extract clips/s | extract GFLOP/s |")
  print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
  for r in rows:
    clips, frames, size = r["shape"]
    print(f"| {r['name']} | {clips} x {frames}x{size}x{size} | {r['forward_gflop']:.3f} | "
          f"{r['step']:.3f} | {r['clips_per_s']:.1f} | {r['achieved']:.1f} | "
          f"{r['achieved'] / peak:.1%} | {r['extract_clips_per_s']:.1f} | "
          f"{r['extract_achieved']:.1f} |")


if __name__ == "__main__":
  main()
