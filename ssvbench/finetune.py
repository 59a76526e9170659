"""Full fine-tuning under a protocol, with the epoch chosen on validation and test scored once.

Frozen-feature numbers say what a representation already holds; fine-tuning says how
good a starting point it is, and it is the number most video SSL papers lead with
(UCF101/HMDB51 top-1). It is also where they most often select on test: the best epoch
of a curve evaluated on the test list. Here:

- The recipe (optimiser, schedule, epochs, batch, augmentation, checkpoint interval) is
  the protocol's `finetune` block, so it is covered by the fingerprint of every number.
- Training is the one trainer: a `supervised` run (cross-entropy, new linear head)
  whose backbone is copied from the pre-training run (`config.train.init_from`), on the
  training split MINUS a validation part carved by leakage group
  (`config.data.record_indices`: a file named by its hash), so no source video spans the
  two parts.
- Every saved checkpoint is scored on the carved validation part only; the best one is
  chosen (highest top-1, then lowest loss, then the earliest step).
- The chosen checkpoint alone is scored on test, once, with the protocol's views: a
  video's scores are the softmax averaged over its views.
"""

from __future__ import annotations

import functools
import json
import logging
import pathlib
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from ssvbench import config as config_lib
from ssvbench import runs
from ssvbench.data import pipeline, store as store_lib
from ssvbench.data import record_indices as record_indices_lib
from ssvbench.data import validation as validation_lib
from ssvbench.evaluators import extract, knn
from ssvbench.evaluators import protocol as protocol_lib
from ssvbench.methods import base as methods_base
from ssvbench.results import predictions as predictions_lib
from ssvbench.results import records, stats
from ssvbench.train import sharding, trainer

RESULT_FILE = "finetune.json"
TRAIN_SUBDIR = "train"
def carve_fit_and_validation(store: store_lib.PreparedStore, split: str,
                             validation: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
  """Record indices of the fitting and validation parts of a training split, by group.

  Args:
    store: the prepared store.
    split: the training split.
    validation: the protocol's `validation` block (`fraction`, `seed`).

  Returns:
    (fit_indices, val_indices): sorted, disjoint, together every record of the split.
  """
  mask = validation_lib.carve_validation(store.labels(split), store.groups(split),
                                         float(validation["fraction"]), int(validation["seed"]))
  if not mask.any() or mask.all():
    raise ValueError(f"{store.out_dir}: cannot carve a validation part out of split {split!r} "
                     "by group: no class has two or more groups.")
  return np.nonzero(~mask)[0], np.nonzero(mask)[0]


def plan_steps(recipe: Mapping[str, Any], num_fit: int) -> dict[str, Any]:
  """Converts the recipe's epochs into steps (rounded) for a fitting part of `num_fit` videos.

  Returns:
    dict with `steps_per_epoch` (float), `num_steps`, `checkpoint_every`, `warmup_steps`
    and `checkpoint_steps` (every step a checkpoint is saved at, the last one included).
  """
  steps_per_epoch = num_fit / recipe["batch_size"]
  num_steps = max(1, round(recipe["epochs"] * steps_per_epoch))
  every = max(1, round(recipe["checkpoint_every_epochs"] * steps_per_epoch))
  checkpoint_steps = sorted(set(range(every, num_steps + 1, every)) | {num_steps})
  return {"steps_per_epoch": steps_per_epoch, "num_steps": num_steps, "checkpoint_every": every,
          "warmup_steps": round(recipe["optimizer"]["warmup_epochs"] * steps_per_epoch),
          "checkpoint_steps": checkpoint_steps}


def finetune_config(pretrain_config: ml_collections.ConfigDict, pretrain_workdir: pathlib.Path,
                    spec: ml_collections.ConfigDict, recipe: Mapping[str, Any], store_dir: str,
                    fit_indices: np.ndarray, plan: Mapping[str, Any],
                    mesh_axes: Mapping[str, int] | None = None) -> ml_collections.ConfigDict:
  """The trainer config of the fine-tuning run (a `supervised` run with `init_from`)."""
  optimizer = recipe["optimizer"]
  config = ml_collections.ConfigDict()
  config.seed = int(recipe["seed"])
  config.data = ml_collections.ConfigDict(dict(
      store_dir=str(store_dir), split=spec.splits["train"],
      record_indices=record_indices_lib.reference(fit_indices),
      num_frames=int(spec.views["num_frames"]), frame_stride=int(spec.views["frame_stride"]),
      crop_size=int(spec.views["crop_size"]),
      worker_count=int(pretrain_config.data.get("worker_count", 0)),
      augment=recipe["augment"]))
  config.model = ml_collections.ConfigDict(pretrain_config.model.to_dict())
  config.method = ml_collections.ConfigDict(dict(name="supervised", num_views=1))
  config.train = ml_collections.ConfigDict(dict(
      batch_size=int(recipe["batch_size"]), num_steps=plan["num_steps"],
      log_every=max(1, min(10, plan["checkpoint_every"])),
      checkpoint_every=plan["checkpoint_every"],
      # Every checkpoint is kept: each is a candidate for selection on validation.
      keep_checkpoints=len(plan["checkpoint_steps"]), init_from=str(pretrain_workdir)))
  config.optim = ml_collections.ConfigDict(dict(
      name=optimizer["name"], lr=float(optimizer["lr"]),
      weight_decay=float(optimizer["weight_decay"]), momentum=float(optimizer["momentum"]),
      warmup_steps=plan["warmup_steps"],
      final_lr_fraction=float(optimizer["final_lr_fraction"])))
  config.mesh = ml_collections.ConfigDict(dict(mesh_axes or {sharding.DATA_AXIS: -1}))
  return config


@functools.lru_cache(maxsize=8)
def _make_predict(graphdef, mesh):
  """One jitted classifier forward per (architecture, mesh): views -> mean softmax."""
  def predict(state, views):
    model = nnx.merge(graphdef, state)
    features = methods_base.encode_views(model.backbone, views)  # [B, V, D]
    logits = model.classifier(features).astype(jnp.float32)
    return jax.nn.softmax(logits, axis=-1).mean(axis=1)
  return jax.jit(predict, in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)),
                 out_shardings=sharding.batch_sharding(mesh))


