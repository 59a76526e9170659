"""`ssvbench publish`: a static leaderboard site from result records.

The site is a folder of plain files that works from `file://` (no server, no CDN, no
external fonts or scripts): `index.html` holds the standard table (standard.py) with the
provenance of every record behind it; one page per protocol (dataset, split, protocol
name@version and fingerprint) holds every metric of that protocol; every table sorts by
a click on its header (inline script); `data/` offers the records (JSON, JSON lines) and
each table as CSV/JSON; `plots/` holds static PNG figures when matplotlib (the `plots`
extra) is installed -- without it the site is produced all the same and says so.

No generated file contains an absolute path of the machine that built it: records'
paths (checkpoints, stores, configs) are shown relative when they are relative and cut
to their last components (`.../run/checkpoints/250`) when absolute. Training curves and
configs come from a run's workdir when it is reachable from the records' checkpoint
path (relative to the current directory or to the results file).
"""

from __future__ import annotations

import html
import json
import os
import pathlib
import re
import shutil
from typing import Any, Mapping, Sequence

from ssvbench.results import plots
from ssvbench.results import records as records_lib
from ssvbench.results import standard
from ssvbench.results import tables

MARKER = ".ssvbench-site"
PLOTS_MISSING = ("Plots need the optional `plots` extra (matplotlib): "
                 "pip install 'ssvbench[plots]', then publish again.")


