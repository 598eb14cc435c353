"""``openmedclip audit DATA...``: exact and near copies within and across the splits of data sources."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InvalidInputError
from .options import DeviceOption, PrecisionOption


def audit_command(
    data: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Data sources (MedMNIST .npz, MedPix or VQA-RAD folder, table, class folders); every "
                            "split each offers is audited."),
    ] = None,
    suite: Annotated[
        Optional[str], typer.Option("--suite", "-s", help="Audit every source of a suite (local, unimed21 or a YAML).")
    ] = None,
    data_root: Annotated[
        Optional[Path], typer.Option(help="Folder a suite's paths are relative to (default: $OPENMEDCLIP_DATA).")
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for audit.json, audit.md and closest_pairs.png.")
    ] = Path("audit"),
    model: Annotated[
        Optional[str], typer.Option("--model", "-m", help="Also compare image embeddings of this model.")
    ] = None,
    near_distance: Annotated[
        Optional[int], typer.Option(min=0, max=64, help="Near copy: perceptual hashes at most this many bits apart.")
    ] = None,
    embedding_cosine: Annotated[
        Optional[float], typer.Option(min=-1.0, max=1.0, help="Similar by embedding: cosine at least this (--model).")
    ] = None,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
) -> None:
    """Find exact and near copies of images within and across splits, and copies with different labels."""
    if not data and suite is None:
        raise InvalidInputError("give data sources to audit, or --suite")
    root = data_root or (Path(os.environ["OPENMEDCLIP_DATA"]) if os.environ.get("OPENMEDCLIP_DATA") else None)
    if suite is not None and root is None:
        raise InvalidInputError("--suite needs --data-root (or $OPENMEDCLIP_DATA)")

    from ..audit import audit_parts, source_parts, suite_parts, write_audit
    from ..audit.run import EMBEDDING_COSINE, NEAR_DISTANCE
    from . import render

    parts = [part for path in data or [] for part in source_parts(path)]
    if suite is not None and root is not None:
        parts += suite_parts(suite, root)
    loaded = None
    if model is not None:
        from ..models import load_model

        loaded = load_model(model, device=device, precision=precision)
    report = audit_parts(
        parts,
        loaded,
        near_distance=NEAR_DISTANCE if near_distance is None else near_distance,
        embedding_cosine=EMBEDDING_COSINE if embedding_cosine is None else embedding_cosine,
        progress=render.stderr.is_terminal,
    )
    files = write_audit(report, parts, out)
    typer.echo(report.summary_markdown(), nl=False)
    typer.echo(f"\nwritten: {files['json']}, {files['markdown']}, {files['sheet']}")
    if report.unreadable:
        render.report_skipped([(f"{part} {key}", problem) for part, key, problem in report.unreadable])
        raise typer.Exit(1)