def predict_video_scores(model: nnx.Module, source: Any, views: Mapping[str, Any], *, mesh,
                         per_device_batch: int = 8, progress: bool = True,
                         description: str = "predict") -> np.ndarray:
  """Class scores of every video of a record source, softmax averaged over its views.

  Deterministic like feature extraction: fixed views, a fixed per-device batch, the
  last batch padded and masked, so every video is scored once, in source order.

  Args:
    model: a classifier model (`.backbone`, `.classifier`) in eval mode.
    source: a split's record source, or a `pipeline.RecordSubset` of one.
    views: view spec (`extract.VIEW_KEYS`).
    mesh: device mesh.
    per_device_batch: videos per device per call.
    progress: show a progress bar.
    description: progress bar label.

  Returns:
    float32 [N, num_classes].
  """
  return extract.run_over_views(model, source, views, _make_predict, mesh=mesh,
                                per_device_batch=per_device_batch, progress=progress,
                                description=description)


def score(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
  """Top-1/top-5 accuracy (%, ties to the lower class) and mean cross-entropy of scores."""
  labels = np.asarray(labels)
  true_scores = scores[np.arange(len(labels)), labels]
  return {"top1": 100.0 * float(knn.topk_hits(scores, labels, 1, positive_only=False).mean()),
          "top5": 100.0 * float(knn.topk_hits(scores, labels, 5, positive_only=False).mean()),
          "loss": float(np.mean(-np.log(np.maximum(true_scores, 1e-12))))}


def select_step(val_by_step: Mapping[int, Mapping[str, float]]) -> int:
  """The checkpoint with the best validation top-1, then the lowest loss, then the earliest."""
  return min(val_by_step, key=lambda s: (-val_by_step[s]["top1"], val_by_step[s]["loss"], s))


def _restored_models(train_dir: pathlib.Path, steps: list[int]):
  """Yields (step, classifier model in eval mode) for each checkpoint of the fine-tune."""
  for _, model, step in runs.restored_models(train_dir, steps):
    yield step, model


def validate_checkpoints(train_dir: pathlib.Path, steps: list[int], val_source: Any,
                         val_labels: np.ndarray, views: Mapping[str, Any], *, mesh,
                         per_device_batch: int, progress: bool = True):
  """Scores every checkpoint on the validation videos and picks one (`select_step`).

  Returns:
    (scores by step, chosen step, the chosen model in eval mode).
  """
  val_by_step, best_model = {}, None
  for step, model in _restored_models(train_dir, steps):
    val_by_step[step] = score(predict_video_scores(
        model, val_source, views, mesh=mesh, per_device_batch=per_device_batch,
        progress=progress, description=f"validate step {step}"), val_labels)
    if select_step(val_by_step) == step:
      best_model = model  # Kept, so the chosen checkpoint is not restored twice.
  return val_by_step, select_step(val_by_step), best_model


def _check_reusable(train_dir: pathlib.Path, config: ml_collections.ConfigDict) -> None:
  """A resumed fine-tune must be the same run: same recipe, data, weights to start from."""
  config_file = train_dir / "config.json"
  if config_file.is_file() and config_file.read_text() != config_lib.to_json(config):
    raise ValueError(f"{config_file} was written by a different fine-tuning run (recipe, "
                     "store, validation carving or pre-training run differ); choose another "
                     "--out folder.")


def finetune_run(pretrain_workdir: str | pathlib.Path,
                 protocol: str | ml_collections.ConfigDict,
                 out_dir: str | pathlib.Path | None = None, *, store_dir: str | None = None,
                 mesh_axes: Mapping[str, int] | None = None, resume: bool = False,
                 progress: bool = True, results_file: str | pathlib.Path | None = None,
                 append: bool = True, run_name: str | None = None) -> dict[str, Any]:
  """Fine-tunes a pre-training run under a protocol's recipe and scores it once on test.

  Args:
    pretrain_workdir: a `ssvbench pretrain` workdir (its latest checkpoint is used).
    protocol: protocol name (`synthactions`, `ucf101:runlocal`), path, or a spec.
    out_dir: where the fine-tuning run goes (default <pretrain_workdir>/finetune/<name>);
      its `train/` holds checkpoints and metrics, `finetune.json` the result.
    store_dir: prepared store of the protocol's dataset (default: the pre-training store).
    mesh_axes: device mesh of training and scoring (default all devices on `data`); the
      numbers do not depend on it.
    resume: continue (or reuse) an interrupted fine-tuning run in `out_dir`.
    progress: progress bars.
    results_file: JSONL file the record is appended to (default
      <pretrain_workdir>/results.jsonl, beside the frozen-feature results).
    append: write the record (False returns it only).
    run_name: name of the run in tables (default: the pre-training workdir's name).

  Returns:
    dict with `metrics` (`finetune/top1`, `finetune/top5`, `finetune/val_top1`, in %),
    `details` (chosen step, validation scores of every checkpoint, sizes, timings) and
    `record` (the result record).
  """
  pretrain_workdir = pathlib.Path(pretrain_workdir)
  if isinstance(protocol, str):
    spec = protocol_lib.load_protocol(protocol)
  else:
    spec = protocol
    protocol_lib.validate(spec)
  recipe = protocol_lib.resolve_finetune_recipe(spec)
  pretrain_config = runs.load_config(pretrain_workdir)
  out_dir = pathlib.Path(out_dir) if out_dir else pretrain_workdir / "finetune" / spec.name
  train_dir = out_dir / TRAIN_SUBDIR
  store_dir = trainer.run_store_dir(pretrain_workdir, pretrain_config, store_dir)
  store = store_lib.PreparedStore(store_dir)
  if spec.get("dataset") and store.dataset != spec.dataset:
    raise ValueError(f"protocol {spec.name} is for dataset {spec.dataset!r} but {store_dir} "
                     f"holds {store.dataset!r}; pass the right store with --store.")
  if spec.num_classes is not None and spec.num_classes != store.num_classes:
    raise ValueError(f"protocol {spec.name} expects {spec.num_classes} classes, {store_dir} "
                     f"has {store.num_classes}.")
  pretrain_steps = runs.saved_steps(pretrain_workdir)
  if not pretrain_steps:
    raise FileNotFoundError(f"{pretrain_workdir} holds no checkpoint to fine-tune from.")
  if not resume and runs.saved_steps(train_dir):
    raise FileExistsError(f"{train_dir} already holds a fine-tuning run; pass --resume to "
                          "continue or reuse it, or choose another --out folder.")

  train_split, test_split = spec.splits["train"], spec.splits["test"]
  fit_indices, val_indices = carve_fit_and_validation(store, train_split, spec.validation)
  plan = plan_steps(recipe, len(fit_indices))
  config = finetune_config(pretrain_config, pretrain_workdir, spec, recipe, store_dir,
                           fit_indices, plan, mesh_axes)
  if resume:
    _check_reusable(train_dir, config)
  record_indices_lib.write(train_dir, fit_indices)
  start = time.perf_counter()
  trainer.train(config, train_dir, resume=resume, progress=progress,
                init_state=runs.initial_state_for(config))
  train_seconds = time.perf_counter() - start

  # Selection: every checkpoint on the carved validation part, nothing else.
  start = time.perf_counter()
  mesh = sharding.make_mesh(config.mesh)
  per_device_batch = int(spec.get("per_device_batch", 8))
  val_views = {**spec.views.to_dict(), **recipe["val_views"]}
  val_by_step, chosen, best_model = validate_checkpoints(
      train_dir, plan["checkpoint_steps"],
      pipeline.RecordSubset(store.data_source(train_split), val_indices),
      store.labels(train_split)[val_indices], val_views, mesh=mesh,
      per_device_batch=per_device_batch, progress=progress)
  select_seconds = time.perf_counter() - start

  # The one look at test.
  start = time.perf_counter()
  test_scores = predict_video_scores(best_model, store.data_source(test_split), spec.views,
                                     mesh=mesh, per_device_batch=per_device_batch,
                                     progress=progress, description="test")
  test_labels = np.asarray(store.labels(test_split))
  test = score(test_scores, test_labels)
  test_seconds = time.perf_counter() - start
  # Per-video outcomes: the `_ci95` (bootstrap over test videos) and the sidecar.
  outcomes = {
      "finetune/top1": stats.outcome(
          knn.topk_hits(test_scores, test_labels, 1, positive_only=False), labels=test_labels,
          predicted=test_scores.argmax(axis=1)),
      "finetune/top5": stats.outcome(
          knn.topk_hits(test_scores, test_labels, 5, positive_only=False), labels=test_labels)}

  metrics = {"finetune/top1": test["top1"], "finetune/top5": test["top5"],
             "finetune/val_top1": val_by_step[chosen]["top1"],
             **{f"{name}_ci95": stats.bootstrap_ci95(packed)
                for name, packed in outcomes.items()}}
  details = {
      "chosen_step": chosen, "chosen_epoch": chosen / plan["steps_per_epoch"],
      "val_by_step": {str(s): v for s, v in val_by_step.items()},
      "test_loss": test["loss"], "test_evaluations": 1,
      "num_fit": len(fit_indices), "num_val": len(val_indices),
      "num_test": len(test_scores), "val_views": extract.view_spec(val_views),
      "test_views": extract.view_spec(spec.views), "carving": validation_lib.CARVING_VERSION,
      "num_steps": plan["num_steps"], "steps_per_epoch": plan["steps_per_epoch"],
      "recipe": recipe, "pretrain_step": pretrain_steps[-1],
      "seconds": {"train": train_seconds, "select": select_seconds, "test": test_seconds},
  }
  protocol_info = {"name": spec.name, "version": spec.version,
                   "fingerprint": protocol_lib.fingerprint(spec)}
  record = records.make_record(
      method=pretrain_config.method.name, backbone=pretrain_config.model.backbone,
      pretrain_data=str(pretrain_config.data.store_dir), dataset=store.dataset,
      split=test_split, protocol=protocol_info, metrics=metrics,
      seeds={"pretrain": int(pretrain_config.seed), "finetune": int(recipe["seed"])},
      manifest_hash=store.manifest_hash,
      checkpoint=runs.checkpoint_path(train_dir, chosen),
      run_name=run_name or pretrain_workdir.name,
      extra={"evaluation": "finetune", "chosen_step": chosen,
             "pretrain_steps": pretrain_steps[-1], "finetune_steps": plan["num_steps"],
             # The official split (UCF101/HMDB51) for the standard table's split means.
             **({"official_split": int(store.manifest["official_split"])}
                if store.manifest.get("official_split") is not None else {})})
  if jax.process_index() == 0:
    (out_dir / RESULT_FILE).write_text(json.dumps(
        {"protocol": protocol_info, "metrics": metrics, "details": details}, indent=2) + "\n")
    if append:
      results_file = pathlib.Path(results_file or pretrain_workdir / "results.jsonl")
      predictions_lib.attach(record, results_file.parent, outcomes,
                             np.asarray(store.video_ids(test_split)))
      records.append_record(results_file, record)
  logging.info("fine-tuned %s under %s: %s (step %d chosen on validation)", pretrain_workdir,
               spec.name, metrics, chosen)
  return {"metrics": metrics, "details": details, "record": record}
