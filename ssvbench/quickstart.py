"""`ssvbench quickstart`: the whole pipeline on SynthActions, on a laptop CPU, in minutes.

generate SynthActions videos -> prepare (decode into ArrayRecord + manifest) ->
pre-train CVRL, and the supervised upper bound, with the same backbone and budget ->
evaluate them and the random-init lower bound under the SynthActions protocol ->
results.jsonl and leaderboards (headline columns printed, every metric in
leaderboard_full.*). Every stage is the one real data goes through; each is
skipped when its output already exists, so an interrupted quickstart continues.
"""

from __future__ import annotations

import json
import logging
import pathlib
import shutil
import time

import ml_collections

from ssvbench import recipes

STAGES = ("generate", "prepare", "pretrain", "evaluate")


def default_config() -> ml_collections.ConfigDict:
  """The quickstart config; `configs/quickstart.py` returns it."""
  from ssvbench.data import synthactions
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.synth = synthactions.default_config()
  config.prepare = ml_collections.ConfigDict(dict(workers=2, short_side=0, fps=0.0))
  config.pretrain = recipes.synthactions_pretrain("simclr", store_dir="")
  config.methods = ("simclr", "supervised", "random_init")
  # Steps per method: one budget for CVRL and the supervised bound (250 steps of 32 videos).
  config.steps = ml_collections.ConfigDict(dict(simclr=250, supervised=250, random_init=0))
  config.protocol = "synthactions"
  return config


def method_config(config: ml_collections.ConfigDict, method: str, store_dir: str):
  """The pre-training config of one method: the shared recipe with its method block."""
  run = ml_collections.ConfigDict(config.pretrain.to_dict())
  run.seed = config.seed
  run.data.store_dir = store_dir
  recipes.set_method(run, method)
  if method in config.steps:
    run.train.num_steps = int(config.steps[method])
  return run


def write_class_subsets(store_dir: pathlib.Path, synth_config) -> None:
  from ssvbench.data import synthactions
  from ssvbench.evaluate import CLASS_SUBSETS_FILE
  subsets = {"motion_only": synthactions.motion_only_classes(synth_config)}
  (store_dir / CLASS_SUBSETS_FILE).write_text(json.dumps(subsets, indent=2) + "\n")


def prepare_synthactions(config, data_dir: pathlib.Path, progress: bool = True) -> pathlib.Path:
  """Generates and prepares SynthActions under data_dir; returns the store directory."""
  from ssvbench.data import prepare, sources, synthactions
  source_dir = data_dir / "source"
  synthactions.generate(source_dir, config.synth, progress=progress)
  store_dir = data_dir / "store"
  if not (store_dir / "manifest.json").is_file():
    index, find_video = sources.load_index("synthactions", source_dir / "videos",
                                           source_dir / "ucfTrainTestlist")
    prepare.prepare_dataset(index, source_dir / "videos", store_dir, find_video=find_video,
                            short_side=config.prepare.short_side or None,
                            fps=config.prepare.fps or None, num_workers=config.prepare.workers,
                            progress=progress)
  write_class_subsets(store_dir, config.synth)
  return store_dir


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
  store_dir = prepare_synthactions(config, workdir / "data", progress)
  timings["generate+prepare"] = time.perf_counter() - start

  run_dirs = {}
  for method in config.methods:
    stage_start = time.perf_counter()
    run_dirs[method] = workdir / "runs" / method
    trainer.train(method_config(config, method, str(store_dir)), run_dirs[method],
                  resume=True, progress=progress)
    timings[f"pretrain {method}"] = time.perf_counter() - stage_start

  stage_start = time.perf_counter()
  results_file = workdir / "results.jsonl"
  results_file.unlink(missing_ok=True)
  all_records = []
  for method, run_dir in run_dirs.items():
    record = evaluate.evaluate_run(run_dir, protocol=config.protocol, append=False,
                                   progress=progress, run_name=method)
    records_lib.append_record(results_file, record)
    all_records.append(record)
  timings["evaluate"] = time.perf_counter() - stage_start
  timings["total"] = time.perf_counter() - start

  # Every metric goes to leaderboard_full.*; the printed leaderboard.md keeps the headline
  # columns, so it reads on a terminal.
  tables.write_tables(all_records, workdir, "leaderboard_full")
  tables.write_tables(all_records, workdir, "leaderboard", metrics=headline_metrics(all_records),
                      header="SynthActions quickstart (every metric: leaderboard_full.md)")
  markdown = (workdir / "leaderboard.md").read_text()
  print(markdown)
  print(summary(all_records, timings))
  return {"records": all_records, "timings": timings, "leaderboard": markdown}


HEADLINE_METRICS = ("knn/top1", "linear/top1", "motion_only/knn/top1", "motion_only/linear/top1",
                    "retrieval/R@1", "fewshot_linear/5shot", "fewshot_episodic/5way_5shot")


def headline_metrics(all_records: list[dict]) -> list[str]:
  """The headline columns that the protocol produced (a custom protocol may lack some)."""
  found = {name for record in all_records for name in record["metrics"]}
  return [metric for metric in HEADLINE_METRICS if metric in found]


def summary(all_records: list[dict], timings: dict[str, float]) -> str:
  """What the quickstart shows, in words: the SSL-vs-random gap and the wall time."""
  by_method = {r["method"]: r["metrics"] for r in all_records}
  lines = []
  if {"simclr", "random_init"} <= by_method.keys():
    for metric in ("knn/top1", "linear/top1", "motion_only/knn/top1", "motion_only/linear/top1"):
      if metric in by_method["simclr"] and metric in by_method["random_init"]:
        gap = by_method["simclr"][metric] - by_method["random_init"][metric]
        lines.append(f"CVRL vs random init, {metric}: {gap:+.1f} points")
  lines.append("wall time: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
  return "\n".join(lines)
