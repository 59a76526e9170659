"""Online evaluation during pre-training (big_vision style): a k-NN monitor every N steps.

Every `config.train.eval_every` steps (0, the default, turns it off, so committed runs
do not change), the backbone of the current train state extracts features of the
pre-training split and the evaluators of `config.evals` (registry entries, as in a
protocol; default a k-NN with k=20, T=0.07) score the VALIDATION part carved from that
split by group (`ssvbench.data.validation`) against the rest as gallery. The test split
is never read. The numbers go to `metrics.jsonl` as their own lines
(`{"step": s, "online/knn/top1": ...}`, no `loss` key) and to TensorBoard, which gives
every run its accuracy-vs-step curve without stopping it.

Evaluation does not change training: it reads the state (no update, no RNG draw) and
does not touch the training data iterator. Options (`config.online_eval`, all optional):
`val_fraction` (0.2), `val_seed` (0), `num_temporal_views` (1), `per_device_batch` (8);
clips use the pre-training `num_frames`, `frame_stride` and `crop_size`.
"""

from __future__ import annotations

import json
import logging
import pathlib
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from ssvbench.data import validation as validation_lib
from ssvbench.evaluators import extract
from ssvbench.evaluators import features as features_lib
from ssvbench.evaluators import registry
from ssvbench.train import tensorboard as tensorboard_lib

DEFAULT_EVALS = {"knn": {"type": "knn", "k": 20, "temperature": 0.07}}
PREFIX = "online/"
OPTIONS = {"val_fraction": 0.2, "val_seed": 0, "num_temporal_views": 1, "per_device_batch": 8}


class OnlineEvaluator:
  """Runs `config.evals` on the carved validation split of the pre-training store."""

  def __init__(self, config: ml_collections.ConfigDict, store, graphdef, mesh,
               workdir: str | pathlib.Path):
    self.every = int(config.train.get("eval_every", 0) or 0)
    options = dict(OPTIONS)
    given = dict(config.get("online_eval", None) or {})
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
      raise ValueError(f"config.online_eval: unknown key(s) {unknown}; valid: {sorted(OPTIONS)}.")
    options.update(given)
    self.split = config.data.get("split", "train")
    if self.split == "test":
      raise ValueError("online evaluation reads the pre-training split; it must not be "
                       "'test' (config.data.split).")
    evals = config.get("evals", None)
    evals = dict(DEFAULT_EVALS if evals is None else evals)
    self.evals = {name: registry.resolve_settings(name, dict(entry))
                  for name, entry in evals.items()}
    for name, entry in self.evals.items():
      registry.build(name, entry)  # A bad setting fails before training starts.
    self.views = {"num_temporal_views": int(options["num_temporal_views"]),
                  "num_spatial_crops": 1, "num_frames": int(config.data.num_frames),
                  "frame_stride": int(config.data.frame_stride),
                  "crop_size": int(config.data.crop_size)}
    self.per_device_batch = int(options["per_device_batch"])
    self.store, self.graphdef, self.mesh = store, graphdef, mesh
    self.workdir = pathlib.Path(workdir)
    videos = store.videos(self.split)
    labels = np.asarray([v["label"] for v in videos])
    groups = np.asarray([str(v["group"]) for v in videos])
    self.val_mask = validation_lib.carve_validation(labels, groups,
                                                    float(options["val_fraction"]),
                                                    int(options["val_seed"]))
    if not self.val_mask.any():
      raise ValueError(f"online evaluation: no class of the '{self.split}' split has two "
                       "groups, so no validation part can be carved without a leak.")
    self._writer = None

  def due(self, step: int) -> bool:
    return self.every > 0 and step % self.every == 0

  def run(self, step: int, state: dict[str, Any]) -> dict[str, float]:
    """Scores the current state; appends to metrics.jsonl and TensorBoard; returns metrics."""
    start = time.perf_counter()
    model = nnx.merge(self.graphdef, state["params"], state["rest"])
    model.eval()
    extracted = extract.extract_features(model.backbone, self.store, self.split, self.views,
                                         mesh=self.mesh, per_device_batch=self.per_device_batch,
                                         progress=False)
    def part(mask, name):
      return features_lib.FeatureSet(
          features=extracted["features"][mask], labels=extracted["labels"][mask],
          num_classes=self.store.num_classes, video_ids=extracted["video_ids"][mask],
          groups=extracted["groups"][mask], source=f"{self.split}:{name}")
    gallery, queries = part(~self.val_mask, "fit"), part(self.val_mask, "validation")
    metrics = {}
    for kind, payload in registry.run_evaluators(self.evals, gallery, queries):
      if kind == "metric":
        metrics[PREFIX + payload[0]] = float(payload[1])
    metrics[PREFIX + "seconds"] = time.perf_counter() - start
    if jax.process_index() == 0:
      line = {"step": int(step), **{k: round(v, 6) for k, v in metrics.items()}}
      with open(self.workdir / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps(line) + "\n")
      if self._writer is None:
        self._writer = tensorboard_lib.ScalarWriter(self.workdir / "tensorboard")
      self._writer.write_scalars(step, metrics)
      self._writer.flush()
    logging.info("online evaluation at step %d: %s", step, metrics)
    return metrics

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


def from_config(config, store, graphdef, mesh, workdir) -> OnlineEvaluator | None:
  """The online evaluator of a pre-training config, None when `train.eval_every` is 0."""
  if not int(config.train.get("eval_every", 0) or 0):
    return None
  return OnlineEvaluator(config, store, graphdef, mesh, workdir)
