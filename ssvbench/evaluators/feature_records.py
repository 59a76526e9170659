"""`evaluate-features --results FILE`: a result record for features computed anywhere.

A model trained outside ssvbench (PyTorch, another JAX codebase) enters the same tables
as ssvbench's own runs: its features are scored by the same evaluators, and the record
carries the identity a table needs (run name, method, backbone, pre-training data,
official split) from flags, with provenance "features supplied": ssvbench saw the
features (their sha256 is kept), not the model or the videos, so the dataset's manifest
hash is whatever the user states (`--manifest-hash`) or `unrecorded`.

The flags are checked before anything is computed, so a bad invocation writes nothing.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any, Mapping

from ssvbench.results import records
from ssvbench.results import standard

PROVENANCE = "features supplied"
IDENTITY_FLAGS = ("run_name", "method", "backbone", "pretrain_data")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  group = parser.add_argument_group(
      "result record", "with --results, append one record that `ssvbench leaderboard` and "
      "`ssvbench publish` read; the identity flags are then required")
  group.add_argument("--results", default=None, help="results.jsonl to append the record to")
  group.add_argument("--run-name", default=None, help="name of the model in tables")
  group.add_argument("--method", default=None, help="pre-training method (e.g. videomae)")
  group.add_argument("--backbone", default=None, help="backbone (e.g. vit_b)")
  group.add_argument("--pretrain-data", default=None, help="pre-training data (e.g. "
                     "kinetics400; `none` for random init)")
  group.add_argument("--split", type=int, default=None, help="official split number (1-3) "
                     "of UCF101/HMDB51 the features were extracted on")
  group.add_argument("--pretrain-seed", type=int, default=0,
                     help="pre-training seed (rows aggregate over seeds)")
  group.add_argument("--pretrain-steps", type=int, default=None)
  group.add_argument("--pretrain-epochs", type=int, default=None)
  group.add_argument("--num-params", type=int, default=None, help="backbone parameter count")
  group.add_argument("--manifest-hash", default=None, help="manifest hash of the prepared "
                     "store the features came from, if known")


def check_arguments(args: argparse.Namespace, spec: Mapping[str, Any]) -> str | None:
  """The one-line problem with the record flags, or None when they are usable."""
  if getattr(args, "results", None) is None:
    extra = [f"--{f.replace('_', '-')}" for f in IDENTITY_FLAGS + ("split",)
             if getattr(args, f, None) is not None]
    return f"{', '.join(extra)} only make sense with --results FILE." if extra else None
  missing = [f"--{f.replace('_', '-')}" for f in IDENTITY_FLAGS
             if not (getattr(args, f) or "").strip()]
  if missing:
    return f"--results needs the identity of the model: {', '.join(missing)}."
  dataset = spec.get("dataset") or spec["name"]
  expected = standard.OFFICIAL_SPLITS.get(dataset)
  if args.split is not None:
    if not expected:
      return f"--split: {dataset} has no numbered official splits."
    if not 1 <= args.split <= expected:
      return f"--split {args.split}: {dataset}'s official splits are 1-{expected}."
  for name in ("pretrain_steps", "pretrain_epochs", "num_params"):
    value = getattr(args, name)
    if value is not None and value < 0:
      return f"--{name.replace('_', '-')} must be >= 0, got {value}."
  return None


def make_record(args: argparse.Namespace, spec: Mapping[str, Any],
                result: Mapping[str, Any]) -> dict[str, Any]:
  """The record of an `evaluate_features` result, identity from the flags."""
  dataset = spec.get("dataset") or spec["name"]
  test_split = dict(spec["splits"])["test"]
  # Input files by name and hash only: a record never carries a machine's paths.
  inputs = {split: {k: (pathlib.PurePath(v).name if k == "path" else v)
                    for k, v in info.items()}
            for split, info in result["inputs"].items()}
  extra: dict[str, Any] = {"provenance": PROVENANCE, "inputs": inputs,
                           "validation": result["validation"]}
  if args.split is not None:
    extra["official_split"] = args.split
  for name in ("pretrain_steps", "pretrain_epochs", "num_params"):
    if getattr(args, name) is not None:
      extra[name] = getattr(args, name)
  if result.get("skipped"):
    extra["skipped"] = dict(result["skipped"])
  return records.make_record(
      method=args.method, backbone=args.backbone, pretrain_data=args.pretrain_data,
      dataset=dataset,
      split=f"split{args.split}/{test_split}" if args.split is not None else test_split,
      protocol=result["protocol"], metrics=result["metrics"],
      seeds={"pretrain": args.pretrain_seed, "protocol": int(spec.get("seed", 0) or 0)},
      manifest_hash=args.manifest_hash or "unrecorded", checkpoint=None,
      run_name=args.run_name, extra=extra)
