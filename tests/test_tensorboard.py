"""The TensorFlow-free TensorBoard writer: files that TensorFlow's own reader accepts."""

import numpy as np

from ssvbench.train import progress, tensorboard


def test_crc32c_matches_the_standard_check_value():
  # The CRC-32C catalogue's check value (CRC of the ASCII digits 1-9), and the empty input.
  assert tensorboard.crc32c(b"123456789") == 0xE3069283
  assert tensorboard.crc32c(b"") == 0


def test_metric_logger_writes_events_that_tensorflow_reads(tmp_path):
  logger = progress.MetricLogger(tmp_path, total_steps=4, show_bar=False)
  for step in (1, 2, 3, 4):
    logger.accumulate({"loss": np.float32(1.0 / step), "grad_norm": np.float32(step)})
    logger.write(step)
  logger.close()
  files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
  assert len(files) == 1

  import tensorflow as tf  # The reference reader; it checks every record's CRCs.
  events = list(tf.compat.v1.train.summary_iterator(str(files[0])))
  assert events[0].file_version == "brain.Event:2"
  scalars = {(e.step, v.tag): v.simple_value for e in events[1:] for v in e.summary.value}
  assert [e.step for e in events[1:]] == [1, 2, 3, 4]
  for step in (1, 2, 3, 4):
    np.testing.assert_allclose(scalars[(step, "loss")], 1.0 / step, rtol=1e-6)
    assert scalars[(step, "grad_norm")] == step
    assert (step, "steps_per_sec") in scalars
