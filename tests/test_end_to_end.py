"""One tiny end-to-end run through the CLI: prepare -> pretrain -> checkpoint -> resume ->
evaluate -> results record -> leaderboard, checked field by field."""

import json
import shutil

import numpy as np
import pytest

from ssvbench import cli
from ssvbench.results import records


def _run(*argv):
  code = cli.main([str(a) for a in argv])
  assert code == 0, f"ssvbench {' '.join(map(str, argv))} exited {code}"


@pytest.mark.slow
def test_prepare_pretrain_resume_evaluate(tmp_path, capsys):
  data = tmp_path / "data"
  _run("prepare", "synthactions", "--out", data, "--config", "configs/synthactions.py:tiny",
       "--no-progress")
  prepared = json.loads(capsys.readouterr().out)
  assert prepared["counts"]["train"]["ok"] == 16 and prepared["counts"]["test"]["ok"] == 8
  store = data / "store"

  workdir = tmp_path / "run"
  pretrain = ["pretrain", "--config", "configs/pretrain/simclr_r3d_synthactions.py:runlocal",
              f"--config.data.store_dir={store}", "--config.train.num_steps=4",
              "--config.train.log_every=1", "--config.train.checkpoint_every=2",
              "--workdir", workdir, "--no-progress"]
  _run(*pretrain)
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["2", "4"]
  straight = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [m["step"] for m in straight] == [1, 2, 3, 4]
  assert all(np.isfinite(m["loss"]) for m in straight)
  config = json.loads((workdir / "config.json").read_text())
  assert config["method"]["name"] == "simclr" and config["train"]["num_steps"] == 4

  # Interrupt after step 2: drop the final checkpoint and its metrics, then --resume.
  shutil.rmtree(workdir / "checkpoints" / "4")
  (workdir / "metrics.jsonl").write_text(
      "".join(json.dumps(m) + "\n" for m in straight[:2]))
  _run(*pretrain, "--resume")
  resumed = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [m["step"] for m in resumed] == [1, 2, 3, 4]
  assert [m["loss"] for m in resumed] == [m["loss"] for m in straight]
  capsys.readouterr()

  _run("evaluate", "--workdir", workdir, "--protocol", "synthactions", "--no-progress")
  metrics = json.loads(capsys.readouterr().out)
  (record,) = records.load_records(workdir / "results.jsonl")
  assert record["metrics"] == metrics
  assert record["method"] == "simclr"
  assert record["backbone"] == "r3d_tiny"
  assert record["dataset"] == "synthactions"
  assert record["split"] == "test"
  assert record["protocol"]["name"] == "synthactions"
  assert record["protocol"]["version"] == "3.0"
  assert len(record["protocol"]["fingerprint"]) >= 12
  assert record["manifest_hash"] == prepared["manifest_hash"]
  assert record["seeds"]["pretrain"] == 0
  assert record["checkpoint"].endswith("checkpoints/4")
  assert record["extra"]["pretrain_steps"] == 4
  assert record["num_devices"] == 8
  assert record["git_sha"] is None or len(record["git_sha"]) >= 40
  for name in ("knn/top1", "knn/top5", "linear/top1", "linear/top5", "retrieval/R@1",
               "motion_only/knn/top1", "motion_only/linear/top1", "diagnostics/uniformity"):
    assert name in metrics and 0.0 <= metrics[name] <= 100.0 or name.startswith("diag"), name

  # Every accuracy metric, the class subsets' too, has its interval; the per-video
  # predictions sit beside results.jsonl, hash-checked.
  for name in ("knn/top1", "linear/top1", "retrieval/R@1", "motion_only/knn/top1",
               "motion_only/linear/top1", "fewshot_linear/1shot"):
    assert 0.0 <= metrics[name + "_ci95"] <= 100.0, name
  from ssvbench.results import predictions
  assert record["cpu"]["model"]
  ids, packs = predictions.load_for_record(record, workdir)
  assert len(ids) == 8 and packs["motion_only/knn/top1"]["rows"].size < 8

  # Evaluating again is served from the feature cache and gives identical numbers.
  _run("evaluate", "--workdir", workdir, "--protocol", "synthactions", "--no-progress")
  assert json.loads(capsys.readouterr().out) == metrics
  _run("compare", f"{workdir / 'results.jsonl'}:0", f"{workdir / 'results.jsonl'}:1",
       "--metric", "knn/top1", "--metric", "motion_only/knn/top1")
  assert capsys.readouterr().out.count("+0.00 [ +0.00,  +0.00]   1.0000    1.0000") == 2

  _run("leaderboard", "--results", workdir / "results.jsonl")
  table = capsys.readouterr().out
  assert "| simclr | r3d_tiny |" in table and "synthactions" in table
