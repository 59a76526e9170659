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

import hashlib
import json
import pathlib
from typing import Any, Mapping

import ml_collections

from ssvbench import config as config_lib
from ssvbench.hashing import canonical_json  # Also this module's name for it.
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
  blocks.append(("finetune", spec.get("finetune") or {}))  # ssvbench.evaluators.finetune
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
    # The fine-tuning recipe with its defaults (imported here: finetune imports this module).
    from ssvbench.evaluators import finetune
    spec_dict["finetune"] = finetune.resolve_recipe(spec_dict)
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
