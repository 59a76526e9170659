"""`ssvbench compare A B`: is the gap between two evaluations larger than chance?

Two records measured under the same protocol fingerprint on the same test videos are
compared metric by metric from their predictions sidecars, without re-running anything:
the difference A - B, its 95% interval and a p-value from a paired bootstrap over the
shared test videos (episodes for episodic few-shot; videos and seeds for few-shot
linear), plus McNemar's exact test for top-1 metrics (`ssvbench.results.stats`).

Selecting a record: `FILE.jsonl:SELECTOR`, where SELECTOR is a 0-based line index
(negative counts from the end) or a run name that is unique in the file; a bare
`FILE.jsonl` with a single record; or a `.json` file holding one record or one
`evaluate-features` result. Sidecar file names are resolved against the folder of the
file that holds the record.

Refused, with one line and exit code 2: different protocol fingerprints, different
manifests (or, for evaluate-features results, different test video ids), a missing or
altered sidecar, or a requested metric that either side lacks.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

import numpy as np

from ssvbench.results import predictions as predictions_lib
from ssvbench.results import records as records_lib
from ssvbench.results import stats


class CompareError(ValueError):
  """Two records that cannot (or should not) be compared."""


def select_record(spec: str) -> tuple[dict[str, Any], pathlib.Path, str]:
  """(record or result, folder its sidecar is relative to, a label) for `FILE[:SELECTOR]`."""
  path_text, selector = spec, None
  if not pathlib.Path(spec).is_file() and ":" in spec:
    path_text, selector = spec.rsplit(":", 1)
  path = pathlib.Path(path_text)
  if not path.is_file():
    raise CompareError(f"{path_text}: no such file.")
  if path.suffix == ".jsonl":
    candidates = records_lib.load_records(path)
    if selector is None:
      if len(candidates) != 1:
        raise CompareError(f"{path} holds {len(candidates)} records; pick one with "
                           f"{path}:INDEX or {path}:RUN_NAME.")
      return candidates[0], path.parent, f"{path}:0"
    try:
      index = int(selector)
    except ValueError:
      matches = [r for r in candidates if r["run_name"] == selector]
      if len(matches) != 1:
        raise CompareError(f"{path}: run name {selector!r} matches {len(matches)} records; "
                           "use a line index instead.") from None
      return matches[0], path.parent, f"{path}:{selector}"
    if not -len(candidates) <= index < len(candidates):
      raise CompareError(f"{path}: index {index} is out of range ({len(candidates)} records).")
    return candidates[index], path.parent, f"{path}:{index}"
  if selector is not None:
    raise CompareError(f"{spec}: a selector applies to a .jsonl file only.")
  try:
    record = json.loads(path.read_text())
  except json.JSONDecodeError as error:
    raise CompareError(f"{path}: not JSON ({error.msg}).") from None
  if not isinstance(record, dict) or "protocol" not in record or "metrics" not in record:
    raise CompareError(f"{path}: neither a result record nor an evaluate-features result.")
  return record, path.parent, str(path)


def _fingerprint(record: dict[str, Any]) -> str:
  return str(record["protocol"].get("fingerprint"))


def _subset(video_ids: np.ndarray, packed: dict[str, Any]) -> np.ndarray:
  rows = packed.get("rows")
  return video_ids if rows is None else video_ids[rows]


def compare(a: dict[str, Any], a_dir: pathlib.Path, b: dict[str, Any], b_dir: pathlib.Path,
            metrics: list[str] | None = None, *,
            num_resamples: int = stats.PAIRED_RESAMPLES) -> dict[str, Any]:
  """Paired comparison of two records' shared metrics; raises CompareError if refused."""
  if _fingerprint(a) != _fingerprint(b):
    raise CompareError(f"different protocol fingerprints ({_fingerprint(a)[:12]} vs "
                       f"{_fingerprint(b)[:12]}): the numbers are not measured the same way.")
  if "manifest_hash" in a and "manifest_hash" in b and a["manifest_hash"] != b["manifest_hash"]:
    raise CompareError(f"different dataset manifests ({a['manifest_hash'][:12]} vs "
                       f"{b['manifest_hash'][:12]}): not the same test videos.")
  try:
    ids_a, packs_a = predictions_lib.load_for_record(a, a_dir)
    ids_b, packs_b = predictions_lib.load_for_record(b, b_dir)
  except predictions_lib.SidecarError as error:
    raise CompareError(str(error)) from None
  if ids_a.shape != ids_b.shape or not np.array_equal(ids_a, ids_b):
    raise CompareError("the two sidecars hold different test video ids (different manifests or "
                       "test features).")
  shared = sorted(set(packs_a) & set(packs_b))
  if metrics:
    missing = [m for m in metrics if m not in shared]
    if missing:
      raise CompareError(f"metric(s) {missing} are not in both sidecars; shared: {shared}.")
    shared = list(metrics)
  if not shared:
    raise CompareError("the two sidecars share no metric.")
  rows = []
  for metric in shared:
    pa, pb = packs_a[metric], packs_b[metric]
    if pa.get("unit") == "video" and not np.array_equal(_subset(ids_a, pa), _subset(ids_b, pb)):
      raise CompareError(f"{metric}: scored on different test videos.")
    try:
      test = stats.paired_bootstrap(pa, pb, num_resamples=num_resamples)
    except stats.MismatchError as error:
      raise CompareError(f"{metric}: {error}") from None
    row = {"metric": metric, "a": stats.value(pa), "b": stats.value(pb), **test}
    if pa.get("predicted") is not None and pa["outcomes"].shape[0] == 1 and (
        pa["statistic"] == "mean"):
      row["mcnemar"] = stats.mcnemar(pa["outcomes"][0], pb["outcomes"][0])
    rows.append(row)
  return {"fingerprint": _fingerprint(a), "num_resamples": num_resamples, "metrics": rows}


