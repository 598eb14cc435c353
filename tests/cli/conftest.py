"""Fixtures for the command-line tests: ``openmedclip ARGS`` in-process, and tiny data for the commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import Result, write_pairs

from openmedclip.cli.app import run


@pytest.fixture()
def cli(capsys):
    """``cli(*args)`` runs ``openmedclip ARGS`` in this process and returns its exit code, stdout and stderr."""

    def invoke(*args: object) -> Result:
        capsys.readouterr()
        code = run([str(arg) for arg in args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return invoke


@pytest.fixture()
def pairs_table(tmp_path) -> Path:
    """Eight captioned PNGs (CT / MR) as a JSONL table."""
    return write_pairs(tmp_path / "pairs")
