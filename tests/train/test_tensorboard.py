"""TensorBoard event files written without TensorFlow, read back by tensorboard's own loader."""

import importlib.util
import sys

import numpy as np

from ssvbench.train import progress, tensorboard


def test_crc32c_matches_the_standard_check_value():
  # The CRC-32C catalogue's check value (CRC of the ASCII digits 1-9), and the empty input.
  assert tensorboard.crc32c(b"123456789") == 0xE3069283
  assert tensorboard.crc32c(b"") == 0
  record = tensorboard.tfrecord(b"abc")
  assert len(record) == 8 + 4 + 3 + 4 and record[12:15] == b"abc"


def test_metric_logger_writes_events_that_tensorboard_reads(tmp_path):
  logger = progress.MetricLogger(tmp_path, total_steps=4, show_bar=False)
  for step in (1, 2, 3, 4):
    logger.accumulate({"loss": np.float32(1.0 / step), "grad_norm": np.float32(step)})
    logger.write(step)
  logger.close()
  files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
  assert len(files) == 1

  # TensorBoard's own loader (the one `tensorboard --logdir` uses); its record reader
  # checks every record's length and CRCs.
  from tensorboard.backend.event_processing import event_accumulator, event_file_loader
  events = list(event_file_loader.LegacyEventFileLoader(str(files[0])).Load())
  assert events[0].file_version == "brain.Event:2"
  scalars = {(e.step, v.tag): v.simple_value for e in events[1:] for v in e.summary.value}
  assert [e.step for e in events[1:]] == [1, 2, 3, 4]
  for step in (1, 2, 3, 4):
    np.testing.assert_allclose(scalars[(step, "loss")], 1.0 / step, rtol=1e-6)
    assert scalars[(step, "grad_norm")] == step
    assert (step, "steps_per_sec") in scalars
  accumulator = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
  accumulator.Reload()
  loss = accumulator.Scalars("loss")
  assert [s.step for s in loss] == [1, 2, 3, 4]
  np.testing.assert_allclose([s.value for s in loss], [1.0, 0.5, 1 / 3, 0.25], rtol=1e-6)
  if importlib.util.find_spec("tensorflow") is None:
    assert "tensorflow" not in sys.modules  # Written and read through tensorboard's stub.


def test_a_corrupted_record_is_refused(tmp_path):
  writer = tensorboard.ScalarWriter(tmp_path)
  writer.write_scalars(1, {"loss": 0.5})
  writer.close()
  data = bytearray(writer.path.read_bytes())
  data[-6] ^= 0xFF  # A byte of the last payload: its CRC no longer matches.
  writer.path.write_bytes(bytes(data))
  from tensorboard.backend.event_processing import event_file_loader
  events = list(event_file_loader.LegacyEventFileLoader(str(writer.path)).Load())
  assert len(events) == 1  # The file-version event only; the corrupted record is dropped.
