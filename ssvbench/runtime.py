"""Process-wide JAX settings for the `ssvbench` command.

Compiles dominate short CPU runs (a quickstart compiles each model a few times), so the
command keeps XLA's persistent compilation cache on disk: a second run of the same
recipe starts training at once. `SSVBENCH_JAX_CACHE=off` disables it; any other value
names the folder (default ~/.cache/ssvbench/jax).
"""

from __future__ import annotations

import os
import pathlib


def configure_jax() -> None:
  """Starts jax.distributed when asked (see sharding.maybe_initialize_distributed) and
  turns on the persistent compilation cache."""
  import jax
  from ssvbench.train import sharding
  sharding.maybe_initialize_distributed()
  where = os.environ.get("SSVBENCH_JAX_CACHE", str(pathlib.Path.home() / ".cache" / "ssvbench" / "jax"))
  if where.lower() == "off":
    return
  jax.config.update("jax_compilation_cache_dir", where)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
