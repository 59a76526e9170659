"""Evaluation protocols: versioned specs with a fingerprint, and the no-selection-on-test guard.

Published video SSL numbers drift because the protocol behind them is implicit: which
split, how many clips, which crop, which evaluator settings, tuned where. A protocol
here is a config file `ssvbench/configs/protocols/<name>.py`, shipped in the package,
whose `get_config(arg)` returns the whole spec: name, version, class count, splits,
test-time views, the feature used, the validation carving, and every evaluator's
settings. `resolve()` completes
each evaluator entry with the constructor defaults it will actually run with, and
`fingerprint()` hashes the canonical JSON of that resolved spec, so changing any
setting, even a default in code, changes the fingerprint every result carries.

`check_no_test_selection()` refuses any spec that would choose hyper-parameters on the
test split, the field's most common defect.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pathlib
from typing import Any, Mapping

import ml_collections

from ssvbench import config as config_lib
from ssvbench.hashing import canonical_json  # Also this module's name for it.
from ssvbench.data import transforms
from ssvbench.evaluators import registry

PROTOCOL_DIR = config_lib.PACKAGE_CONFIG_DIR / "protocols"

REQUIRED_KEYS = ("name", "version", "num_classes", "splits", "views", "feature", "validation",
                 "evals")
OPTIONAL_KEYS = ("dataset", "description", "variant", "sweeps", "class_splits",
                 "per_device_batch", "finetune")
# Evaluator settings that change speed or memory only, never a metric.
EXECUTION_SETTINGS = ("query_chunk", "gallery_chunk", "chunk")
# The view keys feature extraction reads (ssvbench.evaluators.extract.VIEW_KEYS).
VIEW_KEYS = ("num_temporal_views", "num_spatial_crops", "num_frames", "frame_stride",
             "crop_size")


class ProtocolError(ValueError):
  """A protocol spec that cannot be used; the message names the key and what was expected."""


def available_protocols() -> list[str]:
  """Names of the protocols shipped in the package (ssvbench/configs/protocols/)."""
  return config_lib.available_configs("protocols")


def load_protocol(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """Loads a protocol by name (`ucf101`, `ucf101:runlocal`) or by path to a .py file.

  Args:
    name: protocol name, optionally `:arg`, or a path to a protocol file.
    arg: variant passed to `get_config` (overrides one given after ':').

  Returns:
    The validated spec.
  """
  name, _, inline_arg = name.partition(":")
  arg = arg if arg is not None else (inline_arg or None)
  path = pathlib.Path(name)
  if path.suffix != ".py":
    path = PROTOCOL_DIR / f"{name}.py"
    if not path.is_file():
      raise ProtocolError(f"unknown protocol {name!r}; available: {available_protocols()} "
                          "or pass a path to a protocol .py file.")
  spec = config_lib.load_config(f"{path}:{arg}" if arg else str(path))
  validate(spec)
  return spec


def _as_dict(spec: Mapping[str, Any] | ml_collections.ConfigDict) -> dict[str, Any]:
  return spec.to_dict() if isinstance(spec, ml_collections.ConfigDict) else dict(spec)


def check_no_test_selection(spec: Mapping[str, Any] | ml_collections.ConfigDict) -> None:
  """Raises ProtocolError if any setting would select hyper-parameters on the test split.

  Checked: every evaluator's `selection` (must be 'validation'); any evaluator or
  validation setting whose name mentions selection, tuning or validation and whose
  value is 'test'.
  """
  spec = _as_dict(spec)
  suspicious = ("select", "tune", "val")
  blocks = [(f"evals.{n}", e) for n, e in dict(spec.get("evals") or {}).items()]
  blocks += [(f"sweeps.{n}", e) for n, e in dict(spec.get("sweeps") or {}).items()]
  blocks.append(("validation", spec.get("validation") or {}))
  blocks.append(("finetune", spec.get("finetune") or {}))  # ssvbench.finetune
  for where, block in blocks:
    for key, value in dict(block).items():
      if key == "selection" and value != "validation":
        raise ProtocolError(f"{where}.selection={value!r} would choose hyper-parameters outside "
                            "the validation split; only 'validation' is allowed.")
      if (isinstance(value, str) and value.lower() == "test"
          and (where == "validation" or any(word in key.lower() for word in suspicious))):
        raise ProtocolError(f"{where}.{key}='test' would select on the test split; "
                            "hyper-parameters are chosen on validation carved from train.")


def validate(spec: ml_collections.ConfigDict | Mapping[str, Any]) -> None:
  """Checks a spec's keys, views and evaluators, and the no-selection-on-test guard."""
  spec_dict = _as_dict(spec)
  where = spec_dict.get("name", "<protocol>")
  missing = [k for k in REQUIRED_KEYS if k not in spec_dict]
  if missing:
    raise ProtocolError(f"protocol {where}: missing key(s) {missing}; required: "
                        f"{list(REQUIRED_KEYS)}.")
  unknown = sorted(set(spec_dict) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
  if unknown:
    raise ProtocolError(f"protocol {where}: unknown key(s) {unknown}; valid keys: "
                        f"{sorted(REQUIRED_KEYS + OPTIONAL_KEYS)}.")
  num_classes = spec_dict["num_classes"]
  if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
    raise ProtocolError(f"protocol {where}: num_classes must be an int >= 2 or None (taken "
                        f"from the labels), got {num_classes!r}.")
  views = dict(spec_dict["views"])
  missing_views = [k for k in VIEW_KEYS if k not in views]
  if missing_views:
    raise ProtocolError(f"protocol {where}: views is missing {missing_views}; expected "
                        f"{list(VIEW_KEYS)}.")
  if not spec_dict["evals"]:
    raise ProtocolError(f"protocol {where}: evals is empty.")
  check_no_test_selection(spec_dict)
  resolved = resolve(spec_dict)  # Unknown evaluator types or settings fail here.
  if num_classes is not None:
    for name, entry in resolved["evals"].items():
      novel = entry.get("novel_classes")
      if isinstance(novel, list) and any(not 0 <= c < num_classes for c in novel):
        raise ProtocolError(f"protocol {where}: evals.{name}.novel_classes must lie in "
                            f"[0, {num_classes}), got {novel}.")


def resolve(spec: ml_collections.ConfigDict | Mapping[str, Any]) -> dict[str, Any]:
  """The spec as plain JSON-able data, every evaluator entry completed with its defaults."""
  spec_dict = json.loads(json.dumps(_as_dict(spec)))  # Tuples -> lists, a deep copy.
  validation = spec_dict.get("validation") or {}
  for section in ("evals", "sweeps"):
    entries = spec_dict.get(section) or {}
    try:
      spec_dict[section] = {
          name: registry.resolve_settings(name, entry, validation)
          for name, entry in entries.items()}
    except ValueError as error:
      raise ProtocolError(f"protocol {spec_dict.get('name')}: {error}") from None
    spec_dict[section] = json.loads(json.dumps(spec_dict[section]))
  if spec_dict.get("finetune"):
    # The fine-tuning recipe with its defaults.
    spec_dict["finetune"] = resolve_finetune_recipe(spec_dict)
  return spec_dict


def fingerprint(spec: ml_collections.ConfigDict | Mapping[str, Any]) -> str:
  """sha256 hex digest of the canonical JSON of the resolved spec.

  Execution-only settings (chunk sizes, which change memory use but not results) are
  left out, so a user may shrink them on a small machine and keep the fingerprint.
  """
  resolved = resolve(spec)
  for section in ("evals", "sweeps"):
    for entry in resolved.get(section, {}).values():
      for key in EXECUTION_SETTINGS:
        entry.pop(key, None)
  return hashlib.sha256(canonical_json(resolved).encode()).hexdigest()


# The fine-tuning recipe schema (the protocol's `finetune` block). Recipe keys: required ones, then optional ones with their defaults.
FINETUNE_REQUIRED_KEYS = ("epochs", "batch_size", "optimizer", "augment", "checkpoint_every_epochs",
                 "selection")
FINETUNE_OPTIONAL_DEFAULTS = {"seed": 0, "val_views": {}}
FINETUNE_OPTIMIZER_REQUIRED = ("name", "lr")
FINETUNE_OPTIMIZER_DEFAULTS = {"momentum": 0.9, "weight_decay": 0.0, "warmup_epochs": 0.0,
                      "final_lr_fraction": 0.0}
FINETUNE_OPTIMIZERS = ("sgd", "adamw", "lars")
# Validation may use fewer views than test (it is scored once per checkpoint).
FINETUNE_VAL_VIEW_KEYS = ("num_temporal_views", "num_spatial_crops")


def resolve_finetune_recipe(spec: ml_collections.ConfigDict | Mapping[str, Any]) -> dict[str, Any]:
  """The protocol's fine-tuning recipe, checked and completed with its defaults.

  Args:
    spec: a protocol spec with a `finetune` block.

  Returns:
    The recipe as plain data (what `ssvbench.finetune.finetune_run` will use).

  Raises:
    ProtocolError: no `finetune` block, a missing or unknown key, or a bad value; the
      message names `protocol <name>: finetune.<key>`.
  """
  spec = spec.to_dict() if isinstance(spec, ml_collections.ConfigDict) else dict(spec)
  where = f"protocol {spec.get('name', '<protocol>')}: finetune"
  if not spec.get("finetune"):
    raise ProtocolError(f"{where} is missing; this protocol has no fine-tuning "
                                     "recipe (add a `finetune` block to its config).")
  recipe = json.loads(json.dumps(dict(spec["finetune"])))
  unknown = sorted(set(recipe) - set(FINETUNE_REQUIRED_KEYS) - set(FINETUNE_OPTIONAL_DEFAULTS))
  missing = [k for k in FINETUNE_REQUIRED_KEYS if k not in recipe]
  if unknown or missing:
    raise ProtocolError(
        f"{where}: unknown key(s) {unknown}, missing key(s) {missing}; required "
        f"{list(FINETUNE_REQUIRED_KEYS)}, optional {sorted(FINETUNE_OPTIONAL_DEFAULTS)}.")
  recipe = {**FINETUNE_OPTIONAL_DEFAULTS, **recipe}

  def check(ok: bool, key: str, expected: str):
    if not ok:
      raise ProtocolError(f"{where}.{key}={_lookup(recipe, key)!r}: expected "
                                       f"{expected}.")

  check(recipe["selection"] == "validation", "selection", "'validation' (never test)")
  check(_is_number(recipe["epochs"]) and recipe["epochs"] > 0, "epochs", "a positive number")
  check(isinstance(recipe["batch_size"], int) and recipe["batch_size"] > 0, "batch_size",
        "a positive integer")
  check(_is_number(recipe["checkpoint_every_epochs"]) and recipe["checkpoint_every_epochs"] > 0,
        "checkpoint_every_epochs", "a positive number")
  check(isinstance(recipe["seed"], int), "seed", "an integer")
  optimizer = recipe["optimizer"]
  check(isinstance(optimizer, dict), "optimizer", f"a dict with {list(FINETUNE_OPTIMIZER_REQUIRED)}")
  unknown = sorted(set(optimizer) - set(FINETUNE_OPTIMIZER_REQUIRED) - set(FINETUNE_OPTIMIZER_DEFAULTS))
  check(not unknown and all(k in optimizer for k in FINETUNE_OPTIMIZER_REQUIRED), "optimizer",
        f"keys {list(FINETUNE_OPTIMIZER_REQUIRED)} and optionally {sorted(FINETUNE_OPTIMIZER_DEFAULTS)}")
  recipe["optimizer"] = optimizer = {**FINETUNE_OPTIMIZER_DEFAULTS, **optimizer}
  check(optimizer["name"] in FINETUNE_OPTIMIZERS, "optimizer.name", f"one of {FINETUNE_OPTIMIZERS}")
  for key in ("lr", "momentum", "weight_decay", "warmup_epochs", "final_lr_fraction"):
    check(_is_number(optimizer[key]) and optimizer[key] >= 0, f"optimizer.{key}",
          "a number >= 0")
  check(optimizer["lr"] > 0, "optimizer.lr", "a positive number")
  check(optimizer["warmup_epochs"] < recipe["epochs"], "optimizer.warmup_epochs",
        "fewer than `epochs`")
  try:  # Completed too, so a changed augmentation default changes the fingerprint.
    augment = transforms.AugmentConfig.from_spec(recipe["augment"])
  except (TypeError, ValueError) as error:
    raise ProtocolError(f"{where}.augment: {error}") from None
  recipe["augment"] = json.loads(json.dumps(dataclasses.asdict(augment)))
  val_views = recipe["val_views"]
  check(isinstance(val_views, dict) and set(val_views) <= set(FINETUNE_VAL_VIEW_KEYS)
        and all(isinstance(v, int) and v >= 1 for v in val_views.values()), "val_views",
        f"a dict of positive integers with keys among {list(FINETUNE_VAL_VIEW_KEYS)}")
  return recipe


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _lookup(recipe: Mapping[str, Any], dotted: str) -> Any:
  value: Any = recipe
  for part in dotted.split("."):
    value = value.get(part) if isinstance(value, Mapping) else None
  return value
