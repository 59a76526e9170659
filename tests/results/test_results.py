"""Tests for result records (provenance, validation, JSONL I/O) and leaderboard tables."""

import datetime
import json
import math
import os
import pathlib
import platform
import subprocess

import jax
import pytest

from ssvbench.results import records
from ssvbench.results import tables

PROTOCOL = dict(name="ucf101", version=1, fingerprint="0123456789abcdef")


def _record(method="simclr", metrics=None, run_name="run_a", protocol=PROTOCOL,
            dataset="ucf101", **overrides):
  record = records.make_record(
      method=method, backbone="r3d18", pretrain_data="synthactions", dataset=dataset,
      split="split1/test", protocol=protocol,
      metrics=metrics if metrics is not None else {"knn/top1": 0.5},
      seeds={"pretrain": 0, "eval": 1}, manifest_hash="deadbeef",
      checkpoint=pathlib.Path("/ckpt/100"), run_name=run_name)
  record.update(overrides)
  return record


# ----------------------------------------------------------------------------- records


def test_make_record_fills_provenance():
  record = _record(metrics={"knn/top1": 0.25, "linear/top1": 1})
  assert record["record_version"] == records.RECORD_VERSION
  created = datetime.datetime.fromisoformat(record["created"])
  assert created.utcoffset() == datetime.timedelta(0)
  assert abs(datetime.datetime.now(datetime.timezone.utc) - created).total_seconds() < 60
  assert record["protocol"] == {"name": "ucf101", "version": "1",
                                "fingerprint": "0123456789abcdef"}
  assert record["metrics"] == {"knn/top1": 0.25, "linear/top1": 1.0}
  assert isinstance(record["metrics"]["linear/top1"], float)
  assert record["checkpoint"] == "/ckpt/100"
  assert record["num_devices"] == jax.device_count() == 8
  assert record["num_processes"] == 1
  assert record["device_kind"] == jax.devices()[0].device_kind
  versions = record["library_versions"]
  assert versions["jax"] == jax.__version__
  assert versions["python"] == platform.python_version()
  assert set(versions) == set(records.TRACKED_DISTRIBUTIONS) | {"python"}
  package_dir = pathlib.Path(records.__file__).parents[1]
  head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package_dir,
                        capture_output=True, text=True, check=True).stdout.strip()
  assert record["git_sha"] == head or record["git_sha"].startswith(head + "-dirty.")
  json.dumps(record, allow_nan=False)  # Serialisable as is.


def test_make_record_accepts_numpy_and_jax_scalars():
  import numpy as np
  record = _record(metrics={"a": np.float32(0.5), "b": jax.numpy.asarray(0.25)})
  assert record["metrics"] == {"a": 0.5, "b": 0.25}


def _git(repo, *args):
  subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                 check=True, capture_output=True)


def test_git_sha_clean_dirty_and_absent(tmp_path, monkeypatch):
  package = tmp_path / "pkg"
  package.mkdir()
  (package / "__init__.py").write_text("x = 1\n")
  _git(tmp_path, "init", "-q")
  _git(tmp_path, "add", ".")
  _git(tmp_path, "commit", "-q", "-m", "init")
  monkeypatch.setattr(records, "_PACKAGE_DIR", package)
  head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                        text=True, check=True).stdout.strip()
  assert records.source_git_sha() == head
  # Untracked files outside the package (outputs) do not make the tree dirty ...
  (tmp_path / "results.jsonl").write_text("{}\n")
  assert records.source_git_sha() == head
  # ... an untracked module inside it does ...
  (package / "new_method.py").write_text("y = 2\n")
  untracked = records.source_git_sha()
  assert untracked.startswith(head + "-dirty.") and len(untracked) == len(head) + 19
  # ... named by its content: the same change gives the same name, another one another.
  assert records.source_git_sha() == untracked
  (package / "new_method.py").write_text("y = 3\n")
  assert records.source_git_sha() not in (untracked, head)
  (package / "new_method.py").unlink()
  # ... and so does a modified tracked file.
  (package / "__init__.py").write_text("x = 2\n")
  modified = records.source_git_sha()
  assert modified.startswith(head + "-dirty.") and modified != untracked
  (package / "__init__.py").write_text("x = 3\n")
  assert records.source_git_sha() not in (modified, head)
  # Outside any git work tree, or without git at all: None, never a crash.
  outside = tmp_path.parent / (tmp_path.name + "_nogit")
  outside.mkdir()
  monkeypatch.setattr(records, "_PACKAGE_DIR", outside)
  monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
  assert records.source_git_sha() is None
  monkeypatch.setattr(records, "_PACKAGE_DIR", package)
  monkeypatch.setenv("PATH", str(outside))
  assert records.source_git_sha() is None


