"""The standard cross-dataset table (ssvbench/results/standard.py) from constructed records."""

import csv
import io
import json

import pytest

from ssvbench import cli
from ssvbench.results import records as records_lib
from ssvbench.results import standard

FP = {"ucf101": "a" * 64, "hmdb51": "b" * 64, "kinetics400": "c" * 64}


def make(method, dataset, metrics, *, split=None, seed=0, version="1.0", fingerprint=None,
         run_name=None, **extra):
  """A valid record without touching JAX (tables never need a backend)."""
  record = {
      "record_version": records_lib.RECORD_VERSION, "created": "2026-12-01T00:00:00+00:00",
      "run_name": run_name or f"{method}_s{seed}", "method": method, "backbone": "r3d18",
      "pretrain_data": "data/kinetics400/store", "dataset": dataset,
      "split": f"split{split}/test" if split else "test",
      "protocol": {"name": dataset, "version": version,
                   "fingerprint": fingerprint or FP.get(dataset, "d" * 64)},
      "metrics": dict(metrics), "seeds": {"pretrain": seed, "protocol": 0},
      "manifest_hash": "m" * 64, "checkpoint": None, "git_sha": "0" * 40,
      "ssvbench_version": "0.1.0", "library_versions": {"jax": "0.10.2"},
      "device_kind": "cpu", "num_devices": 1, "num_processes": 1,
      "extra": {"pretrain_steps": 100, **({"official_split": split} if split else {}),
                **extra},
  }
  records_lib.validate_record(record)
  return record


def cell(table, method, label):
  column = [c.label for c in table.columns].index(label)
  row = next(r for r in table.rows if r.fields[0] == method)
  return row, row.cells[column]


def test_three_split_mean_equals_mean_of_records():
  values = {1: 60.0, 2: 63.0, 3: 66.0}
  records = [make("simclr", "ucf101", {"linear/top1": v}, split=s) for s, v in values.items()]
  table = standard.build(records)
  _, entry = cell(table, "simclr", "UCF101 linear")
  assert entry.value == pytest.approx(63.0)
  assert entry.splits == (1, 2, 3)
  assert entry.split_std == pytest.approx(3.0)
  assert entry.text("ucf101") == "63.0"  # A full 3-split mean carries no mark.


def test_fewer_splits_are_labelled_never_a_three_split_mean():
  records = [make("simclr", "ucf101", {"linear/top1": 60.0}, split=1),
             make("simclr", "ucf101", {"linear/top1": 62.0}, split=2),
             make("byol", "ucf101", {"linear/top1": 50.0}, split=1),
             make("moco", "ucf101", {"linear/top1": 40.0})]  # Split not recorded.
  table = standard.build(records)
  md = standard.to_markdown(table)
  assert "61.0 [s1,2]" in md
  assert "50.0 [s1]" in md
  assert "40.0 [s?]" in md
  _, entry = cell(table, "simclr", "UCF101 linear")
  assert entry.splits == (1, 2)
  # CSV: the number and its splits in separate columns, at full precision.
  rows = list(csv.DictReader(io.StringIO(standard.to_csv(table))))
  simclr = next(r for r in rows if r["method"] == "simclr")
  value_key = next(k for k in simclr if k.startswith("ucf101/linear [") and k.endswith("]"))
  assert float(simclr[value_key]) == 61.0
  assert simclr[value_key + " splits"] == "1;2"


def test_protocol_versions_are_separate_columns():
  records = [make("simclr", "kinetics400", {"linear/top1": 60.0}, version="1.0"),
             make("byol", "kinetics400", {"linear/top1": 61.0}, version="2.0",
                  fingerprint="e" * 64)]
  table = standard.build(records)
  labels = [c.label for c in table.columns]
  assert labels == ["K400 linear (kinetics400@1.0)", "K400 linear (kinetics400@2.0)"]
  _, simclr_v2 = cell(table, "simclr", "K400 linear (kinetics400@2.0)")
  assert simclr_v2 is None


def test_seeds_aggregate_to_mean_std_n_and_conflicts_are_errors():
  records = [make("simclr", "kinetics400", {"linear/top1": v}, seed=seed)
             for seed, v in ((0, 60.0), (1, 62.0), (2, 64.0))]
  table = standard.build(records)
  assert len(table.rows) == 1
  _, entry = cell(table, "simclr", "K400 linear")
  assert entry.value == pytest.approx(62.0)
  assert entry.n_seeds == 3 and entry.seed_std == pytest.approx(2.0)
  assert entry.text("kinetics400") == "62.0 ± 2.0 (n=3)"
  conflicting = records + [make("simclr", "kinetics400", {"linear/top1": 70.0}, seed=0,
                                run_name="other")]
  with pytest.raises(ValueError, match="same pre-training seed 0"):
    standard.build(conflicting)


