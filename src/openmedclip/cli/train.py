"""``openmedclip train`` -- also what ``python -m openmedclip.train`` (and torchrun with it) runs."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import InvalidInputError

USAGE = "usage: openmedclip train [--recipe RECIPE.yaml] [--resume] [--KEY VALUE ...]"

CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}
"""Unknown ``--KEY VALUE`` options are recipe overrides, collected in ``context.args``."""


def parse_args(argv: Sequence[str]) -> tuple[Path | None, dict[str, str]]:
    """``--recipe PATH`` and ``--key value`` / ``--key=value`` pairs; a bare ``--flag`` means ``true``."""
    recipe: Path | None = None
    overrides: dict[str, str] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--") or arg == "--":
            raise InvalidInputError(f"unexpected argument {arg!r}; {USAGE}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            value = args.pop(0) if args and not args[0].startswith("--") else "true"
        if key == "recipe":
            recipe = Path(value)
        else:
            overrides[key] = value
    return recipe, overrides


def summary_payload(summary: Any) -> dict[str, Any]:
    """The printed summary: the run's fields without the loss history, plus the last loss."""
    shown = {key: value for key, value in summary.to_dict().items() if key != "losses"}
    shown["last_loss"] = summary.losses[-1] if summary.losses else None
    return shown


def is_rank_zero() -> bool:
    """True in a single process and in the first process of a torchrun job (``$RANK``)."""
    return os.environ.get("RANK", "0") == "0"


def train_command(
    context: typer.Context,
    recipe: Annotated[
        Optional[Path], typer.Option(metavar="PATH", help="Training recipe YAML (see configs/train/).")
    ] = None,
) -> None:
    """Train or fine-tune a CLIP model: a recipe plus --KEY VALUE overrides of its fields (see docs/training.md).

    KEYs are the fields of openmedclip.train.TrainConfig, dotted for nested ones: --model NAME, --datasets.0.path
    PATH, --epochs N, --batch_size N, --lr NUMBER, --out_dir PATH, --max_bad_items N, ...; a VALUE is read as YAML
    and a bare --flag (--resume) means true. Prints the run's summary as JSON (first process only).

    Several processes or nodes: torchrun --nproc_per_node N -m openmedclip.train --recipe PATH
    """
    from ..train.cli import run_from_cli

    extra_recipe, overrides = parse_args(context.args)
    summary = run_from_cli(recipe or extra_recipe, overrides)
    if is_rank_zero():
        typer.echo(json.dumps(summary_payload(summary), indent=2))
