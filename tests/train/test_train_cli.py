"""The command line: argument parsing, a run from a recipe file, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from openmedclip.train.cli import main, parse_args


def test_parse_args_pairs_flags_and_equals():
    recipe, overrides = parse_args(["--recipe", "r.yaml", "--lr", "1e-4", "--resume", "--datasets.0.path=x.jsonl"])
    assert recipe == Path("r.yaml")
    assert overrides == {"lr": "1e-4", "resume": "true", "datasets.0.path": "x.jsonl"}


def test_main_trains_from_a_recipe_with_overrides(recipe, tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(epochs=3)), encoding="utf-8")
    assert main(["--recipe", str(path), "--epochs", "1", "--batch_size", "16"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 2 and summary["epoch"] == 1 and Path(summary["checkpoint"]).is_dir()


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--recipe", "missing.yaml"], "recipe not found"), (["stray"], "unexpected argument")],
)
def test_user_mistakes_give_one_line_and_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
