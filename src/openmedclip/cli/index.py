"""``openmedclip index build`` and ``openmedclip search``: an embedding index over an image archive
(:mod:`openmedclip.index`), built incrementally and searched by text or image."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..errors import InvalidInputError
from .options import DeviceOption, ModelOption, PrecisionOption, key_values, model_name, require_extra
from .train import is_rank_zero

if TYPE_CHECKING:
    from rich.table import Table

    from ..index import BuildReport, SearchHit

index_app = typer.Typer(
    name="index",
    help="Embedding indexes over image archives (search them with 'openmedclip search').",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

KindOption = Annotated[
    str,
    typer.Option(help="FAISS index: auto (exact below 100,000 files, else IVF), flat (exact), ivf or hnsw."),
]


@index_app.command("build")
def build_command(
    archive: Annotated[Path, typer.Argument(help="Folder of images (DICOM, NIfTI, PNG, JPEG, TIFF), searched "
                                            "recursively.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index folder (created; built again: only what "
                                      "changed is encoded).")],
    model: ModelOption = None,
    kind: KindOption = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    rebuild: Annotated[bool, typer.Option(help="Re-encode every file (needed to switch the index's model).")]
    = False,
) -> None:
    """Index an archive: encode new and changed files, forget removed ones (several processes: torchrun
    --nproc_per_node N -m openmedclip.cli index build ...)."""
    require_extra("faiss")

    from ..index import build_index
    from ..index.vectors import check_kind
    from . import render

    check_kind(kind)
    report = build_index(archive, model_name(model), out, kind=kind, batch_size=batch_size, device=device,
                         precision=precision, rebuild=rebuild, progress=sys.stderr.isatty())
    if not is_rank_zero():
        return
    render.stdout.print(_summary(report), highlight=False, soft_wrap=True)
    render.report_skipped((error.path, error.message) for error in report.errors)
    if report.failed:
        render.stderr.print(f"{report.failed} file(s) could not be indexed")
        raise typer.Exit(1)


def _summary(report: BuildReport) -> str:
    counts = ", ".join(f"{getattr(report, name)} {name}"
                       for name in ("added", "changed", "removed", "unchanged", "failed"))
    from .render import escape

    return (f"[bold]{escape(report.index)}[/bold]: {report.count} file(s) indexed ({report.kind}, model "
            f"{escape(report.model)}); {counts}; {report.seconds:.1f} s")


def search_command(
    index: Annotated[Path, typer.Argument(help="Index folder ('openmedclip index build').")],
    text: Annotated[Optional[str], typer.Argument(help="What to look for, e.g. 'right pleural effusion'.")] = None,
    image: Annotated[Optional[Path], typer.Option("--image", "-i", help="Find the files nearest to this image.")]
    = None,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="How many hits.")] = 10,
    where: Annotated[
        Optional[list[str]],
        typer.Option("--where", "-w", help="Metadata filter KEY=VALUE (repeatable, all must hold), e.g. "
                     "modality=CT; keys: format, modality, body_part, study_uid, series_uid, rows, columns."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model encoding the query (default: the "
                                                 "index's own).")] = None,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
) -> None:
    """Search an index by text or by image, optionally among files whose metadata match --where."""
    if (text is None) == (image is None):
        raise InvalidInputError("give either a search TEXT or --image PATH")
    filters = key_values(where, "--where")
    require_extra("faiss")

    from ..index import open_index
    from ..index.store import check_where
    from ..models import load_model
    from . import render

    check_where(filters)
    with open_index(index) as opened:
        loaded = load_model(model or opened.model, device=device, precision=precision)
        if image is not None:
            hits = opened.search_image(loaded, image, k=k, where=filters)
        else:
            hits = opened.search_text(loaded, str(text), k=k, where=filters)
    if as_json:
        query: dict[str, Any] = {"image": str(image)} if image is not None else {"text": text}
        typer.echo(render.to_json({"index": str(index), "model": opened.model, "query": query, "where": filters,
                                   "hits": [hit.to_dict() for hit in hits]}))
    else:
        render.stdout.print(_hits_table(hits, f"{len(hits)} hit(s) in {index}"))


def _hits_table(hits: list[SearchHit], title: str) -> Table:
    from rich.table import Table

    from .render import escape

    table = Table(title=escape(title))
    for column in ("rank", "score", "path", "format", "modality", "body part", "size"):
        table.add_column(column, overflow="fold")
    for hit in hits:
        meta = hit.metadata
        size = f"{meta['rows']}x{meta['columns']}" if meta.get("rows") is not None else "-"
        cells = (hit.path, meta.get("format"), meta.get("modality"), meta.get("body_part"))
        table.add_row(str(hit.rank), f"{hit.score:.4f}", *(escape(str(cell)) if cell else "-" for cell in cells), size)
    return table
