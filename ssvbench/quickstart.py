"""`ssvbench quickstart`: the whole pipeline on SynthActions, on a laptop CPU, in minutes.

generate SynthActions videos -> prepare (decode into ArrayRecord + manifest) ->
pre-train CVRL, and the supervised upper bound, with the same backbone and budget ->
evaluate them and the random-init lower bound under the SynthActions protocol ->
results.jsonl and leaderboards (headline columns printed, every metric in
leaderboard_full.*). Every stage is the one real data goes through; each is
skipped when its output already exists, so an interrupted quickstart continues.

Seeds: `config.seed` (default 0) runs each method once, in runs/<method>. Several
pre-training seeds (`--config.seeds=0,1,2`) run each method once per seed, in
runs/<method> for seed 0 and runs/<method>_seed<N> otherwise (so seed 0 re-uses a
single-seed quickstart's runs); the records carry the seed and the leaderboards show
mean ± std over the seeds with n.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
import time

import ml_collections

from ssvbench import recipes
from ssvbench.data import synthactions_store

STAGES = ("generate", "prepare", "pretrain", "evaluate")


def default_config() -> ml_collections.ConfigDict:
  """The quickstart config; `configs/quickstart.py` returns it."""
  from ssvbench.data import synthactions
  config = ml_collections.ConfigDict()
  config.seed = 0
  # Pre-training seeds; empty: just `seed`.
  config.seeds = ()
  config.synth = synthactions.default_config()
  config.prepare = ml_collections.ConfigDict(dict(workers=2, short_side=0, fps=0.0))
  config.pretrain = recipes.synthactions_pretrain("simclr", store_dir="")
  config.methods = ("simclr", "supervised", "random_init")
  # Steps per method: one budget for CVRL and the supervised bound (250 steps of 32 videos).
  config.steps = ml_collections.ConfigDict(dict(simclr=250, supervised=250, random_init=0))
  config.protocol = "synthactions"
  return config


def seeds(config: ml_collections.ConfigDict) -> list[int]:
  """The pre-training seeds to run: `config.seeds`, or `config.seed` alone."""
  chosen = [int(s) for s in (config.get("seeds") or ())] or [int(config.seed)]
  if len(set(chosen)) != len(chosen):
    raise ValueError(f"config.seeds has duplicates: {chosen}.")
  return chosen


def run_name(method: str, seed: int) -> str:
  """`method` for seed 0 (the single-seed names), `method_seed<N>` otherwise."""
  return method if seed == 0 else f"{method}_seed{seed}"


def method_config(config: ml_collections.ConfigDict, method: str, store_dir: str,
                  seed: int | None = None):
  """The pre-training config of one method: the shared recipe with its method block."""
  run = ml_collections.ConfigDict(config.pretrain.to_dict())
  run.seed = config.seed if seed is None else seed
  run.data.store_dir = store_dir
  recipes.set_method(run, method)
  if method in config.steps:
    run.train.num_steps = int(config.steps[method])
  return run


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *, fresh: bool = False,
        progress: bool = True) -> dict:
  """Runs the quickstart; returns {records, timings, leaderboard}."""
  from ssvbench import evaluate
  from ssvbench.results import records as records_lib
  from ssvbench.results import tables
  from ssvbench.train import trainer

  # Absolute, because each run's config.json records the store path and is read again by
  # `ssvbench evaluate` / `finetune` from wherever the user runs them.
  workdir = pathlib.Path(workdir).resolve()
  if fresh and workdir.exists():
    shutil.rmtree(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  timings = {}
  start = time.perf_counter()
  store_dir = synthactions_store.prepare_synthactions(config, workdir / "data", progress)
  timings["generate+prepare"] = time.perf_counter() - start

  run_dirs = {}
  run_seeds = seeds(config)
  for seed in run_seeds:
    for method in config.methods:
      stage_start = time.perf_counter()
      # A single seed keeps the historical names (runs/<method>, timing 'pretrain <method>').
      name = method if len(run_seeds) == 1 else run_name(method, seed)
      run_dirs[name] = workdir / "runs" / name
      trainer.train(method_config(config, method, str(store_dir), seed), run_dirs[name],
                    resume=True, progress=progress)
      timings[f"pretrain {name}"] = time.perf_counter() - stage_start

  stage_start = time.perf_counter()
  results_file = workdir / "results.jsonl"
  results_file.unlink(missing_ok=True)
  all_records = []
  for name, run_dir in run_dirs.items():
    record = evaluate.evaluate_run(run_dir, protocol=config.protocol, append=False,
                                   progress=progress, run_name=name,
                                   predictions_dir=results_file.parent)
    records_lib.append_record(results_file, record)
    all_records.append(record)
  timings["evaluate"] = time.perf_counter() - stage_start
  timings["total"] = time.perf_counter() - start

  # Every metric goes to leaderboard_full.*; the printed leaderboard.md keeps the headline
  # columns, so it reads on a terminal.
  tables.write_tables(all_records, workdir, "leaderboard_full", predictions_dir=workdir)
  tables.write_tables(all_records, workdir, "leaderboard", metrics=headline_metrics(all_records),
                      header="SynthActions quickstart (every metric: leaderboard_full.md)",
                      predictions_dir=workdir)
  markdown = (workdir / "leaderboard.md").read_text()
  print(markdown)
  print(summary(all_records, timings, predictions_dir=results_file.parent))
  return {"records": all_records, "timings": timings, "leaderboard": markdown}


HEADLINE_METRICS = ("knn/top1", "linear/top1", "motion_only/knn/top1", "motion_only/linear/top1",
                    "retrieval/R@1", "fewshot_linear/5shot", "fewshot_episodic/5way_5shot")


def headline_metrics(all_records: list[dict]) -> list[str]:
  """The headline columns that the protocol produced (a custom protocol may lack some)."""
  found = {name for record in all_records for name in record["metrics"]}
  return [metric for metric in HEADLINE_METRICS if metric in found]


# What the quickstart claims: CVRL pre-training beats a random network by at least this many
# points of k-NN and of linear top-1, and the supervised bound is not below CVRL.
VERDICT_METRICS = ("knn/top1", "linear/top1")
VERDICT_MARGIN = 10.0


def _paired_interval(a: dict, b: dict, metric: str, predictions_dir) -> str:
  """' (paired 95% CI [lo, hi])' of a - b from the records' sidecars, or '' without them."""
  from ssvbench.results import compare
  if predictions_dir is None:
    return ""
  try:
    row = compare.compare(a, pathlib.Path(predictions_dir), b, pathlib.Path(predictions_dir),
                          [metric])["metrics"][0]
  except compare.CompareError:
    return ""
  return f" (paired 95% CI [{row['low']:+.1f}, {row['high']:+.1f}])"


