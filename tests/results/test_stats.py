"""Tests for uncertainty (ssvbench.results.stats), predictions sidecars, `compare`, and the
seed/tie/direction features of the leaderboard tables."""

import csv
import io
import json
import pathlib

import numpy as np
import pytest

from ssvbench.evaluators import diagnostics, knn, linear
from ssvbench.evaluators.features import FeatureSet
from ssvbench.results import compare, predictions, records, stats, tables

PROTOCOL = dict(name="synthactions", version="2.0", fingerprint="0123456789abcdef")


def _record(method="simclr", metrics=None, run_name="run", seed=0, **overrides):
  record = records.make_record(
      method=method, backbone="r3d_cpu", pretrain_data="synthactions", dataset="synthactions",
      split="test", protocol=overrides.pop("protocol", PROTOCOL),
      metrics=metrics if metrics is not None else {"knn/top1": 50.0},
      seeds={"pretrain": seed, "protocol": 0},
      manifest_hash=overrides.pop("manifest_hash", "deadbeef"), checkpoint=None,
      run_name=run_name)
  record.update(overrides)
  return record


def _bernoulli(n, p, seed):
  return np.random.default_rng(seed).random(n) < p


# ------------------------------------------------------------------------- intervals


def test_bootstrap_agrees_with_wilson_and_is_seeded():
  correct = _bernoulli(5000, 0.3, 0)
  packed = stats.outcome(correct)
  half_width = stats.bootstrap_ci95(packed)
  wilson = stats.wilson_ci95(correct.mean(), len(correct))
  assert abs(half_width - wilson) <= 0.2 * wilson, (half_width, wilson)
  assert stats.bootstrap_ci95(packed) == half_width  # Deterministic for a seed.
  assert stats.bootstrap_ci95(packed, seed=1) != half_width
  assert stats.value(packed) == pytest.approx(100 * correct.mean())


def test_cluster_bootstrap():
  correct = _bernoulli(500, 0.4, 4).astype(float)
  # Clusters of one unit: the same draws as the plain bootstrap.
  assert stats.ratio_bootstrap_ci95(correct, np.ones(500)) == stats.bootstrap_ci95(
      stats.outcome(correct))
  # Clusters of 10 perfectly correlated units: the interval is that of 50 units, not 500.
  sums, counts = 10 * correct[:50], np.full(50, 10.0)
  assert stats.ratio_bootstrap_ci95(sums, counts) > 2 * stats.bootstrap_ci95(
      stats.outcome(np.repeat(correct[:50], 10)))


def test_two_way_bootstrap_holds_seed_spread():
  # Three few-shot seeds that disagree by 10 points: the interval is wider than the
  # test-set interval of any one seed.
  rows = np.stack([_bernoulli(400, p, i) for i, p in enumerate((0.3, 0.4, 0.5))])
  combined = stats.bootstrap_ci95(stats.outcome(rows))
  single = max(stats.bootstrap_ci95(stats.outcome(r)) for r in rows)
  assert combined > single


def test_mean_class_statistic_matches_linear_mean_class_accuracy():
  rng = np.random.default_rng(3)
  labels = rng.integers(0, 5, 300)
  predicted = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 5, 300))
  packed = stats.outcome(predicted == labels, statistic="mean_class", labels=labels)
  assert stats.value(packed) == pytest.approx(linear.mean_class_accuracy(predicted, labels))
  assert 0 < stats.bootstrap_ci95(packed) < 15


def test_views_of_a_video_are_one_unit():
  """k-NN outcomes are per video (not per view), so more views do not shrink the CI."""
  rng = np.random.default_rng(0)
  centres = rng.standard_normal((4, 8))
  def make(n, views, seed):
    r = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = centres[y] + 1.5 * r.standard_normal((n, 8))
    return FeatureSet(np.repeat(x[:, None, :], views, axis=1).astype(np.float32), y, 4)
  results = {}
  for views in (1, 4):
    evaluator = knn.Evaluator(k=5)
    metrics = dict(evaluator.run(make(80, views, 1), make(60, views, 2)))
    packed = evaluator.predictions["top1"]
    assert packed["outcomes"].shape == (1, 60)  # One unit per test video.
    assert stats.value(packed) == pytest.approx(metrics["top1"])
    results[views] = stats.bootstrap_ci95(packed)
  assert results[1] == results[4]


# ------------------------------------------------------------------------- paired tests


