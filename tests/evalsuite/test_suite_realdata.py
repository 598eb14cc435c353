"""The built-in `local` suite on the real data (a few items per split): every entry resolves and writes JSON."""

from __future__ import annotations

import json

import pytest

from openmedclip.eval.suite import load_suite

pytestmark = pytest.mark.realdata


def test_local_suite_runs_every_dataset_on_the_real_data(cli, tiny_model_dir, shared_data, tmp_path):
    out = tmp_path / "results"
    args = ["eval", "--suite", "local", "--model", tiny_model_dir, "--out", out, "--data-root", shared_data,
            "--limit", "30", "--bootstrap", "20", "--k-shots", "1", "--seeds", "0"]
    result = cli(*args)
    assert result.exit_code == 0, result.output

    suite = load_suite("local")
    expected = {(name, task) for d in suite.datasets.values() for task in d.tasks
                for name in ([d.name, f"{d.name}-dedup"] if d.deduplicate else [d.name])}
    written = {}
    for path in out.glob("[!.]*/*/*.json"):
        payload = json.loads(path.read_text())
        written[(payload["dataset"], {"zeroshot_classification": "zeroshot", "linear_probe": "probe",
                                      "zeroshot_retrieval": "retrieval"}[payload["task"]])] = payload
    assert set(written) == expected and len(expected) == 10 + 7
    assert all(p["n_items"] == 30 and p["skipped_items"] == [] for name, p in written.items()
               if not name[0].endswith("-dedup"))
    breast = written[("breastmnist-dedup", "zeroshot")]["deduplicated"]
    assert breast["of"] == 156 and 45 <= breast["dropped"] <= 70 and breast["kinds"] == ["exact", "near"]
    assert written[("medpix-modality", "zeroshot")]["plots"]["class_names"] == ["CT", "MR"]
    assert written[("vqa-rad-organ", "zeroshot")]["plots"]["class_names"] == ["ABD", "CHEST", "HEAD"]
    summary = json.loads(next(out.glob("*/summary.json")).read_text())
    assert summary["skipped"] == [] and summary["failed"] == []

    again = cli(*args)
    assert again.exit_code == 0
    for path in out.glob("[!.]*/*/*.json"):
        payload = json.loads(path.read_text())
        assert set(payload["cache"].values()) == {"hit"}
