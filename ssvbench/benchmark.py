"""`ssvbench benchmark`: every protocol of a suite on one model, cached and resumable.

A suite (configs/suites/<name>.py) lists entries, one per (protocol, official split):
`dict(name='ucf101_split2', protocol='ucf101', store='data/ucf101/split2', split=2)`.
The model is one of:
  * a pre-training workdir (`ssvbench pretrain`) or an imported checkpoint's workdir
    (`ssvbench import-checkpoint`): each entry runs `evaluate.evaluate_run`, optionally
    for several checkpoint steps (`steps`), which feeds the accuracy-vs-step plot;
  * a features directory, for models run elsewhere: `<dir>/model.json` holds the
    identity (`run_name`, `method`, `backbone`, `pretrain_data`, optional
    `pretrain_steps`, `pretrain_epochs`, `num_params`, `pretrain_seed`) and
    `<dir>/<entry name>/{train,test}.npz` the features of each entry
    (`evaluate-features` format); missing entries are reported, not invented.

Every finished entry is appended to the results file at once, so an interrupted suite
loses at most the entry it was running; a rerun skips what is recorded. The cache key
is (protocol fingerprint, checkpoint, dataset manifest hash): the same checkpoint and
data under the same protocol settings is never evaluated twice, and a changed protocol
(a new fingerprint) or a re-prepared store is evaluated again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
from typing import Any, Iterable, Mapping, Sequence

from ssvbench import config as config_lib
from ssvbench.results import records as records_lib
from ssvbench.results import standard

SUITE_DIR = config_lib.PACKAGE_CONFIG_DIR / "suites"
ENTRY_KEYS = ("name", "protocol", "store", "split")


@dataclasses.dataclass(frozen=True)
class Entry:
  name: str
  protocol: str
  store: str | None
  split: int | None


def load_suite(spec: str, stores: Mapping[str, str] | None = None,
               only: Sequence[str] | None = None) -> list[Entry]:
  """The entries of a suite file (`path.py[:arg]` or a name in configs/suites/).

  Args:
    spec: suite file or name.
    stores: entry name -> prepared store, overriding the suite's defaults.
    only: run only these entries.
  """
  path, _, arg = spec.partition(":")
  if not path.endswith(".py"):
    path = str(SUITE_DIR / f"{path}.py")
  try:
    path = str(config_lib.resolve_config_path(path))
  except config_lib.ConfigError:
    names = sorted(p.stem for p in SUITE_DIR.glob("*.py") if not p.stem.startswith("_"))
    raise ValueError(f"benchmark: no suite {spec!r}; shipped suites: {names} "
                     f"(configs/suites/), or a path to a suite .py file.") from None
  config = config_lib.load_config(f"{path}:{arg}" if arg else path)
  entries = []
  for raw in config.entries:
    raw = dict(raw)
    unknown = sorted(set(raw) - set(ENTRY_KEYS))
    if unknown or "name" not in raw or "protocol" not in raw:
      raise ValueError(f"benchmark: suite {spec}: entry {raw} must have keys "
                       f"{list(ENTRY_KEYS)} (name and protocol required); unknown: {unknown}.")
    entries.append(Entry(raw["name"], raw["protocol"], raw.get("store"), raw.get("split")))
  names = [e.name for e in entries]
  for label, given in (("--store", list(stores or ())), ("--only", list(only or ()))):
    unknown = sorted(set(given) - set(names))
    if unknown:
      raise ValueError(f"benchmark: {label} names {unknown}, not entries of the suite; "
                       f"entries: {names}.")
  entries = [dataclasses.replace(e, store=(stores or {}).get(e.name, e.store))
             for e in entries]
  return [e for e in entries if not only or e.name in only]


def checkpoint_steps(workdir: pathlib.Path) -> list[int]:
  """The checkpoint steps present in a workdir (`runs.saved_steps`)."""
  from ssvbench import runs
  return runs.saved_steps(workdir)


def _same_path(a: str | None, b: str | None) -> bool:
  if a is None or b is None:
    return a == b
  return os.path.realpath(a) == os.path.realpath(b)


def _recorded(existing: Iterable[Mapping[str, Any]], fingerprint: str, checkpoint: str,
              manifest_hash: str) -> bool:
  return any(r["protocol"]["fingerprint"] == fingerprint
             and r["manifest_hash"] == manifest_hash
             and _same_path(r.get("checkpoint"), checkpoint) for r in existing)


def _check_store(entry: Entry, store) -> None:
  recorded = store.manifest.get("official_split")
  if entry.split is not None and recorded is not None and int(recorded) != int(entry.split):
    raise ValueError(f"benchmark: entry {entry.name} wants official split {entry.split}, but "
                     f"the store {entry.store} was prepared from split {recorded}.")


def run_workdir(workdir: str | os.PathLike, suite: Sequence[Entry], results_file, *,
                steps: str | None = None, progress: bool = True) -> dict[str, list]:
  """Evaluates a (pre-training or imported) workdir under every entry of a suite.

  Args:
    workdir: the run.
    suite: entries from `load_suite`.
    results_file: the JSON-lines file appended to (default `<workdir>/results.jsonl`).
    steps: None for the latest checkpoint, `all`, or comma-separated steps.
    progress: progress bars.

  Returns:
    {'evaluated': [(entry, step)], 'skipped': [(entry, step)]}.
  """
  from ssvbench import evaluate
  from ssvbench.data import store as store_lib
  from ssvbench import runs
  from ssvbench.evaluators import protocol as protocol_lib
  workdir = pathlib.Path(workdir)
  if not (workdir / runs.CONFIG_FILE).is_file():
    raise ValueError(f"benchmark: {workdir} is not a pre-training or imported-checkpoint "
                     "workdir (no config.json).")
  available = checkpoint_steps(workdir)
  if not available:
    raise ValueError(f"benchmark: {workdir} holds no checkpoint.")
  if steps is None:
    wanted = [available[-1]]
  elif steps == "all":
    wanted = available
  else:
    try:
      wanted = sorted({int(s) for s in steps.split(",") if s.strip()})
    except ValueError:
      raise ValueError(f"benchmark: --steps {steps!r}: expected 'all' or comma-separated "
                       "integers.") from None
    missing = sorted(set(wanted) - set(available))
    if missing:
      raise ValueError(f"benchmark: --steps {missing} have no checkpoint in {workdir}; "
                       f"present: {available}.")
  results_file = pathlib.Path(results_file or workdir / "results.jsonl")
  config = json.loads((workdir / "config.json").read_text())

  # Everything is checked before the first evaluation: stores present, splits right.
  plan = []
  for entry in suite:
    store_dir = entry.store or (config.get("data") or {}).get("store_dir")
    if not store_dir:
      raise ValueError(f"benchmark: entry {entry.name} names no store and {workdir} records "
                       f"none; pass --store {entry.name}=DIR.")
    if not pathlib.Path(store_dir, "manifest.json").is_file():
      raise ValueError(f"benchmark: entry {entry.name}: {store_dir} is not a prepared store; "
                       f"prepare it, pass --store {entry.name}=DIR, or leave the entry out "
                       "with --only.")
    store = store_lib.PreparedStore(store_dir)
    _check_store(dataclasses.replace(entry, store=store_dir), store)
    spec = protocol_lib.load_protocol(entry.protocol)
    plan.append((entry, store_dir, protocol_lib.fingerprint(spec), store.manifest_hash))

  done = {"evaluated": [], "skipped": []}
  for step in wanted:
    checkpoint = runs.checkpoint_path(workdir, step)
    for entry, store_dir, fingerprint, manifest_hash in plan:
      existing = records_lib.load_records(results_file) if results_file.is_file() else []
      if _recorded(existing, fingerprint, checkpoint, manifest_hash):
        logging.info("benchmark: %s at step %d is recorded; skipped", entry.name, step)
        done["skipped"].append((entry.name, step))
        continue
      logging.info("benchmark: %s at step %d", entry.name, step)
      evaluate.evaluate_run(workdir, protocol=entry.protocol, store_dir=store_dir,
                            results_file=results_file, progress=progress, step=step)
      done["evaluated"].append((entry.name, step))
  return done


def _file_digest(paths: Sequence[pathlib.Path]) -> str:
  digest = hashlib.sha256()
  for path in paths:
    digest.update(path.read_bytes())
  return digest.hexdigest()


def run_features(features_dir: str | os.PathLike, suite: Sequence[Entry], results_file,
                 ) -> dict[str, list]:
  """Evaluates a features directory (see the module docstring) under a suite."""
  import argparse
  from ssvbench.evaluators import evaluate_features as evaluate_features_lib
  from ssvbench.evaluators import feature_records
  from ssvbench.evaluators import protocol as protocol_lib
  folder = pathlib.Path(features_dir)
  identity_file = folder / "model.json"
  if not identity_file.is_file():
    raise ValueError(f"benchmark: {folder} has no model.json (run_name, method, backbone, "
                     "pretrain_data) naming the model whose features it holds.")
  identity = json.loads(identity_file.read_text())
  missing = [k for k in feature_records.IDENTITY_FLAGS if not identity.get(k)]
  if missing:
    raise ValueError(f"benchmark: {identity_file} lacks {missing}.")
  results_file = pathlib.Path(results_file or folder / "results.jsonl")
  plan = []
  for entry in suite:
    train, test = folder / entry.name / "train.npz", folder / entry.name / "test.npz"
    if not (train.is_file() and test.is_file()):
      raise ValueError(f"benchmark: entry {entry.name}: {folder / entry.name} needs train.npz "
                       "and test.npz; extract them, or leave the entry out with --only.")
    spec = protocol_lib.load_protocol(entry.protocol)
    plan.append((entry, spec, train, test))
  done = {"evaluated": [], "skipped": []}
  for entry, spec, train, test in plan:
    checkpoint = f"features:{_file_digest([train, test])[:32]}"
    fingerprint = protocol_lib.fingerprint(spec)
    existing = records_lib.load_records(results_file) if results_file.is_file() else []
    if any(r["protocol"]["fingerprint"] == fingerprint
           and (r.get("extra") or {}).get("features_digest") == checkpoint for r in existing):
      done["skipped"].append((entry.name, None))
      continue
    args = argparse.Namespace(
        results=str(results_file), run_name=identity["run_name"], method=identity["method"],
        backbone=identity["backbone"], pretrain_data=identity["pretrain_data"],
        split=entry.split if (spec.get("dataset") or spec.name) in standard.OFFICIAL_SPLITS
        else None,
        pretrain_seed=int(identity.get("pretrain_seed", 0)),
        pretrain_steps=identity.get("pretrain_steps"),
        pretrain_epochs=identity.get("pretrain_epochs"), num_params=identity.get("num_params"),
        manifest_hash=identity.get("manifest_hash"))
    problem = feature_records.check_arguments(args, spec)
    if problem:
      raise ValueError(f"benchmark: {identity_file}: {problem}")
    result = evaluate_features_lib.evaluate_features(spec, train, test)
    record = feature_records.make_record(args, spec, result)
    record["extra"]["features_digest"] = checkpoint
    records_lib.append_record(results_file, record)
    done["evaluated"].append((entry.name, None))
  return done


def run(source: str | os.PathLike, suite_spec: str, *, stores: Mapping[str, str] | None = None,
        only: Sequence[str] | None = None, steps: str | None = None, results_file=None,
        progress: bool = True) -> dict[str, list]:
  """`ssvbench benchmark`: a workdir or a features directory under a suite."""
  suite = load_suite(suite_spec, stores, only)
  source = pathlib.Path(source)
  if (source / "model.json").is_file():
    if steps is not None:
      raise ValueError("benchmark: --steps applies to a workdir with checkpoints, not to a "
                       "features directory.")
    return run_features(source, suite, results_file)
  return run_workdir(source, suite, results_file, steps=steps, progress=progress)
