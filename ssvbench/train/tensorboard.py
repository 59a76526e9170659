"""TensorBoard scalar summaries, written without TensorFlow.

Why: clu's metric writers go through TensorFlow, whose import costs about 6 s in every
process that trains (the quickstart, each test process, every `ssvbench pretrain`), for a
few scalars a step. An event file is a simple format: a sequence of TFRecords (length,
masked CRC-32C of the length, payload, masked CRC-32C of the payload), each payload an
`Event` protocol buffer; the first event names the file version, the others carry a
`Summary` of scalar values. The protocol buffers come from the `tensorboard` package
(pure Python), so TensorBoard reads these files as it reads TensorFlow's.
"""

from __future__ import annotations

import os
import pathlib
import socket
import struct
import time
from typing import Mapping

from tensorboard.compat.proto import event_pb2, summary_pb2


def _crc32c_table() -> list[int]:
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected.
    table.append(crc)
  return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli) of `data`; payloads here are a few hundred bytes."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
  """The TFRecord checksum: the CRC rotated right by 15 bits plus a constant."""
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(payload: bytes) -> bytes:
  """One TFRecord: uint64 length, its masked CRC, the payload, the payload's masked CRC."""
  length = struct.pack("<Q", len(payload))
  return (length + struct.pack("<I", masked_crc32c(length)) + payload
          + struct.pack("<I", masked_crc32c(payload)))


class ScalarWriter:
  """Appends scalar summaries to a new event file in `logdir` (one file per writer)."""

  def __init__(self, logdir: str | pathlib.Path):
    logdir = pathlib.Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    # TensorBoard's naming: events.out.tfevents.<seconds>.<host>[.<suffix>]; the pid
    # keeps two writers started in the same second apart.
    name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
    self.path = logdir / name
    self._file = open(self.path, "ab")
    self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
    self.flush()

  def _write(self, event: event_pb2.Event) -> None:
    self._file.write(tfrecord(event.SerializeToString()))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    values = [summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
              for tag, value in scalars.items()]
    self._write(event_pb2.Event(wall_time=time.time(), step=int(step),
                                summary=summary_pb2.Summary(value=values)))

  def restart_at(self, step: int) -> None:
    """Marks a resumed run: TensorBoard drops events of earlier files with step >= `step`
    (a SessionLog START event; it purges the steps logged after the resumed checkpoint)."""
    start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
    self._write(event_pb2.Event(wall_time=time.time(), step=int(step), session_log=start))

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    self._file.close()
