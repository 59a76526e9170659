"""Training metrics and progress: metrics.jsonl, TensorBoard, and a bar with steps/s and ETA.

Per-step metrics are means over the global batch; the logger sums them over the
logging interval and divides on the host, so a logged loss is the mean over every step
since the previous line, not a single noisy step.

metrics.jsonl is strict JSON: a non-finite value (a diverged loss) is written as null.
Steps skipped by `train.on_nonfinite='skip'` are left out of the means and counted in
the record's `skipped_steps`. On resume from step S the file keeps its records up to S
and drops later ones (written after the checkpoint the run resumed from), and
TensorBoard is told the run restarted at S+1, so neither shows a step twice.

Off a terminal (a batch job's log file) a bar's carriage-return updates are noise, so
each logged step prints one plain line (step, loss, steps/s, ETA) instead.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time
from typing import Mapping

import jax
import numpy as np
import tqdm

from ssvbench.train import tensorboard as tensorboard_lib


def _strict(value: float) -> float | None:
  value = float(value)
  return round(value, 6) if math.isfinite(value) else None


def _keep_records_until(path: pathlib.Path, step: int) -> None:
  """Drops records after `step` (and a torn last line) from a metrics.jsonl, atomically."""
  if not path.is_file():
    return
  kept, dropped = [], 0
  for line in path.read_text().splitlines():
    try:
      record = json.loads(line)
      keep = int(record["step"]) <= step
    except (ValueError, KeyError, TypeError):
      keep = False
    if keep:
      kept.append(line)
    else:
      dropped += 1
  if dropped:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def _duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class MetricLogger:
  """Writes `<workdir>/metrics.jsonl` (one object per logged step) and TensorBoard events."""

  def __init__(self, workdir: pathlib.Path, *, total_steps: int, start_step: int = 0,
               show_bar: bool = True, description: str = "train", tensorboard: bool = True,
               stream=None):
    self.workdir = pathlib.Path(workdir)
    self.is_main = jax.process_index() == 0
    self.total_steps = total_steps
    self.description = description
    self._sums: dict[str, float] = {}
    self._count = 0
    self._skipped = 0
    self._interval_start = time.perf_counter()
    self._interval_first_step = start_step
    self._file = None
    self._writer = None
    if self.is_main:
      metrics_file = self.workdir / "metrics.jsonl"
      _keep_records_until(metrics_file, start_step)
      self._file = open(metrics_file, "a")
      if tensorboard:
        resumed = start_step > 0 or any((self.workdir / "tensorboard").glob("events.*"))
        self._writer = tensorboard_lib.ScalarWriter(self.workdir / "tensorboard")
        if resumed:
          # TensorBoard drops what earlier files logged from this step on.
          self._writer.restart_at(start_step + 1)
    self._stream = stream if stream is not None else sys.stderr
    interactive = getattr(self._stream, "isatty", lambda: False)()
    self._plain = show_bar and self.is_main and not interactive
    self._bar = tqdm.tqdm(total=total_steps, initial=start_step, desc=description,
                          unit="step", disable=not (show_bar and self.is_main and interactive),
                          file=self._stream, dynamic_ncols=True)

  def accumulate(self, metrics: Mapping[str, np.ndarray]) -> None:
    for key, value in metrics.items():
      if key == "skipped":
        continue
      self._sums[key] = self._sums.get(key, 0.0) + float(value)
    self._count += 1

  def skip(self) -> None:
    """Counts a step whose update was skipped (non-finite); its metrics are not averaged."""
    self._skipped += 1

  def tick(self, step: int) -> None:
    self._bar.update(step - self._bar.n)

  def write(self, step: int) -> dict[str, float]:
    """Logs the means since the last write; returns them."""
    elapsed = time.perf_counter() - self._interval_start
    steps = step - self._interval_first_step
    means = {k: v / max(self._count, 1) for k, v in self._sums.items()}
    means["steps_per_sec"] = steps / elapsed if elapsed > 0 else float("nan")
    if self._skipped:
      means["skipped_steps"] = float(self._skipped)
    record = {"step": int(step), **{k: _strict(v) for k, v in means.items()}}
    if self._file is not None:
      self._file.write(json.dumps(record, allow_nan=False) + "\n")
      self._file.flush()
    if self._writer is not None:
      self._writer.write_scalars(step, means)
      self._writer.flush()
    self._bar.set_postfix(loss=f"{means.get('loss', float('nan')):.4f}")
    self.tick(step)
    if self._plain:
      rate = means["steps_per_sec"]
      eta = (self.total_steps - step) / rate if rate and rate > 0 else float("nan")
      loss = means.get("loss", float("nan"))
      print(f"{self.description}: step {step}/{self.total_steps} loss {loss:.4f} "
            f"{rate:.2f} steps/s ETA {_duration(eta)}", file=self._stream, flush=True)
    self._sums, self._count, self._skipped = {}, 0, 0
    self._interval_start, self._interval_first_step = time.perf_counter(), step
    return record

  def close(self) -> None:
    self._bar.close()
    if self._file is not None:
      self._file.close()
    if self._writer is not None:
      self._writer.flush()
      self._writer.close()