def test_round_trip(tmp_path):
  path = tmp_path / "sub" / "results.jsonl"
  first = _record(run_name="a", extra={"rho": 2})
  second = _record(run_name="b", metrics={"retrieval/R@1": 0.125})
  records.append_record(path, first)
  records.append_record(path, second)
  assert len(path.read_text().splitlines()) == 2
  assert records.load_records(path) == [first, second]


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("manifest_hash"), r"missing field\(s\) \['manifest_hash'\]"),
    (lambda r: r.update(metrics={"knn/top1": "0.5"}), r"'metrics.knn/top1' must be a"),
    (lambda r: r.update(metrics={"knn/top1": True}), r"'metrics.knn/top1' must be a"),
    (lambda r: r.update(metrics={"knn/top1": math.nan}),
     r"'metrics.knn/top1' must be finite"),
    (lambda r: r.update(metrics={}), r"'metrics' is empty"),
    (lambda r: r.update(seeds={"pretrain": 1.5}), r"'seeds.pretrain' must be an integer"),
    (lambda r: r.update(num_devices="8"), r"'num_devices' must be int"),
    (lambda r: r.update(num_devices=0), r"'num_devices' must be >= 1"),
    (lambda r: r.update(checkpoint=3), r"'checkpoint' must be str or null"),
    (lambda r: r.update(method=""), r"'method' must be a non-empty string"),
    (lambda r: r.update(created="yesterday"), r"'created' must be an ISO-8601"),
    (lambda r: r.update(protocol={"name": "u", "version": "1"}),
     r"'protocol.fingerprint' must be a non-empty string"),
    (lambda r: r.update(record_version=99), r"'record_version' is 99"),
    (lambda r: r.update(accuracy=0.5), r"unknown field\(s\) \['accuracy'\]"),
    (lambda r: r.update(extra={"x": object()}), r"not JSON-serialisable"),
])
def test_validation_errors_name_the_field(mutate, message):
  record = _record()
  mutate(record)
  with pytest.raises(ValueError, match=message):
    records.validate_record(record)


def test_make_record_rejects_bad_metric():
  with pytest.raises(ValueError, match=r"'metrics.knn/top1' must be finite"):
    _record(metrics={"knn/top1": float("inf")})


def test_malformed_line_is_reported_with_its_number(tmp_path):
  path = tmp_path / "results.jsonl"
  records.append_record(path, _record())
  with open(path, "a") as handle:
    handle.write("\n{not json\n")
  with pytest.raises(ValueError, match=r"results.jsonl:3: malformed JSON"):
    records.load_records(path)
  bad = _record()
  bad["metrics"] = {"knn/top1": "high"}
  path.write_text(json.dumps(_record()) + "\n" + json.dumps(bad) + "\n")
  with pytest.raises(ValueError, match=r"results.jsonl:2: field 'metrics.knn/top1'"):
    records.load_records(path)


def test_append_after_truncated_line_keeps_new_record(tmp_path):
  path = tmp_path / "results.jsonl"
  path.write_text(json.dumps(_record(run_name="a")) + "\n" + '{"record_ver')
  with pytest.warns(UserWarning, match="truncated"):
    records.append_record(path, _record(run_name="b"))
  lines = path.read_text().splitlines()
  assert len(lines) == 3 and json.loads(lines[2])["run_name"] == "b"
  # The truncated record is lost, not the file: reading skips it by number.
  assert [r["run_name"] for r in records.load_records(path)] == ["a", "b"]


def test_append_refuses_invalid_record(tmp_path):
  path = tmp_path / "results.jsonl"
  record = _record()
  del record["seeds"]
  with pytest.raises(ValueError, match="seeds"):
    records.append_record(path, record)
  assert not path.exists() or path.read_text() == ""


# ------------------------------------------------------------------------------ tables


def _example_records():
  return [
      _record(method="simclr", run_name="a", metrics={
          "knn/top1": 61.2, "linear/top1": 70.0, "fewshot_episodic/5way_1shot": 50.0,
          "fewshot_episodic/5way_1shot_ci95": 1.23, "train/loss": 1.23456}),
      _record(method="byol", run_name="b", metrics={
          "knn/top1": 65.5, "fewshot_episodic/5way_1shot": 45.0, "train/loss": 0.5}),
      # A second evaluation of the simclr checkpoint fills the same row.
      _record(method="simclr", run_name="a", metrics={"retrieval/R@1": 33.33}),
  ]


