"""Test set-up: 8 fake CPU devices, TFDS offline, quiet TensorFlow.

The device count must be fixed before JAX initialises its backend, so it is set here,
at import time of the test session.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TFDS_OFFLINE", "1")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
