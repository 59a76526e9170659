"""The evaluator registry: `config.evals.<name> = dict(type='knn', ...)` (big_vision style).

A protocol lists its evaluators by name; each entry's `type` names the class that runs
it and the other keys are that class's constructor arguments. The same entries run
standalone (`ssvbench evaluate-features`) and inside pre-training, so a number means
the same thing wherever it was computed. Keys are checked against the constructor's
signature, so a misspelt setting fails loudly instead of silently using a default.

Every evaluator class has:
  - `__init__(**settings)`, raising ValueError on a bad setting;
  - `run(train, test, val=None)` yielding `(metric, value)` pairs; metric names are
    local ('top1') and the registry prefixes the entry's name ('knn/top1');
  - `skipped`: metric -> reason for a metric it could not compute, and `details`: what
    it chose or measured besides the metrics (selected hyper-parameters, effective k);
  - optionally `predictions`: metric -> per-unit outcomes (`ssvbench.results.stats.outcome`:
    per-video hits, predicted classes, per-episode accuracies), filled by `run`. For each
    such metric without its own `_ci95`, the registry adds `<metric>_ci95` (bootstrap
    half-width, `stats.bootstrap_ci95`), and it passes the outcomes on so that they can
    be saved beside the record (`ssvbench.results.predictions`).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import time
from typing import Any, Iterator, Mapping

from ssvbench.evaluators import features as features_lib
from ssvbench.results import stats

# type -> (module, class). Module names match the evaluator files.
EVALUATOR_TYPES = {
    "knn": ("ssvbench.evaluators.knn", "Evaluator"),
    "knn_sweep": ("ssvbench.evaluators.knn", "SweepEvaluator"),
    "linear": ("ssvbench.evaluators.linear", "Evaluator"),
    "retrieval": ("ssvbench.evaluators.retrieval", "Evaluator"),
    "fewshot_linear": ("ssvbench.evaluators.fewshot_linear", "Evaluator"),
    "fewshot_episodic": ("ssvbench.evaluators.fewshot_episodic", "Evaluator"),
    "diagnostics": ("ssvbench.evaluators.diagnostics", "Evaluator"),
}

# Settings filled from the protocol's `validation` block when an evaluator accepts them.
VALIDATION_SETTINGS = {"val_fraction": "fraction", "val_seed": "seed"}


def evaluator_class(type_name: str) -> type:
  """The class registered for `type_name`; a ValueError lists the valid types."""
  if type_name not in EVALUATOR_TYPES:
    raise ValueError(f"unknown evaluator type {type_name!r}; valid types: "
                     f"{sorted(EVALUATOR_TYPES)}.")
  module_name, class_name = EVALUATOR_TYPES[type_name]
  return getattr(importlib.import_module(module_name), class_name)


def default_settings(type_name: str) -> dict[str, Any]:
  """The constructor defaults of an evaluator type."""
  signature = inspect.signature(evaluator_class(type_name).__init__)
  return {name: p.default for name, p in signature.parameters.items()
          if name != "self" and p.default is not inspect.Parameter.empty}


def resolve_settings(name: str, entry: Mapping[str, Any],
                     validation: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """Completes one `evals` entry with its defaults: the settings the evaluator will use.

  Args:
    name: the entry's name in `evals` (for error messages).
    entry: the entry, with a `type` key and settings.
    validation: the protocol's `validation` block (`fraction`, `seed`), used for the
      `val_fraction` / `val_seed` settings an entry does not set itself.

  Returns:
    `{'type': ..., **every constructor setting}`.

  Raises:
    ValueError: no `type`, or a setting the evaluator does not have (valid ones listed).
  """
  entry = dict(entry)
  if "type" not in entry:
    raise ValueError(f"evals.{name}: missing 'type'; valid types: {sorted(EVALUATOR_TYPES)}.")
  type_name = entry.pop("type")
  defaults = default_settings(type_name)
  unknown = sorted(set(entry) - set(defaults))
  if unknown:
    raise ValueError(f"evals.{name} (type {type_name!r}): unknown setting(s) {unknown}; valid "
                     f"settings: {sorted(defaults)}.")
  settings = dict(defaults)
  for setting, key in VALIDATION_SETTINGS.items():
    if setting in defaults and setting not in entry and validation and key in validation:
      settings[setting] = validation[key]
  settings.update(entry)
  return {"type": type_name, **settings}


def build(name: str, resolved: Mapping[str, Any]):
  """Instantiates one evaluator from resolved settings."""
  settings = dict(resolved)
  type_name = settings.pop("type")
  try:
    return evaluator_class(type_name)(**settings)
  except ValueError as error:
    raise ValueError(f"evals.{name}: {error}") from None


def run_evaluators(resolved_evals: Mapping[str, Mapping[str, Any]],
                   train: features_lib.FeatureSet, test: features_lib.FeatureSet,
                   val: features_lib.FeatureSet | None = None,
                   ) -> Iterator[tuple[str, Any]]:
  """Runs every evaluator in name order.

  Yields:
    ('metric', (name, value)) for each metric, named '<entry>/<metric>', including the
    `_ci95` the registry computes from the evaluator's predictions, then, per entry,
    ('predictions', {'<entry>/<metric>': outcomes}), ('skipped', {metric: reason}),
    ('details', {entry: details}) and ('seconds', {entry: wall time}).
  """
  for name in sorted(resolved_evals):
    evaluator = build(name, resolved_evals[name])
    start = time.perf_counter()
    yielded = set()
    for metric, value in evaluator.run(train, test, val):
      yielded.add(metric)
      yield "metric", (f"{name}/{metric}", float(value))
    predictions = getattr(evaluator, "predictions", None) or {}
    for metric, packed in predictions.items():
      if metric + "_ci95" not in yielded:
        yield "metric", (f"{name}/{metric}_ci95", stats.bootstrap_ci95(packed))
    seconds = time.perf_counter() - start
    yield "predictions", {f"{name}/{metric}": packed for metric, packed in predictions.items()}
    logging.info("evaluator %s took %.2f s", name, seconds)
    yield "skipped", {f"{name}/{metric}": reason for metric, reason in evaluator.skipped.items()}
    yield "details", {name: evaluator.details}
    yield "seconds", {name: seconds}
