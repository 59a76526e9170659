"""Why a method of the SynthActions zoo does (or does not) beat random init: the evidence.

Why: a table row at the level of an untrained network says nothing by itself; it could be
a collapse (every video mapped to the same point), under-training (the objective still
improving when the budget ends), a recipe that does not fit the data, or a bug. This
script reads the zoo's records (and the prediction sidecars beside them) and each run's
`metrics.jsonl`, and writes one table of evidence per method:

* the gain over random init of the same seed, k-NN and linear top-1, each with the paired
  95% interval over the shared test videos (`ssvbench compare`'s bootstrap), per seed;
* collapse: the last logged std of the L2-normalised embeddings over the batch, x sqrt(d)
  (1 when spread over the sphere, 0 when collapsed), for methods that log it;
* the loss curve: first, middle and last logged value, and how much it still fell over
  the last 20% of the steps (an objective still falling when the budget ends is
  under-trained by the budget, not broken).

A method is "above random init" when every seed's paired interval of the gain lies above
zero on both metrics.

Run from the repository root after the zoo (same --out and --workdir):
  python benchmarks/method_zoo_diagnosis.py
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import pathlib
import shlex
import sys

METRICS = ("knn/top1", "linear/top1")
BASELINE = "random_init"


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--records", default="results/synthactions_method_zoo.jsonl",
                      help="the zoo's records (sidecars beside them)")
  parser.add_argument("--out", default="results/synthactions_method_zoo_diagnosis.md")
  return parser.parse_args(argv)


def curve_facts(workdir: pathlib.Path | None) -> dict:
  """Loss at the first, middle and last log and the fall over the last 20% of the steps,
  from metrics.jsonl ({} when the run or its log is not here)."""
  path = workdir / "metrics.jsonl" if workdir else None
  if path is None or not path.is_file():
    return {}
  rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  losses = [(r["step"], r["loss"]) for r in rows
            if r.get("loss") is not None and math.isfinite(r["loss"])]
  if not losses:
    return {}
  last_step = losses[-1][0]
  tail = [loss for step, loss in losses if step >= 0.8 * last_step]
  # Positive: the loss still fell over the last 20% (relative to its whole fall).
  return {"first": losses[0][1], "middle": losses[len(losses) // 2][1], "last": losses[-1][1],
          "tail_fall": (tail[0] - tail[-1]) / max(abs(losses[0][1] - losses[-1][1]), 1e-9)}


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  from ssvbench.results import compare as compare_lib
  from ssvbench.results import records as records_lib
  from ssvbench.results import site
  records_file = pathlib.Path(args.records)
  if not records_file.is_file():
    raise SystemExit(f"{records_file}: no such records file; run "
                     "benchmarks/method_zoo_leaderboard.py first.")
  records = records_lib.load_records(records_file)
  by_method: dict[str, dict[int, dict]] = collections.defaultdict(dict)
  for record in records:
    by_method[record["method"]][int(record["seeds"]["pretrain"])] = record
  if BASELINE not in by_method:
    raise SystemExit(f"{records_file}: no {BASELINE} records to compare with.")

  lines = [f"# SynthActions method zoo: evidence per method",
           "",
           "Regenerate with: python benchmarks/method_zoo_diagnosis.py "
           + shlex.join(sys.argv[1:] if argv is None else argv),
           "",
           "Gain over random init of the same seed (percentage points, paired 95% interval "
           "over the shared test videos), per seed. Collapse monitor: std of the normalised "
           "embeddings x sqrt(d) at the last logged step (1 spread, 0 collapsed; methods "
           "that log it). Loss: first / middle / last logged value; 'tail' is the share of "
           "the loss's total fall that happened in the last 20% of the steps (a large "
           "value: still falling when the budget ended).",
           "",
           "| method | seed | k-NN gain [95% CI] | linear gain [95% CI] | collapse monitor | "
           "loss first / middle / last | tail | above random init |",
           "| --- | ---: | --- | --- | ---: | --- | ---: | --- |"]
  verdicts = {}
  for method in sorted(by_method):
    if method == BASELINE:
      continue
    above_all = True
    for seed in sorted(by_method[method]):
      record = by_method[method][seed]
      baseline = by_method[BASELINE].get(seed)
      if baseline is None:
        continue
      result = compare_lib.compare(record, records_file.parent, baseline, records_file.parent,
                                   list(METRICS))
      cells, above = [], True
      for row in result["metrics"]:
        low, high = row["low"], row["high"]
        cells.append(f"{row['difference']:+.1f} [{low:+.1f}, {high:+.1f}]")
        above &= low > 0
      facts = curve_facts(site.find_workdir(record, [pathlib.Path.cwd()]))
      # Logged by the zoo script from the same metrics.jsonl (None: the method has none).
      std = (record.get("extra") or {}).get("final_embedding_std_x_sqrt_d")
      monitor = f"{std:.2f}" if std is not None else "-"
      loss = (f"{facts['first']:.3g} / {facts['middle']:.3g} / {facts['last']:.3g}"
              if facts else "-")
      tail = f"{facts['tail_fall']:.0%}" if facts else "-"
      lines.append(f"| {method} | {seed} | {cells[0]} | {cells[1]} | {monitor} | {loss} | "
                   f"{tail} | {'yes' if above else 'no'} |")
      above_all &= above
    verdicts[method] = above_all
  lines += ["", "Above random init in every seed on both metrics: "
            + (", ".join(m for m, ok in verdicts.items() if ok) or "none") + ".",
            "Not in every seed: " + (", ".join(m for m, ok in verdicts.items() if not ok)
                                     or "none") + "."]
  out = pathlib.Path(args.out)
  out.write_text("\n".join(lines) + "\n")
  print("\n".join(lines))
  print("wrote", out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
