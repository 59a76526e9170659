"""Result records: one JSON object per (run, evaluation), appended to a JSON-lines file.

A number in a leaderboard is only worth what can be said about where it came from. The
field's tables lose this: the protocol drifts between paper and repository, split 1 and
the three-split mean are mixed, the code version is unknown. So every result is stored
together with its provenance -- the protocol's name, version and fingerprint, the
dataset manifest hash, the checkpoint, the seeds, the git commit of the ssvbench source
(with `-dirty` when the work tree had uncommitted changes), the library versions and
the devices -- and the tables are rendered from these records only.

Conventions:
  * Metric names are slash-separated paths (`linear/top1`, `retrieval/R@1`,
    `fewshot_episodic/5way_1shot`), with uncertainty as a sibling metric suffixed
    `_ci95` (half-width of the 95% interval, in the metric's units; see
    `ssvbench.results.stats` for how each is computed) or `_std`.
  * Accuracy-like metrics are stored as percentages in [0, 100] (what the evaluators
    yield and the tables check), and so are their `_ci95` half-widths.
  * Optional fields (absent from records written before they existed):
    `predictions` {file, sha256}: the per-video predictions sidecar
    (`ssvbench.results.predictions`), `file` relative to the results file's folder;
    `cpu` {model, isa_flags, machine}: the host CPU, whose float behaviour can move a
    trained number (AVX2 vs AVX-512 kernels).
  * Records are appended, never rewritten; only process 0 of a multi-host run should
    append (the caller's responsibility: the record itself says `num_processes`).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import pathlib
import platform
import re
import subprocess
import warnings
from typing import Any, Mapping

try:  # POSIX advisory locks keep concurrent appenders from interleaving lines.
  import fcntl
except ImportError:  # pragma: no cover - non-POSIX platforms
  fcntl = None

import ssvbench

RECORD_VERSION = 1

# Distributions whose versions can change a number; `python` is added separately.
TRACKED_DISTRIBUTIONS = ("jax", "jaxlib", "flax", "optax", "grain", "orbax-checkpoint",
                         "numpy")

# From this file, not `ssvbench.__file__`: an editable install can expose the package
# as a namespace package, whose `__file__` is None.
_PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1]

# field -> (accepted types, may be None). Order is the order of the error checks.
_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "record_version": ((int,), False),
    "created": ((str,), False),
    "run_name": ((str,), False),
    "method": ((str,), False),
    "backbone": ((str,), False),
    "pretrain_data": ((str,), False),
    "dataset": ((str,), False),
    "split": ((str,), False),
    "protocol": ((dict,), False),
    "metrics": ((dict,), False),
    "seeds": ((dict,), False),
    "manifest_hash": ((str,), False),
    "checkpoint": ((str,), True),
    "git_sha": ((str,), True),
    "ssvbench_version": ((str,), False),
    "library_versions": ((dict,), False),
    "device_kind": ((str,), False),
    "num_devices": ((int,), False),
    "num_processes": ((int,), False),
    "extra": ((dict,), True),
}
# Fields a record may lack (older records); checked like the others when present.
_OPTIONAL_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "predictions": ((dict,), False),
    "cpu": ((dict,), False),
}
_PROTOCOL_FIELDS = ("name", "version", "fingerprint")
# ISA extensions that select different float kernels (XLA:CPU, oneDNN, Eigen).
_ISA_FLAGS = re.compile(r"^(sse4_[12]|avx|avx2|fma|f16c|avx512\w*|avx_vnni\w*|amx\w*|"
                        r"asimd\w*|sve\w*|sme\d*)$")
_NON_EMPTY = ("run_name", "method", "backbone", "pretrain_data", "dataset", "split",
              "manifest_hash")


def _git(args: list[str]) -> str | None:
  try:
    completed = subprocess.run(
        ["git", *args], cwd=_PACKAGE_DIR, capture_output=True, text=True, timeout=10,
        check=True)
  except (OSError, subprocess.SubprocessError):
    return None
  return completed.stdout


def source_git_sha() -> str | None:
  """The commit of the ssvbench source tree, and the hash of its uncommitted changes.

  "Dirty" follows `git describe --dirty` for tracked files anywhere in the repository
  (a modified config changes results as much as modified code), and additionally counts
  untracked files inside the package directory (a new, uncommitted module can be
  imported by a run). Untracked files elsewhere (work directories, outputs) do not count.
  A dirty tree is named by what differs, not just flagged: `-dirty.<12 hex>` is a hash of
  `git diff HEAD` and of the untracked package files (path and content), so two records
  made from the same uncommitted change say so, and a record from another change cannot
  pass for it.

  Returns:
    The 40-hex commit, suffixed `-dirty.<diff hash>` when the tree has changes; None
    when git is missing, the package is not inside a git work tree (e.g. installed from a
    wheel), or the package's own files are not tracked by that repository.
  """
  sha = _git(["rev-parse", "HEAD"])
  if sha is None:
    return None
  # Guard against a site-packages install that happens to sit inside some other repo.
  tracked = _git(["ls-files", "--", str(_PACKAGE_DIR / "__init__.py")])
  if not tracked or not tracked.strip():
    return None
  tracked_changes = _git(["status", "--porcelain", "--untracked-files=no"])
  package_untracked = _git(["status", "--porcelain", "--untracked-files=normal", "--",
                            str(_PACKAGE_DIR)])
  if tracked_changes is None or package_untracked is None:
    return None
  if not (tracked_changes.strip() or package_untracked.strip()):
    return sha.strip()
  digest = hashlib.sha256((_git(["diff", "HEAD", "--binary"]) or "").encode())
  untracked = _git(["ls-files", "--others", "--exclude-standard", "--full-name", "-z", "--",
                    str(_PACKAGE_DIR)]) or ""
  top = (_git(["rev-parse", "--show-toplevel"]) or "").strip()
  for name in sorted(filter(None, untracked.split("\0"))):
    digest.update(name.encode() + b"\0")
    try:
      digest.update(pathlib.Path(top, name).read_bytes())
    except OSError:
      digest.update(b"<unreadable>")
  return f"{sha.strip()}-dirty.{digest.hexdigest()[:12]}"


def library_versions() -> dict[str, str | None]:
  """Installed versions of the libraries that can change a number (None if absent)."""
  versions: dict[str, str | None] = {}
  for distribution in TRACKED_DISTRIBUTIONS:
    try:
      versions[distribution] = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
      versions[distribution] = None
  versions["python"] = platform.python_version()
  return versions


def ssvbench_version() -> str:
  """The source tree's `ssvbench.__version__`, else the installed distribution's."""
  version = getattr(ssvbench, "__version__", None)
  if version is None:
    try:
      version = importlib.metadata.version("ssvbench")
    except importlib.metadata.PackageNotFoundError:
      version = "unknown"
  return version


def cpu_facts() -> dict[str, Any]:
  """The host CPU: model name, the ISA flags that change float kernels, machine type.

  From /proc/cpuinfo on Linux (x86 `model name`/`flags`, ARM `Features`), else from
  `platform` (no flags).
  """
  model, flags = None, []
  try:
    text = pathlib.Path("/proc/cpuinfo").read_text(errors="replace")
  except OSError:
    text = ""
  for line in text.splitlines():
    key, _, content = line.partition(":")
    key = key.strip().lower()
    if model is None and key in ("model name", "cpu model", "hardware"):
      model = content.strip()
    elif not flags and key in ("flags", "features"):
      flags = sorted(f for f in content.split() if _ISA_FLAGS.match(f))
  return {"model": model or platform.processor() or platform.machine() or "unknown",
          "isa_flags": flags, "machine": platform.machine()}


def provenance(record: Mapping[str, Any]) -> str:
  """One line saying where a record's numbers were computed."""
  cpu = record.get("cpu") or {}
  all_flags = cpu.get("isa_flags", [])
  wide = [f for f in all_flags if f.startswith("avx512")]
  flags = [f for f in all_flags if f.startswith(("avx", "amx", "sve")) and f not in wide]
  if wide:  # AVX-512 comes as a dozen sub-extensions; their count is enough here.
    flags.append(f"avx512 ({len(wide)} ext.)")
  cpu_text = (f"; cpu {cpu.get('model')} ({', '.join(flags) or 'no AVX/AMX/SVE flags'})"
              if cpu else "; cpu not recorded")
  return (f"{record['run_name']}: protocol {record['protocol']['name']}@"
          f"{record['protocol']['version']} fp {record['protocol']['fingerprint'][:8]}, "
          f"manifest {record['manifest_hash'][:8]}, git {str(record.get('git_sha'))[:12]}, "
          f"seeds {record['seeds']}, {record['num_devices']}x {record['device_kind']}"
          f"{cpu_text}")


