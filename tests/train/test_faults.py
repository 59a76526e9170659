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
from ssvbench import runs
from ssvbench import cli
from ssvbench.train import checkpoint as checkpoint_lib
from ssvbench.train import trainer

REPO = pathlib.Path(__file__).resolve().parents[2]
STEPS = 6


def _records(workdir):
  """metrics.jsonl parsed strictly: a bare NaN/Infinity is an error."""

  def refuse(constant):
    raise ValueError(f"non-strict JSON constant {constant}")

  lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
  return [json.loads(line, parse_constant=refuse) for line in lines]


def _weights(workdir):
  _, model, step = runs.load_trained_model(workdir)
  return step, [np.asarray(x) for x in jax.tree.leaves(nnx.state(model))]


def _config(store, **train):
  train = dict(dict(num_steps=STEPS, log_every=1, checkpoint_every=100), **train)
  return tiny_pretrain_config(store, **train)


def _env():
  return dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
              SSVBENCH_JAX_CACHE=os.environ.get("SSVBENCH_TEST_JAX_CACHE",
                                                "/tmp/ssvbench-test-jax-cache"))


def _start_pretrain(store, workdir, checkpoint_every=100):
  argv = [sys.executable, "-m", "ssvbench.cli", "pretrain",
          "--config", "configs/pretrain/simclr_r3d_synthactions.py:runlocal",
          f"--config.data.store_dir={store}", f"--config.train.num_steps={STEPS}",
          "--config.train.log_every=1", f"--config.train.checkpoint_every={checkpoint_every}",
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


@pytest.mark.slow
def test_sigterm_finishes_the_step_and_checkpoints(sigterm_run):
  workdir, returncode, err = sigterm_run
  assert returncode == 143, err[-3000:]
  assert "Traceback" not in err
  assert "stopped by SIGTERM after step" in err.strip().splitlines()[-1]
  steps = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
  assert len(steps) == 1 and 1 <= steps[0] < STEPS
  # Logs were flushed up to the checkpoint's step.
  assert [r["step"] for r in _records(workdir)] == list(range(1, steps[0] + 1))


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_divergence_skip_mode_skips_and_counts(tiny_store, tmp_path):
  config = _config(tiny_store, checkpoint_every=2, on_nonfinite="skip")
  config.optim.lr = 1e30
  result = trainer.train(config, tmp_path / "skip", progress=False)
  assert result.step == STEPS
  records = _records(tmp_path / "skip")
  assert [r["step"] for r in records] == list(range(1, STEPS + 1))
  assert sum(r.get("skipped_steps") or 0 for r in records) >= 1
  assert _finite(tmp_path / "skip")


# ------------------------------------------------------------------------- resume


@pytest.fixture(scope="module")
def crashed_run(tiny_store, tmp_path_factory):
  """A run that died after step 4 with its last checkpoint at step 2 and a save of step 4
  cut short: its metrics and TensorBoard hold steps 3-4, which the resume repeats."""
  workdir = tmp_path_factory.mktemp("crashed") / "run"
  config = _config(tiny_store, num_steps=4, checkpoint_every=2, keep_checkpoints=3)
  trainer.train(config, workdir, progress=False)
  checkpoints = workdir / "checkpoints"
  (checkpoints / "4").rename(checkpoints / "4.orbax-checkpoint-tmp-1234")
  return workdir, config


@pytest.mark.slow
def test_resume_after_a_crash_repeats_no_step_and_removes_stale_saves(crashed_run):
  from tensorboard.backend.event_processing import event_accumulator
  workdir, config = crashed_run
  trainer.train(config, workdir, resume=True, progress=False)
  assert [r["step"] for r in _records(workdir)] == [1, 2, 3, 4]
  assert not list((workdir / "checkpoints").glob("*tmp*"))
  assert len(list((workdir / "tensorboard").glob("events.*"))) == 2
  events = event_accumulator.EventAccumulator(str(workdir / "tensorboard"))
  events.Reload()
  assert [e.step for e in events.Scalars("loss")] == [1, 2, 3, 4]


@pytest.mark.slow
def test_kill_9_then_resume_repeats_no_step_and_is_bit_identical(tiny_store, straight,
                                                                 tmp_path):
  workdir = tmp_path / "killed"
  proc = _start_pretrain(tiny_store, workdir, checkpoint_every=2)
  metrics = workdir / "metrics.jsonl"
  _wait_for(metrics, proc)
  while len(metrics.read_text().splitlines()) < 3 and proc.poll() is None:
    time.sleep(0.01)
  proc.kill()
  proc.communicate(timeout=600)
  assert proc.returncode == -signal.SIGKILL
  trainer.train(_config(tiny_store, checkpoint_every=2), workdir, resume=True, progress=False)
  resumed = _records(workdir)
  assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))
  assert [r["loss"] for r in resumed] == [r["loss"] for r in _records(straight)]
  for a, b in zip(_weights(straight)[1], _weights(workdir)[1]):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_resume_with_a_changed_config_is_refused_or_recorded(crashed_run):
  workdir, config = crashed_run
  changed = _config(pathlib.Path(config.data.store_dir), num_steps=6, checkpoint_every=2,
                    keep_checkpoints=3)
  changed.optim.lr = 1e-4
  before = (workdir / "config.json").read_text()
  with pytest.raises(ValueError, match=r"optim\.lr.*train\.num_steps"):
    trainer.train(changed, workdir, resume=True, progress=False)
  assert (workdir / "config.json").read_text() == before
  # Allowed explicitly (here changes that need no new compile): recorded, then applied.
  allowed = _config(pathlib.Path(config.data.store_dir), num_steps=4, checkpoint_every=2,
                    keep_checkpoints=5, log_every=2)
  trainer.train(allowed, workdir, resume=True, progress=False, allow_changes=("train",))
  history = [json.loads(line) for line in (workdir / "config_changes.jsonl").read_text()
             .splitlines()]
  assert history[-1]["step"] == 4
  assert history[-1]["changes"] == {"train.keep_checkpoints": {"old": 3, "new": 5},
                                    "train.log_every": {"old": 1, "new": 2}}
  assert json.loads((workdir / "config.json").read_text())["train"]["log_every"] == 2