def verdict(by_method: dict[str, dict[int, dict]]) -> str | None:
  """One line: does the quickstart's claim hold in every seed, and where not, why."""
  if not {"simclr", "random_init", "supervised"} <= by_method.keys():
    return None
  failures, checked = [], []
  for seed in sorted(by_method["simclr"].keys() & by_method["random_init"].keys()
                     & by_method["supervised"].keys()):
    ssl, random, supervised = (by_method[m][seed]["metrics"]
                               for m in ("simclr", "random_init", "supervised"))
    checked.append(seed)
    for metric in VERDICT_METRICS:
      gap = ssl[metric] - random[metric]
      if gap < VERDICT_MARGIN:
        failures.append(f"seed {seed}: CVRL - random {metric} {gap:+.1f}")
      if supervised[metric] < ssl[metric]:
        failures.append(f"seed {seed}: supervised {metric} {supervised[metric]:.1f} below CVRL "
                        f"{ssl[metric]:.1f}")
  claim = (f"CVRL - random init >= {VERDICT_MARGIN:.0f} points on k-NN and linear top-1, "
           "supervised >= CVRL")
  if failures:
    return f"verdict: {claim}: does NOT hold ({'; '.join(failures)})"
  return f"verdict: {claim}: holds for seed(s) {', '.join(map(str, checked))}"


def summary(all_records: list[dict], timings: dict[str, float],
            predictions_dir: str | pathlib.Path | None = None) -> str:
  """What the quickstart shows, in words: the SSL-vs-random gap (with its paired interval
  when the records' prediction sidecars are in `predictions_dir`), the verdict, the wall
  time."""
  from ssvbench.results import stats
  by_method: dict[str, dict[int, dict]] = {}
  for r in all_records:
    by_method.setdefault(r["method"], {})[r["seeds"].get("pretrain")] = r
  lines = []
  if {"simclr", "random_init"} <= by_method.keys():
    ssl, random = by_method["simclr"], by_method["random_init"]
    for metric in ("knn/top1", "linear/top1", "motion_only/knn/top1", "motion_only/linear/top1"):
      shared = [s for s in sorted(ssl.keys() & random.keys())
                if metric in ssl[s]["metrics"] and metric in random[s]["metrics"]]
      gaps = [ssl[s]["metrics"][metric] - random[s]["metrics"][metric] for s in shared]
      if len(gaps) == 1:
        lines.append(f"CVRL vs random init, {metric}: {gaps[0]:+.1f} points"
                     + _paired_interval(ssl[shared[0]], random[shared[0]], metric,
                                        predictions_dir))
      elif gaps:
        mean, std, n = stats.aggregate_seeds(gaps)
        lines.append(f"CVRL vs random init, {metric}: {mean:+.1f} ± {std:.1f} points (mean ± "
                     f"std over {n} seeds: {', '.join(f'{g:+.1f}' for g in gaps)})")
  claim = verdict(by_method)
  if claim:
    lines.append(claim)
  lines.append("wall time: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
  return "\n".join(lines)
