"""`evaluate-features --results`: records for features computed anywhere, read by tables."""

import json

import numpy as np
import pytest

from ssvbench import cli
from ssvbench.results import records as records_lib
from ssvbench.results import standard


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
  """Separable 12-class features, 2 views, grouped (SynthActions-shaped)."""
  folder = tmp_path_factory.mktemp("supplied")
  rng = np.random.default_rng(3)
  centres = rng.normal(size=(12, 16)) * 3
  paths = {}
  for split, per_class in (("train", 10), ("test", 5)):
    labels = np.repeat(np.arange(12), per_class)
    x = centres[labels][:, None, :] + rng.normal(size=(len(labels), 2, 16))
    groups = np.array([f"{split}{c}_{i // 2}" for c, i in zip(labels, range(len(labels)))])
    paths[split] = folder / f"{split}.npz"
    np.savez(paths[split], features=x.astype(np.float32), labels=labels, groups=groups,
             video_ids=np.array([f"{split}{i}" for i in range(len(labels))]))
  return paths


def _args(npz, results, *more):
  return ["evaluate-features", "--protocol", "synthactions", "--train", str(npz["train"]),
          "--test", str(npz["test"]), "--out", str(results.parent / "out.json"),
          "--results", str(results), *more]


IDENTITY = ["--run-name", "external_videomae", "--method", "videomae", "--backbone", "vit_s",
            "--pretrain-data", "kinetics400", "--pretrain-epochs", "800",
            "--num-params", "22000000"]


def test_bad_record_flags_write_nothing(npz, tmp_path, capsys):
  results = tmp_path / "results.jsonl"
  assert cli.main(_args(npz, results, "--method", "x")) == 2
  assert "--run-name" in capsys.readouterr().err
  assert cli.main(_args(npz, results, *IDENTITY, "--split", "2")) == 2
  assert "no numbered official splits" in capsys.readouterr().err
  assert not results.exists() and not (tmp_path / "out.json").exists()


def test_appended_record_is_valid_and_tabulated(npz, tmp_path, capsys):
  results = tmp_path / "results.jsonl"
  assert cli.main(_args(npz, results, *IDENTITY)) == 0
  (record,) = records_lib.load_records(results)
  assert record["run_name"] == "external_videomae" and record["dataset"] == "synthactions"
  assert record["extra"]["provenance"] == "features supplied"
  assert record["extra"]["inputs"]["train"]["path"] == "train.npz"  # No machine path.
  assert record["checkpoint"] is None and record["seeds"]["pretrain"] == 0
  result = json.loads((tmp_path / "out.json").read_text())
  assert record["metrics"] == result["metrics"]
  assert record["protocol"] == {k: str(v) for k, v in result["protocol"].items()}
  capsys.readouterr()
  assert cli.main(["leaderboard", "--results", str(results), "--table", "standard"]) == 0
  out = capsys.readouterr().out
  assert "| 1 | videomae | vit_s | kinetics400 | 800 ep | - | 22.0M |" in out
  assert f"{result['metrics']['linear/top1']:.1f}" in out
  assert cli.main(["leaderboard", "--results", str(results)]) == 0
  table = standard.build(records_lib.load_records(results))
  assert table.rows[0].cells[0].value == result["metrics"]["linear/top1"]
  assert cli.main(["publish", "--results", str(results), "--out", str(tmp_path / "site"),
                   "--no-plots"]) == 0
  index = (tmp_path / "site" / "index.html").read_text()
  assert "external_videomae" in index and "features supplied" in index
