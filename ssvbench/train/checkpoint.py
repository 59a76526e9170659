"""Checkpoints: the only module that imports orbax.

A checkpoint holds the train state (parameters, batch statistics, optimiser state, step)
and the grain iterator's state together, so `--resume` continues with exactly the batch
that would have come next; a model resumed without its data order is not the same run.
"""

from __future__ import annotations

import errno
import logging
import pathlib
import shutil
import time
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp


def _is_disk_full(error: BaseException) -> bool:
  """ENOSPC/EDQUOT as an OSError, or as tensorstore reports it (a ValueError whose text
  carries the OS error)."""
  if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
    return True
  text = str(error)
  return "No space left on device" in text or "Disk quota exceeded" in text


class _HeldLogs(logging.Filter):
  """Holds orbax's (absl) log records during a save: a failed save logs its exception
  from every background thread (a full disk gave 10 tracebacks). The exception itself
  is raised either way; the held records are replayed only for failures that are not
  explained in one line."""

  def __init__(self):
    super().__init__()
    self.records: list[logging.LogRecord] = []
    self._logger = logging.getLogger("absl")

  def filter(self, record):
    self.records.append(record)
    return False

  def __enter__(self):
    self._logger.addFilter(self)
    return self

  def __exit__(self, *exc):
    self._logger.removeFilter(self)

  def replay(self):
    for record in self.records:
      self._logger.handle(record)
    self.records = []


class DiskFullError(OSError):
  """A save failed for lack of space; the message names the folder (one line). The
  command exits with status 2 (ssvbench.failures)."""

  exit_code = 2


def has_checkpoints(directory: str | pathlib.Path) -> bool:
  """Whether `directory` holds a finished checkpoint (without opening a manager)."""
  directory = pathlib.Path(directory)
  return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())


class Checkpointer:
  """Saves and restores (train state, data iterator) pairs under `<workdir>/checkpoints`."""

  def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 2,
               remove_stale: bool = False):
    """`remove_stale`: delete leftovers of interrupted saves (only the run that writes
    here may, never a reader: it would delete a save in progress)."""
    self.directory = pathlib.Path(directory).resolve()
    # A save cut short (kill -9, a full disk) leaves a `<step>.orbax-checkpoint-tmp*`
    # folder behind; it is removed when the run restarts. (Orbax's own
    # cleanup_tmp_directories runs in the background and raced with the first save.)
    if remove_stale and jax.process_index() == 0 and self.directory.is_dir():
      for stale in self.directory.glob("*.orbax-checkpoint-tmp*"):
        shutil.rmtree(stale, ignore_errors=True)
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
    held = _HeldLogs()
    try:
      with held:
        self._manager.save(step, args=ocp.args.Composite(**items))
        self._manager.wait_until_finished()
    except (OSError, ValueError) as error:
      if not _is_disk_full(error):
        held.replay()
        raise
      self._remove_temporary(step)
      raise DiskFullError(f"no space left on the device of {self.directory} while saving "
                          f"checkpoint step {step}; its temporary files were removed, the "
                          f"earlier checkpoints are intact (latest: step "
                          f"{self.latest_step()}).") from None
    except BaseException:
      held.replay()
      raise
    held.replay()

  def _remove_temporary(self, step: int) -> None:
    """Removes the failed save's folder once orbax's writer threads have stopped.

    A failed write does not stop its sibling threads at once: one still creating files
    under the folder can make a single `rmtree` miss it (seen in CI), so wait for the
    manager, then retry until the folder is gone.
    """
    try:
      self._manager.wait_until_finished()
    except Exception:  # The same failure, reported again by the background thread.
      pass
    for _ in range(50):
      leftovers = list(self.directory.glob(f"{step}.orbax-checkpoint-tmp*"))
      if not leftovers:
        return
      for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
      time.sleep(0.1)

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