def test_ci_is_shown_for_a_single_record():
  table = standard.build([make("simclr", "kinetics400",
                               {"linear/top1": 65.0, "linear/top1_ci95": 0.7})])
  _, entry = cell(table, "simclr", "K400 linear")
  assert entry.ci95 == 0.7 and entry.text("kinetics400") == "65.0 ± 0.7"


def test_rank_baselines_and_reported_rows():
  records = [make(m, "kinetics400", {"linear/top1": v, "knn/top1": v - 10})
             for m, v in (("byol", 55.0), ("simclr", 60.0), ("moco", 58.0),
                          ("random_init", 10.0), ("supervised", 75.0))]
  table = standard.build(records, reported=standard.load_reported())
  kinds = [r.kind for r in table.rows]
  measured = [r for r in table.rows if r.kind == "measured"]
  assert [r.fields[0] for r in measured] == ["simclr", "moco", "byol"]
  assert [r.rank for r in measured] == [1, 2, 3]
  assert kinds.index("baseline") > kinds.index("measured")
  assert kinds.index("reported") > max(i for i, k in enumerate(kinds) if k == "baseline")
  # The supervised baseline (75) is not the bold best; the best measured row is.
  column = [c.label for c in table.columns].index("K400 linear")
  assert table.best[column] == frozenset({0})
  md = standard.to_markdown(table)
  assert "*baselines*" in md and "*reported (published, not measured by ssvbench)*" in md
  assert "63.8" in md and "CVRL" in md  # Reported CVRL R3D-50 and its source.
  by_knn = standard.build(records, rank_by="kinetics400/knn")
  assert by_knn.columns[by_knn.headline].label == "K400 k-NN"
  with pytest.raises(ValueError, match="not a column"):
    standard.build(records, rank_by="ucf101/linear")


def test_leaderboard_cli_renders_every_format(tmp_path, capsys):
  path = tmp_path / "results.jsonl"
  for split in (1, 2, 3):
    records_lib.append_record(path, make("simclr", "ucf101", {"linear/top1": 60.0 + split},
                                         split=split))
    records_lib.append_record(path, make("simclr", "hmdb51", {"knn/top1": 30.0 + split},
                                         split=split))
  for fmt in ("md", "csv", "latex", "html"):
    assert cli.main(["leaderboard", "--results", str(path), "--table", "standard",
                     "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "62.0" in out and "32.0" in out
  assert cli.main(["leaderboard", "--results", str(path), "--table", "standard",
                   "--out", str(tmp_path / "out")]) == 0
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
      "leaderboard.csv", "leaderboard.html", "leaderboard.md", "leaderboard.tex"]
  assert cli.main(["leaderboard", "--results", str(path), "--table", "standard",
                   "--rank-by", "nope/linear"]) == 2
  assert "not a column" in capsys.readouterr().err


def test_reported_file_is_well_formed():
  rows = standard.load_reported()
  assert any(r["method"] == "cvrl" and r["metrics"]["kinetics400/linear"] == 63.8 for r in rows)
  for row in rows:
    assert row["source"]
    for key in row["metrics"]:
      assert key.split("/")[1] in standard.SLOTS
  json.dumps(rows)


def test_records_without_input_or_params_join_their_row():
  frozen = make("simclr", "ucf101", {"linear/top1": 60.0}, split=1, num_params=11_500_000,
                pretrain_input={"num_frames": 16, "crop_size": 112})
  tuned = make("simclr", "ucf101", {"finetune/top1": 80.0}, split=1, run_name="simclr_ft")
  table = standard.build([frozen, tuned])
  (row,) = table.rows
  assert row.fields == ("simclr", "r3d18", "kinetics400", "100 steps", "16x112", "11.5M")
  assert [c.label for c in table.columns] == ["UCF101 linear", "UCF101 fine-tune"]
  assert [c.value for c in row.cells] == [60.0, 80.0]


def test_pretrain_data_names_the_dataset_not_the_folder():
  split_store = make("simclr", "ucf101", {"linear/top1": 60.0}, split=1)
  split_store["pretrain_data"] = "data/ucf101/split1/store"
  assert standard.row_identity(split_store)[2] == "ucf101"
  split_store["extra"]["pretrain_dataset"] = "hmdb51"
  assert standard.row_identity(split_store)[2] == "hmdb51"
