"""Time and memory of the linear probe at Kinetics scale, as the protocol runs it.

Why: the linear probe is the evaluator papers lead with, and at Kinetics-400 scale
(240k training videos x 2048-d, 400 classes) its cost decides whether a CPU-only user can
run the protocol at all. This runs `ssvbench.evaluators.linear.Evaluator` end to end
(standardisation, the protocol's learning-rate x weight-decay grid trained at once on
the fitting part of train, selection on the carved validation part, refit of the chosen
point on all of train, scoring of the test split) on random features of the protocol's
sizes, for 1 and 2 epochs, each in a fresh process (so the peak memory is per run), and
extrapolates linearly to the protocol's epoch count: every epoch costs the same steps.

Run (minutes; ~4 GB of features in memory):
  python benchmarks/bench_linear_probe.py                       # kinetics400 protocol
  python benchmarks/bench_linear_probe.py --train 24000 --test 2000 --epochs 1,2
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_evaluators import _features  # noqa: E402


def _child(train: int, test: int, dim: int, classes: int, epochs: int, protocol: str) -> dict:
  """One full linear-probe run in this process; returns seconds and memory figures."""
  from ssvbench.evaluators import features as features_lib
  from ssvbench.evaluators import linear
  from ssvbench.evaluators.protocol import load_protocol

  spec = dict(load_protocol(protocol).evals.linear)
  spec.pop("type")
  protocol_epochs, spec["epochs"] = spec["epochs"], epochs
  rng = np.random.default_rng(0)

  def feature_set(count: int, prefix: str, seed: int) -> features_lib.FeatureSet:
    return features_lib.FeatureSet(
        features=_features(count, dim, seed), labels=rng.integers(0, classes, count),
        num_classes=classes, video_ids=np.array([f"{prefix}{i}" for i in range(count)]),
        source=prefix)

  train_set, test_set = feature_set(train, "train", 0), feature_set(test, "test", 1)
  baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
  evaluator = linear.Evaluator(**spec)
  start = time.perf_counter()
  for _ in evaluator.run(train_set, test_set):
    pass
  seconds = time.perf_counter() - start
  return {"seconds": seconds, "grid_points": len(evaluator.grid),
          "protocol_epochs": protocol_epochs, "num_fit": evaluator.details["num_fit"],
          "input_mb": baseline,
          "peak_extra_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 - baseline}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--protocol", default="kinetics400",
                      help="protocol whose linear-probe settings are used")
  parser.add_argument("--train", type=int, default=240_000, help="training videos")
  parser.add_argument("--test", type=int, default=20_000, help="test videos")
  parser.add_argument("--dim", type=int, default=2048, help="feature dimension")
  parser.add_argument("--classes", type=int, default=400)
  parser.add_argument("--epochs", default="1,2", help="two epoch counts to time")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    print(json.dumps(_child(args.train, args.test, args.dim, args.classes, int(args.epochs),
                            args.protocol)))
    return
  epochs = [int(e) for e in args.epochs.split(",")]
  if len(epochs) != 2 or epochs[0] >= epochs[1]:
    parser.error(f"--epochs needs two increasing counts, got {args.epochs!r}")
  print(f"linear probe ({args.protocol} settings): train {args.train} x {args.dim}, test "
        f"{args.test}, {args.classes} classes, float32; {os.cpu_count()} CPU cores",
        flush=True)
  runs = {}
  for count in epochs:
    command = [sys.executable, __file__, "--child", "--protocol", args.protocol,
               "--train", str(args.train), "--test", str(args.test), "--dim", str(args.dim),
               "--classes", str(args.classes), "--epochs", str(count)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    runs[count] = run = json.loads(output.strip().splitlines()[-1])
    print(f"  {count} epoch(s): {run['seconds']:7.1f} s ({run['grid_points']} grid points on "
          f"{run['num_fit']} fit videos, then the refit), peak +{run['peak_extra_mb']:.0f} MB "
          f"over the {run['input_mb']:.0f} MB input", flush=True)
  low, high = runs[epochs[0]], runs[epochs[1]]
  per_epoch = (high["seconds"] - low["seconds"]) / (epochs[1] - epochs[0])
  fixed = low["seconds"] - per_epoch * epochs[0]
  target = low["protocol_epochs"]
  # Weight gradient and forward of every grid point and of the refit: 4 N D C per epoch.
  flops = 4 * args.dim * args.classes * (low["grid_points"] * low["num_fit"] + args.train)
  print(f"  per epoch {per_epoch:.1f} s ({flops / per_epoch / 1e9:.0f} GFLOP/s in the "
        f"matmuls), fixed {fixed:.1f} s; the protocol's {target} epochs: "
        f"{fixed + per_epoch * target:.0f} s (extrapolated)")


if __name__ == "__main__":
  main()
