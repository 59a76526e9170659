"""Training metrics and progress: metrics.jsonl, TensorBoard, and a bar with steps/s and ETA.

Per-step metrics are means over the global batch; the logger sums them over the
logging interval and divides on the host, so a logged loss is the mean over every step
since the previous line, not a single noisy step.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
from typing import Mapping

import jax
import numpy as np
import tqdm

from ssvbench.train import tensorboard as tensorboard_lib


class MetricLogger:
  """Writes `<workdir>/metrics.jsonl` (one object per logged step) and TensorBoard events."""

  def __init__(self, workdir: pathlib.Path, *, total_steps: int, start_step: int = 0,
               show_bar: bool = True, description: str = "train", tensorboard: bool = True):
    self.workdir = pathlib.Path(workdir)
    self.is_main = jax.process_index() == 0
    self._sums: dict[str, float] = {}
    self._count = 0
    self._interval_start = time.perf_counter()
    self._interval_first_step = start_step
    self._file = open(self.workdir / "metrics.jsonl", "a") if self.is_main else None
    self._writer = None
    if tensorboard and self.is_main:
      self._writer = tensorboard_lib.ScalarWriter(self.workdir / "tensorboard")
    self._bar = tqdm.tqdm(total=total_steps, initial=start_step, desc=description,
                          unit="step", disable=not (show_bar and self.is_main),
                          file=sys.stderr, dynamic_ncols=True)

  def accumulate(self, metrics: Mapping[str, np.ndarray]) -> None:
    for key, value in metrics.items():
      self._sums[key] = self._sums.get(key, 0.0) + float(value)
    self._count += 1

  def tick(self, step: int) -> None:
    self._bar.update(step - self._bar.n)

  def write(self, step: int) -> dict[str, float]:
    """Logs the means since the last write; returns them."""
    elapsed = time.perf_counter() - self._interval_start
    steps = step - self._interval_first_step
    means = {k: v / max(self._count, 1) for k, v in self._sums.items()}
    means["steps_per_sec"] = steps / elapsed if elapsed > 0 else float("nan")
    record = {"step": int(step), **{k: round(float(v), 6) for k, v in means.items()}}
    if self._file is not None:
      self._file.write(json.dumps(record) + "\n")
      self._file.flush()
    if self._writer is not None:
      self._writer.write_scalars(step, means)
      self._writer.flush()
    self._bar.set_postfix(loss=f"{means.get('loss', float('nan')):.4f}")
    self.tick(step)
    self._sums, self._count = {}, 0
    self._interval_start, self._interval_first_step = time.perf_counter(), step
    return record

  def close(self) -> None:
    self._bar.close()
    if self._file is not None:
      self._file.close()
    if self._writer is not None:
      self._writer.flush()
      self._writer.close()
