"""Inference defaults to precision 'auto' (resolved per device or by $OPENMEDCLIP_PRECISION); export and conversion
store weights from an fp32 load; evaluation results and reports name the precision they ran in."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import openmedclip.models
from evalsuite.suite_data import write_data_root, write_suite
from openmedclip.cli.app import run
from openmedclip.eval.report import markdown
from openmedclip.eval.runner import EvalOptions, model_slug
from openmedclip.precision import PRECISION_ENV, precision_name

WEIGHTS = "open_clip_model.safetensors"


@pytest.fixture()
def loaded_models(monkeypatch) -> list:
    """Every model the commands load, in order."""
    load_model = openmedclip.models.load_model
    seen = []

    def recording(*args, **kwargs):
        seen.append(load_model(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(openmedclip.models, "load_model", recording)
    return seen


@pytest.mark.parametrize("chosen", ["bf16", "fp32"])
def test_zeroshot_defaults_to_auto(monkeypatch, capsys, loaded_models, tiny_model_dir, image_folder, chosen):
    monkeypatch.setenv(PRECISION_ENV, chosen)
    code = run(["zeroshot", str(image_folder), "--labels", "normal,pneumonia", "--model", str(tiny_model_dir),
                "--device", "cpu", "--json"])
    assert code == 0, capsys.readouterr().err
    assert [precision_name(loaded.dtype) for loaded in loaded_models] == [chosen]
    assert len(json.loads(capsys.readouterr().out)["predictions"]) == 6


def test_zeroshot_explicit_precision_wins(monkeypatch, capsys, loaded_models, tiny_model_dir, image_folder):
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    code = run(["zeroshot", str(image_folder), "--labels", "normal,pneumonia", "--model", str(tiny_model_dir),
                "--device", "cpu", "--precision", "fp32", "--json"])
    assert code == 0, capsys.readouterr().err
    assert [loaded.dtype for loaded in loaded_models] == [torch.float32]


@pytest.fixture()
def evaluate(capsys, tiny_model_dir, tmp_path):
    """``evaluate(*extra)``: ``openmedclip eval`` (zero-shot on the tiny suite's captioned pairs) then ``report``;
    returns the result JSON and report.md."""
    suite, root = write_suite(tmp_path / "tiny.yaml"), write_data_root(tmp_path / "data")

    def go(*extra: str) -> tuple[dict, str]:
        out = tmp_path / "results"
        args = ["eval", "-s", suite, "-m", tiny_model_dir, "-o", out, "--data-root", root, "--datasets", "pairs",
                "--tasks", "zeroshot", "--bootstrap", "0", "--device", "cpu", "--no-cache", *extra]
        assert run([str(arg) for arg in args]) == 0, capsys.readouterr().err
        assert run(["report", str(out), "--no-plots"]) == 0, capsys.readouterr().err
        result = out / model_slug(str(tiny_model_dir)) / "pairs" / "zeroshot_classification.json"
        return json.loads(result.read_text()), (out / "report.md").read_text()

    return go


@pytest.mark.parametrize("chosen", ["bf16", "fp32"])
def test_eval_defaults_to_auto_and_records_the_precision(monkeypatch, capsys, evaluate, tiny_model_dir, chosen):
    assert EvalOptions().precision == "auto"
    monkeypatch.setenv(PRECISION_ENV, chosen)
    result, report = evaluate()
    assert result["precision"] == chosen and result["device"] == "cpu"
    assert f"Precision: {model_slug(str(tiny_model_dir))} {chosen} on cpu." in report
    assert f"{chosen} on cpu" in capsys.readouterr().err


def test_eval_explicit_precision_wins(monkeypatch, evaluate):
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    result, _ = evaluate("--precision", "fp32")
    assert result["precision"] == "fp32"


def test_report_names_each_models_precision_and_skips_results_without_one():
    base = {"suite": "s", "task": "zeroshot_classification", "dataset": "d", "metrics": {"acc1": 0.5}}
    results = [
        {**base, "model": "b", "precision": "fp32", "device": "cuda:0"},
        {**base, "model": "a", "precision": "bf16", "device": "cpu"},
        {**base, "model": "a", "dataset": "e", "precision": "fp32", "device": "cpu"},
    ]
    assert "Precision: a bf16 on cpu, fp32 on cpu; b fp32 on cuda:0." in markdown(results)
    assert "Precision" not in markdown([{**base, "model": "c"}])


@pytest.mark.parametrize("command", ["export", "convert"])
def test_export_and_convert_store_weights_from_an_fp32_load(monkeypatch, capsys, tiny_model_dir, tmp_path, command):
    """Even where 'auto' (the default of ``load_model`` callers) would pick bf16, no weight is rounded to bf16."""
    load_model = openmedclip.models.load_model

    def auto_by_default(*args, precision: str = "auto", **kwargs):
        return load_model(*args, precision=precision, **kwargs)

    monkeypatch.setattr(openmedclip.models, "load_model", auto_by_default)
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    target = tmp_path / "written"
    args = [command, str(tiny_model_dir), str(target)] if command == "export" else [
        command, str(tiny_model_dir), "--to", str(target)]
    assert run(args) == 0, capsys.readouterr().err
    source, written = load_file(tiny_model_dir / WEIGHTS), load_file(target / WEIGHTS)
    assert set(written) == set(source)
    assert all(written[key].dtype == torch.float32 for key in source if source[key].is_floating_point())
    assert all(torch.equal(written[key], source[key]) for key in source)
    rounded = [key for key, t in source.items() if t.is_floating_point() and not torch.equal(t, t.bfloat16().float())]
    assert rounded, "a bf16 load would have changed some weight"
