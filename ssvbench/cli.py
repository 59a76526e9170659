"""The `ssvbench` command: thin argument parsing that calls into the library.

Heavy imports (JAX, TensorFlow) happen inside the subcommands, so `ssvbench --help`
answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sys
import textwrap

# TFDS must never reach for the network, and TensorFlow's C++ logging is noise here.
os.environ.setdefault("TFDS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DATASETS = ("synthactions", "ucf101", "hmdb51", "kinetics400", "kinetics600", "kinetics700")


def _add_config_argument(parser: argparse.ArgumentParser, default: str | None) -> None:
  parser.add_argument(
      "--config", default=default, required=default is None,
      help="config file `path.py[:arg]` (arg e.g. `runlocal`); fields are overridden with "
           "--config.key=value (an unknown key is an error naming the closest ones)."
           + (f" Default: {default}." if default else ""))


def _load_config(spec: str, overrides):
  from ssvbench import config as config_lib
  config = config_lib.load_config(spec)
  return config_lib.apply_overrides(config, overrides)


def cmd_quickstart(args, overrides) -> int:
  from ssvbench import quickstart
  config = _load_config(args.config, overrides)
  quickstart.run(config, args.workdir, fresh=args.fresh)
  return 0


def cmd_prepare(args, overrides) -> int:
  from ssvbench.data import sources
  if args.dataset == "synthactions" and not args.dry_run:
    return _prepare_synthactions(args, overrides)
  if overrides:
    raise SystemExit(f"prepare {args.dataset}: --config.* overrides apply to synthactions only.")
  if not args.source_dir:
    raise SystemExit(f"prepare {args.dataset}: --source-dir is required (the folder with the videos).")
  if not args.dry_run and not args.out:
    raise SystemExit(f"prepare {args.dataset}: --out is required.")
  if not args.dry_run and os.path.exists(args.out) and not os.path.isdir(args.out):
    raise ValueError(f"--out {args.out} is a file; expected a folder for the store.")
  # HMDB51's `unused` clips are read by no protocol: listed as skipped, not decoded.
  skip_splits = () if args.include_unused else ("unused",)
  index, find_video, report = sources.inspect_source(
      args.dataset, args.source_dir, args.splits_dir, args.split, skip_splits=skip_splits,
      max_missing_fraction=args.max_missing_fraction)
  warning = sources.split_files_warning(args.dataset, args.splits_dir,
                                        report["split_file_differences"],
                                        report["official_split_files"])
  if warning:
    print(warning, file=sys.stderr)
  if args.dry_run:
    print(json.dumps(report, indent=2))
    return 0
  from ssvbench.data import prepare
  spec = sources.get_spec(args.dataset)
  manifest = prepare.prepare_dataset(
      index, args.source_dir, os.path.join(args.out, "store") if args.dataset == "synthactions"
      else args.out, find_video=find_video, short_side=args.short_side, fps=args.fps,
      num_workers=args.workers, max_missing_fraction=report["max_missing_fraction"],
      allow_missing=args.allow_missing, skip_splits=skip_splits,
      # Recorded for datasets with official numbered splits, so results can report
      # split 1 and the 3-split mean apart.
      official_split=args.split if spec.official_splits else None,
      official_split_files=report["official_split_files"],
      progress=not args.no_progress, min_frames=_clip_span(args.dataset))
  print(json.dumps({"manifest_hash": manifest["manifest_hash"],
                    "official_split": manifest.get("official_split"),
                    "official_split_files": manifest.get("official_split_files"),
                    "counts": manifest["counts"],
                    **({"short_videos": manifest["short_videos"]}
                       if "short_videos" in manifest else {})}, indent=2))
  return 0


def _clip_span(dataset: str) -> int:
  """Frames one clip of the dataset's protocol spans (shorter videos are flagged)."""
  from ssvbench.evaluators import protocol as protocol_lib
  if dataset not in protocol_lib.available_protocols():
    return 2
  views = protocol_lib.load_protocol(dataset).views
  return max(2, int(views.num_frames) * int(views.get("frame_stride", 1)))


