"""TensorBoard scalar summaries through tensorboard's own TensorFlow-free event writer.

Why this module: the trainer logs a few scalars a step and should not import TensorFlow
(about 6 s in every process that trains) to do so. `tensorboard`'s
`EventFileWriter` writes the event files (TFRecord framing with masked CRC-32C, an
`Event` protocol buffer per record) through its TensorFlow stub when TensorFlow is not
installed, which ssvbench no longer requires. (With TensorFlow installed, tensorboard
prefers it and the first write imports it: slower, same files.)

`ScalarWriter` keeps the interface the trainer's MetricLogger uses: one new event file
per writer in `logdir`, its path in `.path`, `write_scalars(step, scalars)`, `flush()`,
`close()`. `crc32c`, `masked_crc32c` and `tfrecord` remain as thin names for the
framing tensorboard applies, for tests and readers.
"""

from __future__ import annotations

import io
import pathlib
import time
from typing import Mapping

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow
from tensorboard.summary.writer import event_file_writer, record_writer


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli) of `data`, as tensorboard computes it."""
  return pywrap_tensorflow.crc32c(data)


def masked_crc32c(data: bytes) -> int:
  """The TFRecord checksum: the CRC rotated right by 15 bits plus a constant."""
  return pywrap_tensorflow.masked_crc32c(data)


def tfrecord(payload: bytes) -> bytes:
  """One TFRecord (length, its masked CRC, payload, the payload's masked CRC), framed by
  tensorboard's RecordWriter."""
  buffer = io.BytesIO()
  record_writer.RecordWriter(buffer).write(payload)
  return buffer.getvalue()


class ScalarWriter:
  """Appends scalar summaries to a new event file in `logdir` (one file per writer)."""

  def __init__(self, logdir: str | pathlib.Path):
    logdir = pathlib.Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    before = set(logdir.glob("events.out.tfevents.*"))
    # flush_secs: the writer's thread also flushes on its own; MetricLogger flushes at
    # every logged step anyway.
    self._writer = event_file_writer.EventFileWriter(str(logdir), flush_secs=30)
    # The writer names its file (events.out.tfevents.<time>.<host>.<pid>.<n>) and has
    # created it, with the file-version event, by now: the one new file is ours.
    created = sorted(set(logdir.glob("events.out.tfevents.*")) - before)
    self.path = created[-1] if created else None

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    values = [summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
              for tag, value in scalars.items()]
    self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                           summary=summary_pb2.Summary(value=values)))

  def restart_at(self, step: int) -> None:
    """Marks a resumed run: TensorBoard drops events of earlier files with step >= `step`
    (a SessionLog START event; it purges the steps logged after the resumed checkpoint)."""
    start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
    self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                           session_log=start))

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()