EXPECTED_MARKDOWN = """\
### ucf101 (split1/test)

| method | backbone | fewshot_episodic/5way_1shot (±ci95) | knn/top1 | linear/top1 | retrieval/R@1 | train/loss |
| --- | --- | ---: | ---: | ---: | ---: | ---: |
| byol | r3d18 | 45.0 | **65.5** | - | - | **0.500** |
| simclr | r3d18 | **50.0 ± 1.2** | 61.2 | 70.0 | 33.3 | 1.235 |

ucf101, split split1/test; protocol ucf101@1, fingerprint 01234567. Accuracies in %. \
± ci95: half-width of the 95% confidence interval.
"""

EXPECTED_CSV = """\
method,backbone,fewshot_episodic/5way_1shot,fewshot_episodic/5way_1shot_ci95,\
fewshot_episodic/5way_1shot_top,knn/top1,knn/top1_top,linear/top1,linear/top1_top,retrieval/R@1,\
retrieval/R@1_top,train/loss,train/loss_top,dataset,split,protocol,fingerprint
byol,r3d18,45.0,,0,65.5,1,,,,,0.5,1,ucf101,split1/test,ucf101@1,0123456789abcdef
simclr,r3d18,50.0,1.23,1,61.2,0,70.0,0,33.33,0,1.23456,0,ucf101,split1/test,ucf101@1,\
0123456789abcdef
"""


def test_markdown_and_csv_exact():
  table = tables.leaderboard(_example_records())
  assert tables.to_markdown(table) == EXPECTED_MARKDOWN
  assert tables.to_csv(table) == EXPECTED_CSV


def test_metric_selection_and_order():
  table = tables.leaderboard(_example_records(), metrics=["linear/top1", "knn/top1"])
  assert table.headers() == ["method", "backbone", "linear/top1", "knn/top1"]
  assert table.texts == (("-", "65.5"), ("70.0", "61.2"))
  with pytest.raises(ValueError, match=r"\['linear/top5'\] appear in no record"):
    tables.leaderboard(_example_records(), metrics=["linear/top5"])


def test_latex_escaping_and_bold():
  assert (tables.latex_escape(r"a_b & 5% $x$ #1 {y} ~ ^ \ ±")
          == r"a\_b \& 5\% \$x\$ \#1 \{y\} \textasciitilde{} \textasciicircum{} "
          r"\textbackslash{} $\pm$")
  recs = [_record(method="rho_moco&v2", run_name="a", metrics={"knn/top1": 25.0}),
          _record(method="byol", run_name="b", metrics={"knn/top1": 75.0})]
  latex = tables.to_latex(tables.leaderboard(recs))
  assert r"\begin{tabular}{llr}" in latex and r"\toprule" in latex
  assert r"\bottomrule" in latex and r"\midrule" in latex
  assert r"method & backbone & knn/top1 \\" in latex
  assert r"byol & r3d18 & \textbf{75.0} \\" in latex
  assert r"rho\_moco\&v2 & r3d18 & 25.0 \\" in latex
  assert r"Accuracies in \%." in latex
  assert "rho_moco" not in latex


def test_html_escaping():
  recs = [_record(method="<script>alert('x')</script>", run_name="a",
                  metrics={"knn/top1": 50.0}),
          _record(method="a&b", run_name="b", metrics={"knn/top1": 25.0})]
  page = tables.to_html(tables.leaderboard(recs), header="cmd < x & y")
  assert "<script>" not in page
  assert "<td>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</td>" in page
  assert "<td>a&amp;b</td>" in page
  assert '<td class="num"><b>50.0</b></td>' in page
  assert "<p>cmd &lt; x &amp; y</p>" in page
  assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_best_in_bold_ties_and_lower_is_better():
  recs = [_record(method="m1", run_name="1", metrics={"knn/top1": 60.04, "x/loss": 2.0}),
          _record(method="m2", run_name="2", metrics={"knn/top1": 59.96, "x/loss": 1.0}),
          _record(method="m3", run_name="3", metrics={"knn/top1": 40.0, "x/loss": 3.0})]
  table = tables.leaderboard(recs)
  # 60.04 and 59.96 both display as 60.0: both bold; loss: the lowest.
  assert table.best == (frozenset({0, 1}), frozenset({1}))
  markdown = tables.to_markdown(table)
  assert "| m1 | r3d18 | **60.0** | 2.000 |" in markdown
  assert "| m2 | r3d18 | **60.0** | **1.000** |" in markdown
  assert "| m3 | r3d18 | 40.0 | 3.000 |" in markdown
  # A column with a single value has no best.
  single = tables.leaderboard(recs[:1])
  assert single.best == (frozenset(), frozenset())


