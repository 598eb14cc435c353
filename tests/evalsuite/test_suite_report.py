"""`openmedclip report`: Markdown and CSV tables (datasets × models, value [low, high]) and PNG plots."""

from __future__ import annotations

import csv
import shutil

import pytest
from PIL import Image
from suite_data import FAST, write_data_root, write_suite

from openmedclip.errors import InvalidInputError
from openmedclip.eval.report import format_cell, load_results


@pytest.fixture(scope="module")
def results(cli, tiny_model_dir, tmp_path_factory):
    """Results of the tiny suite for two models (the same weights under two folder names)."""
    tmp = tmp_path_factory.mktemp("report")
    suite, root, out = write_suite(tmp / "tiny.yaml"), write_data_root(tmp / "data"), tmp / "results"
    twin = shutil.copytree(tiny_model_dir, tmp / "twin")
    result = cli("eval", "-s", suite, "-m", tiny_model_dir, "-m", twin, "-o", out, "--data-root", root, *FAST)
    assert result.exit_code == 0, result.output
    return out


def test_report_writes_tables_and_plots(cli, results, tmp_path):
    target = tmp_path / "report"
    result = cli("report", results, "--out", target)
    assert result.exit_code == 0, result.output
    models = sorted(p.name for p in results.iterdir() if not p.name.startswith("."))
    assert len(models) == 2

    with (target / "report.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["task", "metric", "dataset", *models]
    keys = [tuple(r[:3]) for r in rows[1:]]
    assert keys == [
        ("zeroshot_classification", "acc1", "pairs"),
        ("zeroshot_classification", "acc1", "pneumo"),
        ("zeroshot_classification", "auroc", "pairs"),
        ("zeroshot_classification", "auroc", "pneumo"),
        ("linear_probe", "lp_acc1", "pneumo"),
        ("zeroshot_retrieval", "image_retrieval_recall@5", "pairs"),
        ("zeroshot_retrieval", "text_retrieval_recall@5", "pairs"),
    ]
    assert all(cell.count("[") == 1 and cell.endswith("]") for row in rows[1:] for cell in row[3:])
    assert rows[1][3] == rows[1][4]  # same weights, same numbers

    with (target / "metrics.csv").open() as f:
        long = list(csv.DictReader(f))
    assert {r["model"] for r in long} == set(models)
    assert {"acc1", "lp_acc1", "ece", "image_retrieval_median_rank"} <= {r["metric"] for r in long}

    text = (target / "report.md").read_text()
    assert "## Zero-shot classification — acc1" in text and f"| dataset | {models[0]} | {models[1]} |" in text
    assert "## Skipped (data not found)" in text and "- absent: not found:" in text

    plots = sorted(p.relative_to(target / "plots").as_posix() for p in (target / "plots").rglob("*.png"))
    for model in models:
        for name in ("pneumo_zeroshot_roc", "pneumo_zeroshot_confusion", "pneumo_probe_confusion",
                     "pairs_zeroshot_roc", "pairs_zeroshot_confusion"):
            assert f"{model}/{name}.png" in plots
    assert "kshot/pneumo.png" in plots and len(plots) == 11
    with Image.open(target / "plots" / "kshot" / "pneumo.png") as image:
        assert image.format == "PNG" and image.width > 100


def test_report_defaults_to_the_results_folder_and_can_skip_plots(cli, results):
    result = cli("report", results, "--no-plots")
    assert result.exit_code == 0, result.output
    assert (results / "report.md").is_file() and not (results / "plots").exists()
    assert len(load_results(results)) == 8  # report files and the cache are not read as results


def test_report_on_an_empty_folder_is_a_clear_error(cli, tmp_path):
    result = cli("report", tmp_path)
    assert isinstance(result.exception, InvalidInputError) and "no result files" in str(result.exception)


def test_cells_show_value_and_interval():
    result = {"metrics": {"a": 0.8434, "b": 0.5, "c": None}, "ci": {"a": [0.81, 0.87], "b": [None, None]}}
    assert format_cell(result, "a") == "0.843 [0.810, 0.870]"
    assert format_cell(result, "b") == "0.500"
    assert format_cell(result, "c") == "—" and format_cell(None, "a") == "—"
