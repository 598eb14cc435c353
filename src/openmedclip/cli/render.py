"""Rendering of results for the terminal (rich), JSON and CSV. Imported by the commands that print results."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from ..embed import ItemError
    from ..models.catalog import ModelRow
    from ..tasks.zeroshot import ZeroShotResult

stdout = Console()
stderr = Console(stderr=True)


def shown_name(name: str) -> str:
    """A file name as printable text: bytes that are not UTF-8 (kept by Python as surrogates) as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def zero_shot_table(result: ZeroShotResult, top: int = 3) -> Table:
    """Rich table: one row per image with its verdict and the top label probabilities."""
    title = "Zero-shot " + ("multi-label" if result.mode == "multilabel" else "classification")
    caption = f"prompts: sentence bank '{result.bank}'" if result.bank else None
    table = Table(title=title, caption=caption)
    table.add_column("image", overflow="fold")
    table.add_column("prediction", style="bold green")
    table.add_column("probabilities" if result.mode == "multiclass" else "P(label)")
    for prediction in result.predictions():
        ranked = sorted(prediction.probabilities.items(), key=lambda kv: -kv[1])
        shown = ranked if result.mode == "multilabel" else ranked[:top]
        table.add_row(
            escape(shown_name(prediction.item)),
            escape(", ".join(prediction.labels)) or "-",
            escape("  ".join(f"{label} {p:.3f}" for label, p in shown)),
        )
    return table


def zero_shot_csv(result: ZeroShotResult) -> str:
    """CSV text: image, prediction, one probability column per label."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "prediction", *result.labels])
    for prediction in result.predictions():
        row = [prediction.probabilities[label] for label in result.labels]
        writer.writerow([shown_name(prediction.item), ";".join(prediction.labels), *row])
    return buffer.getvalue()


def to_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, indent=2)


def report_skipped(skipped: Iterable[tuple[str, str]]) -> None:
    """One line per skipped ``(item, reason)`` on stderr."""
    for item, reason in skipped:
        line = f"[yellow]skipped[/yellow] {escape(shown_name(str(item)))}: {escape(shown_name(str(reason)))}"
        stderr.print(line, highlight=False, soft_wrap=True)


def report_errors(errors: Iterable[ItemError]) -> None:
    """One line per skipped item on stderr."""
    report_skipped((error.item, error.message) for error in errors)


def models_table(rows: Iterable[ModelRow]) -> Table:
    """Rich table: one row per registry name, with where its files are (or that they are missing)."""
    table = Table(title="Models")
    for column in ("name", "family", "architecture", "weights here", "licence", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        here = f"[green]yes[/green] {escape(row.location)}" if row.location else "[yellow]not found[/yellow]"
        table.add_row(row.name, row.family, escape(row.architecture), here, escape(row.licence), row.source)
    return table
