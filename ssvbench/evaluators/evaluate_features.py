"""`ssvbench evaluate-features`: every frozen-feature evaluator of a protocol on any features.

A user who trained a model anywhere (PyTorch, another JAX codebase) extracts features
with the protocol's views, saves them as .npz, and gets numbers computed exactly as
ssvbench computes its own, stamped with the protocol's name, version and fingerprint.
When no validation file is given, validation is carved from train by `groups` (or by
video), recorded in the result, and only ever used for selection.

Result JSON (one object): `protocol` {name, version, fingerprint}, `metrics`
{name: number}, `skipped` {metric: reason}, `details` {evaluator: what it chose},
`validation` (given or carved, and how), `inputs` (per split: path, sha256, shape),
`seconds` per evaluator, and `sweeps` when requested. Metrics are deterministic: the
same inputs give bit-identical numbers. Every accuracy-like metric has a `<metric>_ci95`
sibling (half-width of its 95% interval, `ssvbench.results.stats`). With `--out`, the
per-video outcomes are written beside the JSON (`ssvbench.results.predictions`) and
`predictions` {file, sha256} names that sidecar.

Every evaluator averages the views of the TRAINING features, so train.npz may hold
[N, D] view-averaged features (what makes a Kinetics-sized train split fit in memory);
test views matter only to the diagnostics' alignment.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import pathlib
import sys
from typing import Any, Mapping, Sequence

import ml_collections
import numpy as np

from ssvbench import hashing
from ssvbench.data import validation as validation_lib
from ssvbench.evaluators import feature_inputs
from ssvbench.evaluators import features as features_lib
from ssvbench.evaluators import protocol as protocol_lib
from ssvbench.evaluators import registry
from ssvbench.results import predictions as predictions_lib

FeatureInput = features_lib.FeatureSet | str | pathlib.Path


def _package_version() -> str:
  try:
    return importlib.metadata.version("ssvbench")
  except importlib.metadata.PackageNotFoundError:
    return "unknown"


def _max_label(source: FeatureInput) -> int:
  if isinstance(source, features_lib.FeatureSet):
    return int(source.labels.max())
  return int(np.max(feature_inputs.labels_of(source)))


def _load(source: FeatureInput | None, num_classes: int, split: str):
  """Returns (FeatureSet, input description) for a path or an in-memory FeatureSet."""
  if source is None:
    return None, None
  if isinstance(source, features_lib.FeatureSet):
    if source.num_classes != num_classes:
      raise features_lib.FeatureError(
          f"{split} ({source.source}) has num_classes={source.num_classes} but the protocol "
          f"has {num_classes}.")
    feature_set, info = source, {"source": source.source}
  else:
    path = pathlib.Path(source)
    feature_set = features_lib.load_npz(path, num_classes)
    info = {"path": str(path), "sha256": hashing.file_sha256(path)}
  info.update(num_videos=feature_set.num_videos, num_views=feature_set.num_views,
              dim=feature_set.dim, has_groups=feature_set.groups is not None,
              has_video_ids=feature_set.video_ids is not None)
  return feature_set, info


def _validation_record(train: features_lib.FeatureSet, val_info, resolved) -> dict[str, Any]:
  if val_info is not None:
    return {"source": "given", **{k: v for k, v in val_info.items() if k in ("path", "source")}}
  grouped_by = ("groups" if train.groups is not None else
                "video_ids" if train.video_ids is not None else "video (row)")
  return {"source": "carved from train", "grouped_by": grouped_by,
          "carving": validation_lib.CARVING_VERSION, **dict(resolved["validation"])}


def evaluate_features(protocol: str | ml_collections.ConfigDict | Mapping[str, Any],
                      train: FeatureInput, test: FeatureInput, val: FeatureInput | None = None,
                      *, sweeps: bool = False, only: Sequence[str] | None = None,
                      predictions: dict[str, Any] | None = None) -> dict[str, Any]:
  """Runs every evaluator of a protocol on frozen features.

  Args:
    protocol: a protocol name (`ucf101`, `synthactions:runlocal`), a path to a protocol
      file, or a spec (ConfigDict or mapping).
    train: training features (.npz path or FeatureSet); the k-NN/retrieval gallery and
      the source of carved validation.
    test: test features; scored once per evaluator.
    val: optional validation features, disjoint from train and test.
    sweeps: also run the protocol's diagnostic sweeps (results under 'sweeps').
    only: run only these `evals` entries (e.g. ('knn', 'linear')); default all.
    predictions: if a dict, filled with 'video_ids' (the test ids, or None) and
      'metrics' {metric: per-unit outcomes} of the `evals` metrics, for a sidecar.

  Returns:
    The result record described in the module docstring.
  """
  if isinstance(protocol, str):
    spec = protocol_lib.load_protocol(protocol)
  else:
    spec = protocol
    protocol_lib.validate(spec)
  resolved = protocol_lib.resolve(spec)
  if only is not None:
    unknown = sorted(set(only) - set(resolved["evals"]))
    if unknown:
      raise protocol_lib.ProtocolError(f"only={list(only)}: {unknown} not in the protocol's evals "
                                       f"{sorted(resolved['evals'])}.")
    resolved["evals"] = {name: resolved["evals"][name] for name in only}
  num_classes = resolved["num_classes"]
  if num_classes is None:
    # Taken from the data: the in-memory sets' class lists, else one past the largest label.
    inputs = [s for s in (train, test, val) if s is not None]
    num_classes = max([s.num_classes for s in inputs if isinstance(s, features_lib.FeatureSet)]
                      + [1 + _max_label(s) for s in inputs])
  train_set, train_info = _load(train, num_classes, "train")
  test_set, test_info = _load(test, num_classes, "test")
  val_set, val_info = _load(val, num_classes, "val")
  features_lib.check_compatible(train_set, test_set, val_set)
  warnings = feature_inputs.unseen_class_warnings(train_set, test_set, val_set)

  result: dict[str, Any] = {
      "protocol": {"name": resolved["name"], "version": resolved["version"],
                   "fingerprint": protocol_lib.fingerprint(spec)},
      **({"evals_run": list(only)} if only is not None else {}),
      "num_classes": num_classes,
      "inputs": {"train": train_info, "test": test_info,
                 **({"val": val_info} if val_info else {})},
      "validation": _validation_record(train_set, val_info, resolved),
      "metrics": {}, "skipped": {}, "details": {}, "seconds": {},
      "ssvbench_version": _package_version(),
      **({"warnings": warnings} if warnings else {}),
  }
  sections = [("evals", "metrics")] + ([("sweeps", "sweeps")] if sweeps else [])
  collected: dict[str, Any] = {}
  for section, output in sections:
    result.setdefault(output, {})
    for kind, payload in registry.run_evaluators(resolved.get(section) or {}, train_set,
                                                 test_set, val_set):
      if kind == "metric":
        result[output][payload[0]] = payload[1]
      elif kind == "predictions":
        if section == "evals":
          collected.update(payload)
      else:
        result[kind].update(payload)
  if predictions is not None:
    predictions.update(video_ids=test_set.video_ids, metrics=collected)
  return result


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the `evaluate-features` arguments to a (sub)parser."""
  parser.add_argument("--protocol", required=True,
                      help="protocol name (e.g. ucf101, synthactions:runlocal) or .py path; "
                           f"available: {', '.join(protocol_lib.available_protocols())}")
  parser.add_argument("--train", required=True, help="train features .npz (features, labels, "
                      "optional video_ids, groups)")
  parser.add_argument("--test", required=True, help="test features .npz")
  parser.add_argument("--val", default=None, help="validation features .npz; default: carved "
                      "from train by groups (or by video)")
  parser.add_argument("--out", default=None, help="write the result JSON here (default: "
                      "stdout); an existing file is an error unless --overwrite")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
  parser.add_argument("--sweeps", action="store_true",
                      help="also run the protocol's diagnostic sweeps (k-NN k x T table)")
  from ssvbench.evaluators import feature_records
  feature_records.add_arguments(parser)