@pytest.mark.slow
def test_resume_with_another_architecture_is_one_line(crashed_run, capsys, monkeypatch):
  workdir, config = crashed_run
  store = config.data.store_dir
  code, err = _cli(["pretrain", "--config", "configs/pretrain/simclr_r3d_synthactions.py:runlocal",
                    f"--config.data.store_dir={store}", "--config.method.proj_dim=64",
                    "--workdir", str(workdir), "--resume", "--allow-change", "method",
                    "--allow-change", "train", "--allow-change", "optim"], capsys, monkeypatch)
  assert code == 2
  assert len(err.strip().splitlines()) == 1 and "does not fit" in err, err


# ------------------------------------------------------------------------- config and CLI


def _pretrain_argv(config, workdir, *extra):
  return ["pretrain", "--config", str(config), "--workdir", str(workdir), "--no-progress",
          *extra]


@pytest.mark.parametrize("body, expected", [
    ("def get_config(arg=None)\n  return 1\n", ":1: syntax error"),
    ("import ml_collections\n\ndef get_config(arg=None):\n  raise RuntimeError('boom')\n",
     ":4: RuntimeError: boom"),
])
def test_broken_config_file_is_one_line_with_its_line(body, expected, tmp_path, capsys,
                                                      monkeypatch):
  config = tmp_path / "broken.py"
  config.write_text(body)
  code, err = _cli(_pretrain_argv(config, tmp_path / "w"), capsys, monkeypatch)
  assert code == 2
  assert len(err.strip().splitlines()) == 1 and f"{config}{expected}" in err, err
  assert not (tmp_path / "w").exists()


