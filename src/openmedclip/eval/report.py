"""Aggregate result JSONs into tables: ``report.md`` and ``report.csv`` (datasets × models, headline metrics with
intervals, e.g. ``0.843 [0.810, 0.870]``), ``metrics.csv`` (every scalar metric, one row each) and plots.

``report.md`` starts with the protocol summary of suites that declare one (each dataset's primary metric in
percent and the suite's means, :mod:`openmedclip.eval.protocol`); each cell of its tables also says on how many
items the value is and how many were skipped (image missing or unreadable). It lists, per dataset and model, what
the intervals resample (items, or cases with their number) and how many test items the model saw in training, and
names the skipped items."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openmedclip.atomic import write_text
from openmedclip.errors import InvalidInputError
from openmedclip.eval.protocol import protocol_markdown, protocol_summaries
from openmedclip.metrics.defaults import CI_LEVEL
from openmedclip.tasks.registry import by_benchmark_name

RESULT_KEYS = ("dataset", "model", "task", "metrics")


@dataclass
class ReportFiles:
    """What `write_report` wrote."""

    markdown: Path
    csv: Path
    metrics_csv: Path
    plots: list[Path] = field(default_factory=list)


def load_results(folder: Path) -> list[dict[str, Any]]:
    """Every result JSON under ``folder`` (files with the CLIP_benchmark keys), sorted by task, dataset, model."""
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: results folder not found")
    results = []
    for path in sorted(folder.rglob("*.json")):
        if ".cache" in path.relative_to(folder).parts:
            continue
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise InvalidInputError(f"{path}: not valid JSON ({err.msg})") from None
        if isinstance(payload, dict) and all(key in payload for key in RESULT_KEYS):
            results.append(payload)
    if not results:
        raise InvalidInputError(f"{folder}: no result files (run 'openmedclip eval' first)")
    return sorted(results, key=lambda r: (r["task"], r["dataset"], model_label(r)))


def load_summaries(folder: Path) -> list[dict[str, Any]]:
    """The ``summary.json`` of every model run under ``folder``."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*/summary.json"))]


def model_label(result: dict[str, Any]) -> str:
    """The column name of a result's model."""
    return str(result.get("model_slug") or result["model"])


def format_cell(result: dict[str, Any] | None, metric: str) -> str:
    """``value [low, high]`` with three decimals; ``value`` alone without an interval; ``—`` when absent."""
    if result is None or (value := result["metrics"].get(metric)) is None:
        return "—"
    low, high = (result.get("ci") or {}).get(metric) or (None, None)
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def items_note(result: dict[str, Any]) -> str:
    """``4 evaluated, 7 skipped`` (and ``; train 24 evaluated, 0 skipped`` for a probe); empty for results that
    do not record their items."""
    counts = result.get("items") or {}
    parts = [
        f"{'' if split == 'test' else split + ' '}{count['evaluated']} evaluated, {count['skipped']} skipped"
        for split, count in counts.items()
    ]
    return "; ".join(parts)


