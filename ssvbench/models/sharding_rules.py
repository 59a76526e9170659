"""Logical parameter axes -> mesh axes: how a config shards a large model over 'model'.

Why logical names: a parameter says what its axes mean ('embed', 'heads', 'mlp',
'conv_out'), not how to lay them out; the layout is a choice of the run (data-parallel
only, tensor-parallel, FSDP-style) and of its mesh. The same checkpoint then restores onto
any of them. This module turns the names into ``PartitionSpec``s for a given mesh:

* ``'replicated'``: every parameter on every device (the trainer's default).
* ``'tensor'``: Megatron-style; attention heads, MLP hidden units and conv output
  channels split over the ``model`` axis.
* ``'fsdp'``: every weight split along its 'embed' (or 'conv_out') axis over ``model``,
  gathered for use; the memory saving of FSDP with the same numbers.

An axis whose size the mesh axis does not divide stays replicated (e.g. a 3-way qkv
axis, a 45-channel R(2+1)D stem), and a mesh without a ``model`` axis replicates all.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MODEL_AXIS = "model"

RULES: dict[str, dict[str, str | None]] = {
    "replicated": {},
    "tensor": {"heads": MODEL_AXIS, "mlp": MODEL_AXIS, "conv_out": MODEL_AXIS},
    "fsdp": {"embed": MODEL_AXIS, "conv_out": MODEL_AXIS},
}


def _resolve(names: tuple[str | None, ...], shape: tuple[int, ...], mesh: Mesh,
             rules: dict[str, str | None]) -> PartitionSpec:
  """PartitionSpec of one parameter; each mesh axis is used at most once."""
  used: set[str] = set()
  spec = []
  for name, size in zip(names, shape):
    axis = rules.get(name) if name is not None else None
    if (axis is None or axis in used or axis not in mesh.shape
        or size % mesh.shape[axis]):
      spec.append(None)
      continue
    used.add(axis)
    spec.append(axis)
  return PartitionSpec(*spec)


def partition_specs(state: Any, mesh: Mesh, rules: str | dict[str, str | None]) -> Any:
  """A pytree of PartitionSpecs matching ``state`` (an nnx.State or a tree of them).

  Args:
    state: model state, e.g. from ``nnx.split``; variables without axis names (batch
      statistics of modules that carry none) are replicated.
    mesh: the device mesh.
    rules: a name of ``RULES`` or a {logical name: mesh axis or None} mapping.

  Returns:
    A tree with the structure of ``state`` whose leaves are PartitionSpecs.
  """
  if isinstance(rules, str):
    if rules not in RULES:
      raise ValueError(f"unknown sharding rules {rules!r}; valid: {', '.join(RULES)}")
    rules = RULES[rules]

  def spec_of(variable):
    if not isinstance(variable, nnx.Variable):
      return PartitionSpec()
    names = variable.get_metadata().get("out_sharding")
    value = variable.get_value()
    if not names:
      return variable.replace(PartitionSpec())
    if len(names) != len(value.shape):
      raise ValueError(f"sharding names {names} do not match the parameter shape "
                       f"{value.shape}")
    return variable.replace(_resolve(tuple(names), tuple(value.shape), mesh, rules))

  return jax.tree.map(spec_of, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def named_shardings(state: Any, mesh: Mesh, rules: str | dict[str, str | None]) -> Any:
  """Like ``partition_specs`` but with ``NamedSharding(mesh, spec)`` leaves."""
  specs = partition_specs(state, mesh, rules)
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs,
                      is_leaf=lambda x: isinstance(x, PartitionSpec))
