"""The two hashes every record leans on: a file's sha256 and the canonical JSON of data.

One definition each, so that a manifest hash, a protocol fingerprint and an input
file's checksum are computed the same way everywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any


def file_sha256(path: str | os.PathLike) -> str:
  """The sha256 hex digest of a file's bytes (hashlib reads it in blocks)."""
  with open(path, "rb") as stream:
    return hashlib.file_digest(stream, "sha256").hexdigest()


def canonical_json(data: Any, *, allow_nan: bool = False) -> str:
  """Sorted keys, no whitespace, ASCII: equal data gives equal text.

  Args:
    data: JSON-able data.
    allow_nan: write NaN/Infinity as JS literals instead of refusing them. Protocols
      refuse them; manifests allow them (hashes of stores prepared before must not change).
  """
  return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                    allow_nan=allow_nan)
