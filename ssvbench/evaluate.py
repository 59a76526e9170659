"""Evaluating a pre-training run under a protocol: extract, evaluate, record.

The protocol (configs/protocols/<name>.py) fixes the views and every evaluator's
settings; this module only wires a run's checkpoint to it: deterministic extraction of
the train and test splits (cached), the frozen-feature evaluators (which carve their
validation split from train by group), optional class-subset metrics (SynthActions'
motion-only classes), and one result record carrying protocol fingerprint, manifest
hash, seeds and code version. Every accuracy metric has its `_ci95` (the subsets' too),
and the per-video outcomes are saved in a sidecar beside the results file that the
record names and hashes (`ssvbench.results.predictions`), for later paired comparisons.
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any

import numpy as np

from ssvbench import runs
from ssvbench.data import store as store_lib, synthactions_store
from ssvbench.evaluators import evaluate_features as evaluate_features_lib
from ssvbench.evaluators import extract
from ssvbench.evaluators import features as features_lib
from ssvbench.evaluators import protocol as protocol_lib
from ssvbench.results import predictions as predictions_lib
from ssvbench.results import records
from ssvbench.train import trainer

# Named class subsets whose accuracy is reported separately (e.g. motion-only classes).
CLASS_SUBSETS_FILE = synthactions_store.CLASS_SUBSETS_FILE
# Evaluators re-run on a class subset of the test split.
SUBSET_EVALUATORS = ("knn", "linear")


def load_class_subsets(store: store_lib.PreparedStore) -> dict[str, list[str]]:
  path = pathlib.Path(store.out_dir) / CLASS_SUBSETS_FILE
  if not path.is_file():
    return {}
  subsets = json.loads(path.read_text())
  unknown = {c for names in subsets.values() for c in names} - set(store.class_names)
  if unknown:
    raise ValueError(f"{path}: classes {sorted(unknown)} are not in the store's class list.")
  return subsets


def to_feature_set(extracted: dict[str, np.ndarray], num_classes: int, source: str):
  return features_lib.FeatureSet(
      features=extracted["features"], labels=extracted["labels"], num_classes=num_classes,
      video_ids=extracted["video_ids"], groups=extracted["groups"], source=source)


def subset_metrics(spec, train, test, class_names: list[str], subsets: dict[str, list[str]],
                   predictions: dict | None = None):
  """Re-runs k-NN and linear with the test split restricted to each class subset.

  The classifier still chooses among all classes; only the scored test videos change,
  so a subset number answers "how often are videos of these classes recognised".
  If `predictions` is a dict, it receives the subsets' per-video outcomes, with `rows`
  (their positions in the full test split).
  """
  metrics = {}
  for subset_name, names in subsets.items():
    wanted = np.isin(test.labels, [class_names.index(n) for n in names])
    if not wanted.any():
      continue
    subset_test = features_lib.FeatureSet(
        features=test.features[wanted], labels=test.labels[wanted], num_classes=test.num_classes,
        video_ids=None if test.video_ids is None else test.video_ids[wanted],
        groups=None if test.groups is None else test.groups[wanted],
        source=f"{test.source}[{subset_name}]")
    collected: dict = {}
    result = evaluate_features_lib.evaluate_features(spec, train, subset_test,
                                                     only=SUBSET_EVALUATORS,
                                                     predictions=collected)
    for name, value in result["metrics"].items():
      metrics[f"{subset_name}/{name}"] = value
    if predictions is not None:
      rows = np.nonzero(wanted)[0]
      for name, packed in collected["metrics"].items():
        predictions[f"{subset_name}/{name}"] = {**packed, "rows": rows}
  return metrics


def record_split(test_split: str, store: store_lib.PreparedStore) -> str:
  """`split2/test` for a store prepared from an official split (UCF101/HMDB51), so that
  splits 1-3 are told apart wherever records are grouped; the plain split otherwise."""
  official = store.manifest.get("official_split")
  return test_split if official is None else f"split{int(official)}/{test_split}"


def table_facts(config, model, store: store_lib.PreparedStore) -> dict[str, Any]:
  """What the standard table shows about a model besides its numbers: the official split
  evaluated (UCF101/HMDB51), the pre-training clip shape and the backbone's size."""
  import jax
  from flax import nnx
  facts: dict[str, Any] = {
      "num_params": int(sum(np.size(x) for x in jax.tree.leaves(
          nnx.state(model.backbone, nnx.Param))))}
  if store.manifest.get("official_split") is not None:
    facts["official_split"] = int(store.manifest["official_split"])
  data = config.get("data") or {}
  pretrain_store = pathlib.Path(str(data.get("store_dir") or ""), store_lib.MANIFEST_NAME)
  if data.get("store_dir") and pretrain_store.is_file():
    facts["pretrain_dataset"] = store_lib.PreparedStore(data["store_dir"]).dataset
  if data.get("num_frames") and data.get("crop_size"):
    facts["pretrain_input"] = {"num_frames": int(data["num_frames"]),
                               "crop_size": int(data["crop_size"])}
  return facts


