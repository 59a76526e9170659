"""Speed and memory of the k-NN and retrieval search at Kinetics scale, vs numpy brute force.

Why: a Kinetics-400 gallery (240k training videos x 2048-d) against 20k queries is a
[20k, 240k] similarity matrix, 19 GB in float32; the usual implementation (one matmul,
one argsort) does not fit in memory on most machines, so papers subsample or drop
evaluators. `knn.top_k_cosine` chunks queries and gallery, merges a running top-k, and
must stay exact. This measures it against the plain numpy brute force (normalise,
`queries @ gallery.T`, stable argsort) and checks that both return the same neighbours.

Each measurement runs in a fresh subprocess, so peak memory (ru_maxrss) is per method;
the figure reported is the peak minus the resident size once the features exist and
the libraries are loaded (i.e. what the method adds on top of the input). The brute force is timed on a query
subset when the full matrix would not fit (`--brute_queries`), and its full-size time
and matrix memory are extrapolated linearly in the number of queries (the matmul and
the per-row sort are both linear in it), and labelled as such.

Run:
  python benchmarks/bench_evaluators.py --size small
  python benchmarks/bench_evaluators.py --size kinetics   # minutes
  python benchmarks/bench_evaluators.py --kernel          # chunk kernel: jax vs numpy
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

SIZES = {
    # name: (gallery, queries, dim)
    "small": (20_000, 2_000, 512),
    "kinetics": (240_000, 20_000, 2048),
}


def _features(count: int, dim: int, seed: int) -> np.ndarray:
  # Generated in blocks to avoid a float64 temporary of the full size.
  rng = np.random.default_rng(seed)
  out = np.empty((count, dim), np.float32)
  for start in range(0, count, 16384):
    out[start:start + 16384] = rng.standard_normal((min(16384, count - start), dim),
                                                   dtype=np.float32)
  return out


def _rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(method: str, size: str, k: int, center: bool, brute_queries: int) -> dict:
  """Runs one measurement in this (child) process and returns its figures."""
  num_gallery, num_queries, dim = SIZES[size]
  gallery = _features(num_gallery, dim, 0)
  queries = _features(num_queries, dim, 1)
  if method == "brute":
    if center:  # Centre with the mean of ALL queries, as the full computation would.
      queries -= queries.mean(axis=0)
    queries = queries[:brute_queries].copy()
  else:
    from ssvbench.evaluators import knn  # Library memory (jax, XLA) counts as input.
    knn.top_k_cosine(queries[:8], gallery[:64], 8)
  baseline = _rss_mb()
  start = time.perf_counter()
  if method == "chunked":
    _, ids = knn.top_k_cosine(queries, gallery, k, center=center)
  else:
    q, g = queries, gallery
    if center:
      g = g - g.mean(0)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    sims = q @ g.T
    ids = np.argsort(-sims, axis=1, kind="stable")[:, :k]
  seconds = time.perf_counter() - start
  return {"method": method, "seconds": seconds, "queries_run": len(queries),
          "peak_extra_mb": _rss_mb() - baseline, "input_mb": baseline,
          "ids_head": ids[:min(len(ids), 200)].tolist()}


def _run_child(*args: str) -> dict:
  output = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                          capture_output=True, text=True, env=dict(os.environ)).stdout
  return json.loads(output.strip().splitlines()[-1])


def _kernel_comparison(repeats: int = 3) -> None:
  """One [1024 x 16384 x 2048] chunk: the jax kernel vs numpy matmul + argpartition."""
  import jax
  import jax.numpy as jnp
  from ssvbench.evaluators import knn
  queries = knn.l2_normalise(_features(1024, 2048, 1))
  gallery = _features(16384, 2048, 0)
  k = 20
  best = (jnp.full((1024, k), -jnp.inf), jnp.full((1024, k), -1, jnp.int32))
  zero = jnp.zeros(2048, jnp.float32)
  device_queries, device_gallery = jax.device_put(queries), jax.device_put(gallery)
  jax.block_until_ready(knn._merge_chunk(device_queries, device_gallery, zero, 16384, 0, *best,
                                         k=k))
  timings = {"jax kernel (normalise + matmul + top_k + merge)": [],
             "numpy matmul + argpartition (ties unordered)": []}
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(knn._merge_chunk(device_queries, device_gallery, zero, 16384, 0,
                                           *best, k=k))
    timings["jax kernel (normalise + matmul + top_k + merge)"].append(time.perf_counter() - start)
    start = time.perf_counter()
    normalised = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    sims = queries @ normalised.T
    part = np.argpartition(-sims, k, axis=1)[:, :k]
    np.take_along_axis(sims, part, 1)
    timings["numpy matmul + argpartition (ties unordered)"].append(time.perf_counter() - start)
  flops = 2 * 1024 * 16384 * 2048
  for name, values in timings.items():
    print(f"{name:55s} best {min(values):6.3f} s  ({flops / min(values) / 1e9:5.1f} GFLOP/s)")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", choices=sorted(SIZES), default="small")
  parser.add_argument("--brute_queries", type=int, default=None,
                      help="queries for the brute force (default: all for small, 500 for "
                           "kinetics)")
  parser.add_argument("--kernel", action="store_true", help="compare the chunk kernels only")
  parser.add_argument("--searches", default="knn,retrieval",
                      help="comma-separated subset of knn,retrieval")
  parser.add_argument("--methods", default="chunked,brute",
                      help="comma-separated subset of chunked,brute")
  parser.add_argument("--child", nargs=5, metavar=("METHOD", "SIZE", "K", "CENTER", "BRUTEQ"),
                      help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    method, size, k, center, brute_queries = args.child
    print(json.dumps(_child(method, size, int(k), center == "1", int(brute_queries))))
    return
  if args.kernel:
    _kernel_comparison()
    return
  num_gallery, num_queries, dim = SIZES[args.size]
  brute_queries = args.brute_queries or (num_queries if args.size == "small" else 500)
  print(f"size={args.size}: gallery {num_gallery} x {dim}, queries {num_queries}, float32; "
        f"{os.cpu_count()} CPU cores; brute force on {brute_queries} queries")
  searches = {"knn": ("k-NN (k=20)", 20, "0"), "retrieval": ("retrieval (k=50, centred)", 50, "1")}
  methods = args.methods.split(",")
  full_matrix_mb = num_queries * num_gallery * 4 / 2**20
  for search in args.searches.split(","):
    name, k, center = searches[search]
    print(f"\n{name}")
    runs = {}
    if "chunked" in methods:
      runs["chunked"] = chunked = _run_child("chunked", args.size, str(k), center, "0")
      print(f"  chunked (ssvbench): {chunked['seconds']:8.1f} s, peak "
            f"+{chunked['peak_extra_mb']:7.0f} MB over the {chunked['input_mb']:.0f} MB input")
    if "brute" in methods:
      runs["brute"] = brute = _run_child("brute", args.size, str(k), center, str(brute_queries))
      scale = num_queries / brute["queries_run"]
      label = "measured" if scale == 1 else f"extrapolated x{scale:g} from {brute['queries_run']}"
      print(f"  numpy brute force:  {brute['seconds'] * scale:8.1f} s ({label}), peak "
            f"+{brute['peak_extra_mb']:7.0f} MB on {brute['queries_run']} queries; the full "
            f"similarity matrix alone is {full_matrix_mb:.0f} MB")
    if len(runs) == 2:
      pairs = list(zip(runs["chunked"]["ids_head"], runs["brute"]["ids_head"]))
      same = sum(a == b for a, b in pairs) / len(pairs)
      print(f"  identical ranked neighbour lists: {100 * same:.1f}% of the first {len(pairs)} "
            "queries")

if __name__ == "__main__":
  main()
