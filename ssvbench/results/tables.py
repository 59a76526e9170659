"""Leaderboard tables rendered from result records (Markdown, CSV, LaTeX, HTML).

Tables are built from the JSON-lines records only, never typed by hand, and each table
states the protocol its numbers were measured under (name@version and a short
fingerprint). Numbers measured under different protocols are never put side by side
unmarked: records are grouped by (dataset, split, protocol name, version, fingerprint)
and each group becomes its own table. `leaderboards` returns all groups; `leaderboard`
insists on exactly one and raises otherwise, naming the groups. CSV output, which has no
caption, carries dataset/split/protocol/fingerprint columns on every row instead.

Within a table, a row is one value of the `rows` fields (default method and backbone).
Several records may fill one row (e.g. a kNN and a linear evaluation of one checkpoint);
two records giving different values for the same metric of the same row are an error,
because choosing one silently is how a leaderboard ends up with a cherry-picked number.
Add a distinguishing field (`run_name`, `pretrain_data`, `extra.<key>`) to `rows`.

Formatting: accuracy-like metrics (leaf name `top<k>`, `R@<k>`, `recall@<k>`, `acc`,
`accuracy`, `<n>way_<k>shot`, `mAP`) are stored as percentages (the convention of the
evaluators and of `evaluate-features`) and shown with one decimal; they must lie in
[0, 100]. Other metrics use `decimals` decimals. A
metric with a `<name>_ci95` (preferred) or `<name>_std` sibling is shown as
`mean ± spread`. The best value of each column (at displayed precision, all ties) is
bold in Markdown, LaTeX and HTML when the column has at least two values; lower is
better for metrics whose name contains `loss` or `error`.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import os
import pathlib
import re
from typing import Any, Iterable, Mapping, Sequence

_SPREAD_SUFFIXES = ("_ci95", "_std")
_PERCENT_LEAF = re.compile(
    r"^((val_)?top\d+|R@\d+|recall@\d+|acc|accuracy|mean_class_acc|\d+way_\d+shot|\d+shot|"
    r"mAP)$", re.IGNORECASE)
_LOWER_IS_BETTER = re.compile(r"loss|error", re.IGNORECASE)
MISSING = "-"


def is_percentage(metric: str) -> bool:
  """Whether a metric (or its `_ci95`/`_std` sibling) is an accuracy shown in %."""
  for suffix in _SPREAD_SUFFIXES:
    if metric.endswith(suffix):
      metric = metric[:-len(suffix)]
      break
  return bool(_PERCENT_LEAF.match(metric.rsplit("/", 1)[-1]))


@dataclasses.dataclass(frozen=True)
class Cell:
  """One table entry in display units (percentages already x100); None if missing."""
  value: float | None
  spread: float | None = None

  @property
  def missing(self) -> bool:
    return self.value is None


@dataclasses.dataclass(frozen=True)
class Table:
  """A leaderboard for one (dataset, split, protocol).

  Attributes:
    dataset: evaluation dataset of every number in the table.
    split: evaluation split.
    protocol_name, protocol_version, protocol_fingerprint: the protocol of every number.
    row_fields: names of the fields that identify a row.
    metrics: metric names, one per column.
    spread_kinds: per metric, `ci95`, `std` or None (what follows `±`).
    row_keys: per row, the values of `row_fields`.
    cells: per row, one `Cell` per metric (display units: percentages already x100).
    texts: per row, the formatted number per metric (no bold).
    best: per metric, the set of row indices holding the best displayed value.
  """
  dataset: str
  split: str
  protocol_name: str
  protocol_version: str
  protocol_fingerprint: str
  row_fields: tuple[str, ...]
  metrics: tuple[str, ...]
  spread_kinds: tuple[str | None, ...]
  row_keys: tuple[tuple[str, ...], ...]
  cells: tuple[tuple[Cell, ...], ...]
  texts: tuple[tuple[str, ...], ...]
  best: tuple[frozenset[int], ...]

  @property
  def protocol(self) -> str:
    return f"{self.protocol_name}@{self.protocol_version}"

  @property
  def short_fingerprint(self) -> str:
    return self.protocol_fingerprint[:8]

  @property
  def title(self) -> str:
    return f"{self.dataset} ({self.split})"

  @property
  def caption(self) -> str:
    """The line that ties every number of the table to its protocol."""
    text = (f"{self.dataset}, split {self.split}; protocol {self.protocol}, "
            f"fingerprint {self.short_fingerprint}.")
    if any(is_percentage(metric) for metric in self.metrics):
      text += " Accuracies in %."
    if "ci95" in self.spread_kinds:
      text += " ± ci95: half-width of the 95% confidence interval."
    if "std" in self.spread_kinds:
      text += " ± std: standard deviation."
    return text

  def headers(self) -> list[str]:
    metric_headers = [metric if kind is None else f"{metric} (±{kind})"
                      for metric, kind in zip(self.metrics, self.spread_kinds)]
    return list(self.row_fields) + metric_headers


def _field(record: Mapping[str, Any], dotted: str) -> str:
  value: Any = record
  for part in dotted.split("."):
    if not isinstance(value, Mapping) or part not in value:
      raise ValueError(f"leaderboard: row field '{dotted}' is missing from the record of "
                       f"run '{record.get('run_name')}'.")
    value = value[part]
  return "null" if value is None else str(value)


def _group_key(record: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
  protocol = record["protocol"]
  return (record["dataset"], record["split"], protocol["name"], str(protocol["version"]),
          protocol["fingerprint"])


def _default_metrics(records: Iterable[Mapping[str, Any]]) -> list[str]:
  names = {name for record in records for name in record["metrics"]}
  def is_absorbed_spread(name):
    return any(name.endswith(suffix) and name[:-len(suffix)] in names
               for suffix in _SPREAD_SUFFIXES)
  return sorted(name for name in names if not is_absorbed_spread(name))


def _to_display(metric: str, value: float, run_name: str) -> float:
  if is_percentage(metric):
    if not 0.0 <= value <= 100.0:
      raise ValueError(f"leaderboard: metric '{metric}' of run '{run_name}' is {value}; "
                       "accuracy-like metrics are stored as percentages in [0, 100].")
  return value


def _format(value: float, metric: str, decimals: int) -> str:
  return f"{value:.{1 if is_percentage(metric) else decimals}f}"


def _build_table(key, records, metrics, rows, decimals) -> Table:
  dataset, split, protocol_name, protocol_version, fingerprint = key
  metrics = list(metrics) if metrics is not None else _default_metrics(records)
  all_names = {name for record in records for name in record["metrics"]}
  spread_kinds = []
  for metric in metrics:
    kinds = [suffix[1:] for suffix in _SPREAD_SUFFIXES if metric + suffix in all_names]
    spread_kinds.append(kinds[0] if kinds else None)

  # Merge each row's records; a metric given twice with different values is ambiguous.
  merged: dict[tuple[str, ...], dict[str, tuple[float, str]]] = {}
  for record in records:
    row_key = tuple(_field(record, field) for field in rows)
    row = merged.setdefault(row_key, {})
    for name, value in record["metrics"].items():
      previous = row.get(name)
      if previous is not None and previous[0] != value:
        raise ValueError(
            f"leaderboard: row {dict(zip(rows, row_key))} of {dataset} ({split}) gets "
            f"'{name}' = {previous[0]} from run '{previous[1]}' and {value} from run "
            f"'{record['run_name']}'; add a distinguishing field (e.g. 'run_name') to "
            "`rows`.")
      row[name] = (value, record["run_name"])

  row_keys = sorted(merged)
  cells, texts = [], []
  for row_key in row_keys:
    row = merged[row_key]
    row_cells, row_texts = [], []
    for metric, kind in zip(metrics, spread_kinds):
      if metric not in row:
        row_cells.append(Cell(None))
        row_texts.append(MISSING)
        continue
      value = _to_display(metric, row[metric][0], row[metric][1])
      text = _format(value, metric, decimals)
      spread = None
      if kind is not None and f"{metric}_{kind}" in row:
        spread_value, spread_run = row[f"{metric}_{kind}"]
        spread = _to_display(metric, spread_value, spread_run)
        text += f" ± {_format(spread, metric, decimals)}"
      row_cells.append(Cell(value, spread))
      row_texts.append(text)
    cells.append(tuple(row_cells))
    texts.append(tuple(row_texts))

  best = []
  for column, metric in enumerate(metrics):
    # Compare at displayed precision so that equal-looking numbers are bold together.
    shown = {index: float(_format(row[column].value, metric, decimals))
             for index, row in enumerate(cells) if not row[column].missing}
    if len(shown) < 2:
      best.append(frozenset())
      continue
    pick = min if _LOWER_IS_BETTER.search(metric) else max
    target = pick(shown.values())
    best.append(frozenset(index for index, value in shown.items() if value == target))

  return Table(dataset=dataset, split=split, protocol_name=protocol_name,
               protocol_version=protocol_version, protocol_fingerprint=fingerprint,
               row_fields=tuple(rows), metrics=tuple(metrics),
               spread_kinds=tuple(spread_kinds), row_keys=tuple(row_keys),
               cells=tuple(cells), texts=tuple(texts), best=tuple(best))


def leaderboards(
    records: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    rows: Sequence[str] = ("method", "backbone"),
    *,
    decimals: int = 3,
) -> list[Table]:
  """One table per (dataset, split, protocol name, version, fingerprint).

  Args:
    records: result records (see `ssvbench.results.records`).
    metrics: metric names to show as columns, in order; None shows every metric found
      in the group (sorted), with `_ci95`/`_std` siblings folded into `mean ± spread`.
    rows: record fields identifying a row; dotted paths reach into dicts
      (`extra.rho`, `seeds.pretrain`).
    decimals: decimals for metrics that are not percentages.

  Returns:
    Tables sorted by their group key; empty if `records` is empty.
  """
  if not rows:
    raise ValueError("leaderboard: `rows` must name at least one record field.")
  if metrics is not None:
    # A misspelt metric would otherwise become a silent column of "-".
    available = {name for record in records for name in record["metrics"]}
    unknown = [metric for metric in metrics if metric not in available]
    if unknown:
      raise ValueError(f"leaderboard: metric(s) {unknown} appear in no record; "
                       f"available: {sorted(available)}.")
  groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
  for record in records:
    groups.setdefault(_group_key(record), []).append(record)
  return [_build_table(key, groups[key], metrics, tuple(rows), decimals)
          for key in sorted(groups)]


def leaderboard(
    records: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    rows: Sequence[str] = ("method", "backbone"),
    *,
    decimals: int = 3,
) -> Table:
  """The leaderboard of records that share one dataset, split and protocol.

  Args:
    records: result records, all with the same dataset, split and protocol.
    metrics: see `leaderboards`.
    rows: see `leaderboards`.
    decimals: see `leaderboards`.

  Returns:
    The single table.

  Raises:
    ValueError: if the records are empty or span several (dataset, split, protocol)
      groups; use `leaderboards` to get one table per group.
  """
  tables = leaderboards(records, metrics, rows, decimals=decimals)
  if len(tables) != 1:
    groups = [f"{t.dataset} ({t.split}) {t.protocol} fp {t.short_fingerprint}"
              for t in tables]
    raise ValueError(f"leaderboard: expected records of exactly one (dataset, split, "
                     f"protocol), found {len(tables)}: {groups}. Numbers from different "
                     "protocols are not merged; use `leaderboards` for one table each.")
  return tables[0]


def _as_list(tables: Table | Sequence[Table]) -> list[Table]:
  return [tables] if isinstance(tables, Table) else list(tables)


def _markdown_escape(text: str) -> str:
  return text.replace("|", r"\|")


def to_markdown(tables: Table | Sequence[Table], header: str | None = None) -> str:
  """GitHub-flavoured Markdown: a heading, the table, and the protocol caption.

  Args:
    tables: one table or several (rendered one after the other).
    header: optional paragraph put first (e.g. the command that regenerates the file).

  Returns:
    The Markdown text, ending in a newline.
  """
  parts = [header.strip() + "\n"] if header else []
  for table in _as_list(tables):
    lines = [f"### {_markdown_escape(table.title)}", ""]
    lines.append("| " + " | ".join(map(_markdown_escape, table.headers())) + " |")
    lines.append("|" + "|".join(
        [" --- "] * len(table.row_fields) + [" ---: "] * len(table.metrics)) + "|")
    for index, (row_key, texts) in enumerate(zip(table.row_keys, table.texts)):
      shown = [f"**{text}**" if index in table.best[column] else text
               for column, text in enumerate(texts)]
      lines.append("| " + " | ".join(map(_markdown_escape, [*row_key, *shown])) + " |")
    lines += ["", _markdown_escape(table.caption), ""]
    parts.append("\n".join(lines))
  return "\n".join(parts)


def to_csv(tables: Table | Sequence[Table]) -> str:
  """CSV with one row per table row; columns are the row fields, the union of the
  tables' metrics (spread folded in as `mean ± spread`, "-" if missing), then dataset,
  split, protocol (name@version) and fingerprint, so every row carries its protocol.

  Args:
    tables: one table or several.

  Returns:
    The CSV text (`\\n` line endings).
  """
  tables = _as_list(tables)
  row_fields: list[str] = []
  metric_headers: list[str] = []
  for table in tables:
    for field in table.row_fields:
      if field not in row_fields:
        row_fields.append(field)
    for header in table.headers()[len(table.row_fields):]:
      if header not in metric_headers:
        metric_headers.append(header)
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(row_fields + metric_headers + ["dataset", "split", "protocol",
                                                 "fingerprint"])
  for table in tables:
    headers = table.headers()[len(table.row_fields):]
    for row_key, texts in zip(table.row_keys, table.texts):
      by_field = dict(zip(table.row_fields, row_key))
      by_metric = dict(zip(headers, texts))
      writer.writerow([by_field.get(field, "") for field in row_fields] +
                      [by_metric.get(header, MISSING) for header in metric_headers] +
                      [table.dataset, table.split, table.protocol,
                       table.protocol_fingerprint])
  return buffer.getvalue()


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
    "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}", "±": r"$\pm$",
}


def latex_escape(text: str) -> str:
  """Escapes LaTeX special characters (and turns ± into math-mode \\pm)."""
  return "".join(_LATEX_SPECIAL.get(character, character) for character in text)


def to_latex(tables: Table | Sequence[Table], header: str | None = None) -> str:
  """A booktabs `table` environment per table, best value per column in bold.

  Args:
    tables: one table or several.
    header: optional text put first as `%` comment lines.

  Returns:
    LaTeX source (needs `\\usepackage{booktabs}`).
  """
  parts = []
  if header:
    parts.append("".join(f"% {line}\n" for line in header.strip().splitlines()))
  for table in _as_list(tables):
    spec = "l" * len(table.row_fields) + "r" * len(table.metrics)
    lines = [r"\begin{table}[t]", r"\centering",
             rf"\caption{{{latex_escape(table.caption)}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(map(latex_escape, table.headers())) + r" \\", r"\midrule"]
    for index, (row_key, texts) in enumerate(zip(table.row_keys, table.texts)):
      shown = [rf"\textbf{{{latex_escape(text)}}}" if index in table.best[column]
               else latex_escape(text) for column, text in enumerate(texts)]
      lines.append(" & ".join([*map(latex_escape, row_key), *shown]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    parts.append("\n".join(lines))
  return "\n".join(parts)


def to_html(tables: Table | Sequence[Table], header: str | None = None) -> str:
  """A standalone HTML page with one captioned table per group, best values bold.

  Args:
    tables: one table or several.
    header: optional paragraph put first.

  Returns:
    The HTML document.
  """
  escape = html.escape
  body = [f"<p>{escape(header.strip())}</p>"] if header else []
  for table in _as_list(tables):
    body.append("<table>")
    body.append(f"<caption><b>{escape(table.title)}</b>. {escape(table.caption)}"
                "</caption>")
    body.append("<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in table.headers())
                + "</tr></thead>")
    body.append("<tbody>")
    for index, (row_key, texts) in enumerate(zip(table.row_keys, table.texts)):
      cells = [f"<td>{escape(key)}</td>" for key in row_key]
      for column, text in enumerate(texts):
        shown = f"<b>{escape(text)}</b>" if index in table.best[column] else escape(text)
        cells.append(f'<td class="num">{shown}</td>')
      body.append("<tr>" + "".join(cells) + "</tr>")
    body.append("</tbody>")
    body.append("</table>")
  return "\n".join([
      "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
      "<title>ssvbench leaderboard</title>",
      "<style>table{border-collapse:collapse;margin:1em 0}"
      "th,td{padding:2px 8px;border-bottom:1px solid #ccc}"
      "td.num{text-align:right}caption{text-align:left}</style>",
      "</head>", "<body>", *body, "</body>", "</html>", ""])


def write_tables(
    records: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    basename: str,
    *,
    metrics: Sequence[str] | None = None,
    rows: Sequence[str] = ("method", "backbone"),
    decimals: int = 3,
    header: str | None = None,
) -> dict[str, pathlib.Path]:
  """Writes `<basename>.{md,csv,tex,html}` with one table per protocol group.

  Args:
    records: result records.
    out_dir: output directory (created if absent).
    basename: file name without extension.
    metrics, rows, decimals: see `leaderboards`.
    header: optional text (e.g. the regenerating command) put at the top of the
      Markdown, LaTeX and HTML files.

  Returns:
    Extension -> path written.
  """
  tables = leaderboards(records, metrics, rows, decimals=decimals)
  if not tables:
    raise ValueError("write_tables: no records to tabulate.")
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  contents = {"md": to_markdown(tables, header), "csv": to_csv(tables),
              "tex": to_latex(tables, header), "html": to_html(tables, header)}
  paths = {}
  for extension, text in contents.items():
    paths[extension] = out_dir / f"{basename}.{extension}"
    paths[extension].write_text(text, encoding="utf-8")
  return paths
