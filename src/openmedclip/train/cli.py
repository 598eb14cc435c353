"""``python -m openmedclip.train --recipe r.yaml [--KEY VALUE ...]`` (torchrun-ready): the ``openmedclip train``
command itself (:mod:`openmedclip.cli.train`), so help, errors, exit codes and the printed summary are the same."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from openmedclip.cli.train import USAGE, parse_args

if TYPE_CHECKING:
    from openmedclip.train.loop import TrainSummary

__all__ = ["USAGE", "main", "parse_args", "run_from_cli"]


def run_from_cli(recipe: Path | None, overrides: Mapping[str, str]) -> TrainSummary:
    """Train with a recipe file and ``key -> value`` overrides (values read as YAML, keys may be dotted)."""
    from openmedclip.train.config import load_recipe
    from openmedclip.train.loop import train

    return train(load_recipe(recipe, overrides))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``openmedclip train ARGV`` (default: ``sys.argv[1:]``) and return its exit code: 0 done (summary JSON
    printed by the first process), 2 a user mistake (one line on stderr)."""
    from openmedclip.cli.app import run

    return run(["train", *(sys.argv[1:] if argv is None else argv)])