def format_text(result: dict[str, Any], label_a: str, label_b: str) -> str:
  lines = [f"A = {label_a}", f"B = {label_b}",
           f"protocol fingerprint {result['fingerprint'][:16]}; paired bootstrap, "
           f"{result['num_resamples']} resamples; difference A - B in points",
           f"{'metric':34s} {'A':>7s} {'B':>7s} {'A-B':>7s} {'95% CI':>17s} {'p':>8s} "
           f"{'p McNemar':>9s}"]
  for row in result["metrics"]:
    mcnemar = row.get("mcnemar")
    lines.append(f"{row['metric']:34s} {row['a']:7.2f} {row['b']:7.2f} "
                 f"{row['difference']:+7.2f} [{row['low']:+6.2f}, {row['high']:+6.2f}] "
                 f"{row['p_value']:8.4f} "
                 f"{'' if mcnemar is None else format(mcnemar['p_value'], '9.4f')}")
  return "\n".join(lines)


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("a", help="record A: FILE.jsonl:INDEX, FILE.jsonl:RUN_NAME, FILE.jsonl "
                      "(one record) or an evaluate-features .json")
  parser.add_argument("b", help="record B, the same forms")
  parser.add_argument("--metric", action="append", default=None,
                      help="compare only this metric (repeatable); default: all shared")
  parser.add_argument("--resamples", type=int, default=stats.PAIRED_RESAMPLES,
                      help="bootstrap resamples")
  parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run_cli(args: argparse.Namespace) -> int:
  try:
    if args.resamples < 100:
      raise CompareError(f"--resamples must be >= 100, got {args.resamples}.")
    a, a_dir, label_a = select_record(args.a)
    b, b_dir, label_b = select_record(args.b)
    result = compare(a, a_dir, b, b_dir, args.metric, num_resamples=args.resamples)
  except (CompareError, ValueError) as error:
    print(f"ssvbench compare: error: {error}", file=sys.stderr)
    return 2
  if args.json:
    print(json.dumps({"a": label_a, "b": label_b, **result}, indent=2, sort_keys=True))
  else:
    print(format_text(result, label_a, label_b))
    # Where each side was computed (CPU model and ISA flags can move trained numbers).
    for tag, record in (("A", a), ("B", b)):
      if "run_name" in record:
        print(f"{tag}: {records_lib.provenance(record)}")
  return 0
