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
two records of the same pre-training seed giving different values for the same metric
of the same row are an error, because choosing one silently is how a leaderboard ends
up with a cherry-picked number. Add a distinguishing field (`run_name`, `pretrain_data`,
`extra.<key>`) to `rows`.

Seeds are an axis: records of one row that differ by `seeds.pretrain` are aggregated,
per metric, as mean ± std over the seeds (`stats.aggregate_seeds`), and a table with any
such row gets a `seeds` column giving n per row, n = 1 rows marked "(one seed)", so
n = 1 and n = 3 rows are never mixed silently (a cell whose metric has fewer seeds than
its row says `(n=k)`). CSV has `n_seeds` and per-metric `<metric>_n`.

Ties: besides the bold best, a `†` marks every row statistically indistinguishable from
the best of its column (`stats.tied_with_best`): by a paired bootstrap against the best
row (p >= 0.05) when both are single-seed rows whose records have predictions sidecars
(pass `predictions_dir`, the folder sidecar names are relative to); otherwise by overlap
of 95% intervals (a single seed: its `_ci95`; several: `stats.row_interval`, which adds
the between-seed spread to the test-set interval). The caption says which was used.

Formatting: accuracy-like metrics (leaf name `top<k>`, `R@<k>`, `recall@<k>`, `acc`,
`accuracy`, `<n>way_<k>shot`, `mAP`) are stored as percentages (the convention of the
evaluators and of `evaluate-features`) and shown with one decimal; they must lie in
[0, 100]. Other metrics use `decimals` decimals. A
metric with a `<name>_ci95` (preferred) or `<name>_std` sibling is shown as
`mean ± spread`. The best value of each column (at displayed precision, all ties) is
bold in Markdown, LaTeX and HTML when the column has at least two values; whether
lower or higher is better is the metric's declared direction (`stats.direction`:
diagnostics' alignment and uniformity, losses and errors are lower-is-better).

CSV cells are numbers at full precision: per metric the value (or seed mean), then
`<metric>_ci95` (the interval used for ties), `<metric>_std` (the record's own std
sibling), `<metric>_seed_std` (over seeds), `<metric>_n` and `<metric>_top` (1 for the
best row and rows tied with it); an empty cell is a missing value.
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

import numpy as np

from ssvbench.results import stats

_SPREAD_SUFFIXES = ("_ci95", "_std")
_PERCENT_LEAF = re.compile(
    r"^((val_)?top\d+|R@\d+|recall@\d+|acc|accuracy|mean_class_acc|\d+way_\d+shot|\d+shot|"
    r"mAP)$", re.IGNORECASE)
MISSING = "-"
TIE_MARK = "†"
PAIRED_TIE_RESAMPLES = 2000


def is_percentage(metric: str) -> bool:
  """Whether a metric (or its `_ci95`/`_std` sibling) is an accuracy shown in %."""
  for suffix in _SPREAD_SUFFIXES:
    if metric.endswith(suffix):
      metric = metric[:-len(suffix)]
      break
  return bool(_PERCENT_LEAF.match(metric.rsplit("/", 1)[-1]))


