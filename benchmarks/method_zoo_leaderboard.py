"""The SynthActions method-zoo leaderboard: every method under one budget, one protocol.

Why: a comparison of objectives means something only when everything else is equal. Each
method here pre-trains the same backbone for the same number of steps at the same batch,
clip shape, optimiser and seed (the `recipes.synthactions_pretrain` recipe: `config.method`
differs, the supervised bound sees two clips per video like the two-view methods, crops
less and skips colour jitter, as chosen on a development copy,
and VideoMAE runs its ViT recipe), and is evaluated by the same frozen-feature protocol
(`synthactions`, which includes the motion-only class subset: classes that differ only by
their motion, where a method that learned appearance alone is at chance). The supervised
(cross-entropy, SupCon) and random-init rows bracket the self-supervised ones.

Writes results/synthactions_method_zoo.{md,csv,tex,html} (the regenerating command at the
top) and the raw records to results/synthactions_method_zoo.jsonl, and prints each run's
final collapse monitor (std of the normalised embeddings over the batch, x sqrt(d): 1 when
spread, 0 when collapsed).

Seeds: `--seeds 0,1,2` pre-trains every method once per seed, in <workdir>/<method> for
seed 0 and <workdir>/<method>_seed<N> otherwise; the tables show mean ± std over the
seeds with n per row, and tie marks from paired tests on the predictions sidecars written
beside the records.

Run (the store is generated and prepared first if absent, as in the quickstart):
  python benchmarks/method_zoo_leaderboard.py --data-dir ssvbench_data/synthactions \
      --seeds 0,1,2
Smoke run (minutes):
  python benchmarks/method_zoo_leaderboard.py --steps 2 --batch 8 \\
      --backbone r3d_tiny --workdir /tmp/zoo_smoke --out /tmp/zoo_smoke/results
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import shlex
import sys
import time

METHODS = ("simclr", "moco_v2", "moco_v3", "byol", "simsiam", "swav", "barlow_twins", "vicreg",
           "videomae", "supcon", "supervised", "random_init")
# Masked modelling needs a ViT: VideoMAE runs its own recipe file (vit3d_cpu, pixel targets,
# no colour jitter) under the same steps, batch, clips and seed.
VIDEOMAE_RECIPE = pathlib.Path(__file__).resolve().parent.parent / (
    "ssvbench/configs/pretrain/videomae_vit3d_synthactions.py")
# Columns of the committed table; every other metric stays in the JSONL records.
DEFAULT_METRICS = ("knn/top1", "linear/top1", "motion_only/knn/top1", "motion_only/linear/top1",
                   "retrieval/R@1", "fewshot_linear/5shot")
BASENAME = "synthactions_method_zoo"


def _seed_list(text: str) -> list[int]:
  try:
    seeds = [int(part) for part in text.split(",") if part.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
  if not seeds or len(set(seeds)) != len(seeds):
    raise argparse.ArgumentTypeError(f"expected distinct seeds, got {text!r}")
  return seeds


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data-dir", default="ssvbench_data/synthactions",
                      help="SynthActions folder; its store/ is generated and prepared if absent")
  parser.add_argument("--workdir", default="runs/method_zoo",
                      help="one pre-training run per method")
  parser.add_argument("--out", default="results", help="where the tables and records go")
  parser.add_argument("--methods", nargs="*", default=list(METHODS))
  parser.add_argument("--steps", type=int, default=250, help="pre-training steps of every method")
  parser.add_argument("--batch", type=int, default=32, help="videos per step of every method")
  parser.add_argument("--backbone", default=None, help="backbone of every method "
                      "(default: the recipe's r3d_cpu)")
  parser.add_argument("--seeds", type=_seed_list, default=[0],
                      help="comma-separated pre-training seeds, e.g. 0,1,2 (default 0)")
  parser.add_argument("--protocol", default="synthactions")
  parser.add_argument("--no-progress", action="store_true")
  parser.add_argument("--tables-only", action="store_true",
                      help="rebuild the tables, the standard table and the site from the "
                           "records already in --out, without training or evaluating")
  return parser.parse_args(argv)


def ensure_store(data_dir: pathlib.Path, progress: bool) -> pathlib.Path:
  """The prepared store under data_dir, generated as the quickstart does if absent."""
  from ssvbench import quickstart
  from ssvbench.data import synthactions_store
  store_dir = data_dir / "store"
  if not (store_dir / "manifest.json").is_file():
    synthactions_store.prepare_synthactions(quickstart.default_config(), data_dir,
                                            progress=progress)
  return store_dir


def method_config(method: str, store_dir: pathlib.Path, args, seed: int = 0):
  """The shared recipe with only the method block (and the seed) differing."""
  from ssvbench import config as config_lib, recipes
  if method == "videomae":
    config = config_lib.load_config(str(VIDEOMAE_RECIPE))
    config.data.store_dir = str(store_dir)
  else:
    config = recipes.synthactions_pretrain(method, store_dir=str(store_dir))
  config.seed = seed
  config.train.batch_size = args.batch
  # Through the field reference this also moves the end of the momentum schedules.
  config.train.num_steps = args.steps if method != "random_init" else 0
  config.train.checkpoint_every = args.steps
  config.optim.warmup_steps = min(config.optim.warmup_steps, max(args.steps - 1, 0))
  if args.backbone and (method != "videomae" or args.backbone.startswith("vit3d")):
    config.model.backbone = args.backbone
  elif args.backbone:  # A CNN for the others: the smallest ViT for VideoMAE.
    config.model.backbone = "vit3d_tiny"
  return config


def collapse_monitor(run_dir: pathlib.Path, proj_dim: int | None) -> float | None:
  """Last logged embedding std x sqrt(d), or None for methods that do not log it."""
  metrics_file = run_dir / "metrics.jsonl"
  if not metrics_file.is_file() or not proj_dim:
    return None
  rows = [json.loads(line) for line in metrics_file.read_text().splitlines()]
  values = [row["embedding_std"] for row in rows if "embedding_std" in row]
  return values[-1] * math.sqrt(proj_dim) if values else None


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  unknown = sorted(set(args.methods) - set(METHODS))
  if unknown:
    raise SystemExit(f"--methods: unknown {unknown}; valid: {', '.join(METHODS)}.")
  from ssvbench import evaluate, quickstart
  from ssvbench.results import records as records_lib
  from ssvbench.train import trainer

  # Runnable from the repository root on any machine: no interpreter or absolute path.
  # The command that regenerates everything (records included), even from --tables-only.
  command = "python benchmarks/method_zoo_leaderboard.py " + shlex.join(
      [a for a in (sys.argv[1:] if argv is None else argv) if a != "--tables-only"])
  progress = not args.no_progress
  workdir, out_dir = pathlib.Path(args.workdir), pathlib.Path(args.out)
  records_file = out_dir / f"{BASENAME}.jsonl"
  if args.tables_only:
    if not records_file.is_file():
      raise SystemExit(f"--tables-only: {records_file} does not exist; run without it first.")
    write_outputs(records_lib.load_records(records_file), records_file, out_dir, args,
                  command)
    return 0
  store_dir = ensure_store(pathlib.Path(args.data_dir), progress)
  all_records, notes = [], []
  for seed, method in [(seed, method) for seed in args.seeds for method in args.methods]:
    config = method_config(method, store_dir, args, seed)
    name = quickstart.run_name(method, seed)  # `method` for seed 0, `method_seed<N>` else.
    run_dir = workdir / name
    start = time.perf_counter()
    trainer.train(config, run_dir, resume=True, progress=progress)
    trained = time.perf_counter() - start
    # The sidecar goes where the records file will be written.
    record = evaluate.evaluate_run(run_dir, protocol=args.protocol, append=False,
                                   progress=progress, run_name=name, predictions_dir=out_dir)
    monitor = collapse_monitor(run_dir, config.method.get("proj_dim", None))
    record["extra"].update({"budget": {"steps": int(config.train.num_steps),
                                       "batch": args.batch, "backbone": config.model.backbone},
                            "final_embedding_std_x_sqrt_d": monitor})
    all_records.append(record)
    evaluated = time.perf_counter() - start - trained
    notes.append(f"{name:20s} pretrain {trained:6.0f}s  eval {evaluated:5.0f}s"
                 + (f"  embedding std x sqrt(d) {monitor:.2f}" if monitor is not None else ""))
    print(notes[-1], flush=True)

  out_dir.mkdir(parents=True, exist_ok=True)
  records_file.unlink(missing_ok=True)
  for record in all_records:
    records_lib.append_record(records_file, record)
  paths = write_outputs(all_records, records_file, out_dir, args, command)
  print("\n".join(notes))
  return 0


def write_outputs(all_records, records_file: pathlib.Path, out_dir: pathlib.Path, args,
                  command: str) -> dict:
  """The per-protocol tables (all rows, and the self-supervised rows alone, whose ties
  with the best method are then marked), the standard table and the site."""
  from ssvbench.results import site, standard, tables
  available = {name for record in all_records for name in record["metrics"]}
  metrics = [name for name in DEFAULT_METRICS if name in available] or None
  backbone = args.backbone or "r3d_cpu"
  seeds = sorted({int(r["seeds"]["pretrain"]) for r in all_records})
  header = (f"SynthActions method zoo: {args.steps} steps x batch {args.batch}, backbone "
            f"{backbone}, seeds {','.join(map(str, seeds))}, one recipe (VideoMAE: "
            "vit3d_cpu, pixel targets; "
            "supervised: two clips per video, milder crops, no colour jitter).\n"
            f"Regenerate with: {command}")
  paths = tables.write_tables(all_records, out_dir, BASENAME, metrics=metrics, header=header,
                              predictions_dir=out_dir)
  print(tables.to_markdown(tables.leaderboards(all_records, metrics, predictions_dir=out_dir),
                           header=header))
  # Without the bounds, bold and the tie marks compare the self-supervised methods.
  ssl = [r for r in all_records if not standard.is_baseline(r)]
  paths.update({f"ssl.{k}": v for k, v in tables.write_tables(
      ssl, out_dir, f"{BASENAME}_ssl", metrics=metrics, predictions_dir=out_dir,
      header=header.replace("SynthActions method zoo:",
                            "SynthActions method zoo, self-supervised rows only:")).items()})
  regenerate = f"Regenerate with: {command}"
  paths.update({f"standard.{k}": v for k, v in standard.write(
      standard.build(all_records), out_dir, "synthactions_standard", header=regenerate).items()})
  site.publish([records_file], out_dir / "synthactions_site", header=regenerate,
               title="ssvbench: SynthActions method zoo")
  paths["site"] = out_dir / "synthactions_site" / "index.html"
  print("wrote", ", ".join(str(p) for p in [records_file, *paths.values()]))
  return paths


if __name__ == "__main__":
  sys.exit(main())