def run_cli(args: argparse.Namespace) -> int:
  """Runs `evaluate-features` from parsed arguments; returns the exit code."""
  from ssvbench.evaluators import feature_records
  overwrite = getattr(args, "overwrite", False)
  collected: dict[str, Any] = {}
  try:
    feature_inputs.check_out(args.out, overwrite)
    spec = protocol_lib.load_protocol(args.protocol)
    problem = feature_records.check_arguments(args, spec)
    if problem:
      raise protocol_lib.ProtocolError(problem)
    result = evaluate_features(spec, args.train, args.test, args.val,
                               sweeps=args.sweeps, predictions=collected)
    if args.out and collected["metrics"]:
      out = pathlib.Path(args.out)
      # The sidecar's name is relative to the JSON's folder, where it is written.
      result["predictions"] = predictions_lib.write_sidecar(
          out.parent, predictions_lib.sidecar_name(result), collected["metrics"],
          collected["video_ids"])
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out:  # Written whole, and never over an existing file unless asked.
      feature_inputs.write_out(args.out, text + "\n", overwrite)
  except (features_lib.FeatureError, protocol_lib.ProtocolError) as error:
    print(f"evaluate-features: error: {' '.join(str(error).split())}", file=sys.stderr)
    return 2
  if getattr(args, "results", None):
    from ssvbench.results import records
    record = feature_records.make_record(args, spec, result)
    # The record's sidecar sits beside the results file it is appended to.
    predictions_lib.attach(record, pathlib.Path(args.results).parent, collected["metrics"],
                           collected["video_ids"])
    records.append_record(args.results, record)
    logging.info("appended the record to %s", args.results)
  if args.out:
    for name, value in sorted(result["metrics"].items()):
      print(f"{name:32s} {value:10.4f}")
    for name, reason in sorted(result["skipped"].items()):
      print(f"{name:32s} skipped: {reason}")
    print(f"protocol {result['protocol']['name']} v{result['protocol']['version']} "
          f"fingerprint {result['protocol']['fingerprint'][:16]}; wrote {args.out}")
  else:
    print(text)
  logging.info("evaluate-features done")
  return 0