@dataclasses.dataclass(frozen=True)
class Cell:
  """One table entry in display units (percentages already x100); None if missing.

  `value` is the seed mean when n > 1 and `spread` then the std over seeds; with one
  seed, `spread` is the record's `_ci95` (or `_std`) sibling. `interval` is the 95%
  half-width used for ties, `ci95`/`std` the single record's siblings, `seed_std` the
  std over seeds (None with one seed).
  """
  value: float | None
  spread: float | None = None
  n: int = 1
  interval: float | None = None
  ci95: float | None = None
  std: float | None = None
  seed_std: float | None = None

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
    texts: per row, the formatted number per metric (no bold, no tie mark).
    best: per metric, the set of row indices holding the best displayed value.
    row_seeds: per row, the number of pre-training seeds aggregated in it.
    tied: per metric, rows (not best) statistically indistinguishable from the best.
    tie_methods: the tie criteria used ('paired bootstrap', 'interval overlap').
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
  row_seeds: tuple[int, ...] = ()
  tied: tuple[frozenset[int], ...] = ()
  tie_methods: tuple[str, ...] = ()

  @property
  def seed_aggregated(self) -> bool:
    return any(n > 1 for n in self.row_seeds)

  def row_label(self, index: int) -> str:
    """The `seeds` column text of a row (n; n = 1 is marked)."""
    n = self.row_seeds[index]
    return f"{n} (one seed)" if n == 1 else str(n)

  def shown(self, index: int, column: int) -> str:
    """A cell's text with its tie mark (bold is the renderer's)."""
    text = self.texts[index][column]
    return text + TIE_MARK if self.tied and index in self.tied[column] else text

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
    # Sibling spreads are shown in single-seed rows only.
    single = not self.row_seeds or any(n == 1 for n in self.row_seeds)
    if "ci95" in self.spread_kinds and single:
      text += " ± ci95: half-width of the 95% confidence interval."
    if "std" in self.spread_kinds and single:
      text += " ± std: standard deviation."
    if self.seed_aggregated:
      text += (" seeds: pre-training seeds per row; rows with n > 1 show mean ± std over "
               "the seeds, rows marked (one seed) the single run.")
    if any(self.tied):
      text += (f" {TIE_MARK}: statistically indistinguishable from the best (bold) of the "
               f"column ({' / '.join(self.tie_methods)}).")
    return text

  def headers(self) -> list[str]:
    single = not self.row_seeds or any(n == 1 for n in self.row_seeds)
    def header(metric, kind):
      # Say what follows ± in the rows that show it: one seed, or several.
      spreads = []
      if kind and single:
        spreads.append(f"±{kind}" + (" at n=1" if self.seed_aggregated else ""))
      if self.seed_aggregated:
        spreads.append("±std over seeds")
      return f"{metric} ({'; '.join(spreads)})" if spreads else metric
    metric_headers = [header(metric, kind) for metric, kind in zip(self.metrics,
                                                                     self.spread_kinds)]
    seeds = ["seeds"] if self.seed_aggregated else []
    return list(self.row_fields) + seeds + metric_headers

  def row_cells(self, index: int) -> list[str]:
    """The row-field texts of a row, with the `seeds` column when the table has it."""
    return list(self.row_keys[index]) + ([self.row_label(index)] if self.seed_aggregated
                                         else [])


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


def _seed(record: Mapping[str, Any]) -> Any:
  seeds = record.get("seeds") or {}
  return seeds.get("pretrain")


class _SidecarCache:
  """Loads each record's predictions sidecar at most once (None when unavailable)."""

  def __init__(self, directory):
    self.directory = None if directory is None else pathlib.Path(directory)
    self.loaded: dict[int, Any] = {}

  def outcomes(self, record: Mapping[str, Any], metric: str):
    if self.directory is None or not record.get("predictions"):
      return None
    from ssvbench.results import predictions as predictions_lib
    key = id(record)
    if key not in self.loaded:
      try:
        self.loaded[key] = predictions_lib.load_for_record(record, self.directory)
      except predictions_lib.SidecarError:
        self.loaded[key] = None
    loaded = self.loaded[key]
    return None if loaded is None else loaded[1].get(metric)


