"""Rendering of results for the terminal, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from ..embed import ItemError
from ..tasks.zeroshot import ZeroShotResult

stdout = Console()
stderr = Console(stderr=True)


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
            prediction.item,
            ", ".join(prediction.labels) or "-",
            "  ".join(f"{label} {p:.3f}" for label, p in shown),
        )
    return table


def zero_shot_csv(result: ZeroShotResult) -> str:
    """CSV text: image, prediction, one probability column per label."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "prediction", *result.labels])
    for prediction in result.predictions():
        row = [prediction.probabilities[label] for label in result.labels]
        writer.writerow([prediction.item, ";".join(prediction.labels), *row])
    return buffer.getvalue()


def to_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, indent=2)


def report_errors(errors: list[ItemError]) -> None:
    """One line per skipped item on stderr."""
    for error in errors:
        stderr.print(f"[yellow]skipped[/yellow] {error.item}: {error.message}", highlight=False, soft_wrap=True)