def _device_facts() -> dict[str, Any]:
  import jax  # Imported here so reading or tabulating records never starts a backend.
  return {
      "device_kind": str(jax.devices()[0].device_kind),
      "num_devices": int(jax.device_count()),
      "num_processes": int(jax.process_count()),
      "cpu": cpu_facts(),
  }


def make_record(
    *,
    method: str,
    backbone: str,
    pretrain_data: str,
    dataset: str,
    split: str,
    protocol: Mapping[str, Any],
    metrics: Mapping[str, float],
    seeds: Mapping[str, int],
    manifest_hash: str,
    checkpoint: str | os.PathLike | None,
    run_name: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
  """Builds and validates one result record, filling in the provenance fields.

  Args:
    method: SSL method name (e.g. `simclr`, `byol`, `random_init`).
    backbone: backbone name (e.g. `r3d18`).
    pretrain_data: pre-training dataset name (`none` for random init).
    dataset: evaluation dataset name.
    split: evaluation split (e.g. `split1/test`).
    protocol: `dict(name=..., version=..., fingerprint=...)`; version is stored as str.
    metrics: metric name -> finite number (accuracies as fractions in [0, 1]).
    seeds: seed name -> integer seed (pretraining, evaluation, ...).
    manifest_hash: hash of the prepared dataset manifest that was evaluated.
    checkpoint: checkpoint path, or None (e.g. random init).
    run_name: name of the pre-training run.
    extra: optional JSON-serialisable mapping of anything else worth keeping.

  Returns:
    The record as a plain dict, already checked by `validate_record`.
  """
  if not isinstance(protocol, Mapping):
    raise TypeError(f"make_record: protocol must be a mapping with keys "
                    f"{_PROTOCOL_FIELDS}, got {type(protocol).__name__}.")
  protocol = dict(protocol)
  if "version" in protocol and isinstance(protocol["version"], int) and not isinstance(
      protocol["version"], bool):
    protocol["version"] = str(protocol["version"])
  record = {
      "record_version": RECORD_VERSION,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "run_name": run_name,
      "method": method,
      "backbone": backbone,
      "pretrain_data": pretrain_data,
      "dataset": dataset,
      "split": split,
      "protocol": protocol,
      "metrics": {name: _as_float(value) for name, value in dict(metrics).items()},
      "seeds": dict(seeds),
      "manifest_hash": manifest_hash,
      "checkpoint": None if checkpoint is None else os.fspath(checkpoint),
      "git_sha": source_git_sha(),
      "ssvbench_version": ssvbench_version(),
      "library_versions": library_versions(),
      **_device_facts(),
      "extra": None if extra is None else dict(extra),
  }
  validate_record(record)
  return record


def _as_float(value: Any) -> Any:
  # numpy / jax scalars become plain floats; anything else is left for validation.
  if isinstance(value, bool):
    return value
  try:
    return float(value) if hasattr(value, "__float__") else value
  except (TypeError, ValueError):
    return value


def validate_record(record: Mapping[str, Any], where: str = "record") -> None:
  """Checks a record's fields and types, raising on the first problem.

  Args:
    record: the record to check.
    where: prefix for error messages (e.g. `results.jsonl:12`).

  Raises:
    ValueError: naming the offending field and what was expected.
  """
  if not isinstance(record, Mapping):
    raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}.")
  missing = [field for field in _FIELDS if field not in record]
  if missing:
    raise ValueError(f"{where}: missing field(s) {missing}.")
  unknown = sorted(set(record) - set(_FIELDS) - set(_OPTIONAL_FIELDS))
  if unknown:
    raise ValueError(f"{where}: unknown field(s) {unknown}; put additional information "
                     f"under 'extra'. Known fields: {list(_FIELDS) + list(_OPTIONAL_FIELDS)}.")
  present = {**_FIELDS, **{k: v for k, v in _OPTIONAL_FIELDS.items() if k in record}}
  for field, (types, nullable) in present.items():
    value = record[field]
    if value is None and nullable:
      continue
    if isinstance(value, bool) or not isinstance(value, types):
      expected = " or ".join(t.__name__ for t in types) + (" or null" if nullable else "")
      raise ValueError(f"{where}: field '{field}' must be {expected}, got "
                       f"{type(value).__name__} ({value!r:.80}).")
  if record["record_version"] != RECORD_VERSION:
    raise ValueError(f"{where}: field 'record_version' is {record['record_version']}; "
                     f"this ssvbench reads version {RECORD_VERSION}.")
  for field in _NON_EMPTY:
    if not record[field].strip():
      raise ValueError(f"{where}: field '{field}' must be a non-empty string.")
  try:
    datetime.datetime.fromisoformat(record["created"])
  except ValueError:
    raise ValueError(f"{where}: field 'created' must be an ISO-8601 time, got "
                     f"{record['created']!r}.") from None
  protocol = record["protocol"]
  for key in _PROTOCOL_FIELDS:
    if not isinstance(protocol.get(key), str) or not protocol[key].strip():
      raise ValueError(f"{where}: field 'protocol.{key}' must be a non-empty string, "
                       f"got {protocol.get(key)!r}.")
  extra_keys = sorted(set(protocol) - set(_PROTOCOL_FIELDS))
  if extra_keys:
    raise ValueError(f"{where}: field 'protocol' has unknown key(s) {extra_keys}; "
                     f"expected exactly {list(_PROTOCOL_FIELDS)}.")
  if not record["metrics"]:
    raise ValueError(f"{where}: field 'metrics' is empty; a record must hold at least "
                     "one metric.")
  for name, value in record["metrics"].items():
    if not isinstance(name, str) or not name:
      raise ValueError(f"{where}: field 'metrics' has a non-string or empty name "
                       f"{name!r}.")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ValueError(f"{where}: field 'metrics.{name}' must be a number, got "
                       f"{type(value).__name__} ({value!r:.80}).")
    if not math.isfinite(value):
      raise ValueError(f"{where}: field 'metrics.{name}' must be finite, got {value}.")
  for name, value in record["seeds"].items():
    if isinstance(value, bool) or not isinstance(value, int):
      raise ValueError(f"{where}: field 'seeds.{name}' must be an integer, got "
                       f"{type(value).__name__} ({value!r:.80}).")
  for name, value in record["library_versions"].items():
    if value is not None and not isinstance(value, str):
      raise ValueError(f"{where}: field 'library_versions.{name}' must be a string or "
                       f"null, got {type(value).__name__}.")
  if "predictions" in record:
    info = record["predictions"]
    name, digest = info.get("file"), info.get("sha256")
    if (not isinstance(name, str) or not name or os.path.isabs(name) or ".." in
        pathlib.PurePath(name).parts):
      raise ValueError(f"{where}: field 'predictions.file' must be a relative file name, got "
                       f"{name!r}.")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
      raise ValueError(f"{where}: field 'predictions.sha256' must be 64 hex digits, got "
                       f"{digest!r}.")
  if "cpu" in record and not isinstance(record["cpu"].get("model"), str):
    raise ValueError(f"{where}: field 'cpu.model' must be a string.")
  for field in ("num_devices", "num_processes"):
    if record[field] < 1:
      raise ValueError(f"{where}: field '{field}' must be >= 1, got {record[field]}.")
  try:
    json.dumps(record, allow_nan=False)
  except (TypeError, ValueError) as error:
    raise ValueError(f"{where}: record is not JSON-serialisable: {error}.") from None


