"""The training loop: device-count invariance and exact resume."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_pretrain_config
from ssvbench import runs
from ssvbench.train import trainer


def _losses(workdir):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return {r["step"]: r["loss"] for r in map(json.loads, lines)}


def _weights(workdir):
  _, model, step = runs.load_trained_model(workdir)
  return step, [np.asarray(x) for x in jax.tree.leaves(nnx.state(model))]


@pytest.mark.slow
def test_loss_does_not_depend_on_device_count(tiny_store, tmp_path):
  losses = {}
  for devices in (1, 8):
    config = tiny_pretrain_config(tiny_store, num_steps=4, log_every=1, checkpoint_every=4)
    config.mesh.data = devices
    trainer.train(config, tmp_path / f"d{devices}", progress=False)
    losses[devices] = _losses(tmp_path / f"d{devices}")
  assert sorted(losses[1]) == [1, 2, 3, 4]
  for step in (1, 2, 3, 4):
    np.testing.assert_allclose(losses[8][step], losses[1][step], rtol=1e-4)
  # A finished workdir is never silently overwritten.
  with pytest.raises(FileExistsError, match="pass --resume"):
    trainer.train(config, tmp_path / "d8", progress=False)


@pytest.mark.slow
def test_resume_continues_exactly(tiny_store, tmp_path):
  straight = tiny_pretrain_config(tiny_store, num_steps=4, log_every=1, checkpoint_every=2)
  trainer.train(straight, tmp_path / "straight", progress=False)

  # The same run stopped after 2 steps (its config then asked for 2), then resumed to 4.
  # The learning-rate schedule must not change with the stop, so the interrupted run
  # keeps num_steps=4 and is stopped by checkpoint + a simulated crash instead.
  interrupted = tiny_pretrain_config(tiny_store, num_steps=4, log_every=1, checkpoint_every=2)
  original_save = trainer.checkpoint_lib.Checkpointer.save

  class Crash(Exception):
    pass

  def save_then_crash(self, step, state, data_iterator=None):
    original_save(self, step, state, data_iterator)
    if step == 2:
      raise Crash()

  trainer.checkpoint_lib.Checkpointer.save = save_then_crash
  try:
    trainer.train(interrupted, tmp_path / "resumed", progress=False)
  except Crash:
    pass
  finally:
    trainer.checkpoint_lib.Checkpointer.save = original_save
  trainer.train(interrupted, tmp_path / "resumed", resume=True, progress=False)

  straight_losses, resumed_losses = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
  for step in (3, 4):
    assert resumed_losses[step] == straight_losses[step]
  step_a, weights_a = _weights(tmp_path / "straight")
  step_b, weights_b = _weights(tmp_path / "resumed")
  assert step_a == step_b == 4
  for a, b in zip(weights_a, weights_b):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_two_processes_match_one(tiny_store, tmp_path):
  """Multi-host: 2 processes x 4 CPU devices (gloo) give the 1-process losses."""
  import os
  import socket
  import subprocess
  import sys

  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  workdir = tmp_path / "multihost"
  argv = [sys.executable, "-m", "ssvbench.cli", "pretrain",
          "--config", "configs/pretrain/simclr_r3d_synthactions.py:runlocal",
          f"--config.data.store_dir={tiny_store}", "--config.train.num_steps=2",
          "--config.train.log_every=1", "--config.train.checkpoint_every=2",
          "--workdir", str(workdir), "--no-progress"]
  procs = []
  for process_id in range(2):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=4",
               SSVBENCH_COORDINATOR=f"127.0.0.1:{port}", SSVBENCH_NUM_PROCESSES="2",
               SSVBENCH_PROCESS_ID=str(process_id), SSVBENCH_JAX_CACHE="off")
    procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  outputs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  config = tiny_pretrain_config(tiny_store, num_steps=2, log_every=1, checkpoint_every=2)
  trainer.train(config, tmp_path / "single", progress=False)
  multi, single = _losses(workdir), _losses(tmp_path / "single")
  assert sorted(multi) == [1, 2]
  for step in (1, 2):
    np.testing.assert_allclose(multi[step], single[step], rtol=1e-4)