def test_paired_test_detects_planted_difference_and_not_identity():
  a = _bernoulli(2000, 0.5, 0)
  b = a.copy()
  wrong = np.nonzero(~b)[0]
  b[wrong[:100]] = True  # B is right on 100 more videos: +5 points.
  result = stats.paired_bootstrap(stats.outcome(b), stats.outcome(a))
  assert result["difference"] == pytest.approx(5.0)
  assert result["p_value"] < 0.01 and result["low"] > 0
  assert stats.mcnemar(b, a)["p_value"] < 0.01
  same = stats.paired_bootstrap(stats.outcome(a), stats.outcome(a))
  assert same["difference"] == 0 and same["p_value"] == pytest.approx(1.0)
  assert stats.mcnemar(a, a)["p_value"] == 1.0


def test_paired_test_independent_draws_and_mismatch():
  # Two independent classifiers at 50% and 55% on 2000 videos: still detected.
  a, b = _bernoulli(2000, 0.50, 1), _bernoulli(2000, 0.55, 2)
  assert stats.paired_bootstrap(stats.outcome(b), stats.outcome(a))["p_value"] < 0.05
  with pytest.raises(stats.MismatchError):
    stats.paired_bootstrap(stats.outcome(a), stats.outcome(a[:10]))


def test_mcnemar_exact_small_case():
  # 6 discordant videos, all won by A: p = 2 * 0.5^6.
  a = np.array([1, 1, 1, 1, 1, 1, 0, 1], bool)
  b = np.array([0, 0, 0, 0, 0, 0, 0, 1], bool)
  assert stats.mcnemar(a, b)["p_value"] == pytest.approx(2 * 0.5 ** 6)


# ------------------------------------------------------------------------- sidecars, compare


def _evaluated(tmp_path, name, correct, seed=0, method="simclr", **overrides):
  labels = np.arange(len(correct)) % 5
  packs = {"knn/top1": stats.outcome(correct, labels=labels,
                                     predicted=np.where(correct, labels, (labels + 1) % 5))}
  record = _record(method=method, run_name=name, seed=seed,
                   metrics={"knn/top1": stats.value(packs["knn/top1"]),
                            "knn/top1_ci95": stats.bootstrap_ci95(packs["knn/top1"])},
                   **overrides)
  ids = np.array([f"v{i}" for i in range(len(correct))])
  predictions.attach(record, tmp_path, packs, ids)
  records.append_record(tmp_path / "results.jsonl", record)
  return record


def test_sidecar_round_trip_and_hash(tmp_path):
  record = _evaluated(tmp_path, "a", _bernoulli(200, 0.4, 0))
  info = record["predictions"]
  assert info["file"] == predictions.sidecar_name({k: v for k, v in record.items()
                                                   if k != "predictions"})
  ids, packs = predictions.load_for_record(record, tmp_path)
  assert ids[0] == "v0" and packs["knn/top1"]["outcomes"].shape == (1, 200)
  # Same outcomes, same bytes; other outcomes never replace a pinned sidecar.
  again = predictions.write_sidecar(tmp_path, info["file"], packs, ids)
  assert again == info
  other = predictions.write_sidecar(tmp_path, info["file"], {"knn/top1": stats.outcome(
      np.ones(200))}, ids)
  assert other["file"] != info["file"]
  predictions.load_for_record(record, tmp_path)  # Still matches its hash.
  (tmp_path / info["file"]).write_bytes(b"tampered")
  with pytest.raises(predictions.SidecarError, match="sha256"):
    predictions.load_for_record(record, tmp_path)
  with pytest.raises(ValueError, match="predictions.file"):
    records.validate_record({**record, "predictions": {"file": "/abs.npz",
                                                       "sha256": info["sha256"]}})


