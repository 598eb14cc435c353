"""Trustworthy input handling in `openmedclip eval` and `report`: skipped items are counted, named and fail the
run; `eval` defaults its model and output folder; bad input is one line in command-line terms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from suite_data import FAST

import openmedclip.eval.runner as runner
from openmedclip.cli.app import run as run_cli
from openmedclip.models import load_model

BROKEN_SUITE = """
name: broken
datasets:
  scans:
    source: {type: folders, path: scans/test}
    train: {path: scans/train}
    tasks: [zeroshot, probe]
  scans-again:
    source: {type: folders, path: scans/test}
    tasks: [zeroshot]
"""
"""Two datasets on the same test folder: each unreadable test image is reported once."""


def _write_split(folder: Path, n: int, broken: int, rng: np.random.Generator) -> None:
    """``n`` PNGs in class folders ``a``/``b``; the first ``broken`` are zero-byte (odd) or truncated (even)."""
    for i in range(n):
        path = folder / ("a" if i % 2 else "b") / f"img{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        if i < broken:
            path.write_bytes(b"" if i % 2 else path.read_bytes()[:40])


@pytest.fixture()
def broken(tmp_path) -> tuple[Path, Path]:
    """A suite and data root: 11 test images (7 unreadable) and 8 training images (2 unreadable)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    _write_split(root / "scans" / "test", 11, 7, rng)
    _write_split(root / "scans" / "train", 8, 2, rng)
    suite = tmp_path / "broken.yaml"
    suite.write_text(BROKEN_SUITE, encoding="utf-8")
    return suite, root


def _result(out: Path, dataset: str, task: str) -> dict:
    return json.loads(next(out.glob(f"*/{dataset}/{task}.json")).read_text())


def test_skipped_items_are_counted_per_split_named_once_and_fail_eval(cli, tiny_model_dir, broken, tmp_path):
    suite, root = broken
    out = tmp_path / "results"
    result = cli("eval", "-s", suite, "-m", tiny_model_dir, "-o", out, "--data-root", root, *FAST)
    assert result.exit_code == 1, result.output

    zeroshot = _result(out, "scans", "zeroshot_classification")
    assert zeroshot["n_items"] == 4 and zeroshot["items"] == {"test": {"evaluated": 4, "skipped": 7}}
    assert [item["split"] for item in zeroshot["skipped_items"]] == ["test"] * 7
    assert {"key": "a/img1.png", "reason": "file is empty (0 bytes)", "split": "test"} in zeroshot["skipped_items"]
    probe = _result(out, "scans", "linear_probe")
    assert probe["items"] == {"test": {"evaluated": 4, "skipped": 7}, "train": {"evaluated": 6, "skipped": 2}}
    assert sorted(i["key"] for i in probe["skipped_items"] if i["split"] == "train") == ["a/img1.png", "b/img0.png"]
    assert _result(out, "scans-again", "zeroshot_classification")["items"]["test"] == {"evaluated": 4, "skipped": 7}

    lines = result.output.splitlines()
    assert "skipped scans a/img1.png: file is empty (0 bytes)" in lines
    assert "skipped scans (train) a/img1.png: file is empty (0 bytes)" in lines
    skipped = [line for line in lines if line.startswith("skipped scans")]
    assert len(skipped) == 9 and not any("scans-again" in line for line in lines if line.startswith("skipped"))
    assert any(line.startswith("9 item(s) skipped") for line in lines)
    assert "Traceback" not in result.output


def test_report_shows_the_counts_beside_each_metric_and_names_the_items(cli, tiny_model_dir, broken, tmp_path):
    suite, root = broken
    out = tmp_path / "results"
    cli("eval", "-s", suite, "-m", tiny_model_dir, "-o", out, "--data-root", root, *FAST)
    report = cli("report", out, "--no-plots")
    assert report.exit_code == 0, report.output
    text = (out / "report.md").read_text()
    acc1 = text.split("## Zero-shot classification — acc1", 1)[1]
    assert "| scans | " in acc1 and "] · 4 evaluated, 7 skipped |" in acc1.split("\n\n")[1]
    assert "· 4 evaluated, 7 skipped; train 6 evaluated, 2 skipped |" in text
    assert "## Skipped items (image missing or unreadable)" in text
    assert "- scans, test split: 7 item(s)" in text and "- scans, train split: 2 item(s)" in text
    assert "  - `a/img1.png`: file is empty (0 bytes)" in text