def scrub_path(text: str) -> str:
  """An absolute path cut to its last three components; anything else unchanged."""
  if isinstance(text, str) and (text.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", text)):
    parts = [p for p in re.split(r"[\\/]", text) if p]
    return ".../" + "/".join(parts[-3:]) if len(parts) > 1 else text
  return text


def scrub(value: Any) -> Any:
  """`scrub_path` applied to every string of a JSON-like value."""
  if isinstance(value, str):
    return scrub_path(value)
  if isinstance(value, Mapping):
    return {k: scrub(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [scrub(v) for v in value]
  return value


def _slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower()


def find_workdir(record: Mapping[str, Any], bases: Sequence[pathlib.Path]) -> pathlib.Path | None:
  """The pre-training workdir of a record's checkpoint (`<workdir>/checkpoints/<step>`),
  a relative one looked up under each of `bases`; None when none holds a run."""
  checkpoint = record.get("checkpoint")
  if not checkpoint:
    return None
  path = pathlib.PurePath(checkpoint)
  workdir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
  candidates = [pathlib.Path(workdir)] if workdir.is_absolute() else [
      base / workdir for base in bases]
  for candidate in candidates:
    if (candidate / "config.json").is_file() or (candidate / "metrics.jsonl").is_file():
      return candidate
  return None


def _read_jsonl(path: pathlib.Path) -> list[dict[str, Any]]:
  rows = []
  for line in path.read_text(encoding="utf-8").splitlines():
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      continue  # A run still writing may end in a partial line.
  return rows


def _page(title: str, body: Sequence[str], nav: str) -> str:
  return "\n".join([
      "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
      '<meta name="viewport" content="width=device-width, initial-scale=1">',
      f"<title>{html.escape(title)}</title>", f"<style>{standard.STYLE}</style>", "</head>",
      "<body>", nav, f"<h1>{html.escape(title)}</h1>", *body,
      f"<script>{standard.SORT_SCRIPT}</script>", "</body>", "</html>", ""])


def _protocol_table_html(table: tables.Table, table_id: str) -> str:
  escape = html.escape
  first = len(table.row_fields)
  heads = [f'<th data-column="{i}"{" class=num" if i >= first else ""} scope="col">'
           f"{escape(h)}</th>" for i, h in enumerate(table.headers())]
  out = [f'<table class="sortable" id="{escape(table_id)}">',
         f"<caption>{escape(table.caption)}</caption>",
         "<thead><tr>" + "".join(heads) + "</tr></thead>", "<tbody>"]
  for index, (key, texts, cells) in enumerate(zip(table.row_keys, table.texts, table.cells)):
    row = [f"<td>{escape(k)}</td>" for k in key]
    for column, (text, cell) in enumerate(zip(texts, cells)):
      shown = escape(text)
      if index in table.best[column]:
        shown = f"<b>{shown}</b>"
      sort = "" if cell.missing else f' data-sort="{cell.value!r}"'
      row.append(f'<td class="num"{sort}>{shown}</td>')
    out.append("<tr>" + "".join(row) + "</tr>")
  out += ["</tbody>", "</table>"]
  return "\n".join(out)


def _provenance_html(records: Sequence[Mapping[str, Any]], configs: Mapping[str, str],
                     prefix: str = "") -> str:
  """One row per record: where its number came from."""
  escape = html.escape
  heads = ["run", "method", "dataset", "split", "protocol", "fingerprint", "pre-train step",
           "config", "git SHA", "manifest", "seeds", "date", "device", "provenance"]
  # The uncommitted-tree legend only where some record needs it.
  dirty_note = (" A git SHA followed by -dirty was measured on a tree with uncommitted "
                "changes (-dirty.HASH names them by the hash of their diff)."
                if any("-dirty" in (r.get("git_sha") or "") for r in records) else "")
  out = ['<table class="sortable provenance" id="provenance">',
         "<caption>Provenance of every record on this page: the protocol fingerprint "
         "hashes every evaluator setting; the manifest hash identifies the prepared data."
         f"{dirty_note}</caption>",
         "<thead><tr>" + "".join(f'<th data-column="{i}" scope="col">{escape(h)}</th>'
                                 for i, h in enumerate(heads)) + "</tr></thead>", "<tbody>"]
  for record in sorted(records, key=lambda r: (r["run_name"], r["dataset"], r["split"],
                                                r["created"])):
    extra = record.get("extra") or {}
    protocol = record["protocol"]
    config = configs.get(record["run_name"])
    config_cell = (f'<a href="{escape(prefix + config)}">config.json</a>' if config
                   else escape(scrub_path(record.get("checkpoint") or "-")))
    sha = record.get("git_sha") or "unknown"
    commit, dirty, diff_hash = sha.partition("-dirty")
    sha_text = commit[:10] + dirty + diff_hash
    seeds = ", ".join(f"{k}={v}" for k, v in sorted(record["seeds"].items()))
    device = f"{record['device_kind']} x{record['num_devices']}"
    cells = [record["run_name"], record["method"], record["dataset"], record["split"],
             f"{protocol['name']}@{protocol['version']}", protocol["fingerprint"][:12],
             str(extra.get("pretrain_steps", "-"))]
    row = [f'<td id="run-{escape(_slug(record["run_name"]))}">{escape(cells[0])}</td>']
    row += [f"<td>{escape(c)}</td>" for c in cells[1:]]
    row += [f"<td>{config_cell}</td>", f'<td title="{escape(sha)}"><code>{escape(sha_text)}'
            "</code></td>",
            f'<td title="{escape(record["manifest_hash"])}"><code>'
            f"{escape(record['manifest_hash'][:12])}</code></td>",
            f"<td>{escape(seeds)}</td>", f"<td>{escape(record['created'][:10])}</td>",
            f"<td>{escape(device)}</td>",
            f"<td>{escape(str(extra.get('provenance', 'ssvbench run')))}</td>"]
    out.append("<tr>" + "".join(row) + "</tr>")
  out += ["</tbody>", "</table>"]
  return "\n".join(out)


def _standard_json(table: standard.StandardTable) -> dict[str, Any]:
  return {
      "caption": table.caption,
      "columns": [{"key": c.key, "label": c.label, "protocol": c.protocol,
                   "fingerprint": c.fingerprint, "metric": c.metric} for c in table.columns],
      "rows": [{"kind": r.kind, "rank": r.rank,
                "fields": dict(zip(standard.ROW_FIELDS, r.fields)), "source": r.source,
                "cells": [None if c is None else {
                    "value": c.value, "ci95": c.ci95,
                    "splits": [s for s in c.splits if s > 0], "split_std": c.split_std,
                    "n_seeds": c.n_seeds if r.kind != "reported" else None,
                    "seed_std": c.seed_std, "runs": list(c.runs)} for c in r.cells]}
               for r in table.rows]}


def publish(results: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
            reported: bool = False, rank_by: str | None = None,
            title: str = "ssvbench leaderboard", header: str | None = None,
            make_plots: bool = True) -> dict[str, Any]:
  """Builds the site.

  Args:
    results: results.jsonl files (all records are validated first; a broken file stops
      the build before anything is written).
    out_dir: the site folder (created; files of a previous build are replaced).
    reported: add the published reference rows to the standard table.
    rank_by: headline column of the standard table (see `standard.build`).
    title: page title.
    header: a paragraph under the title (e.g. the command that regenerates the site).
    make_plots: draw figures when matplotlib is available.

  Returns:
    {'pages': [...], 'plots': [...] or None (matplotlib missing), 'records': n}.
  """
  results = [pathlib.Path(p) for p in results]
  all_records = [r for path in results for r in records_lib.load_records(path)]
  if not all_records:
    raise ValueError("publish: the results files hold no records.")
  table = standard.build(all_records, rank_by=rank_by,
                         reported=standard.load_reported() if reported else None)
  protocol_tables = _protocol_tables(all_records)

  out = pathlib.Path(out_dir)
  if out.exists() and not out.is_dir():
    raise ValueError(f"publish: --out {out} is a file; expected a folder for the site.")
  if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
    raise ValueError(f"publish: --out {out} is a non-empty folder that is not an ssvbench "
                     "site; choose a new or empty folder (a previous site is replaced).")
  if out.is_dir():  # A previous build: replace what it wrote, nothing else.
    for sub in ("data", "plots", "configs"):
      if (out / sub).is_dir():
        shutil.rmtree(out / sub)
    for old in out.glob("*.html"):
      old.unlink()
  (out / "data").mkdir(parents=True, exist_ok=True)
  (out / MARKER).write_text("Written by `ssvbench publish`; the folder is replaced on the "
                            "next publish.\n", encoding="utf-8")

  # Runs' workdirs: configs to link and training curves to draw.
  bases = [pathlib.Path.cwd()] + [p.resolve().parent for p in results]
  configs: dict[str, str] = {}
  curves: dict[str, list[dict[str, Any]]] = {}
  seen: set[pathlib.Path] = set()
  for record in all_records:
    workdir = find_workdir(record, bases)
    if workdir is None or workdir.resolve() in seen:
      continue  # One config and one loss curve per run, however many records it has.
    seen.add(workdir.resolve())
    if (workdir / "config.json").is_file():
      name = f"configs/{_slug(record['run_name'])}.json"
      (out / "configs").mkdir(exist_ok=True)
      config = scrub(json.loads((workdir / "config.json").read_text(encoding="utf-8")))
      (out / name).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n",
                              encoding="utf-8")
      configs[record["run_name"]] = name
    if (workdir / "metrics.jsonl").is_file():
      curves[record["run_name"]] = _read_jsonl(workdir / "metrics.jsonl")

  scrubbed = [scrub(r) for r in all_records]
  (out / "data" / "records.json").write_text(
      json.dumps(scrubbed, indent=1, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
  (out / "data" / "records.jsonl").write_text(
      "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in scrubbed),
      "utf-8")
  (out / "data" / "standard.csv").write_text(standard.to_csv(table), "utf-8")
  (out / "data" / "standard.json").write_text(
      json.dumps(_standard_json(table), indent=1, allow_nan=False) + "\n", "utf-8")

  figures = None
  if make_plots and plots.available():
    figures = [figure for figure in (
        plots.accuracy_vs_step(all_records, out / "plots"),
        plots.training_curves(curves, out / "plots"),
        plots.fewshot_vs_shots(all_records, out / "plots"),
        plots.recall_at_k(all_records, out / "plots"),
        plots.heatmap(table, out / "plots")) if figure is not None]

  pages = [("index.html", "standard table")]
  for page, (key, _) in protocol_tables.items():
    pages.append((page, f"{key[0]} ({key[1]}) {key[2]}@{key[3]}"))
  nav = "<nav>" + "".join(f'<a href="{html.escape(p)}">{html.escape(t)}</a>'
                          for p, t in pages) + "</nav>"
  intro = [f'<p class="note">{html.escape(header.strip())}</p>'] if header else []

  body = intro + [
      "<h2>Standard table</h2>", standard.html_table(table),
      '<p class="note">Downloads: <a href="data/standard.csv">standard.csv</a> '
      '(numbers, CIs, splits and seed spread in separate columns) · '
      '<a href="data/standard.json">standard.json</a> · '
      '<a href="data/records.jsonl">records.jsonl</a> · '
      '<a href="data/records.json">records.json</a>. Click a column header to sort.</p>',
      "<h2>Plots</h2>"]
  if figures is None:
    body.append(f'<p class="note" id="plots-missing">{html.escape(PLOTS_MISSING)}</p>')
  elif not figures:
    body.append('<p class="note">The records hold nothing to plot.</p>')
  for name, caption in figures or ():
    body.append(f'<figure><img src="plots/{html.escape(name)}" alt="{html.escape(caption)}" '
                f'style="max-width:100%"><figcaption>{html.escape(caption)}</figcaption>'
                "</figure>")
  body += ["<h2>Per-protocol tables</h2>", "<ul>"] + [
      f'<li><a href="{html.escape(p)}">{html.escape(t)}</a></li>' for p, t in pages[1:]] + [
      "</ul>", "<h2>Provenance</h2>", _provenance_html(all_records, configs)]
  (out / "index.html").write_text(_page(title, body, nav), encoding="utf-8")

  for page, (key, (table_obj, group)) in protocol_tables.items():
    stem = page[:-len(".html")]
    (out / "data" / f"{stem}.csv").write_text(tables.to_csv(table_obj), "utf-8")
    page_body = intro + [
        f'<p class="note">Every metric of protocol {html.escape(table_obj.protocol)} '
        f"(fingerprint <code>{html.escape(table_obj.protocol_fingerprint)}</code>) on "
        f"{html.escape(table_obj.dataset)}, split {html.escape(table_obj.split)}. "
        f'Download: <a href="data/{html.escape(stem)}.csv">{html.escape(stem)}.csv</a>.</p>',
        _protocol_table_html(table_obj, "protocol"), "<h2>Provenance</h2>",
        _provenance_html(group, configs)]
    (out / page).write_text(_page(f"{table_obj.title}: {table_obj.protocol}", page_body, nav),
                            encoding="utf-8")
  return {"pages": [p for p, _ in pages],
          "plots": None if figures is None else [n for n, _ in figures],
          "records": len(all_records)}


def _protocol_tables(records):
  """page name -> (group key, (Table, records)) for every (dataset, split, protocol)."""
  groups: dict[tuple[str, ...], list] = {}
  for record in records:
    protocol = record["protocol"]
    key = (record["dataset"], record["split"], protocol["name"], str(protocol["version"]),
           protocol["fingerprint"])
    groups.setdefault(key, []).append(record)
  out = {}
  for key, group in sorted(groups.items()):
    # A row is one evaluated checkpoint: model, run, pre-training seed and step.
    rows = [dict(r, extra={"pretrain_steps": "-", **(r.get("extra") or {})}) for r in group]
    fields = ("method", "backbone", "run_name", "seeds.pretrain", "extra.pretrain_steps")
    try:
      table = tables.leaderboard(rows, rows=fields)
    except ValueError:  # The same checkpoint evaluated twice: show both, by date.
      table = tables.leaderboard(rows, rows=fields + ("created",))
    page = _slug(f"protocol-{key[0]}-{key[1]}-{key[2]}-{key[3]}-{key[4][:8]}") + ".html"
    out[page] = (key, (table, group))
  return out