def extract_run_features(workdir: pathlib.Path, model, store: store_lib.PreparedStore,
                         spec, *, weights: str | None = None, mesh=None,
                         progress: bool = True) -> dict[str, dict]:
  """The protocol's train and test features of a run's model, through the run's
  feature cache (`<workdir>/feature_cache`, keyed by the weights' fingerprint `weights`,
  computed when not given)."""
  weights = weights or runs.params_fingerprint(model.backbone)
  return {split: extract.extract_features(
              model.backbone, store, spec.splits[split], spec.views, mesh=mesh,
              per_device_batch=spec.get("per_device_batch", 8),
              cache_dir=pathlib.Path(workdir) / "feature_cache", weights_fingerprint=weights,
              progress=progress)
          for split in ("train", "test")}


def evaluate_run(workdir: str | pathlib.Path, *, protocol: str, store_dir: str | None = None,
                 results_file: str | pathlib.Path | None = None, progress: bool = True,
                 mesh=None, append: bool = True, run_name: str | None = None,
                 predictions_dir: str | pathlib.Path | None = None,
                 step: int | None = None) -> dict[str, Any]:
  """Evaluates the latest (or a given) checkpoint of a pre-training workdir.

  Args:
    workdir: a `ssvbench pretrain` workdir.
    protocol: protocol name (configs/protocols/<name>.py) or path.
    store_dir: prepared store of the evaluation dataset (default: the pre-training store).
    results_file: JSONL file the record is appended to (default <workdir>/results.jsonl).
    progress: progress bars.
    mesh: device mesh for extraction (default: all devices).
    append: write the record (False returns it only).
    run_name: name of the run in tables (default: the workdir's name).
    predictions_dir: with append=False, write the predictions sidecar here and name it in
      the record (the folder of the results file the caller will append it to); with
      append=True the sidecar goes beside `results_file`.
    step: the checkpoint step to evaluate (default: the latest).

  Returns:
    The result record.
  """
  workdir = pathlib.Path(workdir)
  config, model, step = runs.load_trained_model(workdir, step)
  spec = protocol_lib.load_protocol(protocol)
  store = store_lib.PreparedStore(trainer.run_store_dir(workdir, config, store_dir))
  weights = runs.params_fingerprint(model.backbone)
  extracted = extract_run_features(workdir, model, store, spec, weights=weights, mesh=mesh,
                                   progress=progress)
  train = to_feature_set(extracted["train"], store.num_classes, f"{workdir}:train")
  test = to_feature_set(extracted["test"], store.num_classes, f"{workdir}:test")
  collected: dict = {}
  result = evaluate_features_lib.evaluate_features(spec, train, test, predictions=collected)
  metrics = dict(result["metrics"])
  outcomes = dict(collected["metrics"])
  metrics.update(subset_metrics(spec, train, test, store.class_names, load_class_subsets(store),
                                predictions=outcomes))
  record = records.make_record(
      method=config.method.name, backbone=config.model.backbone,
      pretrain_data=str(config.data.store_dir), dataset=store.dataset,
      split=record_split(spec.splits["test"], store), protocol=result["protocol"],
      metrics=metrics,
      seeds={"pretrain": int(config.seed), "protocol": int(spec.get("seed", 0))},
      manifest_hash=store.manifest_hash, checkpoint=runs.checkpoint_path(workdir, step),
      run_name=run_name or workdir.name,
      extra={"pretrain_steps": int(step), "weights_fingerprint": weights,
             "view_spec": extract.view_spec(spec.views), **table_facts(config, model, store),
             # Episodic intervals that also hold the query videos' sampling (see stats).
             **({"episodic_ci95_over_query_videos": episodic}
                if (episodic := result["details"].get("fewshot_episodic", {}).get(
                    "ci95_over_query_videos")) else {})})
  if append:
    results_file = pathlib.Path(results_file or workdir / "results.jsonl")
    predictions_lib.attach(record, results_file.parent, outcomes, test.video_ids)
    records.append_record(results_file, record)
  elif predictions_dir is not None:
    predictions_lib.attach(record, predictions_dir, outcomes, test.video_ids)
  logging.info("evaluated %s under %s: %s", workdir, protocol, metrics)
  return record