def test_compare_cli(tmp_path, capsys):
  from ssvbench import cli
  a = _bernoulli(2000, 0.5, 0)
  b = a.copy()
  b[np.nonzero(~b)[0][:100]] = True
  _evaluated(tmp_path, "base", a)
  _evaluated(tmp_path, "better", b)
  _evaluated(tmp_path, "other_protocol", a, protocol=dict(PROTOCOL, fingerprint="f" * 16))
  _evaluated(tmp_path, "other_manifest", a, manifest_hash="cafe")
  results = tmp_path / "results.jsonl"
  assert cli.main(["compare", f"{results}:better", f"{results}:0", "--json"]) == 0
  out = json.loads(capsys.readouterr().out)
  row = out["metrics"][0]
  assert row["metric"] == "knn/top1" and row["difference"] == pytest.approx(5.0)
  assert row["p_value"] < 0.01 and row["mcnemar"]["p_value"] < 0.01
  assert cli.main(["compare", f"{results}:0", f"{results}:0"]) == 0
  assert "+0.00" in capsys.readouterr().out
  for other, reason in (("other_protocol", "different protocol fingerprints"),
                        ("other_manifest", "different dataset manifests"),
                        ("nobody", "matches 0 records")):
    assert cli.main(["compare", f"{results}:0", f"{results}:{other}"]) == 2
    err = capsys.readouterr().err
    assert reason in err and len(err.strip().splitlines()) == 1
  # A record without a sidecar.
  records.append_record(results, _record(run_name="bare"))
  assert cli.main(["compare", f"{results}:0", f"{results}:bare"]) == 2
  assert "no predictions sidecar" in capsys.readouterr().err
  assert cli.main(["compare", f"{results}:0", f"{results}:1", "--metric", "linear/top1"]) == 2
  assert "not in both sidecars" in capsys.readouterr().err


# ------------------------------------------------------------------------- seeds, ties


