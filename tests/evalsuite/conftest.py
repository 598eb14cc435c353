"""Fixtures for suite runs: synthetic data (see ``suite_data``) and the two evaluation commands in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from suite_data import write_data_root, write_suite
from typer.testing import CliRunner

from openmedclip.cli.evaluate import eval_command, report_command


@pytest.fixture()
def data_root(tmp_path) -> Path:
    return write_data_root(tmp_path / "data")


@pytest.fixture()
def suite_file(tmp_path) -> Path:
    return write_suite(tmp_path / "tiny.yaml")


@pytest.fixture(scope="session")
def cli():
    """``cli(*args)`` runs the eval/report commands in-process and returns the click result."""
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command("eval")(eval_command)
    app.command("report")(report_command)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])
