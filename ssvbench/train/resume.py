"""Rules for resuming a run: the config must be the one the run was started with.

Why: a resume used to overwrite `config.json` with whatever config it was given, so a
changed learning rate or step count left a run whose recorded provenance was false, and
a changed backbone failed deep inside orbax. Now a resume compares the new config with
the recorded one, key by key, and refuses any difference that was not named with
`--allow-change KEY`; allowed changes are appended to `config_changes.jsonl` (step,
key, old and new value) before `config.json` takes the new values, so the run's history
stays complete.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any, Iterable

import ml_collections

from ssvbench import config as config_lib

CHANGES_FILE = "config_changes.jsonl"
# Keys added to the configs after runs were started: absent from such a run's config.json,
# they had these values.
ADDED_KEYS = {"train.on_nonfinite": "stop", "train.eval_every": 0}


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict) and tree:
    flat = {}
    for key, value in tree.items():
      flat.update(_flatten(value, f"{prefix}{key}."))
    return flat
  return {prefix[:-1]: tree}


def config_differences(recorded: dict, config: ml_collections.ConfigDict) -> dict[str, tuple]:
  """{dotted key: (recorded value, new value)} for every leaf that differs."""
  old = dict(ADDED_KEYS, **_flatten(recorded))
  new = dict(ADDED_KEYS, **_flatten(json.loads(config_lib.to_json(config))))
  return {key: (old.get(key), new.get(key)) for key in sorted(set(old) | set(new))
          if old.get(key) != new.get(key)}


def _allowed(key: str, allow: Iterable[str]) -> bool:
  return any(key == name or key.startswith(name + ".") for name in allow)


def check_resume_config(workdir: pathlib.Path, config: ml_collections.ConfigDict,
                        allow_changes: Iterable[str] = ()) -> dict[str, tuple]:
  """Refuses a resume whose config differs from the run's, except for allowed keys.

  Returns:
    The (allowed) differences, to be recorded with `record_changes`.

  Raises:
    ValueError: one line listing the differing keys that were not allowed.
  """
  config_file = workdir / "config.json"
  if not config_file.is_file():
    return {}
  try:
    recorded = json.loads(config_file.read_text())
  except json.JSONDecodeError as error:
    raise ValueError(f"{config_file} is not valid JSON ({error}); cannot check that the "
                     "resumed config is the run's.") from None
  differences = config_differences(recorded, config)
  allow = list(allow_changes)
  refused = {k: v for k, v in differences.items() if not _allowed(k, allow)}
  if refused:
    listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in refused.items())
    raise ValueError(f"--resume with a config that differs from {config_file}: {listed}. "
                     "Resume with the run's config, or allow a change explicitly with "
                     f"--allow-change {' --allow-change '.join(refused)} (it is recorded "
                     f"in {CHANGES_FILE}).")
  return differences


def record_changes(workdir: pathlib.Path, step: int, differences: dict[str, tuple]) -> None:
  """Appends allowed config changes to `<workdir>/config_changes.jsonl`."""
  if not differences:
    return
  entry = {"step": int(step), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "changes": {k: {"old": old, "new": new} for k, (old, new) in differences.items()}}
  with open(workdir / CHANGES_FILE, "a") as f:
    f.write(json.dumps(entry, sort_keys=True) + "\n")