def test_protocols_are_never_merged():
  other = dict(PROTOCOL, fingerprint="ffffffffffffffff")
  recs = [_record(method="a", run_name="a"), _record(method="b", run_name="b",
                                                     protocol=other)]
  with pytest.raises(ValueError, match=r"found 2.*fp 01234567.*fp ffffffff"):
    tables.leaderboard(recs)
  separate = tables.leaderboards(recs)
  assert [t.protocol_fingerprint for t in separate] == ["0123456789abcdef",
                                                        "ffffffffffffffff"]
  assert [t.row_keys for t in separate] == [(("a", "r3d18"),), (("b", "r3d18"),)]
  csv_lines = tables.to_csv(separate).splitlines()
  assert csv_lines[1].endswith("0123456789abcdef")
  assert csv_lines[2].endswith("ffffffffffffffff")
  assert tables.to_markdown(separate).count("###") == 2


def test_conflicting_values_for_one_row_raise():
  recs = [_record(run_name="seed0", metrics={"knn/top1": 50.0}),
          _record(run_name="seed1", metrics={"knn/top1": 60.0})]
  with pytest.raises(ValueError, match=r"'knn/top1' = 50.0 from run 'seed0' and 60.0"):
    tables.leaderboard(recs)
  table = tables.leaderboard(recs, rows=("method", "run_name"))
  assert table.row_keys == (("simclr", "seed0"), ("simclr", "seed1"))


def test_dotted_rows_and_percent_range():
  recs = [_record(run_name="a", extra={"rho": 2}),
          _record(run_name="b", extra={"rho": 4})]
  table = tables.leaderboard(recs, rows=("method", "extra.rho"))
  assert table.row_keys == (("simclr", "2"), ("simclr", "4"))
  with pytest.raises(ValueError, match=r"'extra.missing' is missing"):
    tables.leaderboard(recs, rows=("extra.missing",))
  with pytest.raises(ValueError, match=r"'knn/top1' of run 'a' is 161.2; accuracy-like"):
    tables.leaderboard([_record(run_name="a", metrics={"knn/top1": 161.2})])


def test_write_tables(tmp_path):
  paths = tables.write_tables(_example_records(), tmp_path / "out", "synth",
                              header="Regenerate: ssvbench tables results.jsonl")
  assert sorted(paths) == ["csv", "html", "md", "tex"]
  assert paths["md"].read_text().startswith("Regenerate: ssvbench tables")
  assert paths["csv"].read_text() == EXPECTED_CSV
  assert paths["tex"].read_text().startswith("% Regenerate: ssvbench tables")
  assert os.path.getsize(paths["html"]) > 0


def test_every_accuracy_metric_is_a_percentage():
  for metric in ("knn/top1", "linear/val_top1", "linear/mean_class_acc", "fewshot_linear/5shot",
                 "fewshot_linear/5shot_std", "fewshot_episodic/5way_1shot_ci95", "retrieval/R@5"):
    assert tables.is_percentage(metric), metric
  for metric in ("diagnostics/alignment", "diagnostics/effective_rank", "linear/loss"):
    assert not tables.is_percentage(metric), metric


# A torn last line (a crash mid-append) is skipped with a warning (was tests/test_faults.py).
def test_leaderboard_skips_a_torn_last_line(tmp_path, capsys, monkeypatch, caplog):
  path = tmp_path / "results.jsonl"
  records.append_record(path, _record(run_name="a"))
  records.append_record(path, _record(run_name="b"))
  whole = path.read_bytes()
  path.write_bytes(whole[:len(whole) - len(whole.splitlines()[-1]) // 2 - 1])  # Torn "b".
  from ssvbench import cli
  code = cli.main(["leaderboard", "--results", str(path)])
  err = capsys.readouterr().err
  assert code == 0, err
  assert f"{path}:2: skipping a truncated record" in caplog.text
  assert [r["run_name"] for r in records.load_records(path)] == ["a"]
