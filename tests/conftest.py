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

# Identical computations compiled by different jit objects (one per training run) hit
# this cache instead of recompiling: compiles dominate the suite's time on CPU.
jax.config.update("jax_compilation_cache_dir",
                  os.environ.get("SSVBENCH_TEST_JAX_CACHE", "/tmp/ssvbench-test-jax-cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

import pathlib  # noqa: E402

import pytest  # noqa: E402


def tiny_synth_config():
  """A SynthActions config small enough for tests: 4 classes, 24 videos of 16 frames (the
  shipped `synthactions.py:tiny` variant)."""
  from ssvbench import config as config_lib
  return config_lib.load_config("synthactions.py:tiny")


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> pathlib.Path:
  """A prepared SynthActions store shared by the training/evaluation tests."""
  from ssvbench.data import prepare, sources, synthactions, synthactions_store
  root = tmp_path_factory.mktemp("tiny_synth")
  config = tiny_synth_config()
  synthactions.generate(root / "source", config, progress=False)
  index, find_video = sources.load_index("synthactions", root / "source" / "videos",
                                         root / "source" / "ucfTrainTestlist")
  prepare.prepare_dataset(index, root / "source" / "videos", root / "store",
                          find_video=find_video, progress=False)
  synthactions_store.write_class_subsets(root / "store", config)
  return root / "store"


def tiny_pretrain_config(store_dir, method="simclr", **train):
  """The runlocal recipe on the tiny store; `train` overrides config.train fields."""
  from ssvbench import recipes
  config = recipes.synthactions_pretrain(method, store_dir=str(store_dir), runlocal=True)
  config.train.update(train)
  return config
