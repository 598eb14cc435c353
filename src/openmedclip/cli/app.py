"""The ``openmedclip`` command.

Arguments are parsed before anything heavy is imported: this module and the option helpers import only typer,
the standard library and :mod:`openmedclip.errors`; each command imports the library parts (torch, open_clip,
rich, ...) it needs when it runs, so ``openmedclip --help`` and ``openmedclip models`` answer at once.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from typer.main import get_command

from ..errors import InvalidInputError, OpenMedClipError, WindowNotApplicableError
from ..precision import PRECISIONS
from .audit import audit_command
from .demo import demo_command
from .download import download_command
from .evaluate import eval_command, report_command
from .heatmap import heatmap_command
from .index import index_app, search_command
from .options import (
    DeviceOption,
    ForceWindowOption,
    ModelOption,
    PrecisionOption,
    WindowOption,
    key_values,
    missing_extra,
    model_name,
    names,
    require_extra,
    window_read_options,
)
from .serve import serve_command
from .train import CONTEXT_SETTINGS, train_command

PROG = "openmedclip"

app = typer.Typer(
    name=PROG,
    help="Contrastive language-image models for medical images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


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
    similarity: Annotated[
        str,
        typer.Option(help="How image and text are compared: 'global' (pooled features), or a model's own kind "
                     "(GLoRIA: 'local' word-region, 'both')."),
    ] = "global",
    window: WindowOption = None,
    force_window: ForceWindowOption = False,
    recursive: Annotated[bool, typer.Option(help="Search folders recursively.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
) -> None:
    """Classify images zero-shot with text prompts."""
    label_names = names(labels, "--labels")
    pairs = _parse_pairs(pair or [])
    read_options = window_read_options(window, force_window)

    from ..io.discover import expand_paths
    from ..models import load_model
    from ..tasks.zeroshot import zero_shot
    from . import render

    files = expand_paths(paths, recursive=recursive)
    loaded = load_model(model_name(model), device=device, precision=precision)
    templates = template[0] if template and len(template) == 1 else template
    result = zero_shot(
        loaded,
        files,
        label_names,
        templates=templates,
        multilabel=multilabel,
        pairs=pairs,
        bank=bank,
        threshold=threshold,
        similarity=similarity,
        batch_size=batch_size,
        read_options=read_options,
        progress=len(files) > batch_size and sys.stderr.isatty(),
    )
    window_refused = [error.kind == WindowNotApplicableError.__name__ for error in result.errors]
    if not result.items and window_refused and all(window_refused):
        raise InvalidInputError(f"--window {window}: {result.errors[0].message} (no file takes it; --force-window "
                                "applies it anyway)")
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


app.command("train", context_settings=CONTEXT_SETTINGS)(train_command)
app.command("eval")(eval_command)
app.command("report")(report_command)
app.command("download")(download_command)
app.command("heatmap")(heatmap_command)
app.command("audit")(audit_command)
app.command("search")(search_command)
app.add_typer(index_app)
app.command("serve")(serve_command)
app.command("demo")(demo_command)


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
    options = key_values(option, "--option")
    require_extra("webdataset")

    import json

    from ..data import open_source, write_shards
    from ..data.factory import guess_type
    from ..data.shards import DATASET_INFO
    from . import render

    spec = {"type": source_type or guess_type(path), "path": str(path), **options}
    source = open_source(spec)
    written = write_shards(source, out, maxcount=maxcount)
    render.report_skipped(source.skipped)
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
    _write_hub_folder(source, destination, dtype)


@app.command()
def convert(
    source: Annotated[str, typer.Argument(help="A registry name (e.g. openai/ViT-B-16, unimed/vit-b16) or path.")],
    to: Annotated[Path, typer.Option("--to", help="Folder to write.")],
    dtype: Annotated[str, typer.Option(help="Stored weight type: fp32, fp16 or bf16.")] = "fp32",
) -> None:
    """Write any model this package reads as safetensors plus configs: open_clip's hub format where the model is an
    open_clip one (OpenAI's TorchScript files, UniMed-CLIP's training checkpoints, ...; plain open_clip loads it),
    else openmedclip's own folder (MedCLIP, BioViL, GLoRIA, PMC-CLIP, CheXzero)."""
    _write_hub_folder(source, to, dtype)


def _write_hub_folder(source: str, destination: Path, dtype: str) -> None:
    if dtype not in PRECISIONS:
        raise InvalidInputError(f"--dtype must be one of {', '.join(PRECISIONS)}, got {dtype!r}")

    from ..models import load_model, save_model
    from ..precision import torch_dtype

    loaded = load_model(source, device="cpu", precision="fp32")  # stored weights are never rounded to bf16 first
    folder = save_model(loaded, destination, dtype=torch_dtype(dtype))
    typer.echo(f"wrote {folder}")


@app.command()
def models(
    names: Annotated[bool, typer.Option("--names", help="Only the names, one per line (registry, then architectures).")]
    = False,
) -> None:
    """The registry's models: family, architecture, whether they are here, licence and source."""
    if names:
        from ..models import list_models

        typer.echo("\n".join(list_models()))
        return
    from ..models.catalog import architecture_names, model_rows
    from . import render

    render.stdout.print(render.models_table(model_rows()))
    for family, architectures in architecture_names().items():
        render.stdout.print(
            f"plus {len(architectures)} {family} architectures with no weights here (random: outputs mean nothing "
            "until trained; 'openmedclip train' starts from them); 'openmedclip models --names' lists them",
            highlight=False,
        )