def _prepare_synthactions(args, overrides) -> int:
  """Generates SynthActions (config: ssvbench/configs/synthactions.py) and prepares it into
  <out>/store."""
  import pathlib
  from ssvbench import quickstart
  from ssvbench.data import store as store_lib, synthactions_store
  if not args.out:
    raise SystemExit("prepare synthactions: --out is required.")
  config = quickstart.default_config()
  if args.config:
    config.synth = _load_config(args.config, overrides)
  elif overrides:
    from ssvbench import config as config_lib
    config.synth = config_lib.apply_overrides(config.synth, overrides)
  config.prepare.workers = args.workers
  store_dir = synthactions_store.prepare_synthactions(config, pathlib.Path(args.out),
                                                      progress=not args.no_progress)
  store = store_lib.PreparedStore(store_dir)
  print(json.dumps({"store": str(store_dir), "manifest_hash": store.manifest_hash,
                    "counts": store.manifest["counts"]}, indent=2))
  return 0


def cmd_pretrain(args, overrides) -> int:
  from ssvbench import runs
  from ssvbench.train import trainer
  from ssvbench import config_keys
  config = _load_config(args.config, overrides)
  # A misspelt key in the file is an error (overrides are checked as they are applied);
  # then the config is locked, so nothing downstream can add a key either.
  config_keys.check_pretrain_config(config, args.config)
  config.lock()
  result = trainer.train(config, args.workdir, resume=args.resume, progress=not args.no_progress,
                         allow_changes=tuple(args.allow_change or ()),
                         init_state=runs.initial_state_for(config))
  print(json.dumps({"workdir": str(result.workdir), "step": result.step,
                    "metrics": result.last_metrics}, indent=2))
  return 0


def cmd_evaluate(args, overrides) -> int:
  from ssvbench import evaluate
  if overrides:
    raise SystemExit("evaluate takes no --config.* overrides; protocols are fixed and versioned.")
  record = evaluate.evaluate_run(args.workdir, protocol=args.protocol, store_dir=args.store,
                                 results_file=args.results, progress=not args.no_progress)
  print(json.dumps(record["metrics"], indent=2))
  return 0


def cmd_finetune(args, overrides) -> int:
  from ssvbench import runtime
  from ssvbench import finetune
  if overrides:
    raise SystemExit("finetune takes no --config.* overrides; the recipe is part of the "
                     "versioned protocol.")
  runtime.configure_jax()
  result = finetune.finetune_run(args.workdir, args.protocol, args.out, store_dir=args.store,
                                 resume=args.resume, results_file=args.results,
                                 progress=not args.no_progress)
  print(json.dumps(dict(result["metrics"], chosen_step=result["details"]["chosen_step"]),
                   indent=2))
  return 0


def cmd_evaluate_features(args, overrides) -> int:
  from ssvbench.evaluators import evaluate_features
  del overrides
  return evaluate_features.run_cli(args) or 0


def cmd_leaderboard(args, overrides) -> int:
  from ssvbench.results import records, tables
  del overrides
  all_records = [r for path in args.results for r in records.load_records(path)]
  # Sidecar names in the records are relative to their results file's folder (tie tests).
  folders = {pathlib.Path(path).parent for path in args.results}
  sidecars = folders.pop() if len(folders) == 1 else None
  if args.table == "standard":
    from ssvbench.results import standard
    table = standard.build(all_records, rank_by=args.rank_by,
                           reported=standard.load_reported() if args.reported else None)
    if args.out:
      from ssvbench.results import site
      # The command that regenerates the files, runnable from where it was run.
      command = ("ssvbench leaderboard --results "
                 + " ".join(site.scrub_path(p) for p in args.results)
                 + " --table standard" + (f" --rank-by {args.rank_by}" if args.rank_by else "")
                 + (" --reported" if args.reported else "")
                 + f" --out {site.scrub_path(args.out)} --basename {args.basename}")
      standard.write(table, args.out, args.basename, header=f"Regenerate with: {command}")
    else:
      print(standard.RENDERERS[args.format](table), end="")
    return 0
  if args.out:
    tables.write_tables(all_records, args.out, args.basename, predictions_dir=sidecars)
  else:
    render = {"md": tables.to_markdown, "csv": tables.to_csv, "latex": tables.to_latex,
              "html": tables.to_html}[args.format]
    print(render(tables.leaderboards(all_records, metrics=args.metrics,
                                     predictions_dir=sidecars)))
  return 0


def cmd_compare(args, overrides) -> int:
  from ssvbench.results import compare
  if overrides:
    raise SystemExit("compare takes no --config.* overrides.")
  return compare.run_cli(args)


def cmd_benchmark(args, overrides) -> int:
  from ssvbench import benchmark
  if overrides:
    raise SystemExit("benchmark takes no --config.* overrides; protocols are fixed and "
                     "versioned.")
  stores = {}
  for item in args.store or ():
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
      raise ValueError(f"--store {item!r}: expected ENTRY=DIR (e.g. ucf101_split2=data/u2).")
    stores[name] = path
  done = benchmark.run(args.source, args.suite, stores=stores, only=args.only,
                       steps=args.steps, results_file=args.results,
                       progress=not args.no_progress)
  print(json.dumps(done, indent=2))
  return 0