def append_record(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
  """Validates `record` and appends it as one line to the JSON-lines file at `path`.

  The line is written with a single `write` on a file opened in append mode, under an
  exclusive advisory lock, then fsync'd: concurrent appenders never interleave, and a
  crash leaves at worst one truncated last line (which `load_records` reports by number).
  If the file ends in such a truncated line, the new record starts on a fresh line so
  that it is not lost with it.

  Args:
    path: the JSON-lines file; created (with parent directories) if absent.
    record: a record as made by `make_record`.
  """
  path = pathlib.Path(path)
  validate_record(record)
  line = json.dumps(record, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "ab+") as handle:
    if fcntl is not None:
      fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    try:
      handle.seek(0, os.SEEK_END)
      if handle.tell() > 0:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) != b"\n":
          warnings.warn(f"{path}: last line is truncated (no newline); starting the new "
                        "record on a fresh line. load_records will report the broken "
                        "line.")
          line = "\n" + line
      handle.write(line.encode("utf-8"))
      handle.flush()
      os.fsync(handle.fileno())
    finally:
      if fcntl is not None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def load_records(path: str | os.PathLike) -> list[dict[str, Any]]:
  """Reads and validates every record of a JSON-lines file.

  Blank lines are ignored. A truncated line (its JSON value ends early: an append cut
  short by a full disk or a crash) is skipped with a warning naming `path:line`; any
  other malformed line is an error: a results file is not silently read in part.

  Args:
    path: the JSON-lines file.

  Returns:
    The records, in file order.

  Raises:
    ValueError: naming `path:line` and what is wrong with that line.
  """
  path = pathlib.Path(path)
  records = []
  with open(path, encoding="utf-8") as handle:
    for line_number, line in enumerate(handle, start=1):
      if not line.strip():
        continue
      where = f"{path}:{line_number}"
      try:
        record = json.loads(line)
      except json.JSONDecodeError as error:
        if error.pos >= len(line.rstrip()) or error.msg.startswith("Unterminated string"):
          # The line stops before its JSON value does: a write cut short (a full disk,
          # a crash during an append). Its record is lost; the others are intact.
          logging.warning("%s: skipping a truncated record (a write cut short): %r", where,
                          line.strip()[:80])
          continue
        raise ValueError(f"{where}: malformed JSON ({error.msg} at column "
                         f"{error.colno}): {line.strip()[:80]!r}.") from None
      validate_record(record, where=where)
      records.append(record)
  return records