def test_unknown_variant_lists_the_valid_ones(tmp_path, capsys, monkeypatch):
  code, err = _cli(_pretrain_argv("configs/pretrain/simclr_r3d_synthactions.py:runlokal",
                                  tmp_path / "w"), capsys, monkeypatch)
  assert code == 2 and "'runlokal'" in err and "valid: runlocal" in err, err
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("override", ["--config.train.num_steps=-3",
                                      "--config.train.num_steps=0"])
def test_non_positive_steps_are_refused(override, tiny_store, tmp_path, capsys, monkeypatch):
  code, err = _cli(_pretrain_argv("configs/pretrain/simclr_r3d_synthactions.py:runlocal",
                                  tmp_path / "w", f"--config.data.store_dir={tiny_store}",
                                  override), capsys, monkeypatch)
  assert code == 2 and "num_steps" in err and len(err.strip().splitlines()) == 1, err
  assert not (tmp_path / "w").exists()


def test_pretrain_before_prepare_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
  code, err = _cli(_pretrain_argv("configs/pretrain/simclr_r3d_synthactions.py:runlocal",
                                  tmp_path / "w",
                                  f"--config.data.store_dir={tmp_path / 'no_store'}"),
                   capsys, monkeypatch)
  assert code == 2 and "ssvbench prepare" in err and len(err.strip().splitlines()) == 1, err
  assert not (tmp_path / "w").exists()


# ------------------------------------------------------------------------- evaluate-features


def _features(path, labels, dim=8, seed=0, **extra):
  rng = np.random.default_rng(seed)
  np.savez(path, features=rng.normal(size=(len(labels), dim)).astype(np.float32),
           labels=np.asarray(labels), **extra)
  return path


@pytest.fixture
def train_npz(tmp_path):
  return _features(tmp_path / "train.npz", np.arange(40) % 4,
                   groups=np.array([f"g{i // 2}" for i in range(40)]))


