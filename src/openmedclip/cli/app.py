"""The ``openmedclip`` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..embed import ItemError
from ..errors import InvalidInputError, OpenMedClipError
from . import render
from .evaluate import eval_command, report_command

app = typer.Typer(
    name="openmedclip",
    help="Contrastive language-image models for medical images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ModelOption = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Registry name, open_clip architecture, model folder or checkpoint file."),
]
DeviceOption = Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1, mps (default: best available).")]
PrecisionOption = Annotated[str, typer.Option(help="fp32, bf16 (fast on CPU) or fp16 (GPU).")]


def _model_name(model: str | None) -> str:
    from ..models import DEFAULT_MODEL

    chosen = model or os.environ.get("OPENMEDCLIP_MODEL") or DEFAULT_MODEL
    if not chosen:
        raise InvalidInputError("no model given: pass --model NAME|PATH or set OPENMEDCLIP_MODEL")
    return chosen


def _parse_labels(labels: str) -> list[str]:
    names = [name.strip() for name in labels.split(",") if name.strip()]
    if not names:
        raise InvalidInputError("--labels needs at least one class name, e.g. --labels 'normal,pneumonia'")
    return names


def _parse_pairs(pairs: list[str]) -> dict[str, tuple[str, str]]:
    parsed = {}
    for pair in pairs:
        label, sep, prompts = pair.partition("=")
        positive, bar, negative = prompts.partition("|")
        if not (sep and bar and label.strip() and positive.strip() and negative.strip()):
            raise InvalidInputError(f"--pair {pair!r} must look like 'LABEL=positive prompt|negative prompt'")
        parsed[label.strip()] = (positive.strip(), negative.strip())
    return parsed


@app.command()
def zeroshot(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively).")],
    labels: Annotated[str, typer.Option("--labels", "-l", help="Comma-separated class or finding names.")],
    model: ModelOption = None,
    template: Annotated[
        Optional[list[str]],
        typer.Option("--template", "-t", help="Prompt template with '{}' (repeatable) or a template set name."),
    ] = None,
    bank: Annotated[
        Optional[str],
        typer.Option(help="Sentence bank (built-in name or YAML path) giving each class its sentences or pair."),
    ] = None,
    multilabel: Annotated[bool, typer.Option(help="Independent positive/negative decision per label.")] = False,
    pair: Annotated[
        Optional[list[str]],
        typer.Option(help="Multi-label prompt pair 'LABEL=positive|negative' (repeatable)."),
    ] = None,
    threshold: Annotated[float, typer.Option(help="Multi-label decision threshold.")] = 0.5,
    window: Annotated[
        Optional[str], typer.Option(help="DICOM/CT window preset (lung, mediastinum, bone, brain, abdomen).")
    ] = None,
    recursive: Annotated[bool, typer.Option(help="Search folders recursively.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    device: DeviceOption = None,
    precision: PrecisionOption = "fp32",
) -> None:
    """Classify images zero-shot with text prompts."""
    from ..io import find_images
    from ..models import load_model
    from ..tasks.zeroshot import zero_shot

    names = _parse_labels(labels)
    files = find_images(paths, recursive=recursive)
    loaded = load_model(_model_name(model), device=device, precision=precision)
    templates = template[0] if template and len(template) == 1 else template
    result = zero_shot(
        loaded,
        files,
        names,
        templates=templates,
        multilabel=multilabel,
        pairs=_parse_pairs(pair or []),
        bank=bank,
        threshold=threshold,
        batch_size=batch_size,
        read_options={"window": window} if window else None,
        progress=len(files) > batch_size and sys.stderr.isatty(),
    )
    if as_json:
        typer.echo(render.to_json(result.to_dict()))
    elif as_csv:
        typer.echo(render.zero_shot_csv(result), nl=False)
    elif result.items:
        render.stdout.print(render.zero_shot_table(result))
    render.report_errors(result.errors)
    if result.errors:
        render.stderr.print(f"{len(result.errors)} of {len(files)} file(s) skipped")
        raise typer.Exit(1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    context: typer.Context,
    recipe: Annotated[Optional[Path], typer.Option(help="Training recipe YAML (see configs/train/).")] = None,
) -> None:
    """Train or fine-tune a CLIP model: a recipe plus --KEY VALUE overrides of its fields (see docs/training.md).

    Several processes or nodes: torchrun --nproc_per_node N -m openmedclip.train --recipe R.yaml
    """
    import json

    from ..train.cli import parse_args, run_from_cli

    _, overrides = parse_args(context.args)
    summary = run_from_cli(recipe, overrides)
    shown = {key: value for key, value in summary.to_dict().items() if key != "losses"}
    typer.echo(json.dumps(shown, indent=2))


app.command("eval")(eval_command)
app.command("report")(report_command)


@app.command()
def shards(
    path: Annotated[Path, typer.Argument(help="A data source: table, class folder, MedMNIST .npz, MedPix, VQA-RAD...")],
    out: Annotated[Path, typer.Argument(help="Folder for the .tar shards and dataset.json.")],
    source_type: Annotated[Optional[str], typer.Option("--type", help="Source type (default: guessed).")] = None,
    option: Annotated[
        Optional[list[str]], typer.Option("--option", "-o", help="Source option KEY=VALUE, e.g. split=train.")
    ] = None,
    maxcount: Annotated[int, typer.Option(min=1, help="Samples per shard at most.")] = 10_000,
) -> None:
    """Convert any data source to webdataset shards (images as PNG, captions and labels as JSON)."""
    import json

    from ..data import open_source, write_shards
    from ..data.factory import guess_type
    from ..data.shards import DATASET_INFO

    spec = {"type": source_type or guess_type(path), "path": str(path)}
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--option {item!r} must look like KEY=VALUE")
        spec[key] = value
    source = open_source(spec)
    written = write_shards(source, out, maxcount=maxcount)
    render.report_errors([ItemError(i, key, reason) for i, (key, reason) in enumerate(source.skipped)])
    count = json.loads((out / DATASET_INFO).read_text(encoding="utf-8"))["count"]
    typer.echo(f"wrote {len(written)} shard(s) with {count} sample(s) to {out}")
    if source.skipped:
        raise typer.Exit(1)


@app.command()
def export(
    source: Annotated[str, typer.Argument(help="Anything --model accepts, e.g. a training checkpoint folder.")],
    destination: Annotated[Path, typer.Argument(help="Folder to write (open_clip hub format).")],
    dtype: Annotated[str, typer.Option(help="Stored weight type: fp32, fp16 or bf16.")] = "fp32",
) -> None:
    """Write a model as a self-contained hub-format folder (e.g. a checkpoint stored in fp16 for shipping)."""
    import torch

    from ..models import load_model, save_model

    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if dtype not in dtypes:
        raise InvalidInputError(f"--dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
    folder = save_model(load_model(source, device="cpu"), destination, dtype=dtypes[dtype])
    typer.echo(f"wrote {folder}")


@app.command()
def models() -> None:
    """List the model names load_model accepts."""
    from ..models import list_models

    for name in list_models():
        typer.echo(name)


@app.command()
def banks() -> None:
    """List the built-in sentence banks and their classes."""
    from ..prompts import list_banks, load_bank

    for name in list_banks():
        bank = load_bank(name)
        render.stdout.print(f"[bold]{name}[/bold] ({bank.modality}): {', '.join(bank.class_names)}", highlight=False)


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="An image file (PNG, JPEG, TIFF, DICOM, NIfTI).")],
    window: Annotated[Optional[str], typer.Option(help="Window preset or 'centre,width'.")] = None,
) -> None:
    """Show how an image is read: size, intensity range, window and metadata."""
    from ..io import read_image

    image = read_image(path, window=window)
    pixels = image.pixels
    render.stdout.print(f"[bold]{image.path}[/bold]")
    render.stdout.print(f"shape {tuple(pixels.shape)}  range [{pixels.min():.1f}, {pixels.max():.1f}]")
    render.stdout.print(f"modality {image.modality}  window {image.window}")
    for key, value in sorted(image.meta.items()):
        render.stdout.print(f"  {key}: {value}", highlight=False)


def main() -> None:
    """Entry point: user mistakes become one red line and exit code 2, never a traceback."""
    try:
        app()
    except OpenMedClipError as error:
        render.stderr.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
