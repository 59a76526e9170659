"""`ssvbench benchmark`: a suite over checkpoints, cached, resumable; features directories."""

import json
import shutil

import numpy as np
import pytest

from conftest import tiny_pretrain_config
from ssvbench import benchmark, cli, evaluate
from ssvbench.results import records as records_lib
from ssvbench.results import site, standard
from ssvbench.train import trainer


@pytest.mark.slow
def test_suite_over_steps_resumes_and_skips_recorded(tiny_store, tmp_path, monkeypatch, capsys):
  workdir = tmp_path / "run"
  config = tiny_pretrain_config(tiny_store, num_steps=4, log_every=1, checkpoint_every=2)
  trainer.train(config, workdir, progress=False)
  results = tmp_path / "results.jsonl"
  argv = ["benchmark", str(workdir), "--suite", "synthactions", "--steps", "all",
          "--results", str(results), "--no-progress"]

  # Interrupted after the first entry: the finished one is on disk.
  real = evaluate.evaluate_run
  calls = []

  def crash_on_second(*args, **kwargs):
    calls.append(kwargs["step"])
    if len(calls) == 2:
      raise KeyboardInterrupt
    return real(*args, **kwargs)

  monkeypatch.setattr(evaluate, "evaluate_run", crash_on_second)
  with pytest.raises(KeyboardInterrupt):
    cli.main(argv)
  assert [r["extra"]["pretrain_steps"] for r in records_lib.load_records(results)] == [2]
  monkeypatch.setattr(evaluate, "evaluate_run", real)
  capsys.readouterr()

  # Resumed: only the missing step runs; then everything is cached.
  assert cli.main(argv) == 0
  done = json.loads(capsys.readouterr().out)
  assert done == {"evaluated": [["synthactions", 4]], "skipped": [["synthactions", 2]]}
  assert cli.main(argv) == 0
  assert json.loads(capsys.readouterr().out)["evaluated"] == []
  saved = records_lib.load_records(results)
  assert [r["extra"]["pretrain_steps"] for r in saved] == [2, 4]
  assert all(r["extra"]["pretrain_input"] == {"num_frames": config.data.num_frames,
                                              "crop_size": config.data.crop_size}
             and r["extra"]["num_params"] > 0 for r in saved)

  # The standard table shows the last step; the site plots accuracy against step and the
  # run's loss curve (its workdir is reachable from the records).
  table = standard.build(saved)
  assert [r.fields[3] for r in table.rows] == ["4 steps"]
  summary = site.publish([results], tmp_path / "site")
  if summary["plots"] is not None:
    assert "accuracy_vs_step.png" in summary["plots"]
    assert "training_curves.png" in summary["plots"]


def test_bad_suite_arguments_are_one_line_errors(tiny_store, tmp_path, capsys):
  fake = tmp_path / "run"
  (fake / "checkpoints" / "3").mkdir(parents=True)
  (fake / "config.json").write_text(json.dumps({"data": {"store_dir": str(tiny_store)}}))
  cases = [
      (["--suite", "nope"], "no suite 'nope'"),
      (["--only", "ucf101_split9"], "not entries of the suite"),
      (["--only", "ucf101_split2"], "not a prepared store"),
      (["--suite", "synthactions", "--steps", "5"], "have no checkpoint"),
      (["--suite", "synthactions", "--store", "synthactions"], "expected ENTRY=DIR"),
      (["--suite", "synthactions", "--store", "synthactions=" + str(tmp_path)],
       "not a prepared store"),
  ]
  for extra, message in cases:
    assert cli.main(["benchmark", str(fake), *extra]) == 2, extra
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, (extra, err)
  assert not (fake / "results.jsonl").exists()


def test_standard_suite_lists_three_splits_per_dataset():
  entries = benchmark.load_suite("configs/suites/standard.py")
  assert [e.name for e in entries] == [
      "ucf101_split1", "ucf101_split2", "ucf101_split3", "hmdb51_split1", "hmdb51_split2",
      "hmdb51_split3", "kinetics400"]
  assert [e.split for e in entries[:3]] == [1, 2, 3]
  runlocal = benchmark.load_suite("standard:runlocal", {"kinetics400": "k"}, ["kinetics400"])
  assert runlocal == [benchmark.Entry("kinetics400", "kinetics400:runlocal", "k", None)]


def test_features_directory(tmp_path, capsys):
  rng = np.random.default_rng(0)
  folder = tmp_path / "external"
  centres = rng.normal(size=(12, 16)) * 3
  (folder / "synthactions").mkdir(parents=True)
  for split, per_class in (("train", 10), ("test", 5)):
    labels = np.repeat(np.arange(12), per_class)
    np.savez(folder / "synthactions" / f"{split}.npz",
             features=(centres[labels] + rng.normal(size=(len(labels), 16))).astype(np.float32),
             labels=labels)
  (folder / "model.json").write_text(json.dumps(
      {"run_name": "ext", "method": "videomae", "backbone": "vit_s",
       "pretrain_data": "kinetics400", "pretrain_epochs": 800}))
  argv = ["benchmark", str(folder), "--suite", "synthactions", "--no-progress"]
  assert cli.main(argv) == 0
  assert json.loads(capsys.readouterr().out)["evaluated"] == [["synthactions", None]]
  assert cli.main(argv) == 0
  assert json.loads(capsys.readouterr().out)["skipped"] == [["synthactions", None]]
  (record,) = records_lib.load_records(folder / "results.jsonl")
  assert record["extra"]["provenance"] == "features supplied"
  shutil.rmtree(folder / "synthactions")
  assert cli.main(argv) == 2
  assert "needs train.npz" in capsys.readouterr().err


def test_official_split_reaches_the_record_fields():
  class Store:
    manifest = {"official_split": 2}
  assert evaluate.record_split("test", Store()) == "split2/test"
  Store.manifest = {}
  assert evaluate.record_split("test", Store()) == "test"


def test_entry_split_must_match_the_store():
  class Store:
    manifest = {"official_split": 2}
  entry = benchmark.Entry("ucf101_split1", "ucf101", "data/u1", 1)
  with pytest.raises(ValueError, match="wants official split 1.*prepared from split 2"):
    benchmark._check_store(entry, Store())
  benchmark._check_store(benchmark.Entry("ucf101_split2", "ucf101", "d", 2), Store())