def headline_rows(results: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Models, and rows ``[task, metric, dataset, cell per model]`` for the headline metrics."""
    models = sorted({model_label(r) for r in results})
    index = {(r["task"], r["dataset"], model_label(r)): r for r in results}
    rows = []
    tasks = {r["task"] for r in results}
    specs = by_benchmark_name()
    for task in [*(t for t in specs if t in tasks), *sorted(tasks - set(specs))]:
        datasets = sorted({r["dataset"] for r in results if r["task"] == task})
        for metric in (specs[task].headline if task in specs else ()):
            if not any(metric in r["metrics"] for r in results if r["task"] == task):
                continue
            for dataset in datasets:
                cells = [format_cell(index.get((task, dataset, m)), metric) for m in models]
                rows.append([task, metric, dataset, *cells])
    return models, rows


def markdown(results: Sequence[dict[str, Any]], summaries: Sequence[dict[str, Any]] = ()) -> str:
    """The Markdown report: the protocol summaries, a table per (task, headline metric), then skipped items and
    skipped and failed datasets."""
    models, rows = _counted(*headline_rows(results), results)
    level = results[0].get("ci_level", CI_LEVEL)
    suites = ", ".join(sorted({str(r.get("suite", "?")) for r in results}))
    lines = ["# Evaluation report", "", f"Suite(s): {suites}. Cells: value [{level:.0%} bootstrap interval] · items "
             "evaluated, skipped (image missing or unreadable; listed under 'Skipped items'); the resampling unit of "
             "each interval is listed under 'Resampling unit and contamination'."]
    lines += _precision_line(results)
    lines += protocol_markdown(protocol_summaries(results, summaries))
    shown = None
    titles = {name: spec.title for name, spec in by_benchmark_name().items()}
    for task, metric, dataset, *cells in rows:
        if (task, metric) != shown:
            shown = (task, metric)
            lines += ["", f"## {titles.get(task, task)} — {metric}", ""]
            lines += ["| dataset | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    lines += _units_and_contamination(results)
    lines += _skipped_items(results)
    lines += _notes(summaries)
    return "\n".join(lines) + "\n"


def _counted(
    models: list[str], rows: list[list[str]], results: Sequence[dict[str, Any]]
) -> tuple[list[str], list[list[str]]]:
    """The headline rows with each cell followed by its result's :func:`items_note` (``value · 4 evaluated, ...``)."""
    index = {(r["task"], r["dataset"], model_label(r)): r for r in results}
    counted = []
    for task, metric, dataset, *cells in rows:
        notes = [items_note(index[(task, dataset, m)]) if (task, dataset, m) in index else "" for m in models]
        counted.append([task, metric, dataset, *(f"{c} · {n}" if n else c for c, n in zip(cells, notes))])
    return models, counted


def _precision_line(results: Sequence[dict[str, Any]]) -> list[str]:
    """``Precision: model bf16 on cpu, ...`` for the results that record it (empty when none does)."""
    runs: dict[str, set[str]] = {}
    for r in results:
        if "precision" in r:
            runs.setdefault(model_label(r), set()).add(f"{r['precision']} on {r.get('device', '?')}")
    if not runs:
        return []
    listed = "; ".join(f"{model} {', '.join(sorted(how))}" for model, how in sorted(runs.items()))
    return ["", f"Precision: {listed}."]


def resampling_cell(result: dict[str, Any]) -> str:
    """``item (624)`` or ``case (67 groups)``; ``—`` for results that do not record it."""
    unit = result.get("resampling")
    if not unit:
        return "—"
    return f"item ({unit['n_units']})" if unit["unit"] == "item" else f"{unit['unit']} ({unit['n_units']} groups)"


def contamination_cell(result: dict[str, Any]) -> str:
    """``0 of 197 seen``, ``3 of 156 seen, left out`` or ``not checked (no training manifest)``."""
    check = result.get("contamination")
    if not check:
        return "—"
    if not check["checked"]:
        return "not checked (no training manifest)"
    left_out = ", left out" if check.get("excluded") and check["seen"] else ""
    return f"{check['seen']} of {check['of']} seen{left_out}"


def _units_and_contamination(results: Sequence[dict[str, Any]]) -> list[str]:
    """A table of (dataset, model): the intervals' resampling unit and the test items seen in training."""
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    for r in results:
        rows.setdefault((r["dataset"], model_label(r)), (resampling_cell(r), contamination_cell(r)))
    lines = ["", "## Resampling unit and contamination", ""]
    lines += ["| dataset | model | resampling unit | test items seen in training |", "|---|---|---|---|"]
    lines += [f"| {d} | {m} | {unit} | {seen} |" for (d, m), (unit, seen) in sorted(rows.items())]
    return lines


def _skipped_items(results: Sequence[dict[str, Any]]) -> list[str]:
    """Per dataset and split, the items skipped for a missing or unreadable image, each once (empty when none)."""
    counts: dict[tuple[str, str], int] = {}
    named: dict[tuple[str, str], dict[str, str]] = {}
    for r in results:
        for split, count in (r.get("items") or {}).items():
            counts[(r["dataset"], split)] = max(counts.get((r["dataset"], split), 0), count["skipped"])
        for item in r.get("skipped_items") or []:
            named.setdefault((r["dataset"], item.get("split", "test")), {})[item["key"]] = item["reason"]
    shown = sorted(key for key in counts.keys() | named.keys() if counts.get(key) or named.get(key))
    if not shown:
        return []
    lines = ["", "## Skipped items (image missing or unreadable)", ""]
    for dataset, split in shown:
        items = named.get((dataset, split), {})
        total = max(counts.get((dataset, split), 0), len(items))
        lines.append(f"- {dataset}, {split} split: {total} item(s)")
        lines += [f"  - `{key}`: {reason}" for key, reason in items.items()]
        if total > len(items):
            lines.append(f"  - ... and {total - len(items)} more")
    return lines


def _notes(summaries: Sequence[dict[str, Any]]) -> list[str]:
    skipped = {(s["dataset"], s.get("task", ""), s["reason"]) for run in summaries for s in run.get("skipped", [])}
    failed = {(f["model"], f["dataset"], f["task"], f["error"]) for run in summaries for f in run.get("failed", [])}
    lines = []
    if skipped:
        lines += ["", "## Skipped (data not found)", ""]
        lines += [f"- {d}{' (' + t + ')' if t else ''}: {reason}" for d, t, reason in sorted(skipped)]
    if failed:
        lines += ["", "## Failed", ""]
        lines += [f"- {d} / {t} ({m}): {error}" for m, d, t, error in sorted(failed)]
    return lines


def _csv_text(header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def metric_rows(results: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Rows ``[model, dataset, task, metric, value, low, high, n_items]`` for every scalar metric."""
    rows = []
    for r in results:
        for metric, value in r["metrics"].items():
            low, high = (r.get("ci") or {}).get(metric) or (None, None)
            rows.append([model_label(r), r["dataset"], r["task"], metric, value, low, high, r.get("n_items")])
    return rows


def write_report(folder: Path, out: Path | None = None, *, plots: bool = True, progress: bool = False) -> ReportFiles:
    """Write ``report.md``, ``report.csv``, ``metrics.csv`` and (with ``plots``) PNGs under ``out/plots``."""
    results = load_results(folder)
    out = out or folder
    models, rows = headline_rows(results)
    files = ReportFiles(out / "report.md", out / "report.csv", out / "metrics.csv")
    texts = {
        files.markdown: markdown(results, load_summaries(folder)),
        files.csv: _csv_text(["task", "metric", "dataset", *models], rows),
        files.metrics_csv: _csv_text(
            ["model", "dataset", "task", "metric", "value", "low", "high", "n_items"], metric_rows(results)
        ),
    }
    for path, text in texts.items():
        write_text(path, text)
    if plots:
        from openmedclip.eval.plots import write_plots

        files.plots = write_plots(results, out / "plots", progress=progress)
    return files
