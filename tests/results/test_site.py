"""`ssvbench publish`: the static site, its files, and its DOM in headless Chromium."""

import json
import pathlib
import re
import shutil
import subprocess
import urllib.parse

import pytest

from ssvbench import cli
from ssvbench.results import plots
from ssvbench.results import records as records_lib
from ssvbench.results import site

from test_standard_table import make

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
ABSOLUTE = re.compile(r"(?<![\w.:/])/(?:tmp|work|home|root|Users|var|opt|mnt)/")


def _records(tmp_path):
  """Three methods on UCF101 (3, 3 and 1 splits), K400, steps, with a reachable workdir."""
  workdir = tmp_path / "runs" / "simclr"
  (workdir / "checkpoints").mkdir(parents=True)
  (workdir / "config.json").write_text(json.dumps(
      {"method": {"name": "simclr"}, "data": {"store_dir": str(tmp_path / "store")}}))
  (workdir / "metrics.jsonl").write_text("".join(
      json.dumps({"step": s, "loss": 5.0 / s, "online/knn/top1": 10.0 + s})
      + "\n" for s in (10, 20, 30)))
  out = []
  for method, base in (("simclr", 60.0), ("byol", 55.0), ("random_init", 35.0)):
    for split in ((1, 2, 3) if method != "byol" else (1,)):
      metrics = {"linear/top1": base + split, "knn/top1": base - 10 + split,
                 "retrieval/R@1": base - 20, "retrieval/R@5": base - 5,
                 "retrieval/R@10": base, "fewshot_linear/1shot": base - 30,
                 "fewshot_linear/1shot_std": 2.0, "fewshot_linear/5shot": base - 20,
                 "fewshot_linear/5shot_std": 1.0}
      record = make(method, "ucf101", metrics, split=split, pretrain_steps=30)
      record["checkpoint"] = str(workdir / "checkpoints" / "30")  # Absolute on purpose.
      out.append(record)
  for steps, value in ((10, 40.0), (20, 50.0), (30, 55.0)):
    record = make("simclr", "kinetics400", {"linear/top1": value, "linear/top1_ci95": 0.7},
                  pretrain_steps=steps)
    out.append(record)
  path = tmp_path / "results.jsonl"
  for record in out:
    records_lib.append_record(path, record)
  return path


def _dom(url, tmp_path, budget=True):
  args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--no-first-run", f"--user-data-dir={tmp_path / 'chrome-profile'}",
          *(["--virtual-time-budget=2000"] if budget else []), "--dump-dom", url]
  completed = subprocess.run(args, capture_output=True, text=True, timeout=120)
  assert completed.returncode == 0, completed.stderr[-2000:]
  return completed.stdout


def _methods(dom, table_id="standard"):
  table = dom.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
  body = table.split("<tbody", 1)[1].split("</tbody>", 1)[0]  # The measured section.
  return re.findall(r"<tr><td[^>]*>[^<]*</td><td>([^<]+)</td>", body)


def test_publish_writes_a_self_contained_site(tmp_path, capsys):
  results = _records(tmp_path)
  out = tmp_path / "site"
  assert cli.main(["publish", "--results", str(results), "--out", str(out)]) == 0
  summary = json.loads(capsys.readouterr().out)
  files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
  assert "index.html" in files and "data/records.json" in files
  assert "data/standard.csv" in files and "data/standard.json" in files
  # The reachable workdir's config is copied once (every record here points at it).
  assert [f for f in files if f.startswith("configs/")] == ["configs/simclr_s0.json"]
  # A page per (dataset, split, protocol): UCF101 splits 1-3 and K400.
  assert sum(f.startswith("protocol-") and f.endswith(".html") for f in files) == 4
  if plots.available():
    assert set(summary["plots"]) == {"accuracy_vs_step.png", "training_curves.png",
                                     "fewshot_vs_shots.png", "recall_at_k.png",
                                     "heatmap.png"}
  else:
    assert summary["plots"] is None
    assert "plots-missing" in (out / "index.html").read_text()
  # No absolute machine path anywhere in the site (records' paths are cut).
  for name in files:
    if name.endswith((".html", ".json", ".jsonl", ".csv")):
      text = (out / name).read_text()
      assert not ABSOLUTE.search(text), (name, ABSOLUTE.search(text))
      assert str(tmp_path) not in text, name
  index = (out / "index.html").read_text()
  assert "http://" not in index and "https://" not in index  # Nothing fetched.
  for link in re.findall(r'(?:href|src)="([^"#?]+)"', index):
    assert (out / urllib.parse.unquote(link)).is_file(), link
  # A second publish replaces the site; a foreign non-empty folder is refused.
  assert cli.main(["publish", "--results", str(results), "--out", str(out)]) == 0
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "notes.txt").write_text("keep me")
  assert cli.main(["publish", "--results", str(results), "--out", str(foreign)]) == 2
  assert "not an ssvbench site" in capsys.readouterr().err
  assert (foreign / "notes.txt").read_text() == "keep me"


def test_site_without_matplotlib_says_plots_need_the_extra(tmp_path, monkeypatch):
  monkeypatch.setattr(plots, "available", lambda: False)
  summary = site.publish([_records(tmp_path)], tmp_path / "site")
  assert summary["plots"] is None
  assert site.PLOTS_MISSING.split(":")[0] in (tmp_path / "site" / "index.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium; "
                    "see .ci/install_chromium)")
def test_site_in_headless_chromium(tmp_path):
  out = tmp_path / "site"
  site.publish([_records(tmp_path)], out, reported=True)
  url = (out / "index.html").as_uri()
  dom = _dom(url, tmp_path)
  # Rows: ranked by UCF101 linear (3-split means 62 vs byol's split-1 56).
  assert _methods(dom) == ["simclr", "byol"]
  assert "56.0 [s1]" in dom  # The one-split mean is labelled.
  assert "baselines" in dom and "random_init" in dom
  assert "reported (published, not measured by ssvbench)" in dom and "63.8" in dom
  assert "<caption>One row per pre-trained model" in dom
  assert "Provenance of every record" in dom
  # Sorting on load from the URL (ascending by method).
  dom = _dom(url + "?sort=method&dir=asc", tmp_path)
  assert _methods(dom) == ["byol", "simclr"]
  assert 'aria-sort="ascending"' in dom
  # A header click: a harness page next to the index clicks "method" via the DOM.
  harness = out / "click.html"
  harness.write_text((out / "index.html").read_text().replace(
      "</body>", "<script>var th = Array.prototype.find.call("
      "document.querySelectorAll('#standard th[data-column]'), function (h) {"
      " return h.textContent.trim() === 'method'; }); th.click(); th.click();</script></body>"))
  dom = _dom(harness.as_uri(), tmp_path)
  # Text columns sort ascending on the first click, descending on the second.
  assert _methods(dom) == ["simclr", "byol"]
  assert 'aria-sort="descending"' in dom
  harness.write_text(harness.read_text().replace("th.click(); th.click();", "th.click();"))
  assert _methods(_dom(harness.as_uri(), tmp_path)) == ["byol", "simclr"]
  # The per-protocol page holds every metric.
  page = next(out.glob("protocol-ucf101-*split1*.html"))
  dom = _dom(page.as_uri(), tmp_path)
  for metric in ("knn/top1", "linear/top1", "retrieval/R@5", "fewshot_linear/5shot"):
    assert metric in dom
