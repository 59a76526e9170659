"""The device mesh and how arrays are laid out on it.

One code path from one CPU to a pod: a `jax.sharding.Mesh` built from the config, the
batch sharded over the `data` axis, parameters replicated (or, for models with logical
annotations, sharded over `model`), and `jax.jit` with `NamedSharding`s; no `pmap`.
Because the loss is computed on the global batch (XLA inserts the collectives), the
numbers do not depend on how many devices share the work.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
MODEL_AXIS = "model"


def maybe_initialize_distributed(coordinator: str | None = None,
                                 num_processes: int | None = None,
                                 process_id: int | None = None) -> None:
  """Starts `jax.distributed` when several processes take part.

  Arguments default to the SSVBENCH_COORDINATOR / SSVBENCH_NUM_PROCESSES /
  SSVBENCH_PROCESS_ID environment variables; on TPU pods and SLURM clusters JAX finds
  them itself when `SSVBENCH_DISTRIBUTED=auto`.
  """
  coordinator = coordinator or os.environ.get("SSVBENCH_COORDINATOR")
  if os.environ.get("SSVBENCH_DISTRIBUTED") == "auto":
    jax.distributed.initialize()
    return
  if not coordinator:
    return
  num_processes = num_processes or int(os.environ["SSVBENCH_NUM_PROCESSES"])
  process_id = process_id if process_id is not None else int(os.environ["SSVBENCH_PROCESS_ID"])
  # CPU processes need a collectives library to talk to each other; gloo works on any
  # host. (Set before the backend starts; it does not affect GPU/TPU backends.)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                             process_id=process_id)
  logging.info("jax.distributed: process %d of %d", process_id, num_processes)


def make_mesh(axes: Mapping[str, int] | None = None, devices=None) -> Mesh:
  """Builds the mesh, e.g. `{'data': -1}` or `{'data': -1, 'model': 2}`.

  One axis size may be -1: it takes all remaining devices. Explicit sizes whose product
  is smaller than the number of devices use the first devices.
  """
  axes = dict(axes or {DATA_AXIS: -1})
  devices = list(devices if devices is not None else jax.devices())
  sizes = list(axes.values())
  if sizes.count(-1) > 1:
    raise ValueError(f"mesh {axes}: at most one axis may be -1.")
  known = int(np.prod([s for s in sizes if s != -1]))
  if len(devices) % known:
    raise ValueError(f"mesh {axes}: {len(devices)} devices are not divisible by {known}.")
  sizes = [len(devices) // known if s == -1 else s for s in sizes]
  needed = int(np.prod(sizes))
  if needed > len(devices):
    raise ValueError(f"mesh {axes} needs {needed} devices, {len(devices)} are available.")
  # A mesh smaller than the machine (e.g. {'data': 1}) takes the first devices: the
  # device-count invariance tests compare such meshes on one host.
  devices = devices[:needed]
  # Auto axes: XLA inserts the collectives a global-batch loss needs (explicit axes would
  # make `x @ x.T` on a batch-sharded x a sharding type error).
  return jax.make_mesh(tuple(sizes), tuple(axes), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,) * len(sizes))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the data axis, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def global_batch(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles the global batch from each process's rows (process-major order)."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a pytree of host or device arrays replicated on every device of the mesh."""
  return jax.device_put(tree, replicated(mesh))


def data_parallel_size(mesh: Mesh) -> int:
  return mesh.shape[DATA_AXIS]


def to_host(array: jax.Array) -> np.ndarray:
  """Fetches a (possibly multi-process) array to every host, in global order."""
  if jax.process_count() > 1 and not array.is_fully_addressable:
    from jax.experimental import multihost_utils  # Only needed on multi-host runs.
    return np.asarray(multihost_utils.process_allgather(array, tiled=True))
  return np.asarray(jax.device_get(array))
