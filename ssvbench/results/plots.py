"""Static figures for the published site (matplotlib, the optional `plots` extra).

Each function takes records (and, for training curves, metrics.jsonl rows), writes one
PNG and returns (file name, caption), or None when the records hold nothing to draw.
Figures are drawn with the Agg backend (no display) and a fixed style, so the same
records give the same pictures on any machine. `available()` tells whether matplotlib
is installed; the site is produced without it and says that plots need the extra.
"""

from __future__ import annotations

import math
import pathlib
import re
from typing import Any, Mapping, Sequence

from ssvbench.results import standard

Figure = tuple[str, str]
_SHOT = re.compile(r"^fewshot_linear/(\d+)shot$")
_RECALL = re.compile(r"^retrieval/R@(\d+)$")


def available() -> bool:
  try:
    import matplotlib  # noqa: F401
  except ImportError:
    return False
  return True


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.grid": True,
                       "grid.alpha": 0.3, "axes.spines.top": False,
                       "axes.spines.right": False, "legend.fontsize": 8,
                       "legend.frameon": False, "svg.hashsalt": "ssvbench"})
  return plt


def _style(index: int) -> dict[str, Any]:
  """Distinct line styles for more than ten models: colours first, then dashes/markers."""
  import matplotlib
  colours = matplotlib.colormaps["tab10"].colors
  return {"color": colours[index % 10], "linestyle": ("-", "--", ":")[index // 10 % 3],
          "marker": ("o", "s", "^")[index // 10 % 3]}


def _save(fig, out_dir: pathlib.Path, name: str) -> str:
  out_dir.mkdir(parents=True, exist_ok=True)
  # No timestamp in the metadata: regenerating identical records gives identical files.
  fig.savefig(out_dir / name, bbox_inches="tight", metadata={"Software": None})
  import matplotlib.pyplot as plt
  plt.close(fig)
  return name


def _label(record: Mapping[str, Any]) -> str:
  return f"{record['method']} ({record['backbone']})"


def _group(record) -> tuple[str, str]:
  protocol = record["protocol"]
  return record["dataset"], f"{protocol['name']}@{protocol['version']}"


def accuracy_vs_step(records: Sequence[Mapping[str, Any]], out_dir: pathlib.Path,
                     metric: str = "linear/top1") -> Figure | None:
  """Evaluated accuracy against pre-training step, one line per model, for every
  (dataset, protocol) where some model has records at two or more steps."""
  series: dict[tuple[str, str], dict[str, dict[int, list[float]]]] = {}
  for record in records:
    steps = (record.get("extra") or {}).get("pretrain_steps")
    if steps is None or metric not in record["metrics"]:
      continue
    series.setdefault(_group(record), {}).setdefault(_label(record), {}).setdefault(
        int(steps), []).append(record["metrics"][metric])
  series = {g: {m: s for m, s in lines.items() if len(s) >= 2}
            for g, lines in series.items()}
  series = {g: lines for g, lines in series.items() if lines}
  if not series:
    return None
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(series), figsize=(5.2 * len(series), 3.6), squeeze=False)
  for ax, ((dataset, protocol), lines) in zip(axes[0], sorted(series.items())):
    for index, (label, points) in enumerate(sorted(lines.items())):
      xs = sorted(points)
      ax.plot(xs, [sum(points[x]) / len(points[x]) for x in xs], label=label, **_style(index))
    ax.set(title=f"{dataset} ({protocol})", xlabel="pre-training step",
           ylabel=f"{metric} (%)")
    ax.legend(loc="best")
  name = _save(fig, out_dir, "accuracy_vs_step.png")
  return name, (f"{metric} against pre-training step (records at several checkpoints, "
                "e.g. from `ssvbench benchmark --steps`; seeds averaged).")


def training_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]],
                    out_dir: pathlib.Path) -> Figure | None:
  """Training loss (and the online k-NN monitor, when logged) from runs' metrics.jsonl.

  One panel per model, its seeds (`<name>_seed<N>` runs) overlaid: every objective has
  its own scale (Barlow Twins' hundreds, SimSiam's negative cosine), so a shared axis
  would flatten all but one of them.
  """
  curves = {run: rows for run, rows in curves.items() if any("loss" in r for r in rows)}
  if not curves:
    return None
  online = {run: [r for r in rows if any(k.startswith("online/") for k in r)]
            for run, rows in curves.items()}
  online = {run: rows for run, rows in online.items() if rows}
  groups: dict[str, list[str]] = {}
  for run in sorted(curves):
    groups.setdefault(re.sub(r"_seed\d+$", "", run), []).append(run)
  panels = len(groups) + (1 if online else 0)
  columns = min(4, panels)
  rows_count = math.ceil(panels / columns)
  plt = _pyplot()
  fig, axes = plt.subplots(rows_count, columns, figsize=(2.9 * columns, 2.3 * rows_count),
                           squeeze=False)
  flat = [ax for row in axes for ax in row]
  for ax, (group, runs) in zip(flat, groups.items()):
    for index, run in enumerate(runs):
      points = [(r["step"], r["loss"]) for r in curves[run]
                if "loss" in r and r["loss"] is not None and math.isfinite(r["loss"])]
      ax.plot([p[0] for p in points], [p[1] for p in points], linewidth=1.1,
              color=_style(index)["color"], label=run if len(runs) > 1 else None)
    ax.set_title(group + (f" ({len(runs)} runs)" if len(runs) > 1 else ""), fontsize=9)
    ax.set_xlabel("step")
  flat[0].set_ylabel("loss (own scale)")
  if online:
    ax = flat[len(groups)]
    for run, rows in sorted(online.items()):
      key = next(k for k in rows[0] if k.startswith("online/") and k.endswith("top1"))
      ax.plot([r["step"] for r in rows if key in r], [r[key] for r in rows if key in r],
              marker="o", label=run)
    ax.set(title="online k-NN monitor (validation)", xlabel="step", ylabel="top-1 (%)")
    ax.legend(loc="best")
  for ax in flat[panels:]:
    ax.set_visible(False)
  fig.tight_layout()
  name = _save(fig, out_dir, "training_curves.png")
  return name, ("Pre-training loss per logging interval from each run's metrics.jsonl, one "
                "panel per model (its seeds overlaid, each objective on its own scale)"
                + ("; last panel: the online k-NN monitor on the carved validation split."
                   if online else "."))


