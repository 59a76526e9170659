"""The training loop: device-count invariance and exact resume."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_pretrain_config
from ssvbench.train import trainer


def _losses(workdir):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return {r["step"]: r["loss"] for r in map(json.loads, lines)}


def _weights(workdir):
  _, model, step = trainer.load_trained_model(workdir)
  return step, [np.asarray(x) for x in jax.tree.leaves(nnx.state(model))]


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
