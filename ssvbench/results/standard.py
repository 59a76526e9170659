"""The standard cross-dataset table: one row per pre-trained model, the columns papers print.

`tables.py` renders one table per (dataset, split, protocol). Video SSL papers print a
different view: one row per pre-trained model (method, backbone, pre-training data,
schedule, input, parameters) and columns UCF101 / HMDB51 (mean over the three official
splits), Kinetics-400 linear and k-NN, retrieval R@1, 5-way 1-shot, fine-tune. That table
is typed by hand in every paper, and it mixes split-1 numbers with 3-split means and
protocol versions without saying so. Here it is a view of the records, built so that it
cannot do either:

  * A column is one (dataset, evaluator, protocol name, version, fingerprint). Records of
    the same evaluator under two protocol versions become two columns, labelled with
    their versions; they are never averaged together.
  * A cell of a dataset with official splits (UCF101, HMDB51) is the mean over the splits
    present, averaged over pre-training seeds first. A cell over fewer than the three
    splits is marked with the splits behind it (`[s1]`, `[s1,2]`); `[s?]` marks records
    that do not say which official split they are. The std across splits is kept.
  * Rows aggregate over pre-training seeds (`seeds.pretrain`): mean ± std with n. Two
    records of the same row, column, seed and split with different values are an error
    (picking one is how a table ends up cherry-picked).
  * A single record's `<metric>_ci95` sibling (half-width of the 95% CI, in the metric's
    units) is shown as `± ci`; with several seeds the ± is the seed std and `(n=k)` says so.
  * Measured rows are ranked by a headline column (higher is better: every column is an
    accuracy). Baselines (random init, supervised, or `extra.baseline`) come after them,
    apart; published numbers (`reported.json`, opt-in) come last, marked "reported", and
    are never ranked or bolded with the measured ones.

Values are in the unit the records store (percent for accuracies, as `tables.py`).

The seed aggregation here is deliberately small and self-contained, so that it can later
be folded into a shared statistics module without changing this table's output.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import math
import pathlib
import re
from typing import Any, Mapping, Sequence

from ssvbench.results import tables

# Datasets with numbered official splits, and how many a full mean has.
OFFICIAL_SPLITS = {"ucf101": 3, "hmdb51": 3}
DATASET_NAMES = {"ucf101": "UCF101", "hmdb51": "HMDB51", "kinetics400": "K400",
                 "kinetics600": "K600", "kinetics700": "K700",
                 "synthactions": "SynthActions"}
DATASET_ORDER = ("ucf101", "hmdb51", "kinetics400", "kinetics600", "kinetics700",
                 "synthactions")
# slot -> (metric in the records, column label). Order is column order.
SLOTS = {
    "linear": ("linear/top1", "linear"),
    "knn": ("knn/top1", "k-NN"),
    "retrieval": ("retrieval/R@1", "R@1"),
    "fewshot": ("fewshot_episodic/5way_1shot", "5w-1s"),
    "finetune": ("finetune/top1", "fine-tune"),
}
# Headline column preference when none is asked for.
HEADLINE_ORDER = ("kinetics400/linear", "ucf101/linear", "hmdb51/linear",
                  "synthactions/linear", "ucf101/finetune")
BASELINE_METHODS = ("random_init", "supervised")
ROW_FIELDS = ("method", "backbone", "pretrain data", "schedule", "input", "params")
REPORTED_FILE = pathlib.Path(__file__).with_name("reported.json")
_SPLIT_IN_NAME = re.compile(r"split[_-]?(\d+)", re.IGNORECASE)


def official_split(record: Mapping[str, Any]) -> int | None:
  """The official split number a record was measured on, None if unknown.

  Read from `extra.official_split` (written by `evaluate`, `evaluate-features --split`
  and `benchmark`), else from a `split1/test`-style `split` field.
  """
  extra = record.get("extra") or {}
  if isinstance(extra.get("official_split"), int):
    return int(extra["official_split"])
  match = _SPLIT_IN_NAME.search(str(record.get("split", "")))
  return int(match.group(1)) if match else None


def _data_name(record: Mapping[str, Any]) -> str:
  """The pre-training dataset: `extra.pretrain_dataset` (from the store's manifest), else
  the last folder of the store path that is not `store` or `splitN`."""
  extra = record.get("extra") or {}
  if extra.get("pretrain_dataset"):
    return str(extra["pretrain_dataset"])
  pretrain_data = record["pretrain_data"]
  parts = [p for p in re.split(r"[\\/]", pretrain_data)
           if p and p not in ("store", ".", "..") and not re.fullmatch(r"split\d+", p)]
  return parts[-1] if parts else pretrain_data


def _format_count(count: int) -> str:
  if count >= 1e6:
    return f"{count / 1e6:.1f}M"
  if count >= 1e3:
    return f"{count / 1e3:.1f}k"
  return str(count)


def row_identity(record: Mapping[str, Any]) -> tuple[str, ...]:
  """The row a record belongs to: everything that names the pre-trained model except
  its pre-training seed (rows aggregate over seeds) and its run name."""
  extra = record.get("extra") or {}
  if "pretrain_epochs" in extra:
    schedule = f"{extra['pretrain_epochs']} ep"
  elif "pretrain_steps" in extra:
    schedule = f"{extra['pretrain_steps']} steps"
  else:
    schedule = "-"
  shape = extra.get("pretrain_input") or {}
  if shape.get("num_frames") and shape.get("crop_size"):
    clip = f"{shape['num_frames']}x{shape['crop_size']}"
  else:
    clip = "-"
  params = _format_count(int(extra["num_params"])) if extra.get("num_params") else "-"
  method = record["method"] + (f" ({extra['row_label']})" if extra.get("row_label") else "")
  return (method, record["backbone"], _data_name(record), schedule, clip,
          params)


def is_baseline(record_or_method: Mapping[str, Any] | str) -> bool:
  if isinstance(record_or_method, str):
    return record_or_method in BASELINE_METHODS
  extra = record_or_method.get("extra") or {}
  return bool(extra.get("baseline")) or record_or_method["method"] in BASELINE_METHODS


def _mean(values: Sequence[float]) -> float:
  return sum(values) / len(values)


def _std(values: Sequence[float]) -> float | None:
  """Sample standard deviation (ddof=1); None for fewer than two values."""
  if len(values) < 2:
    return None
  mean = _mean(values)
  return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@dataclasses.dataclass(frozen=True)
class Column:
  """One column: one evaluator's headline metric on one dataset under one protocol."""
  dataset: str
  slot: str
  protocol: str  # name@version, or "reported" for a column only published numbers fill.
  fingerprint: str
  label: str

  @property
  def key(self) -> str:
    return f"{self.dataset}/{self.slot}"

  @property
  def metric(self) -> str:
    return SLOTS[self.slot][0]


@dataclasses.dataclass(frozen=True)
class StdCell:
  """One aggregated entry.

  Attributes:
    value: the mean over splits of the per-split means over seeds.
    ci95: the record's CI half-width, only for a cell of one record.
    splits: official split numbers behind the value (0 = not an official-split dataset,
      -1 = official-split dataset, split unknown).
    split_std: std across the per-split means (two or more splits).
    n_seeds: pre-training seeds behind the value.
    seed_std: std across the per-seed means (two or more seeds).
    uneven: seeds cover different splits (the seed std then mixes split differences).
    runs: run names of the records.
  """
  value: float
  ci95: float | None = None
  splits: tuple[int, ...] = (0,)
  split_std: float | None = None
  n_seeds: int = 1
  seed_std: float | None = None
  uneven: bool = False
  runs: tuple[str, ...] = ()

  def split_mark(self, dataset: str) -> str:
    expected = OFFICIAL_SPLITS.get(dataset)
    if not expected:
      return ""
    if -1 in self.splits:
      return " [s?]"
    if self.splits == tuple(range(1, expected + 1)):
      return ""
    return " [s" + ",".join(map(str, self.splits)) + "]"

  def text(self, dataset: str) -> str:
    text = f"{self.value:.1f}"
    if self.n_seeds > 1 and self.seed_std is not None:
      text += f" ± {self.seed_std:.1f} (n={self.n_seeds})"
    elif self.ci95 is not None:
      text += f" ± {self.ci95:.1f}"
    return text + self.split_mark(dataset) + ("*" if self.uneven else "")


@dataclasses.dataclass(frozen=True)
class Row:
  kind: str  # "measured", "baseline" or "reported"
  fields: tuple[str, ...]
  cells: tuple[StdCell | None, ...]
  rank: int | None = None
  source: str = ""
  records: tuple[Mapping[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class StandardTable:
  columns: tuple[Column, ...]
  rows: tuple[Row, ...]
  headline: int | None
  best: tuple[frozenset[int], ...]

  @property
  def caption(self) -> str:
    parts = ["One row per pre-trained model; accuracies in %, higher is better."]
    if self.headline is not None:
      parts.append(f"Measured rows ranked by {self.columns[self.headline].label}.")
    official = sorted({DATASET_NAMES.get(c.dataset, c.dataset) for c in self.columns
                       if c.dataset in OFFICIAL_SPLITS})
    if official:
      parts.append(f"{'/'.join(official)}: mean over the official splits 1-3; a cell over "
                   "fewer splits names them ([s1] = split 1 only; [s?] = split not "
                   "recorded).")
    parts.append("± is the std over pre-training seeds when (n=k) follows, otherwise the "
                 "half-width of the 95% confidence interval of a single evaluation.")
    if any(cell is not None and cell.uneven for row in self.rows for cell in row.cells):
      parts.append("* seeds cover different splits.")
    parts.append("Best measured value per column in bold (baselines and reported rows "
                 "excluded).")
    if any(row.kind == "reported" for row in self.rows):
      parts.append("Reported rows are published numbers under each paper's own protocol, "
                   "not measured by ssvbench.")
    protocols = sorted({f"{c.protocol} (fp {c.fingerprint[:8]})" for c in self.columns
                        if c.protocol != "reported"})
    parts.append("Protocols: " + ", ".join(protocols) + ".")
    return " ".join(parts)

  def headers(self) -> list[str]:
    return ["rank", *ROW_FIELDS] + [c.label for c in self.columns]


def _aggregate(entries: list[tuple[int | None, int, float, float | None, str]],
               where: str) -> StdCell:
  """entries: (seed, split, value, ci95, run name)."""
  by_key: dict[tuple[Any, int], tuple[float, float | None, str]] = {}
  for seed, split, value, ci, run in entries:
    previous = by_key.get((seed, split))
    if previous is not None and previous[0] != value:
      raise ValueError(
          f"standard table: {where} gets {previous[0]} from run '{previous[2]}' and {value} "
          f"from run '{run}' for the same pre-training seed {seed} and split {split}; give "
          "the runs different `seeds.pretrain`, or tell them apart with `extra.row_label`.")
    by_key[(seed, split)] = (value, ci, run)
  splits = sorted({split for _, split in by_key})
  seeds = sorted({seed for seed, _ in by_key}, key=str)
  per_split = [_mean([v for (s, p), (v, _, _) in by_key.items() if p == split])
               for split in splits]
  per_seed = [_mean([v for (s, p), (v, _, _) in by_key.items() if s == seed])
              for seed in seeds]
  coverage = {seed: tuple(sorted(p for s, p in by_key if s == seed)) for seed in seeds}
  single = next(iter(by_key.values())) if len(by_key) == 1 else None
  return StdCell(value=_mean(per_split), ci95=single[1] if single else None,
                 splits=tuple(splits), split_std=_std(per_split), n_seeds=len(seeds),
                 seed_std=_std(per_seed), uneven=len(set(coverage.values())) > 1,
                 runs=tuple(sorted({run for _, _, run in by_key.values()})))


def load_reported(path: str | pathlib.Path = REPORTED_FILE) -> list[dict[str, Any]]:
  """The published reference rows shipped with ssvbench (see reported.json)."""
  return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))["rows"]


def latest_checkpoints(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
  """Per run, only the records of its last evaluated pre-training step: intermediate
  checkpoints (`benchmark --steps`) belong in the accuracy-vs-step plot, not as rows."""
  last: dict[str, int] = {}
  for record in records:
    steps = (record.get("extra") or {}).get("pretrain_steps")
    if isinstance(steps, int):
      last[record["run_name"]] = max(last.get(record["run_name"], steps), steps)
  return [r for r in records
          if not isinstance((r.get("extra") or {}).get("pretrain_steps"), int)
          or r["extra"]["pretrain_steps"] == last[r["run_name"]]]


def build(records: Sequence[Mapping[str, Any]], *, rank_by: str | None = None,
          reported: Sequence[Mapping[str, Any]] | None = None,
          all_steps: bool = False) -> StandardTable:
  """The standard table of a set of records.

  Args:
    records: result records (any datasets, splits, protocols, seeds).
    rank_by: headline column key `<dataset>/<slot>` (slots: linear, knn, retrieval,
      fewshot, finetune), e.g. `kinetics400/linear`; default the first present of
      HEADLINE_ORDER, else the first column.
    reported: published rows to append (e.g. `load_reported()`); None for none.
    all_steps: keep every evaluated checkpoint of a run as its own row; by default only
      each run's last evaluated step (`latest_checkpoints`).

  Returns:
    The table.

  Raises:
    ValueError: no record holds a standard metric, an unknown `rank_by`, or conflicting
      records (see the module docstring).
  """
  if not all_steps:
    records = latest_checkpoints(records)
  # Columns: one per (dataset, slot, protocol identity) that some record fills.
  identities: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
  for record in records:
    for slot, (metric, _) in SLOTS.items():
      if metric in record["metrics"]:
        protocol = record["protocol"]
        identities.setdefault((record["dataset"], slot), set()).add(
            (protocol["name"], str(protocol["version"]), protocol["fingerprint"]))
  for row in reported or ():
    for key in row["metrics"]:
      dataset, slot = key.split("/")
      if slot not in SLOTS:
        raise ValueError(f"reported row {row['method']}: unknown column {key!r}; slots: "
                         f"{list(SLOTS)}.")
      identities.setdefault((dataset, slot), set())
  if not identities:
    raise ValueError("standard table: no record holds any of the standard metrics "
                     f"{[metric for metric, _ in SLOTS.values()]}.")

  def dataset_rank(dataset):
    return (DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else len(DATASET_ORDER),
            dataset)

  columns: list[Column] = []
  for dataset, slot in sorted(identities, key=lambda k: (dataset_rank(k[0]),
                                                         list(SLOTS).index(k[1]))):
    label = f"{DATASET_NAMES.get(dataset, dataset)} {SLOTS[slot][1]}"
    found = sorted(identities[(dataset, slot)])
    if not found:
      columns.append(Column(dataset, slot, "reported", "", label))
      continue
    versions = {(name, version) for name, version, _ in found}
    for name, version, fingerprint in found:
      suffix = ""
      if len(found) > 1:  # Never one column for two protocols: each is labelled.
        suffix = (f" ({name}@{version})" if len(versions) == len(found)
                  else f" ({name}@{version} {fingerprint[:8]})")
      columns.append(Column(dataset, slot, f"{name}@{version}", fingerprint, label + suffix))

  column_index = {(c.dataset, c.slot, c.protocol, c.fingerprint): i
                  for i, c in enumerate(columns)}
  grouped: dict[tuple[str, ...], dict[int, list]] = {}
  row_records: dict[tuple[str, ...], list] = {}
  baseline_rows: set[tuple[str, ...]] = set()
  for record in records:
    # Input and parameter count describe the row; records that do not state them (a
    # fine-tune record, features supplied without --num-params) still join it.
    identity = row_identity(record)[:4]
    row_records.setdefault(identity, []).append(record)
    if is_baseline(record):
      baseline_rows.add(identity)
    protocol = record["protocol"]
    split = official_split(record)
    if record["dataset"] in OFFICIAL_SPLITS:
      split = -1 if split is None else split
    else:
      split = 0
    for slot, (metric, _) in SLOTS.items():
      if metric not in record["metrics"]:
        continue
      index = column_index[(record["dataset"], slot,
                            f"{protocol['name']}@{protocol['version']}",
                            protocol["fingerprint"])]
      ci = record["metrics"].get(metric + "_ci95")
      grouped.setdefault(identity, {}).setdefault(index, []).append(
          ((record.get("seeds") or {}).get("pretrain"), split, record["metrics"][metric], ci,
           record["run_name"]))

  measured: list[Row] = []
  for identity, by_column in grouped.items():
    cells = [None] * len(columns)
    for index, entries in by_column.items():
      cells[index] = _aggregate(entries, f"row {identity[:3]} column {columns[index].label}")
    described = [row_identity(r)[4:] for r in row_records[identity]]
    facts = tuple(" / ".join(sorted({d[i] for d in described} - {"-"})) or "-"
                  for i in range(2))
    measured.append(Row("baseline" if identity in baseline_rows else "measured",
                        identity + facts, tuple(cells), records=tuple(row_records[identity])))

  keys = [c.key for c in columns]
  if rank_by is not None:
    if rank_by not in keys:
      raise ValueError(f"standard table: rank_by={rank_by!r} is not a column; columns: "
                       f"{sorted(set(keys))}.")
    headline = keys.index(rank_by)
  else:
    filled = [i for i, c in enumerate(columns) if c.protocol != "reported"]
    preferred = [keys.index(k) for k in HEADLINE_ORDER if k in keys
                 and keys.index(k) in filled]
    headline = preferred[0] if preferred else (filled[0] if filled else None)

  def order(row):
    cell = row.cells[headline] if headline is not None else None
    return (cell is None, -(cell.value if cell else 0.0), row.fields)

  ranked = sorted((r for r in measured if r.kind == "measured"), key=order)
  ranked = [dataclasses.replace(row, rank=index + 1) for index, row in enumerate(ranked)]
  baselines = sorted((r for r in measured if r.kind == "baseline"), key=order)
  published = []
  for entry in reported or ():
    cells = [None] * len(columns)
    for key, value in entry["metrics"].items():
      index = keys.index(key)  # The first column of that dataset and slot.
      splits = tuple(entry.get("official_splits") or (-1,))
      cells[index] = StdCell(value=float(value), splits=splits)
    published.append(Row("reported", (entry["method"], entry["backbone"],
                                       entry["pretrain_data"], entry.get("schedule", "-"),
                                       entry.get("input", "-"), entry.get("params", "-")),
                         tuple(cells), source=entry.get("source", "")))
  published.sort(key=order)

  best = []
  for index, column in enumerate(columns):
    shown = {i: round(row.cells[index].value, 1) for i, row in enumerate(ranked)
             if row.cells[index] is not None}
    top = max(shown.values()) if len(shown) >= 2 else None
    best.append(frozenset(i for i, v in shown.items() if v == top))
  return StandardTable(columns=tuple(columns), rows=tuple(ranked + baselines + published),
                       headline=headline, best=tuple(best))


def cell_text(table: StandardTable, row: Row, index: int) -> str:
  cell = row.cells[index]
  if cell is None:
    return tables.MISSING
  if row.kind == "reported":  # No seeds or CI: the value and the splits behind it.
    return f"{cell.value:.1f}" + cell.split_mark(table.columns[index].dataset)
  return cell.text(table.columns[index].dataset)


def _row_texts(table: StandardTable, row: Row) -> list[str]:
  rank = str(row.rank) if row.rank is not None else {"baseline": "base",
                                                     "reported": "rep."}.get(row.kind, "")
  return [rank, *row.fields] + [cell_text(table, row, i) for i in range(len(table.columns))]


def _sections(table: StandardTable):
  """(title or None, [(position in table.rows, row)]) per non-empty section."""
  titles = {"measured": None, "baseline": "baselines",
            "reported": "reported (published, not measured by ssvbench)"}
  out = []
  for kind in ("measured", "baseline", "reported"):
    rows = [(i, r) for i, r in enumerate(table.rows) if r.kind == kind]
    if rows:
      out.append((titles[kind], rows))
  return out


def to_markdown(table: StandardTable, header: str | None = None) -> str:
  """GitHub Markdown: measured rows, then baselines and reported rows under a divider row."""
  escape = lambda text: text.replace("|", r"\|")
  lines = [header.strip(), ""] if header else []
  headers = table.headers()
  lines.append("| " + " | ".join(map(escape, headers)) + " |")
  lines.append("|" + "|".join([" ---: "] + [" --- "] * len(ROW_FIELDS)
                              + [" ---: "] * len(table.columns)) + "|")
  for title, rows in _sections(table):
    if title:
      lines.append("| " + " | ".join([f"*{title}*"] + [""] * (len(headers) - 1)) + " |")
    for position, row in rows:
      texts = _row_texts(table, row)
      offset = 1 + len(ROW_FIELDS)
      for index in range(len(table.columns)):
        if position in table.best[index]:
          texts[offset + index] = f"**{texts[offset + index]}**"
      lines.append("| " + " | ".join(map(escape, texts)) + " |")
  lines += ["", escape(table.caption)]
  sources = [row for row in table.rows if row.kind == "reported"]
  if sources:
    lines += ["", "Reported rows, sources:", ""]
    lines += [f"- {row.fields[0]} {row.fields[1]} ({row.fields[3]}): {row.source}"
              for row in sources]
  return "\n".join(lines) + "\n"


def to_csv(table: StandardTable) -> str:
  """Numbers in their own columns at full precision: per column the value, ci95, splits,
  split std, seed count and seed std; the protocol of each column in its header."""
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  head = ["section", "rank", *ROW_FIELDS]
  for column in table.columns:
    base = f"{column.key} [{column.protocol} {column.fingerprint[:8]}]".replace(" ]", "]")
    head += [base, f"{base} ci95", f"{base} splits", f"{base} split_std",
             f"{base} n_seeds", f"{base} seed_std"]
  writer.writerow(head + ["source"])
  for row in table.rows:
    line: list[Any] = [row.kind, "" if row.rank is None else row.rank, *row.fields]
    for cell in row.cells:
      if cell is None:
        line += ["", "", "", "", "", ""]
        continue
      splits = ";".join("?" if s == -1 else str(s) for s in cell.splits if s > 0 or s == -1)
      line += [repr(cell.value), "" if cell.ci95 is None else repr(cell.ci95), splits,
               "" if cell.split_std is None else repr(cell.split_std),
               "" if row.kind == "reported" else cell.n_seeds,
               "" if cell.seed_std is None else repr(cell.seed_std)]
    writer.writerow(line + [row.source])
  return buffer.getvalue()


def _dataset_groups(table: StandardTable) -> list[tuple[str, int]]:
  groups: list[tuple[str, int]] = []
  for column in table.columns:
    name = DATASET_NAMES.get(column.dataset, column.dataset)
    if groups and groups[-1][0] == name:
      groups[-1] = (name, groups[-1][1] + 1)
    else:
      groups.append((name, 1))
  return groups


def to_latex(table: StandardTable, header: str | None = None) -> str:
  """A booktabs table with a dataset header row; baselines and reported rows apart."""
  esc = tables.latex_escape
  lines = ["".join(f"% {line}\n" for line in header.strip().splitlines())] if header else []
  first = 1 + len(ROW_FIELDS)
  spec = "r" + "l" * len(ROW_FIELDS) + "r" * len(table.columns)
  lines += [r"\begin{table}[t]", r"\centering", r"\small",
            rf"\caption{{{esc(table.caption)}}}", rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule"]
  group_cells, rules, start = [""] * first, [], first + 1
  for name, width in _dataset_groups(table):
    group_cells.append(rf"\multicolumn{{{width}}}{{c}}{{{esc(name)}}}")
    rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
    start += width
  lines.append(" & ".join(group_cells) + r" \\")
  lines.append(" ".join(rules))
  short = [c.label.split(" ", 1)[1] if " " in c.label else c.label for c in table.columns]
  lines.append(" & ".join(map(esc, ["rank", *ROW_FIELDS, *short])) + r" \\")
  lines.append(r"\midrule")
  for title, rows in _sections(table):
    if title:
      lines.append(r"\midrule")
      width = first + len(table.columns)
      lines.append(rf"\multicolumn{{{width}}}{{l}}{{\emph{{{esc(title)}}}}} \\")
    for position, row in rows:
      texts = [esc(t) for t in _row_texts(table, row)]
      for index in range(len(table.columns)):
        if position in table.best[index]:
          texts[first + index] = rf"\textbf{{{texts[first + index]}}}"
      lines.append(" & ".join(texts) + r" \\")
  lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
  return "\n".join(lines)


SORT_SCRIPT = """
// Click a header to sort its table (again to reverse); ?sort=<column>&dir=asc|desc sorts
// on load. Rows of one section (measured, baselines, reported) stay in their section.
(function () {
  function key(cell) {
    var text = (cell.getAttribute('data-sort') || cell.textContent).trim();
    var number = parseFloat(text);
    return isNaN(number) ? text.toLowerCase() : number;
  }
  function sortTable(table, column, descending) {
    Array.prototype.forEach.call(table.tBodies, function (body) {
      var all = Array.prototype.slice.call(body.rows);
      // A section title row (one cell spanning the table) stays first in its section.
      var titles = all.filter(function (row) { return row.classList.contains('section'); });
      var rows = all.filter(function (row) { return !row.classList.contains('section'); });
      rows.sort(function (a, b) {
        var x = key(a.cells[column]), y = key(b.cells[column]);
        var missingX = x === '-' || x === '', missingY = y === '-' || y === '';
        if (missingX !== missingY) return missingX ? 1 : -1;
        if (x < y) return descending ? 1 : -1;
        if (x > y) return descending ? -1 : 1;
        return 0;
      });
      titles.concat(rows).forEach(function (row) { body.appendChild(row); });
    });
    Array.prototype.forEach.call(table.tHead.querySelectorAll('th[data-column]'), function (th) {
      th.removeAttribute('aria-sort');
    });
    var th = table.tHead.querySelector('th[data-column="' + column + '"]');
    th.setAttribute('aria-sort', descending ? 'descending' : 'ascending');
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.tHead.querySelectorAll('th[data-column]').forEach(function (th) {
      th.addEventListener('click', function () {
        var column = parseInt(th.getAttribute('data-column'), 10);
        var numeric = th.classList.contains('num');
        var current = th.getAttribute('aria-sort');
        var descending = current ? current === 'ascending' : numeric;
        sortTable(table, column, descending);
      });
    });
  });
  var params = new URLSearchParams(window.location.search);
  if (params.get('sort')) {
    document.querySelectorAll('table.sortable').forEach(function (table) {
      var th = Array.prototype.find.call(table.tHead.querySelectorAll('th[data-column]'),
        function (h) { return h.textContent.trim() === params.get('sort'); });
      if (th) sortTable(table, parseInt(th.getAttribute('data-column'), 10),
                        params.get('dir') !== 'asc');
    });
  }
})();
"""

STYLE = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1b1f24;
 margin:2em auto;max-width:1400px;padding:0 1.5em;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
caption{caption-side:bottom;text-align:left;color:#57606a;padding-top:.6em;max-width:1100px}
th,td{padding:4px 10px;border-bottom:1px solid #d8dee4;white-space:nowrap}
thead th{background:#f6f8fa;border-bottom:2px solid #8c959f;text-align:left}
thead th[data-column]{cursor:pointer}thead th[aria-sort=descending]::after{content:" \\25BC"}
thead th[aria-sort=ascending]::after{content:" \\25B2"}
th.group{text-align:center;border-bottom:1px solid #8c959f}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody.baseline tr:first-child td,tbody.reported tr:first-child td{border-top:2px solid #8c959f}
tbody.baseline td{color:#444c56;background:#fbfbfc}
tbody.reported td{color:#57606a;font-style:italic;background:#f6f8fa}
tr.section td{font-weight:600;font-style:normal;background:#eaeef2}
td b{color:#0a3069}
nav a{margin-right:1em}.note{color:#57606a;font-size:.9em}
figure{display:inline-block;margin:1em 1.5em 1em 0;vertical-align:top}
figcaption{color:#57606a;font-size:.9em;max-width:560px}
details{margin:.3em 0}code{font-size:.9em}
div.scroll{overflow-x:auto;max-width:100%}
th.gstart,td.gstart{border-left:1px solid #d0d7de}
"""


def html_table(table: StandardTable, table_id: str = "standard") -> str:
  """The table as an HTML fragment: dataset header row, sortable column headers,
  sections as separate `<tbody>` elements, provenance of a cell in its `title`."""
  escape = html.escape
  first = 1 + len(ROW_FIELDS)
  out = ['<div class="scroll">', f'<table class="sortable standard" id="{escape(table_id)}">',
         f"<caption>{escape(table.caption)}</caption>", "<thead>"]
  group_row = "<th></th>" * first
  group_row += "".join(f'<th class="group gstart" colspan="{width}">{escape(name)}</th>'
                       for name, width in _dataset_groups(table))
  out.append(f"<tr>{group_row}</tr>")
  heads = []
  starts, position = set(), first
  for _, width in _dataset_groups(table):
    starts.add(position)
    position += width
  def classes(index, numeric):
    names = (["num"] if numeric else []) + (["gstart"] if index in starts else [])
    return f' class="{" ".join(names)}"' if names else ""
  for index, name in enumerate(table.headers()):
    numeric = index == 0 or index >= first
    heads.append(f'<th data-column="{index}"{classes(index, numeric)} '
                 f'scope="col">{escape(name)}</th>')
  out += ["<tr>" + "".join(heads) + "</tr>", "</thead>"]
  for title, rows in _sections(table):
    kind = rows[0][1].kind
    out.append(f'<tbody class="{kind}">')
    if title:
      out.append(f'<tr class="section"><td colspan="{first + len(table.columns)}">'
                 f"{escape(title)}</td></tr>")
    for position, row in rows:
      texts = _row_texts(table, row)
      cells = [f'<td class="num">{escape(texts[0])}</td>']
      cells += [f"<td>{escape(text)}</td>" for text in texts[1:first]]
      if row.kind == "reported" and row.source:
        cells[1] = f'<td title="{escape(row.source)}">{escape(texts[1])}</td>'
      for index in range(len(table.columns)):
        cell = row.cells[index]
        text = escape(texts[first + index])
        if position in table.best[index]:
          text = f"<b>{text}</b>"
        sort = "" if cell is None else f' data-sort="{cell.value!r}"'
        title = ""
        if cell is not None and row.kind != "reported":
          detail = f"runs: {', '.join(cell.runs)}"
          if cell.split_std is not None:
            detail += f"; std over splits {cell.split_std:.2f}"
          title = f' title="{escape(detail)}"'
        cells.append(f'<td{classes(first + index, True)}{sort}{title}>{text}</td>')
      out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody>")
  out += ["</table>", "</div>"]
  return "\n".join(out)


def to_html(table: StandardTable, header: str | None = None) -> str:
  """A standalone, sortable HTML page (inline style and script, no network)."""
  body = [f'<p class="note">{html.escape(header.strip())}</p>'] if header else []
  return "\n".join([
      "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
      "<title>ssvbench standard table</title>", f"<style>{STYLE}</style>", "</head>",
      "<body>", "<h1>ssvbench: standard table</h1>", *body, html_table(table),
      f"<script>{SORT_SCRIPT}</script>", "</body>", "</html>", ""])


RENDERERS = {"md": to_markdown, "csv": lambda t, header=None: to_csv(t),
             "latex": to_latex, "html": to_html}


def write(table: StandardTable, out_dir: str | pathlib.Path, basename: str,
          header: str | None = None) -> dict[str, pathlib.Path]:
  """Writes `<basename>.{md,csv,tex,html}`; returns extension -> path."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  paths = {}
  for extension, fmt in (("md", "md"), ("csv", "csv"), ("tex", "latex"), ("html", "html")):
    paths[extension] = out_dir / f"{basename}.{extension}"
    paths[extension].write_text(RENDERERS[fmt](table, header=header), encoding="utf-8")
  return paths