def cmd_publish(args, overrides) -> int:
  from ssvbench.results import site
  del overrides
  header = args.header or ("Regenerate with: ssvbench publish --results "
                           + " ".join(site.scrub_path(p) for p in args.results)
                           + f" --out {site.scrub_path(args.out)}"
                           + (" --reported" if args.reported else ""))
  summary = site.publish(args.results, args.out, reported=args.reported,
                         rank_by=args.rank_by, title=args.title, header=header,
                         make_plots=not args.no_plots)
  if summary["plots"] is None and not args.no_plots:
    print(site.PLOTS_MISSING, file=sys.stderr)
  print(json.dumps(summary, indent=2))
  return 0


def _input_norm_argument(args):
  """--input-norm NAME, or --input-mean R G B with --input-std R G B, or None (the source's)."""
  if (args.input_mean is None) != (args.input_std is None):
    raise ValueError("--input-mean and --input-std go together (3 values each, for pixels "
                     "in [0, 1]).")
  if args.input_mean is not None:
    if args.input_norm:
      raise ValueError("give --input-norm or --input-mean/--input-std, not both.")
    return {"mean": args.input_mean, "std": args.input_std}
  return args.input_norm


def cmd_import_checkpoint(args, overrides) -> int:
  from ssvbench import import_checkpoint, runtime
  if overrides:
    raise SystemExit("import-checkpoint takes no --config.* overrides.")
  runtime.configure_jax()
  try:
    summary = import_checkpoint.import_checkpoint(args.arch, args.source, args.out, args.store,
                                                  input_norm=_input_norm_argument(args))
  except ImportError as error:
    raise SystemExit(f"ssvbench import-checkpoint: error: {error}") from None
  print(json.dumps(summary, indent=2))
  return 0


def _shipped(folder: str) -> str:
  from ssvbench import config as config_lib
  return ", ".join(config_lib.available_configs(folder))


