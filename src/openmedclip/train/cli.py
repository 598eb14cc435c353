"""Command-line entry: ``python -m openmedclip.train --recipe r.yaml [--key value ...]`` (torchrun-ready)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from openmedclip.errors import InvalidInputError, OpenMedClipError
from openmedclip.train.config import load_recipe
from openmedclip.train.loop import TrainSummary, train

USAGE = "usage: python -m openmedclip.train [--recipe RECIPE.yaml] [--resume] [--KEY VALUE ...]"


def run_from_cli(recipe: Path | None, overrides: Mapping[str, str]) -> TrainSummary:
    """Train with a recipe file and ``key -> value`` overrides (values read as YAML, keys may be dotted)."""
    return train(load_recipe(recipe, overrides))


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run training; print the summary as JSON (rank 0); user mistakes give a one-line error and exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE + "\n\nKEYs are the fields of openmedclip.train.TrainConfig (dotted for nested ones).")
        return 0
    try:
        summary = run_from_cli(*parse_args(argv))
    except OpenMedClipError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":
        shown = {k: v for k, v in summary.to_dict().items() if k != "losses"}
        shown["last_loss"] = summary.losses[-1] if summary.losses else None
        print(json.dumps(shown, indent=2))
    return 0