def _bad_inputs(tmp_path):
  good = _features(tmp_path / "good.npz", np.arange(20) % 4)
  data = good.read_bytes()
  (tmp_path / "zero.npz").write_bytes(b"")
  (tmp_path / "truncated.npz").write_bytes(data[:len(data) // 2])
  np.save(tmp_path / "array.npy", np.zeros((20, 8), np.float32))
  (tmp_path / "text.npz").write_text("video_id,label\nv1,0\n")
  _features(tmp_path / "strings.npz", np.array(["a", "b", "c", "d"] * 5))
  return {"zero.npz": "empty (0 bytes)", "truncated.npz": "truncated or corrupt",
          "array.npy": "single .npy array", "text.npz": "not an .npz file",
          "strings.npz": "must be integer"}


@pytest.mark.parametrize("protocol", ["synthactions:runlocal", "ucf101:runlocal"])
def test_bad_feature_files_are_one_line(protocol, train_npz, tmp_path, capsys, monkeypatch):
  for name, expected in _bad_inputs(tmp_path).items():
    code, err = _cli(["evaluate-features", "--protocol", protocol, "--train", str(train_npz),
                      "--test", str(tmp_path / name)], capsys, monkeypatch)
    assert code == 2, (name, err)
    assert len(err.strip().splitlines()) == 1 and expected in err, (name, err)
    assert "pickled" not in err


def test_labels_outside_a_fixed_class_list_are_an_error(train_npz, tmp_path):
  from ssvbench.evaluators import evaluate_features, features
  stray = _features(tmp_path / "stray.npz", [0, 1, 2, 3] * 4 + [0, 1, 2, 101])
  with pytest.raises(features.FeatureError, match="label 101"):
    evaluate_features.evaluate_features("ucf101:runlocal", train_npz, stray, only=("knn",))


def test_test_classes_unseen_in_train_are_a_recorded_warning(train_npz, tmp_path):
  from ssvbench.evaluators import evaluate_features
  unseen = _features(tmp_path / "unseen.npz", [0, 1, 2, 3] * 4 + [0, 1, 2, 57])
  result = evaluate_features.evaluate_features("synthactions:runlocal", train_npz, unseen,
                                               only=("knn",))
  assert any("absent from train [57]" in w for w in result["warnings"])


def test_out_is_never_overwritten_unless_asked(train_npz, tmp_path, capsys, monkeypatch):
  import threading
  from ssvbench.evaluators import feature_inputs, features
  out = tmp_path / "result.json"
  out.write_text("{\"earlier\": 1}\n")
  test_npz = _features(tmp_path / "test.npz", np.arange(20) % 4, seed=1)
  code, err = _cli(["evaluate-features", "--protocol", "synthactions:runlocal", "--train",
                    str(train_npz), "--test", str(test_npz), "--out", str(out)],
                   capsys, monkeypatch)
  assert code == 2 and "--overwrite" in err
  assert out.read_text() == "{\"earlier\": 1}\n"
  # Concurrent writers of one --out: exactly one result lands, whole; the others fail.
  fresh = tmp_path / "concurrent.json"
  outcomes = []

  def write(i):
    try:
      feature_inputs.write_out(fresh, json.dumps({"run": i}) * 1000, overwrite=False)
      outcomes.append("ok")
    except features.FeatureError:
      outcomes.append("refused")

  threads = [threading.Thread(target=write, args=(i,)) for i in range(3)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  assert sorted(outcomes) == ["ok", "refused", "refused"]
  assert fresh.read_text() in [json.dumps({"run": i}) * 1000 for i in range(3)]
  assert not list(tmp_path.glob("concurrent.json.*"))


# ------------------------------------------------------------------------- prepare


def test_prepare_flags_videos_shorter_than_a_clip(tiny_store, tmp_path, capsys):
  import shutil
  import av
  from ssvbench.data import prepare, sources
  source = tmp_path / "source"
  shutil.copytree(tiny_store.parent / "source", source)
  victim = sorted((source / "videos").rglob("*.avi"))[0]
  with av.open(str(victim)) as container:
    first = next(container.decode(video=0)).to_ndarray(format="rgb24")
  with av.open(str(victim), "w", format="avi") as container:  # A 1-frame video.
    stream = container.add_stream("mpeg4", rate=8)
    stream.width, stream.height = first.shape[1], first.shape[0]
    stream.pix_fmt = "yuv420p"
    container.mux(stream.encode(av.VideoFrame.from_ndarray(first, format="rgb24")))
    container.mux(stream.encode(None))
  index, find_video = sources.load_index("synthactions", source / "videos",
                                         source / "ucfTrainTestlist")
  manifest = prepare.prepare_dataset(index, source / "videos", tmp_path / "store",
                                     find_video=find_video, progress=False, min_frames=16)
  flagged = [v for v in manifest["videos"] if "warning" in v]
  assert [v["path"] for v in flagged] == [str(victim.relative_to(source / "videos"))]
  assert flagged[0]["num_frames"] == 1 and "repeat frames" in flagged[0]["warning"]
  assert manifest["short_videos"] == {"count": 1, "min_frames": 16}
  assert "1 video(s) shorter than 16 frames" in capsys.readouterr().err
  # A store without short videos keeps the manifest (and hash) it always had.
  assert "short_videos" not in json.loads((tiny_store / "manifest.json").read_text())


# ------------------------------------------------------------------------- disk full


@pytest.fixture
def small_disk(tmp_path):
  """A real 16 MB filesystem (tmpfs), where mounting one is allowed."""
  mount_point = tmp_path / "disk"
  mount_point.mkdir()
  try:
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
  except FileNotFoundError:
    pytest.skip("no `mount` command on this platform")
  if done.returncode:
    pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
  yield mount_point
  subprocess.run(["umount", str(mount_point)], check=False)


@pytest.mark.slow
def test_disk_full_during_a_checkpoint_is_one_line(small_disk, tiny_store, capsys, monkeypatch):
  original_save = checkpoint_lib.Checkpointer.save

  def save_then_fill_the_disk(self, step, state, data_iterator=None):
    original_save(self, step, state, data_iterator)
    if step == 2:  # Leave room for the logs, not for another checkpoint (~3 MB).
      free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
      (small_disk / "filler").write_bytes(b"\0" * (free - 256 * 1024))

  monkeypatch.setattr(checkpoint_lib.Checkpointer, "save", save_then_fill_the_disk)
  workdir = small_disk / "run"
  code, err = _cli(["pretrain", "--config", "configs/pretrain/simclr_r3d_synthactions.py:runlocal",
                    f"--config.data.store_dir={tiny_store}", f"--config.train.num_steps={STEPS}",
                    "--config.train.log_every=1", "--config.train.checkpoint_every=2",
                    "--workdir", str(workdir), "--no-progress"], capsys, monkeypatch)
  assert code == 2
  assert len(err.strip().splitlines()) == 1, err
  assert "no space left" in err and str(workdir / "checkpoints") in err
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["2"]  # No tmp left.
  monkeypatch.undo()
  assert _weights(workdir)[0] == 2  # The earlier checkpoint is intact.


# ------------------------------------------------------------------------- progress off a terminal


def test_progress_off_a_terminal_is_plain_lines(tmp_path):
  import io
  from ssvbench.train import progress
  stream = io.StringIO()  # Not a terminal, like a batch job's log file.
  logger = progress.MetricLogger(tmp_path, total_steps=4, show_bar=True, description="pretrain x",
                                 tensorboard=False, stream=stream)
  for step in (1, 2, 3, 4):
    logger.accumulate({"loss": np.float32(float("nan") if step == 4 else step)})
    if step % 2 == 0:
      logger.write(step)
    else:
      logger.tick(step)
  logger.close()
  lines = stream.getvalue().splitlines()
  assert "\r" not in stream.getvalue()
  assert len(lines) == 2 and lines[0].startswith("pretrain x: step 2/4 loss 1.5000 ")
  assert "steps/s ETA" in lines[0]
  assert [r["loss"] for r in _records(tmp_path)] == [1.5, None]  # Strict JSON: NaN is null.


@pytest.mark.slow
def test_sigterm_to_one_host_stops_every_host_at_the_same_step(tiny_store, tmp_path):
  """2 processes x 4 CPU devices (gloo): a SIGTERM to one host reaches the other through
  JAX's preemption sync service, and both save the same step and exit 143."""
  import socket
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  workdir = tmp_path / "multihost"
  argv = [sys.executable, "-m", "ssvbench.cli", "pretrain",
          "--config", "configs/pretrain/simclr_r3d_synthactions.py:runlocal",
          f"--config.data.store_dir={tiny_store}", f"--config.train.num_steps={STEPS}",
          "--config.train.log_every=1", "--config.train.checkpoint_every=100",
          "--workdir", str(workdir), "--no-progress"]
  procs = []
  for process_id in range(2):
    env = dict(_env(), XLA_FLAGS="--xla_force_host_platform_device_count=4",
               SSVBENCH_COORDINATOR=f"127.0.0.1:{port}", SSVBENCH_NUM_PROCESSES="2",
               SSVBENCH_PROCESS_ID=str(process_id), SSVBENCH_JAX_CACHE="off")
    procs.append(subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  _wait_for(workdir / "metrics.jsonl", procs[0], timeout=900)
  procs[1].send_signal(signal.SIGTERM)  # Not the host that writes the logs.
  outputs = [p.communicate(timeout=900)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 143, out[-3000:]
  saved = [line for out in outputs for line in out.splitlines() if "stopped by SIGTERM" in line]
  assert len(saved) == 2 and saved[0] == saved[1]  # The same step on both hosts.
  steps = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
  assert len(steps) == 1 and f"after step {steps[0]};" in saved[0]


def test_argument_refusals_exit_2(tmp_path, capsys, monkeypatch):
  code, err = _cli(["prepare", "ucf101", "--out", str(tmp_path / "x")], capsys, monkeypatch)
  assert code == 2 and err.strip() == ("ssvbench prepare: error: prepare ucf101: --source-dir "
                                       "is required (the folder with the videos).")