@app.command()
def banks() -> None:
    """List the built-in sentence banks and their classes."""
    from ..prompts import list_banks, load_bank
    from . import render

    for name in list_banks():
        bank = load_bank(name)
        line = f"[bold]{name}[/bold] ({bank.modality}): {', '.join(bank.class_names)}"
        render.stdout.print(line, highlight=False, soft_wrap=True)


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="An image file (PNG, JPEG, TIFF, DICOM, NIfTI).")],
    window: WindowOption = None,
    force_window: ForceWindowOption = False,
) -> None:
    """Show how an image is read: size, intensity range, window and metadata."""
    read_options = window_read_options(window, force_window)

    from ..io import read_image
    from . import render

    image = read_image(path, **(read_options or {}))
    pixels = image.pixels
    show = render.stdout.print
    show(f"[bold]{render.escape(str(image.path))}[/bold]", soft_wrap=True)
    show(f"shape {tuple(pixels.shape)}  range [{pixels.min():.1f}, {pixels.max():.1f}]", soft_wrap=True)
    show(f"modality {image.modality}  window {image.window}", soft_wrap=True)
    for key, value in sorted(image.meta.items()):
        show(f"  {key}: {render.escape(str(value))}", highlight=False, soft_wrap=True)


def command_names() -> list[str]:
    """The registered command names, in help order."""
    return list(_command().commands)


def _command() -> Any:
    """The click command of ``app``, every option and argument with an upper-case placeholder in its help."""
    group = get_command(app)
    for command in _walk(group):
        for param in getattr(command, "params", []):
            _set_placeholder(param)
    return group


def _walk(command: Any) -> list[Any]:
    nested = getattr(command, "commands", {})
    return [command] + [sub for child in nested.values() for sub in _walk(child)]


def _set_placeholder(param: object) -> None:
    """``N`` for whole numbers, ``NUMBER`` for others, else the parameter's name, with no Python type name beside
    it (typer shows ``<int>`` or ``<list[Path]>``)."""
    if getattr(param, "is_flag", False):
        return
    if getattr(param, "metavar", None) is None:
        descriptor = getattr(param, "type_descriptor", None)
        bare = getattr(descriptor, "ranged_type_name", None) if getattr(descriptor, "is_ranged", False) else None
        bare = bare or getattr(getattr(descriptor, "annotation", None), "__name__", "")
        name = str(getattr(param, "name", "value")).upper()
        param.metavar = {"int": "N", "float": "NUMBER"}.get(str(bare), name)  # type: ignore[attr-defined]
    if getattr(param, "param_type_name", "") == "argument":
        param.display_type_rich = lambda ctx: None  # type: ignore[attr-defined]


_CLICK_ERROR: type[Exception] = next(kind for kind in typer.BadParameter.__mro__ if kind.__name__ == "ClickException")
"""click's error base class (typer may bundle its own copy of click, so it is taken from typer's classes)."""


def _error_line(message: str) -> None:
    """``error: MESSAGE`` on stderr, on one line (red on a terminal)."""
    typer.secho("error:", fg="red", err=True, nl=False)
    typer.echo(" " + " ".join(str(message).split("\n")), err=True)


def _usage_error(error: Exception) -> int:
    if type(error).__name__ == "NoArgsIsHelpError":  # plain `openmedclip`: show the help
        error.show()  # type: ignore[attr-defined]
        return error.exit_code  # type: ignore[attr-defined]
    context = getattr(error, "ctx", None)
    hint = f" (see '{context.command_path} --help')" if context is not None else ""
    _error_line(error.format_message() + hint)  # type: ignore[attr-defined]
    return error.exit_code  # type: ignore[attr-defined]


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    0: done; 1: some items skipped (listed on stderr); 2: a usage, model or input error, or a missing optional
    dependency (one line on stderr, never a traceback).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line
        return _run(args)


def _warning_line(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
    """A warning as one ``warning: MESSAGE`` line on stderr (a library's own warnings name their kind)."""
    from ..errors import OpenMedClipWarning

    kind = "" if issubclass(category, OpenMedClipWarning) else f"{category.__name__}: "
    typer.secho("warning:", fg="yellow", err=True, nl=False)
    typer.echo(f" {kind}{' '.join(str(message).split())}", err=True)


def _run(args: list[str]) -> int:
    try:
        code = _command().main(args=args, prog_name=PROG, standalone_mode=False)
    except OpenMedClipError as error:
        _error_line(error.cli_message())
        return 2
    except ModuleNotFoundError as error:
        message = missing_extra(error)
        if message is None:
            raise
        _error_line(message)
        return 2
    except _CLICK_ERROR as error:
        return _usage_error(error)
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        return 1
    return code if isinstance(code, int) else 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``openmedclip`` script: :func:`run`, then exit with its code."""
    sys.exit(run(argv))
