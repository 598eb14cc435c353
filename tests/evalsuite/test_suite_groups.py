"""Suite entries with ``groups``: intervals resample whole groups, the result JSON and report say the unit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from openmedclip.data import open_source
from openmedclip.embed import encode_images, encode_texts
from openmedclip.errors import InvalidInputError
from openmedclip.eval.suite import load_suite, parse_suite
from openmedclip.metrics import multiclass_metrics
from openmedclip.tasks.retrieval import retrieval_metrics
from openmedclip.tasks.zeroshot import zero_shot

GROUPED_SUITE = """
name: grouped
datasets:
  pneumo:
    source: {type: medmnist, path: pneumoniamnist.npz, split: test}
    prompts: {bank: pediatric_chest_xray}
    tasks: [zeroshot]
  patients:
    source: {type: table, path: pairs/patients.jsonl, label_col: modality}
    classes: {CT: computed tomography, MR: magnetic resonance imaging}
    prompts: {templates: ["a {} scan."]}
    tasks: [zeroshot, retrieval]
    groups: patient
"""
PATIENTS = ["p0", "p1", "p0", "p2", "p1", "p0", "p3", "p2"]
"""Patient of each of the 8 images of ``pairs/`` (4 patients, of 1 to 3 images, not adjacent)."""


@pytest.fixture()
def grouped(cli, tiny_model_dir, data_root, tmp_path):
    """``run(*extra)`` evaluates the grouped suite; returns the results by (dataset, task)."""
    rows = [json.loads(line) for line in (data_root / "pairs" / "captions.jsonl").read_text().splitlines()]
    table = data_root / "pairs" / "patients.jsonl"
    table.write_text("".join(json.dumps({**row, "patient": p}) + "\n" for row, p in zip(rows, PATIENTS, strict=True)))
    suite = tmp_path / "grouped.yaml"
    suite.write_text(GROUPED_SUITE)

    def run(*extra) -> dict[tuple[str, str], dict]:
        out = tmp_path / f"results{len(list(tmp_path.glob('results*')))}"
        result = cli("eval", "-s", suite, "-m", tiny_model_dir, "-o", out, "--data-root", data_root,
                     "--bootstrap", "200", *extra)
        assert result.exit_code == 0, result.output
        found = {}
        for path in out.glob("[!.]*/*/*.json"):
            payload = json.loads(path.read_text())
            found[(payload["dataset"], payload["task"])] = payload
        return found

    return run


def _direct(tiny_model, data_root: Path, groups):
    """Zero-shot and retrieval metrics of the patients table computed with the metric functions themselves."""
    table = data_root / "pairs" / "patients.jsonl"
    source = open_source({"type": "table", "path": str(table), "label_col": "modality"})
    images = encode_images(tiny_model, source.paths)
    names = ["computed tomography", "magnetic resonance imaging"]
    probs = zero_shot(tiny_model, images, names, templates=["a {} scan."]).probabilities.astype(np.float64)
    zeroshot = multiclass_metrics(source.targets, probs, names, n_bootstrap=200, groups=groups)
    texts = encode_texts(tiny_model, [source.captions(i)[0] for i in range(len(source))])
    retrieval = retrieval_metrics(images.features, texts, list(range(len(source))), n_bootstrap=200, groups=groups)
    return zeroshot, retrieval


def test_intervals_resample_the_groups_the_suite_names(grouped, tiny_model, data_root):
    results = grouped()
    zeroshot, retrieval = _direct(tiny_model, data_root, PATIENTS)
    payload = results[("patients", "zeroshot_classification")]
    assert payload["resampling"] == {"unit": "patient", "n_units": 4}
    assert payload["details"]["metrics"]["bootstrap"]["n_groups"] == 4
    assert payload["ci"]["acc1"] == pytest.approx([zeroshot.accuracy.low, zeroshot.accuracy.high], abs=1e-9)
    assert payload["ci"]["auroc"] == pytest.approx([zeroshot.auroc.low, zeroshot.auroc.high], abs=1e-6)
    payload = results[("patients", "zeroshot_retrieval")]
    assert payload["resampling"] == {"unit": "patient", "n_units": 4}
    recall = retrieval.text_to_image.recall[5]
    assert payload["ci"]["image_retrieval_recall@5"] == pytest.approx([recall.low, recall.high], abs=1e-9)
    assert results[("pneumo", "zeroshot_classification")]["resampling"] == {"unit": "item", "n_units": 20}


def test_item_bootstrap_option_resamples_single_items(grouped, tiny_model, data_root):
    grouped_results, item_results = grouped(), grouped("--item-bootstrap")
    zeroshot, _ = _direct(tiny_model, data_root, None)
    payload = item_results[("patients", "zeroshot_classification")]
    assert payload["resampling"] == {"unit": "item", "n_units": 8} and payload["options"]["grouped"] is False
    assert payload["ci"]["acc1"] == pytest.approx([zeroshot.accuracy.low, zeroshot.accuracy.high], abs=1e-9)
    before = grouped_results[("patients", "zeroshot_classification")]
    assert payload["metrics"] == before["metrics"] and payload["ci"] != before["ci"]


def test_report_lists_the_resampling_unit(grouped, cli, tmp_path):
    grouped()
    out = next(tmp_path.glob("results*"))
    assert cli("report", out, "--no-plots").exit_code == 0
    text = (out / "report.md").read_text()
    assert "## Resampling unit and contamination" in text
    assert "| patients | " in text and "| patient (4 groups) |" in text
    assert "| pneumo | " in text and "| item (20) |" in text


def test_a_group_unit_the_source_lacks_fails_that_dataset(cli, tiny_model_dir, data_root, tmp_path):
    suite = tmp_path / "bad.yaml"
    suite.write_text("name: bad\ndatasets:\n  pairs:\n    source: {type: table, path: pairs/captions.jsonl}\n"
                     "    tasks: [retrieval]\n    groups: study\n")
    result = cli("eval", "-s", suite, "-m", tiny_model_dir, "-o", tmp_path / "r", "--data-root", data_root)
    assert result.exit_code == 1
    summary = json.loads(next((tmp_path / "r").glob("*/summary.json")).read_text())
    assert "groups" in summary["failed"][0]["error"] and "'study'" in summary["failed"][0]["error"]


def test_groups_must_name_a_unit():
    with pytest.raises(InvalidInputError, match="groups"):
        parse_suite("name: x\ndatasets:\n  a:\n    source: {type: table, path: t.csv}\n    tasks: [retrieval]\n"
                    "    groups: ''\n")


def test_local_suite_resamples_medpix_by_case():
    suite = load_suite("local")
    assert {name: d.groups for name, d in suite.datasets.items() if d.groups} == {
        "medpix-retrieval": "case", "medpix-modality": "case", "medpix-region": "case",
    }


@pytest.mark.realdata
def test_medpix_rows_carry_their_case_id(shared_data):
    source = open_source({"type": "medpix", "path": str(shared_data / "medpix2_traindev"), "split": "dev"})
    cases = source.group_ids("case")
    assert len(cases) == len(source) == 197 and len(set(cases)) == 67
    assert cases == [str(meta["U_id"]) for meta in source.metadata]