def test_aggregate_seeds_and_tied_with_best():
  assert stats.aggregate_seeds([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)
  assert stats.aggregate_seeds([4.0]) == (4.0, None, 1)
  best, tied = stats.tied_with_best([50.0, 48.0, 30.0, None], [3.0, 3.0, 3.0, None])
  assert best == 0 and tied == {1}
  best, tied = stats.tied_with_best([0.5, 0.6], [0.01, 0.01], better="lower")
  assert best == 0 and tied == set()
  # A paired p-value decides over intervals.
  best, tied = stats.tied_with_best([50.0, 48.0], [3.0, 3.0], p_values=[None, 0.001])
  assert tied == set()


def _seeded_records():
  recs = [_record(method="simclr", run_name=f"simclr_s{s}", seed=s,
                  metrics={"knn/top1": v, "knn/top1_ci95": 3.0})
          for s, v in zip((0, 1, 2), (30.0, 32.0, 34.0))]
  recs.append(_record(method="byol", run_name="byol_s0", seed=0,
                      metrics={"knn/top1": 31.0, "knn/top1_ci95": 3.0}))
  recs.append(_record(method="random", run_name="random_s0", seed=0,
                      metrics={"knn/top1": 10.0, "knn/top1_ci95": 2.0}))
  return recs


def test_seed_aggregation_in_all_formats():
  table = tables.leaderboard(_seeded_records())
  assert table.row_keys == (("byol", "r3d_cpu"), ("random", "r3d_cpu"), ("simclr", "r3d_cpu"))
  assert table.row_seeds == (1, 1, 3)
  simclr = table.cells[2][0]
  assert (simclr.value, simclr.spread, simclr.n) == (32.0, 2.0, 3)
  markdown = tables.to_markdown(table)
  assert table.headers()[2:] == ["seeds", "knn/top1 (±ci95 at n=1; ±std over seeds)"]
  only_seeded = tables.leaderboard(_seeded_records()[:3])
  assert only_seeded.headers()[2:] == ["seeds", "knn/top1 (±std over seeds)"]
  assert "| simclr | r3d_cpu | 3 | **32.0 ± 2.0** |" in markdown
  assert "| byol | r3d_cpu | 1 (one seed) | 31.0 ± 3.0† |" in markdown
  assert "| random | r3d_cpu | 1 (one seed) | 10.0 ± 2.0 |" in markdown
  assert "mean ± std over the seeds" in markdown
  latex = tables.to_latex(table)
  assert r"simclr & r3d\_cpu & 3 & \textbf{32.0 $\pm$ 2.0} \\" in latex
  assert r"byol & r3d\_cpu & 1 (one seed) & 31.0 $\pm$ 3.0$^\dagger$ \\" in latex
  page = tables.to_html(table)
  assert "<td>3</td>" in page and "<td>1 (one seed)</td>" in page
  rows = list(csv.DictReader(io.StringIO(tables.to_csv(table))))
  simclr_row = next(r for r in rows if r["method"] == "simclr")
  assert simclr_row["n_seeds"] == "3" and simclr_row["knn/top1_n"] == "3"
  assert float(simclr_row["knn/top1"]) == 32.0 and float(simclr_row["knn/top1_seed_std"]) == 2.0
  byol_row = next(r for r in rows if r["method"] == "byol")
  assert byol_row["n_seeds"] == "1" and byol_row["knn/top1_top"] == "1"
  assert next(r for r in rows if r["method"] == "random")["knn/top1_top"] == "0"


def test_same_seed_conflict_still_raises():
  recs = [_record(run_name="x", seed=0, metrics={"knn/top1": 30.0}),
          _record(run_name="y", seed=0, metrics={"knn/top1": 31.0})]
  with pytest.raises(ValueError, match="same pre-training seed"):
    tables.leaderboard(recs)


def test_cell_with_fewer_seeds_than_its_row_says_n():
  recs = _seeded_records()[:3]
  recs[2]["metrics"]["linear/top1"] = 40.0
  table = tables.leaderboard(recs)
  assert table.texts[0][1] == "40.0 (n=1)"


def test_tie_marker_from_paired_sidecars(tmp_path):
  a = _bernoulli(2000, 0.5, 0)
  b = a.copy()
  b[np.nonzero(~b)[0][:80]] = True  # +4 points on the same videos: clearly better.
  c = b.copy()  # 12 videos lost and 10 won against b: 0.1 points below it, tied.
  c[np.nonzero(c)[0][:12]] = False
  c[np.nonzero(~b)[0][:10]] = True
  recs = [_evaluated(tmp_path, name, x, method=name) for name, x in
          (("a", a), ("b", b), ("c", c))]
  table = tables.leaderboard(recs, metrics=["knn/top1"], predictions_dir=tmp_path)
  assert table.best[0] == frozenset({1}) and table.tied[0] == frozenset({2})
  assert table.tie_methods == ("paired bootstrap, p >= 0.05",)
  # Without sidecars the (~2.2-point) intervals of a and b overlap: a is tied too.
  loose = tables.leaderboard(recs, metrics=["knn/top1"])
  assert loose.tied[0] == frozenset({0, 2})
  assert loose.tie_methods == ("overlapping 95% intervals",)


def test_direction_registry_and_bold():
  for leaf in diagnostics.Evaluator.LOWER_IS_BETTER:
    assert stats.direction(f"diagnostics/{leaf}") == stats.LOWER
  assert stats.direction("diagnostics/effective_rank") == stats.HIGHER
  assert stats.direction("knn/top1_ci95") == stats.HIGHER
  assert stats.direction("train/loss") == stats.LOWER
  recs = [_record(method="m1", run_name="1", metrics={"diagnostics/alignment": 0.4,
                                                      "diagnostics/effective_rank": 10.0}),
          _record(method="m2", run_name="2", metrics={"diagnostics/alignment": 0.7,
                                                      "diagnostics/effective_rank": 20.0})]
  table = tables.leaderboard(recs)
  assert table.best == (frozenset({0}), frozenset({1}))


def test_csv_cells_are_numbers():
  recs = _seeded_records() + [_record(method="vicreg", run_name="v", metrics={
      "knn/top1": 12.345678901234, "fewshot_linear/5shot": 20.0,
      "fewshot_linear/5shot_std": 1.5, "diagnostics/alignment": 0.123456789})]
  rows = list(csv.DictReader(io.StringIO(tables.to_csv(tables.leaderboard(recs)))))
  text_columns = {"method", "backbone", "dataset", "split", "protocol", "fingerprint"}
  for row in rows:
    for column, cell in row.items():
      if column not in text_columns and cell != "":
        float(cell)  # Raises if not a number.
  vicreg = next(r for r in rows if r["method"] == "vicreg")
  assert vicreg["knn/top1"] == "12.345678901234"  # Full precision.
  assert vicreg["fewshot_linear/5shot_std"] == "1.5"


# ------------------------------------------------------------------------- device facts


def test_cpu_facts_in_records_and_provenance():
  record = _record()
  cpu = record["cpu"]
  assert isinstance(cpu["model"], str) and cpu["model"]
  assert isinstance(cpu["isa_flags"], list)
  if pathlib.Path("/proc/cpuinfo").is_file() and cpu["machine"] in ("x86_64", "AMD64"):
    assert "sse4_2" in cpu["isa_flags"] or "avx" in cpu["isa_flags"]
  assert cpu["model"] in records.provenance(record)
  old = {k: v for k, v in record.items() if k != "cpu"}
  records.validate_record(old)  # Records written before `cpu` existed still load.
  assert "cpu not recorded" in records.provenance(old)