def test_skipped_items_listed_are_capped_and_the_rest_counted(cli, tiny_model_dir, broken, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "LISTED_ITEMS", 3)
    suite, root = broken
    out = tmp_path / "results"
    cli("eval", "-s", suite, "-m", tiny_model_dir, "-o", out, "--data-root", root, *FAST, "--tasks", "zeroshot")
    zeroshot = _result(out, "scans", "zeroshot_classification")
    assert len(zeroshot["skipped_items"]) == 3 and zeroshot["items"]["test"]["skipped"] == 7
    assert cli("report", out, "--no-plots").exit_code == 0
    assert "- scans, test split: 7 item(s)" in (text := (out / "report.md").read_text())
    assert "  - ... and 4 more" in text


def test_a_clean_run_records_nothing_skipped_and_exits_0(cli, tiny_model_dir, suite_file, data_root, tmp_path):
    out = tmp_path / "results"
    result = cli("eval", "-s", suite_file, "-m", tiny_model_dir, "-o", out, "--data-root", data_root, *FAST,
                 "--tasks", "probe")
    assert result.exit_code == 0, result.output
    probe = _result(out, "pneumo", "linear_probe")
    assert probe["items"] == {"test": {"evaluated": 20, "skipped": 0}, "train": {"evaluated": 24, "skipped": 0}}
    assert probe["skipped_items"] == [] and "item(s) skipped" not in result.output


def test_eval_defaults_to_the_builtin_model_and_results_suite(cli, tiny_model_dir, suite_file, data_root, tmp_path,
                                                            monkeypatch):
    asked = []

    def tiny_in_place_of(name, **options):
        asked.append(name)
        return load_model(tiny_model_dir, **options)

    monkeypatch.setattr(runner, "load_model", tiny_in_place_of)
    monkeypatch.delenv("OPENMEDCLIP_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)
    result = cli("eval", "-s", suite_file, "--data-root", data_root, *FAST, "--tasks", "retrieval")
    assert result.exit_code == 0, result.output
    assert asked == ["openmedclip-base"]
    written = tmp_path / "results" / "tiny" / "openmedclip-base" / "pairs" / "zeroshot_retrieval.json"
    assert json.loads(written.read_text())["model"] == "openmedclip-base"
    assert f"to {Path('results') / 'tiny'}" in result.output

    monkeypatch.setenv("OPENMEDCLIP_MODEL", "from-the-environment")
    assert cli("eval", "-s", suite_file, "--data-root", data_root, *FAST, "--tasks", "retrieval").exit_code == 0
    assert asked[-1] == "from-the-environment"


def test_default_out_names_the_suite():
    suite = runner.Suite(name="my suite/v2", origin="x", datasets={})
    assert runner.default_out(suite) == Path("results") / "my_suite_v2"


def _openmedclip(capsys, *args: object) -> tuple[int, list[str]]:
    """``openmedclip ARGS`` in this process: its exit code and stderr lines."""
    capsys.readouterr()
    code = run_cli([str(arg) for arg in args])
    return code, capsys.readouterr().err.strip().splitlines()


def test_bad_input_is_one_line_in_command_line_terms(capsys, tiny_model_dir, tmp_path, monkeypatch):
    (tmp_path / "data" / "empty" / "test").mkdir(parents=True)
    good = tmp_path / "good.yaml"
    good.write_text("name: e\ndatasets:\n  empty:\n    source: {type: folders, path: empty/test}\n"
                    "    tasks: [zeroshot]\n")
    typo = tmp_path / "typo.yaml"
    typo.write_text(good.read_text().replace("tasks:", "taks:"))
    common = ["eval", "-m", tiny_model_dir, "-o", tmp_path / "out"]

    code, lines = _openmedclip(capsys, *common, "-s", typo, "--data-root", tmp_path / "data")
    assert code == 2 and lines == [f"error: {typo}: datasets.empty.taks: unknown key (did you mean 'tasks'?) "
                                   "(and 1 more problem)"]
    code, lines = _openmedclip(capsys, *common, "-s", good, "--data-root", tmp_path / "nowhere")
    assert code == 2 and lines == [f"error: --data-root {tmp_path / 'nowhere'}: no such folder"]
    monkeypatch.setenv("OPENMEDCLIP_DATA", str(good))
    code, lines = _openmedclip(capsys, *common, "-s", good)
    assert code == 2 and lines == [f"error: $OPENMEDCLIP_DATA={good}: not a folder"]
    code, lines = _openmedclip(capsys, *common, "-s", good, "--data-root", tmp_path / "data")
    assert code == 1
    assert f"failed empty: {tmp_path / 'data' / 'empty' / 'test'}: no class sub-folders found" in lines
    assert not any("Traceback" in line or "*" in line for line in lines)
