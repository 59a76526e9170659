"""Checkpoints: the only module that imports orbax.

A checkpoint holds the train state (parameters, batch statistics, optimiser state, step)
and the grain iterator's state together, so `--resume` continues with exactly the batch
that would have come next; a model resumed without its data order is not the same run.
"""

from __future__ import annotations

import pathlib
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores (train state, data iterator) pairs under `<workdir>/checkpoints`."""

  def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 2):
    self.directory = pathlib.Path(directory).resolve()
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        item_names=("state", "data"),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, data_iterator: Any | None = None) -> None:
    items = {"state": ocp.args.StandardSave(state)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    self._manager.save(step, args=ocp.args.Composite(**items))
    self._manager.wait_until_finished()

  def restore(self, abstract_state: Any, data_iterator: Any | None = None,
              step: int | None = None) -> tuple[int, Any]:
    """Restores onto the shardings of `abstract_state`; advances `data_iterator` in place.

    Returns:
      (step, state).
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory} to resume from.")
    abstract = jax.tree.map(
        lambda x: x if isinstance(x, jax.ShapeDtypeStruct) else ocp.utils.to_shape_dtype_struct(x),
        abstract_state)
    items = {"state": ocp.args.StandardRestore(abstract)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    return step, restored["state"]

  def step_dir(self, step: int) -> pathlib.Path:
    return self.directory / str(step)

  def close(self) -> None:
    self._manager.close()


def restore_state_only(directory: str | pathlib.Path, abstract_state: Any,
                       step: int | None = None) -> tuple[int, Any]:
  """Restores the train state of a run without its data iterator (for evaluation)."""
  checkpointer = Checkpointer(directory)
  try:
    return checkpointer.restore(abstract_state, None, step)
  finally:
    checkpointer.close()
