"""Online k-NN monitor during pre-training: validation only, at the interval, no effect."""

import json

import numpy as np
import pytest

from conftest import tiny_pretrain_config
from ssvbench.data import store as store_lib
from ssvbench.data import validation as validation_lib
from ssvbench.evaluators import registry
from ssvbench.train import online_eval, trainer


def _lines(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_monitor_runs_on_validation_at_the_interval(tiny_store, tmp_path, monkeypatch):
  requested, scored = [], []
  for name in ("videos", "data_source"):
    original = getattr(store_lib.PreparedStore, name)

    def spy(self, split, *args, _original=original, **kwargs):
      requested.append(split)
      return _original(self, split, *args, **kwargs)
    monkeypatch.setattr(store_lib.PreparedStore, name, spy)
  real_run = registry.run_evaluators

  def capture(evals, train, test, val=None):
    scored.append((set(train.video_ids), set(test.video_ids)))
    return real_run(evals, train, test, val)
  monkeypatch.setattr(registry, "run_evaluators", capture)

  config = tiny_pretrain_config(tiny_store, num_steps=4, log_every=1, checkpoint_every=4,
                                eval_every=2)
  trainer.train(config, tmp_path / "on", progress=False)
  monkeypatch.undo()

  lines = _lines(tmp_path / "on")
  online = [l for l in lines if "online/knn/top1" in l]
  assert [l["step"] for l in online] == [2, 4]
  assert all(0.0 <= l["online/knn/top1"] <= 100.0 for l in online)
  assert [l["step"] for l in lines if "loss" in l] == [1, 2, 3, 4]
  # The test split is never read; queries are exactly the carved validation videos.
  assert "test" not in requested and "train" in requested
  store = store_lib.PreparedStore(tiny_store)
  train = store.videos("train")
  mask = validation_lib.carve_validation([v["label"] for v in train],
                                         [str(v["group"]) for v in train], 0.2, 0)
  val_ids = {v["video_id"] for v, m in zip(train, mask) if m}
  test_ids = {v["video_id"] for v in store.videos("test")}
  assert val_ids and len(scored) == 2
  for gallery, queries in scored:
    assert queries == val_ids and not gallery & queries
    assert not (gallery | queries) & test_ids
  events = list((tmp_path / "on" / "tensorboard").glob("events.out.tfevents.*"))
  assert any(b"online/knn/top1" in path.read_bytes() for path in events)

  # Training is unchanged by the monitor: the same losses, step for step.
  config_off = tiny_pretrain_config(tiny_store, num_steps=4, log_every=1, checkpoint_every=4)
  trainer.train(config_off, tmp_path / "off", progress=False)
  off = {l["step"]: l["loss"] for l in _lines(tmp_path / "off")}
  on = {l["step"]: l["loss"] for l in lines if "loss" in l}
  assert on == off
  assert not any("online/knn/top1" in l for l in _lines(tmp_path / "off"))


def test_bad_online_settings_fail_before_training(tiny_store, tmp_path):
  config = tiny_pretrain_config(tiny_store, eval_every=2)
  config.evals = {"knn": {"type": "knn", "kk": 3}}
  with pytest.raises(ValueError, match="unknown setting"):
    online_eval.from_config(config, store_lib.PreparedStore(tiny_store), None, None, tmp_path)
  config = tiny_pretrain_config(tiny_store, eval_every=2)
  config.data.split = "test"
  with pytest.raises(ValueError, match="must not be 'test'"):
    online_eval.from_config(config, store_lib.PreparedStore(tiny_store), None, None, tmp_path)
  assert online_eval.from_config(tiny_pretrain_config(tiny_store), None, None, None,
                                 tmp_path) is None