def _by_model(records, pattern: re.Pattern) -> dict[tuple[str, str], dict[str, Any]]:
  """(dataset/protocol, model) -> {x: (value, std or None)} for metrics matching pattern."""
  out: dict[tuple[str, str], dict[str, Any]] = {}
  for record in records:
    points = {}
    for name, value in record["metrics"].items():
      match = pattern.match(name)
      if match:
        spread = record["metrics"].get(name + "_std", record["metrics"].get(name + "_ci95"))
        points[int(match.group(1))] = (value, spread)
    if points:
      dataset, protocol = _group(record)
      out.setdefault((f"{dataset} ({protocol})", _label(record)), {}).update(points)
  return out


def _curve_figure(data, out_dir, name, xlabel, ylabel, title, log_x=False, errors=False):
  groups = sorted({g for g, _ in data})
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(groups), figsize=(7.4 * len(groups), 3.8), squeeze=False)
  for ax, group in zip(axes[0], groups):
    lines = [(label, points) for (g, label), points in sorted(data.items()) if g == group]
    for index, (label, points) in enumerate(lines):
      xs = sorted(points)
      ys = [points[x][0] for x in xs]
      if errors and all(points[x][1] is not None for x in xs):
        ax.errorbar(xs, ys, yerr=[points[x][1] for x in xs], capsize=3, label=label,
                    linewidth=1.2, **_style(index))
      else:
        ax.plot(xs, ys, label=label, linewidth=1.2, **_style(index))
    if log_x:
      ax.set_xscale("log")
    ax.set_xticks(sorted({x for (g, _), p in data.items() if g == group for x in p}))
    ax.get_xaxis().set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
    ax.set(title=f"{title}: {group}", xlabel=xlabel, ylabel=ylabel)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # Outside: lines stay visible.
  return _save(fig, out_dir, name)


def fewshot_vs_shots(records, out_dir: pathlib.Path) -> Figure | None:
  data = _by_model(records, _SHOT)
  if not data:
    return None
  name = _curve_figure(data, out_dir, "fewshot_vs_shots.png", "labelled examples per class",
                       "top-1 (%)", "few-shot linear", log_x=True, errors=True)
  return name, ("Few-shot linear accuracy against examples per class; error bars: std "
                "over the protocol's subset seeds.")


def recall_at_k(records, out_dir: pathlib.Path) -> Figure | None:
  data = _by_model(records, _RECALL)
  if not data:
    return None
  name = _curve_figure(data, out_dir, "recall_at_k.png", "k", "R@k (%)",
                       "retrieval", log_x=True)
  return name, "Video retrieval recall at k (test queries, train gallery)."


def heatmap(table: standard.StandardTable, out_dir: pathlib.Path) -> Figure | None:
  """Models x standard columns, coloured per column (rank within the column)."""
  rows = [row for row in table.rows if row.kind != "reported"]
  if len(rows) < 2 or not table.columns:
    return None
  import numpy as np
  plt = _pyplot()
  values = np.array([[np.nan if c is None else c.value for c in row.cells] for row in rows])
  keep = ~np.all(np.isnan(values), axis=0)
  values = values[:, keep]
  labels = [c.label for c, k in zip(table.columns, keep) if k]
  # Normalise each column to [0, 1] so that columns of different ranges share a scale.
  low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
  scaled = (values - low) / np.where(high > low, high - low, 1.0)
  fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 3, 0.36 * len(rows) + 1.6))
  ax.imshow(np.ma.masked_invalid(scaled), cmap="viridis", aspect="auto", vmin=0, vmax=1)
  ax.grid(False)
  ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
  ax.set_yticks(range(len(rows)),
                [f"{r.fields[0]} ({r.fields[1]})" + (" [baseline]" if r.kind == "baseline"
                                                     else "") for r in rows])
  for i in range(values.shape[0]):
    for j in range(values.shape[1]):
      if not np.isnan(values[i, j]):
        ax.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=8,
                color="white" if scaled[i, j] < 0.6 else "black")
  baselines = [i for i, r in enumerate(rows) if r.kind == "baseline"]
  if baselines and baselines[0] > 0:  # Baselines apart, as in the table.
    ax.axhline(baselines[0] - 0.5, color="white", linewidth=3)
  ax.set_title("models x metrics (colour: position within each column)")
  name = _save(fig, out_dir, "heatmap.png")
  return name, ("Every model (rows, as ranked in the standard table) against every standard "
                "column; the colour of a cell is its place between the column's lowest and "
                "highest value, the number is the accuracy in %.")
