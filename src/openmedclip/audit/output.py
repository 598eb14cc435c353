"""An audit on disk: ``audit.json`` (every pair), ``audit.md`` (the summary) and ``closest_pairs.png``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from openmedclip.atomic import write_json, write_text
from openmedclip.audit.contact_sheet import write_contact_sheet
from openmedclip.audit.findings import AuditReport, CopyPair
from openmedclip.audit.parts import Part

SHEET_PAIRS = 12
"""Pairs drawn on the contact sheet."""


def closest_cross_pairs(report: AuditReport, count: int = SHEET_PAIRS) -> list[CopyPair]:
    """The closest pairs between an evaluation part and a training part (else between any two parts)."""
    training = set(report.training_parts)
    cross = [pair for pair in report.pairs if pair.cross_part]
    between = [pair for pair in cross if (pair.first_part in training) != (pair.second_part in training)]
    return (between or cross)[:count]


def write_audit(report: AuditReport, parts: Sequence[Part], out: str | Path) -> dict[str, Path]:
    """Write the report's files into the folder ``out``; returns them by kind."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": folder / "audit.json", "markdown": folder / "audit.md", "sheet": folder / "closest_pairs.png"}
    write_json(files["json"], report.to_dict())
    write_text(files["markdown"], report.summary_markdown())
    write_contact_sheet(closest_cross_pairs(report), {part.name: part.source for part in parts}, files["sheet"])
    return files