def _cell(metric, kind, by_seed, decimals):
  """(Cell, text) of one metric of one row from {seed: {name: (value, record)}}."""
  seeds = [seed for seed, row in by_seed.items() if metric in row]
  if not seeds:
    return Cell(None), MISSING, []
  def sibling(row, suffix):
    if metric + suffix not in row:
      return None
    value, record = row[metric + suffix]
    return _to_display(metric, value, record["run_name"])
  values = [_to_display(metric, by_seed[s][metric][0], by_seed[s][metric][1]["run_name"])
            for s in seeds]
  ci95s = [c for c in (sibling(by_seed[s], "_ci95") for s in seeds) if c is not None]
  mean, seed_std, n = stats.aggregate_seeds(values)
  records = [by_seed[s][metric][1] for s in seeds]
  if n == 1:
    row = by_seed[seeds[0]]
    ci95, std = sibling(row, "_ci95"), sibling(row, "_std")
    spread = {"ci95": ci95, "std": std}.get(kind)
    text = _format(mean, metric, decimals)
    if spread is not None:
      text += f" ± {_format(spread, metric, decimals)}"
    return (Cell(mean, spread, 1, interval=ci95, ci95=ci95, std=std), text, records)
  interval = stats.row_interval(mean, seed_std, n, ci95s if len(ci95s) == n else ())
  text = f"{_format(mean, metric, decimals)} ± {_format(seed_std, metric, decimals)}"
  return Cell(mean, seed_std, n, interval=interval, seed_std=seed_std), text, records


def _ties(metric, cells, records, sidecars):
  """(tied rows, method used) of one column."""
  values = [None if c.missing else c.value for c in cells]
  intervals = [c.interval for c in cells]
  better = stats.direction(metric)
  best, _ = stats.tied_with_best(values, intervals, better=better)
  if best is None:
    return frozenset(), set()
  p_values: list[float | None] = [None] * len(cells)
  best_pack = (sidecars.outcomes(records[best][0], metric)
               if len(records[best]) == 1 else None)
  if best_pack is not None:
    for i, cell in enumerate(cells):
      if i == best or cell.missing or len(records[i]) != 1:
        continue
      pack = sidecars.outcomes(records[i][0], metric)
      if pack is None or np.shape(pack["outcomes"]) != np.shape(best_pack["outcomes"]):
        continue
      p_values[i] = stats.paired_bootstrap(
          pack, best_pack, num_resamples=PAIRED_TIE_RESAMPLES)["p_value"]
  _, tied = stats.tied_with_best(values, intervals, better=better, p_values=p_values)
  methods = set()
  for i in tied:
    methods.add("paired bootstrap, p >= 0.05" if p_values[i] is not None
                else "overlapping 95% intervals")
  return frozenset(tied), methods


def _build_table(key, records, metrics, rows, decimals, predictions_dir=None) -> Table:
  dataset, split, protocol_name, protocol_version, fingerprint = key
  metrics = list(metrics) if metrics is not None else _default_metrics(records)
  all_names = {name for record in records for name in record["metrics"]}
  spread_kinds = []
  for metric in metrics:
    kinds = [suffix[1:] for suffix in _SPREAD_SUFFIXES if metric + suffix in all_names]
    spread_kinds.append(kinds[0] if kinds else None)

  # Merge each row's records per pre-training seed; a metric given twice for one seed
  # with different values is ambiguous.
  merged: dict[tuple[str, ...], dict[Any, dict[str, tuple[float, Mapping]]]] = {}
  for record in records:
    row_key = tuple(_field(record, field) for field in rows)
    row = merged.setdefault(row_key, {}).setdefault(_seed(record), {})
    for name, value in record["metrics"].items():
      previous = row.get(name)
      if previous is not None and previous[0] != value:
        raise ValueError(
            f"leaderboard: row {dict(zip(rows, row_key))} of {dataset} ({split}) gets "
            f"'{name}' = {previous[0]} from run '{previous[1]['run_name']}' and {value} from "
            f"run '{record['run_name']}' (same pre-training seed); add a distinguishing "
            "field (e.g. 'run_name') to `rows`.")
      row[name] = (value, record)

  row_keys = sorted(merged)
  cells, texts, row_seeds, cell_records = [], [], [], []
  for row_key in row_keys:
    by_seed = merged[row_key]
    row_n = len(by_seed)
    row_cells, row_texts, row_records = [], [], []
    for metric, kind in zip(metrics, spread_kinds):
      cell, text, used = _cell(metric, kind, by_seed, decimals)
      if not cell.missing and cell.n != row_n:
        text += f" (n={cell.n})"
      row_cells.append(cell)
      row_texts.append(text)
      row_records.append(used)
    cells.append(tuple(row_cells))
    texts.append(tuple(row_texts))
    row_seeds.append(row_n)
    cell_records.append(row_records)

  best, tied, tie_methods = [], [], set()
  sidecars = _SidecarCache(predictions_dir)
  for column, metric in enumerate(metrics):
    # Compare at displayed precision so that equal-looking numbers are bold together.
    shown = {index: float(_format(row[column].value, metric, decimals))
             for index, row in enumerate(cells) if not row[column].missing}
    if len(shown) < 2:
      best.append(frozenset())
      tied.append(frozenset())
      continue
    pick = min if stats.direction(metric) == stats.LOWER else max
    target = pick(shown.values())
    best.append(frozenset(index for index, value in shown.items() if value == target))
    column_tied, methods = _ties(metric, [row[column] for row in cells],
                                 [row[column] for row in cell_records], sidecars)
    tied.append(column_tied - best[-1])
    if column_tied - best[-1]:
      tie_methods |= methods

  return Table(dataset=dataset, split=split, protocol_name=protocol_name,
               protocol_version=protocol_version, protocol_fingerprint=fingerprint,
               row_fields=tuple(rows), metrics=tuple(metrics),
               spread_kinds=tuple(spread_kinds), row_keys=tuple(row_keys),
               cells=tuple(cells), texts=tuple(texts), best=tuple(best),
               row_seeds=tuple(row_seeds), tied=tuple(tied),
               tie_methods=tuple(sorted(tie_methods)))