def build_parser() -> argparse.ArgumentParser:
  import ssvbench
  parser = argparse.ArgumentParser(
      prog="ssvbench",
      description="Benchmark self-supervised video representations under one fixed protocol.",
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=textwrap.dedent("""\
          examples:
            ssvbench quickstart                      # the whole pipeline on SynthActions
            ssvbench prepare ucf101 --source-dir UCF-101 --out data/ucf101
            ssvbench pretrain --config simclr_r3d_synthactions:runlocal --workdir runs/x
            ssvbench evaluate --workdir runs/x --protocol synthactions
          """))
  parser.add_argument("--version", action="version", version=f"ssvbench {ssvbench.__version__}")
  parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

  p = sub.add_parser("quickstart", help="SynthActions end to end: generate, prepare, pre-train "
                     "CVRL and baselines, evaluate, print the leaderboard.")
  _add_config_argument(p, "configs/quickstart.py")
  p.add_argument("--workdir", default="ssvbench_quickstart", help="output folder")
  p.add_argument("--fresh", action="store_true", help="delete the workdir first")
  p.set_defaults(func=cmd_quickstart)

  p = sub.add_parser("prepare", help="decode a dataset's videos into a prepared store "
                     "(ArrayRecord + manifest).")
  p.add_argument("dataset", choices=DATASETS)
  p.add_argument("--source-dir", help="folder with the videos (for synthactions: where to "
                 "generate them; default <out>/source)")
  p.add_argument("--splits-dir", help="split/annotation files (default: the official ones "
                 "shipped with ssvbench, where licensing allows)")
  p.add_argument("--out", help="output folder of the prepared store")
  p.add_argument("--split", type=int, default=1, help="official split number, 1-3 for "
                 "UCF101/HMDB51 (one store per split; recorded in the manifest)")
  p.add_argument("--dry-run", action="store_true", help="check layout and split files, print "
                 "counts of listed/found/missing videos as JSON, decode nothing")
  p.add_argument("--short-side", type=int, default=None, help="resize the short side to this")
  p.add_argument("--fps", type=float, default=None, help="resample frames to this rate")
  p.add_argument("--workers", type=int, default=1, help="decoding processes")
  p.add_argument("--max-missing-fraction", type=float, default=None,
                 help="fail when more videos are missing (default 0 for UCF101/HMDB51, 0.1 "
                 "for Kinetics)")
  p.add_argument("--allow-missing", action="store_true", help="prepare whatever is present")
  p.add_argument("--include-unused", action="store_true", help="HMDB51: also decode the "
                 "clips marked unused (id 0) in the split files; by default they are listed "
                 "in the manifest as skipped")
  p.add_argument("--no-progress", action="store_true")
  p.add_argument("--config", default=None, help="synthactions only: generator config file")
  p.set_defaults(func=cmd_prepare)

  p = sub.add_parser("pretrain", help="pre-train a method on a prepared store.",
                     description="Pre-train a method on a prepared store. Shipped recipes "
                     f"(--config NAME[:runlocal]): {_shipped('pretrain')}.")
  _add_config_argument(p, None)
  p.add_argument("--workdir", required=True, help="checkpoints, metrics.jsonl, TensorBoard")
  p.add_argument("--resume", action="store_true", help="continue the latest checkpoint exactly")
  p.add_argument("--allow-change", action="append", metavar="KEY", help="with --resume: let "
                 "this config key (or prefix, e.g. train.num_steps) differ from the run's "
                 "config.json; the change is recorded in config_changes.jsonl (repeatable)")
  p.add_argument("--no-progress", action="store_true")
  p.set_defaults(func=cmd_pretrain)

  p = sub.add_parser("evaluate", help="evaluate a pre-training run under a protocol.",
                     description="Evaluate a pre-training run under a versioned protocol. "
                     f"Shipped protocols: {_shipped('protocols')}.")
  p.add_argument("--workdir", required=True, help="a pretrain workdir")
  p.add_argument("--protocol", required=True, help="protocol NAME[:variant] (shipped: "
                 f"{_shipped('protocols')}) or a path to a protocol .py file")
  p.add_argument("--store", default=None, help="prepared store of the evaluation dataset "
                 "(default: the run's pre-training store)")
  p.add_argument("--results", default=None, help="results.jsonl to append to "
                 "(default <workdir>/results.jsonl)")
  p.add_argument("--no-progress", action="store_true")
  p.set_defaults(func=cmd_evaluate)

  p = sub.add_parser("finetune", help="fine-tune a pre-training run under a protocol's "
                     "recipe; the checkpoint is chosen on validation, test is scored once.")
  p.add_argument("--workdir", required=True, help="a pretrain workdir")
  p.add_argument("--protocol", required=True, help="protocol NAME[:variant] (shipped: "
                 f"{_shipped('protocols')}) or a path to a protocol .py file")
  p.add_argument("--out", default=None, help="fine-tuning output folder (default "
                 "<workdir>/finetune/<protocol>)")
  p.add_argument("--store", default=None, help="prepared store of the protocol's dataset "
                 "(default: the run's pre-training store)")
  p.add_argument("--results", default=None, help="results.jsonl to append to "
                 "(default <workdir>/results.jsonl)")
  p.add_argument("--resume", action="store_true", help="continue an interrupted fine-tune")
  p.add_argument("--no-progress", action="store_true")
  p.set_defaults(func=cmd_finetune)

  p = sub.add_parser("evaluate-features", help="evaluate any model's features (npz files) "
                     "under a protocol.")
  from ssvbench.evaluators import evaluate_features
  evaluate_features.add_cli_arguments(p)
  p.set_defaults(func=cmd_evaluate_features)

  p = sub.add_parser("import-checkpoint", help="convert a published PyTorch checkpoint "
                     "(torchvision r3d_18/mc3_18/r2plus1d_18, Slow-R50, VideoMAE ViT, CoCLR S3D) "
                     "into "
                     "a workdir that `ssvbench evaluate` accepts.")
  from ssvbench.models.import_torch import ARCHES
  p.add_argument("--arch", required=True, choices=ARCHES, help="the checkpoint's architecture")
  p.add_argument("--from", dest="source", required=True,
                 help="FILE.pth / .pyth / .pt (needs torch) or FILE.safetensors")
  p.add_argument("--out", required=True, help="the new workdir")
  p.add_argument("--store", default=None, help="optional: a prepared store recorded as the "
                 "run's default evaluation data (otherwise pass `evaluate --store DIR`)")
  p.add_argument("--input-norm", default=None,
                 choices=("ssvbench", "torchvision_kinetics", "imagenet"),
                 help="the pixel statistics the checkpoint was trained with (default: the "
                 "source's: torchvision_kinetics for r3d_18/mc3_18/r2plus1d_18, imagenet for "
                 "CoCLR s3d and VideoMAE, ssvbench (0.45/0.225) for slow_r50)")
  p.add_argument("--input-mean", type=float, nargs=3, default=None, metavar=("R", "G", "B"),
                 help="per-channel mean for pixels in [0, 1] (with --input-std)")
  p.add_argument("--input-std", type=float, nargs=3, default=None, metavar=("R", "G", "B"),
                 help="per-channel std for pixels in [0, 1] (with --input-mean)")
  p.set_defaults(func=cmd_import_checkpoint)

  p = sub.add_parser("leaderboard", help="render results.jsonl as tables.")
  p.add_argument("--results", required=True, nargs="+", help="results.jsonl file(s)")
  p.add_argument("--table", default="protocol", choices=("protocol", "standard"),
                 help="protocol: one table per (dataset, split, protocol); standard: one row "
                 "per pre-trained model, UCF101/HMDB51 split means, K400, ... (see "
                 "ssvbench/results/standard.py)")
  p.add_argument("--rank-by", default=None, help="standard table: headline column "
                 "<dataset>/<linear|knn|retrieval|fewshot|finetune>, e.g. kinetics400/linear")
  p.add_argument("--reported", action="store_true", help="standard table: add published "
                 "reference rows (marked reported; ssvbench/results/reported.json)")
  p.add_argument("--format", default="md", choices=("md", "csv", "latex", "html"))
  p.add_argument("--metrics", nargs="*", default=None, help="metric columns")
  p.add_argument("--out", default=None, help="write all formats into this folder")
  p.add_argument("--basename", default="leaderboard")
  p.set_defaults(func=cmd_leaderboard)

  p = sub.add_parser("compare", help="paired test between two records on the same protocol "
                     "and test videos (from their predictions sidecars).")
  from ssvbench.results import compare
  compare.add_cli_arguments(p)
  p.set_defaults(func=cmd_compare)


  p = sub.add_parser("benchmark", help="run every protocol of a suite (configs/suites/) on a "
                     "pre-training workdir, an imported checkpoint or a features directory; "
                     "one record per (protocol, split), cached and resumable.")
  p.add_argument("source", help="pretrain/import-checkpoint workdir, or a features directory "
                 "(model.json + <entry>/{train,test}.npz)")
  p.add_argument("--suite", default="standard",
                 help="suite name in configs/suites/ (standard, standard:runlocal, "
                 "synthactions) or a suite file `path.py[:arg]`; default standard")
  p.add_argument("--store", action="append", metavar="ENTRY=DIR",
                 help="prepared store of a suite entry (repeatable), e.g. "
                 "ucf101_split2=data/ucf101/split2")
  p.add_argument("--only", nargs="+", default=None, metavar="ENTRY",
                 help="run only these suite entries")
  p.add_argument("--steps", default=None, help="checkpoint steps to evaluate: 'all' or "
                 "e.g. 1000,2000 (default: the latest)")
  p.add_argument("--results", default=None, help="results.jsonl to append to (default "
                 "<source>/results.jsonl)")
  p.add_argument("--no-progress", action="store_true")
  p.set_defaults(func=cmd_benchmark)

  p = sub.add_parser("publish", help="write a static leaderboard site (standard table, a "
                     "page per protocol, provenance, sortable tables, CSV/JSON, plots) that "
                     "opens from file://.")
  p.add_argument("--results", required=True, nargs="+", help="results.jsonl file(s)")
  p.add_argument("--out", required=True, help="site folder (new, or a previous site)")
  p.add_argument("--reported", action="store_true", help="add published reference rows")
  p.add_argument("--rank-by", default=None, help="headline column of the standard table")
  p.add_argument("--title", default="ssvbench leaderboard")
  p.add_argument("--header", default=None, help="paragraph under the title (default: the "
                 "command that regenerates the site)")
  p.add_argument("--no-plots", action="store_true", help="skip the figures")
  p.set_defaults(func=cmd_publish)
  return parser


def main(argv: list[str] | None = None) -> int:
  from ssvbench import config as config_lib
  argv = list(sys.argv[1:] if argv is None else argv)
  try:
    rest, overrides = config_lib.split_config_args(argv)
  except config_lib.ConfigError as e:
    print(f"ssvbench: error: {e}", file=sys.stderr)
    return 2
  parser = build_parser()
  args = parser.parse_args(rest)
  logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  for noisy in ("absl", "jax._src", "orbax", "tensorflow"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  if args.command in ("quickstart", "pretrain", "evaluate", "benchmark"):
    from ssvbench import runtime
    runtime.configure_jax()
  from ssvbench import failures
  return failures.run_command(args, overrides)


if __name__ == "__main__":
  sys.exit(main())
