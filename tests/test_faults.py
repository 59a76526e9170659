"""Fault injection: each fault of issue 18 is injected for real and its outcome checked.

Signals go to a real `ssvbench pretrain` subprocess; divergence is a real NaN (a huge
learning rate); a full disk is a real small tmpfs where the platform allows mounting
one. The tiny runlocal recipe on the tiny SynthActions store keeps each run to seconds
once its programs are in the test compilation cache.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_pretrain_config
from ssvbench import cli
from ssvbench.train import checkpoint as checkpoint_lib
from ssvbench.train import trainer

REPO = pathlib.Path(__file__).resolve().parent.parent
STEPS = 6


def _records(workdir):
  """metrics.jsonl parsed strictly: a bare NaN/Infinity is an error."""

  def refuse(constant):
    raise ValueError(f"non-strict JSON constant {constant}")

  lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
  return [json.loads(line, parse_constant=refuse) for line in lines]


def _weights(workdir):
  _, model, step = trainer.load_trained_model(workdir)
  return step, [np.asarray(x) for x in jax.tree.leaves(nnx.state(model))]


def _config(store, **train):
  train = dict(dict(num_steps=STEPS, log_every=1, checkpoint_every=100), **train)
  return tiny_pretrain_config(store, **train)


def _env():
  return dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
              SSVBENCH_JAX_CACHE=os.environ.get("SSVBENCH_TEST_JAX_CACHE",
                                                "/tmp/ssvbench-test-jax-cache"))


def _start_pretrain(store, workdir):
  argv = [sys.executable, "-m", "ssvbench.cli", "pretrain",
          "--config", "configs/pretrain/simclr_r3d_synthactions.py:runlocal",
          f"--config.data.store_dir={store}", f"--config.train.num_steps={STEPS}",
          "--config.train.log_every=1", "--config.train.checkpoint_every=100",
          "--workdir", str(workdir), "--no-progress"]
  return subprocess.Popen(argv, cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=600):
  """Waits until the training loop is running (its metrics.jsonl exists)."""
  start = time.time()
  while not path.exists():
    assert proc.poll() is None, proc.communicate()
    assert time.time() - start < timeout
    time.sleep(0.02)


def _cli(argv, capsys, monkeypatch):
  monkeypatch.setenv("SSVBENCH_JAX_CACHE", os.environ.get("SSVBENCH_TEST_JAX_CACHE",
                                                          "/tmp/ssvbench-test-jax-cache"))
  code = cli.main(argv)
  captured = capsys.readouterr()
  return code, captured.err


# ------------------------------------------------------------------------- preemption


@pytest.fixture(scope="module")
def straight(tiny_store, tmp_path_factory):
  """The uninterrupted run every interrupted one must equal."""
  workdir = tmp_path_factory.mktemp("straight")
  trainer.train(_config(tiny_store), workdir, progress=False)
  return workdir


@pytest.fixture(scope="module")
def sigterm_run(tiny_store, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("sigterm") / "run"
  proc = _start_pretrain(tiny_store, workdir)
  _wait_for(workdir / "metrics.jsonl", proc)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=600)
  return workdir, proc.returncode, err


def test_sigterm_finishes_the_step_and_checkpoints(sigterm_run):
  workdir, returncode, err = sigterm_run
  assert returncode == 143, err[-3000:]
  assert "Traceback" not in err
  assert "stopped by SIGTERM after step" in err.strip().splitlines()[-1]
  steps = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
  assert len(steps) == 1 and 1 <= steps[0] < STEPS
  # Logs were flushed up to the checkpoint's step.
  assert [r["step"] for r in _records(workdir)] == list(range(1, steps[0] + 1))


def test_resume_after_sigterm_is_bit_identical(sigterm_run, straight, tiny_store):
  workdir, returncode, _ = sigterm_run
  assert returncode == 143
  trainer.train(_config(tiny_store), workdir, resume=True, progress=False)
  resumed, reference = _records(workdir), _records(straight)
  assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))  # No step twice.
  assert [r["loss"] for r in resumed] == [r["loss"] for r in reference]
  step_a, weights_a = _weights(straight)
  step_b, weights_b = _weights(workdir)
  assert step_a == step_b == STEPS
  for a, b in zip(weights_a, weights_b):
    np.testing.assert_array_equal(a, b)


def test_sigint_checkpoints_and_second_signal_exits_at_once(tiny_store, tmp_path):
  workdir = tmp_path / "sigint"
  proc = _start_pretrain(tiny_store, workdir)
  _wait_for(workdir / "metrics.jsonl", proc)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=600)
  assert proc.returncode == 130, err[-3000:]
  assert "KeyboardInterrupt" not in err and "Traceback" not in err
  assert checkpoint_lib.has_checkpoints(workdir / "checkpoints")

  # A second signal does not wait for the checkpoint.
  workdir = tmp_path / "twice"
  proc = _start_pretrain(tiny_store, workdir)
  _wait_for(workdir / "metrics.jsonl", proc)
  proc.send_signal(signal.SIGTERM)
  for line in proc.stderr:  # Until the first signal was taken.
    if "received SIGTERM" in line:
      break
  proc.send_signal(signal.SIGTERM)
  proc.communicate(timeout=600)
  assert proc.returncode == -signal.SIGTERM


# ------------------------------------------------------------------------- divergence


def _finite(workdir):
  _, weights = _weights(workdir)
  return all(np.isfinite(w).all() for w in weights if np.issubdtype(w.dtype, np.inexact))


def test_divergence_stops_with_one_line_and_keeps_the_last_finite_checkpoint(
    tiny_store, tmp_path, capsys, monkeypatch):
  workdir = tmp_path / "diverged"
  code, err = _cli(["pretrain", "--config", "configs/pretrain/simclr_r3d_synthactions.py:runlocal",
                    f"--config.data.store_dir={tiny_store}", f"--config.train.num_steps={STEPS}",
                    "--config.train.log_every=1", "--config.train.checkpoint_every=1",
                    "--config.train.keep_checkpoints=1", "--config.optim.lr=1e30",
                    "--workdir", str(workdir), "--no-progress"], capsys, monkeypatch)
  assert code == 3
  line = err.strip().splitlines()[-1]
  assert "non-finite" in line and "step" in line and ("loss" in line or "grad_norm" in line)
  records = _records(workdir)  # Strict JSON.
  assert records[-1]["step"] < STEPS
  assert records[-1]["loss"] is None or records[-1]["grad_norm"] is None
  latest = checkpoint_lib.Checkpointer(workdir / "checkpoints").latest_step()
  assert latest == records[-1]["step"] - 1
  assert _finite(workdir)


def test_divergence_skip_mode_skips_and_counts(tiny_store, tmp_path):
  config = _config(tiny_store, checkpoint_every=2, on_nonfinite="skip")
  config.optim.lr = 1e30
  result = trainer.train(config, tmp_path / "skip", progress=False)
  assert result.step == STEPS
  records = _records(tmp_path / "skip")
  assert [r["step"] for r in records] == list(range(1, STEPS + 1))
  assert sum(r.get("skipped_steps") or 0 for r in records) >= 1
  assert _finite(tmp_path / "skip")