def leaderboards(
    records: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    rows: Sequence[str] = ("method", "backbone"),
    *,
    decimals: int = 3,
    predictions_dir: str | os.PathLike | None = None,
) -> list[Table]:
  """One table per (dataset, split, protocol name, version, fingerprint).

  Args:
    records: result records (see `ssvbench.results.records`).
    metrics: metric names to show as columns, in order; None shows every metric found
      in the group (sorted), with `_ci95`/`_std` siblings folded into `mean ± spread`.
    rows: record fields identifying a row; dotted paths reach into dicts
      (`extra.rho`, `seeds.pretrain`).
    decimals: decimals for metrics that are not percentages.
    predictions_dir: folder the records' predictions sidecars are relative to (the
      results file's); enables paired tests for the tie marks.

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
  return [_build_table(key, groups[key], metrics, tuple(rows), decimals, predictions_dir)
          for key in sorted(groups)]


def leaderboard(
    records: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    rows: Sequence[str] = ("method", "backbone"),
    *,
    decimals: int = 3,
    predictions_dir: str | os.PathLike | None = None,
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
  tables = leaderboards(records, metrics, rows, decimals=decimals,
                        predictions_dir=predictions_dir)
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
    num_row_columns = len(table.headers()) - len(table.metrics)
    lines.append("|" + "|".join(
        [" --- "] * num_row_columns + [" ---: "] * len(table.metrics)) + "|")
    for index in range(len(table.row_keys)):
      shown = [f"**{table.shown(index, column)}**" if index in table.best[column]
               else table.shown(index, column) for column in range(len(table.metrics))]
      lines.append("| " + " | ".join(map(_markdown_escape, [*table.row_cells(index), *shown]))
                   + " |")
    lines += ["", _markdown_escape(table.caption), ""]
    parts.append("\n".join(lines))
  return "\n".join(parts)


def _number(value: float | int | None) -> str:
  return "" if value is None else repr(float(value)) if isinstance(value, float) else str(value)


def to_csv(tables: Table | Sequence[Table]) -> str:
  """CSV of numbers: one row per table row, full precision, empty cells when missing.

  Columns: the row fields, `n_seeds`, then per metric (union over the tables, in order)
  `<metric>` (value, or mean over seeds), `<metric>_ci95` (the 95% half-width used for
  ties), `<metric>_std` (the record's std sibling, one seed), `<metric>_seed_std` (std
  over seeds), `<metric>_n` (seeds) and `<metric>_top` (1: best or tied with it, 0: not),
  then dataset, split, protocol (name@version) and fingerprint. Spread columns that no
  row fills are left out, and so are `n_seeds`/`_n` when no row aggregates seeds.

  Args:
    tables: one table or several.

  Returns:
    The CSV text (`\\n` line endings).
  """
  tables = _as_list(tables)
  row_fields: list[str] = []
  metrics: list[str] = []
  for table in tables:
    for field in table.row_fields:
      if field not in row_fields:
        row_fields.append(field)
    for metric in table.metrics:
      if metric not in metrics:
        metrics.append(metric)
  suffixes = ("", "_ci95", "_std", "_seed_std", "_n", "_top")
  aggregated = any(table.seed_aggregated for table in tables)
  header = row_fields + ["n_seeds"] + [m + s for m in metrics for s in suffixes] + [
      "dataset", "split", "protocol", "fingerprint"]
  body = []
  for table in tables:
    columns = {metric: column for column, metric in enumerate(table.metrics)}
    for index, row_key in enumerate(table.row_keys):
      by_field = dict(zip(table.row_fields, row_key))
      numbers = []
      for metric in metrics:
        column = columns.get(metric)
        cell = None if column is None else table.cells[index][column]
        if cell is None or cell.missing:
          numbers += [""] * len(suffixes)
          continue
        top = index in table.best[column] or (bool(table.tied) and index in table.tied[column])
        numbers += [_number(cell.value), _number(cell.interval), _number(cell.std),
                    _number(cell.seed_std), str(cell.n), "1" if top else "0"]
      seeds = table.row_seeds[index] if table.row_seeds else 1
      body.append([by_field.get(field, "") for field in row_fields] + [str(seeds)] +
                  numbers + [table.dataset, table.split, table.protocol,
                             table.protocol_fingerprint])
  # Spread columns that no row fills, and seed counts when no row aggregates seeds,
  # are left out; a metric's value and `_top` columns always stay.
  keep = [i for i, name in enumerate(header)
          if not any(name.endswith(suffix) and name[:-len(suffix)] in metrics
                     for suffix in ("_ci95", "_std", "_seed_std", "_n"))
          or (any(row[i] for row in body) and (aggregated or not name.endswith("_n")))]
  keep = [i for i in keep if header[i] != "n_seeds" or aggregated]
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  for row in [header] + body:
    writer.writerow([row[i] for i in keep])
  return buffer.getvalue()


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
    "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}", "±": r"$\pm$", TIE_MARK: r"$^\dagger$",
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
    spec = "l" * (len(table.headers()) - len(table.metrics)) + "r" * len(table.metrics)
    lines = [r"\begin{table}[t]", r"\centering",
             rf"\caption{{{latex_escape(table.caption)}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(map(latex_escape, table.headers())) + r" \\", r"\midrule"]
    for index in range(len(table.row_keys)):
      shown = [rf"\textbf{{{latex_escape(table.shown(index, column))}}}"
               if index in table.best[column] else latex_escape(table.shown(index, column))
               for column in range(len(table.metrics))]
      lines.append(" & ".join([*map(latex_escape, table.row_cells(index)), *shown]) + r" \\")
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
    for index in range(len(table.row_keys)):
      cells = [f"<td>{escape(key)}</td>" for key in table.row_cells(index)]
      for column in range(len(table.metrics)):
        text = table.shown(index, column)
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
    predictions_dir: str | os.PathLike | None = None,
) -> dict[str, pathlib.Path]:
  """Writes `<basename>.{md,csv,tex,html}` with one table per protocol group.

  Args:
    records: result records.
    out_dir: output directory (created if absent).
    basename: file name without extension.
    metrics, rows, decimals, predictions_dir: see `leaderboards`.
    header: optional text (e.g. the regenerating command) put at the top of the
      Markdown, LaTeX and HTML files.

  Returns:
    Extension -> path written.
  """
  tables = leaderboards(records, metrics, rows, decimals=decimals,
                        predictions_dir=predictions_dir)
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
