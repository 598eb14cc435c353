"""`openmedclip eval` on the tiny model and synthetic data: result files, metrics, cache, skipped datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from suite_data import FAST

import openmedclip.eval.runner as runner
from openmedclip.data import open_source
from openmedclip.embed import encode_images, encode_texts
from openmedclip.metrics import multiclass_metrics
from openmedclip.tasks.probe import linear_probe
from openmedclip.tasks.retrieval import retrieval_metrics
from openmedclip.tasks.zeroshot import zero_shot

CLIP_BENCHMARK_KEYS = {"dataset", "model", "pretrained", "task", "metrics", "language"}
EXPECTED = {
    ("pneumo", "zeroshot_classification"),
    ("pneumo", "linear_probe"),
    ("pairs", "zeroshot_classification"),
    ("pairs", "zeroshot_retrieval"),
}


def _results(out: Path) -> dict[tuple[str, str], dict]:
    found = {}
    for path in out.glob("[!.]*/*/*.json"):
        payload = json.loads(path.read_text())
        assert path.stem == payload["task"] and path.parent.name == payload["dataset"]
        found[(payload["dataset"], payload["task"])] = payload
    return found


@pytest.fixture()
def run(cli, tiny_model_dir, suite_file, data_root, tmp_path):
    out = tmp_path / "results"

    def go(*extra):
        return cli("eval", "--suite", suite_file, "--model", tiny_model_dir, "--out", out, "--data-root", data_root,
                   *FAST, *extra)

    return go, out


def test_eval_writes_one_clip_benchmark_json_per_dataset_and_task(run, tiny_model_dir):
    go, out = run
    result = go()
    assert result.exit_code == 0, result.output
    results = _results(out)
    assert set(results) == EXPECTED
    for payload in results.values():
        assert set(payload) >= CLIP_BENCHMARK_KEYS
        assert payload["model"] == str(tiny_model_dir) and payload["language"] == "en"
        assert payload["suite"] == "tiny" and payload["openmedclip_version"]
        assert set(payload["timings"]) == {"open_s", "encode_s", "task_s"}
        assert all(isinstance(v, (float, type(None))) for v in payload["metrics"].values())
        assert set(payload["ci"]) <= set(payload["metrics"])
    zeroshot = results[("pneumo", "zeroshot_classification")]
    assert zeroshot["n_items"] == 20 and {"acc1", "mean_per_class_recall", "auroc"} <= set(zeroshot["metrics"])
    assert results[("pneumo", "linear_probe")]["headline_run"] == {"k": "all", "seed": 0}
    assert "image_retrieval_recall@5" in results[("pairs", "zeroshot_retrieval")]["metrics"]
    summary = json.loads(next(out.glob("*/summary.json")).read_text())
    assert summary["skipped"] == [{"dataset": "absent", "reason": f"not found: {summary['data_root']}/not-here/test"}]
    assert summary["failed"] == [] and len(summary["results"]) == 4
    assert "skipped absent" in result.output


def test_metrics_equal_the_metric_functions_on_the_same_features(run, tiny_model, data_root):
    go, out = run
    assert go().exit_code == 0
    results = _results(out)

    test = open_source({"type": "medmnist", "path": str(data_root / "pneumoniamnist.npz"), "split": "test"})
    train = open_source({"type": "medmnist", "path": str(data_root / "pneumoniamnist.npz"), "split": "train"})
    x_test = encode_images(tiny_model, [test.image(i) for i in range(len(test))])
    x_train = encode_images(tiny_model, [train.image(i) for i in range(len(train))])
    probs = zero_shot(tiny_model, x_test, test.label_names, bank="pediatric_chest_xray").probabilities
    direct = multiclass_metrics(test.targets, probs, test.label_names, n_bootstrap=50)
    got = results[("pneumo", "zeroshot_classification")]
    assert got["metrics"]["acc1"] == pytest.approx(direct.accuracy.value, abs=1e-9)
    assert got["metrics"]["auroc"] == pytest.approx(direct.auroc.value, abs=1e-6)
    assert got["ci"]["acc1"] == pytest.approx([direct.accuracy.low, direct.accuracy.high], abs=1e-9)
    assert got["plots"]["confusion_matrix"] == direct.confusion_matrix.tolist()

    probe = linear_probe(x_train.features.numpy(), train.targets, x_test.features.numpy(), test.targets,
                         class_names=test.label_names, k_shots=(1, 2, None), seeds=(0, 1), n_bootstrap=50)
    got = results[("pneumo", "linear_probe")]
    assert got["metrics"]["lp_acc1"] == pytest.approx(probe.runs_for(None)[0].metrics.accuracy.value, abs=1e-9)
    assert got["plots"]["k_curve"]["points"]["1"]["mean"] == pytest.approx(probe.curve()[1][0], abs=1e-9)

    pairs = open_source({"type": "table", "path": str(data_root / "pairs" / "captions.jsonl"), "label_col": "modality"})
    images = encode_images(tiny_model, pairs.paths)
    texts = encode_texts(tiny_model, [pairs.captions(i)[0] for i in range(len(pairs))])
    direct = retrieval_metrics(images.features, texts, list(range(len(pairs))), n_bootstrap=50)
    got = results[("pairs", "zeroshot_retrieval")]["metrics"]
    assert got["image_retrieval_recall@1"] == pytest.approx(direct.text_to_image.recall[1].value)
    assert got["text_retrieval_recall@5"] == pytest.approx(direct.image_to_text.recall[5].value)


def test_second_run_reads_features_from_the_cache(run, monkeypatch):
    go, out = run
    calls = []

    def spy(*args, **kwargs):
        calls.append(len(args[1]))
        return encode_images(*args, **kwargs)

    monkeypatch.setattr(runner, "encode_images", spy)
    assert go().exit_code == 0
    first = _results(out)
    assert sorted(calls) == [8, 20, 24]  # pairs, pneumo test, pneumo train
    assert all(set(p["cache"].values()) == {"miss"} for p in first.values())
    calls.clear()
    assert go().exit_code == 0
    second = _results(out)
    assert calls == []
    assert all(set(p["cache"].values()) == {"hit"} for p in second.values())
    assert {k: p["metrics"] for k, p in second.items()} == {k: p["metrics"] for k, p in first.items()}


def test_cache_misses_when_the_data_changes_or_is_off(run, monkeypatch, data_root):
    go, _ = run
    assert go("--datasets", "pairs").exit_code == 0
    calls = []
    monkeypatch.setattr(runner, "encode_images", lambda *a, **k: calls.append(1) or encode_images(*a, **k))
    img = data_root / "pairs" / "img3.png"
    img.write_bytes(img.read_bytes())  # same pixels, new modification time
    assert go("--datasets", "pairs").exit_code == 0 and calls == [1]
    assert go("--datasets", "pairs", "--limit", "4").exit_code == 0 and calls == [1, 1]
    assert go("--datasets", "pairs", "--no-cache").exit_code == 0 and calls == [1, 1, 1]


def test_tasks_datasets_and_limit_select_what_runs(run):
    go, out = run
    result = go("--tasks", "zeroshot", "--datasets", "pneumo,absent", "--limit", "6")
    assert result.exit_code == 0, result.output
    results = _results(out)
    assert set(results) == {("pneumo", "zeroshot_classification")}
    assert results[("pneumo", "zeroshot_classification")]["n_items"] == 6
    assert results[("pneumo", "zeroshot_classification")]["options"]["limit"] == 6


def test_unimed21_on_an_empty_root_skips_all_21(cli, tiny_model_dir, tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    result = cli("eval", "--suite", "unimed21", "--model", tiny_model_dir, "--out", tmp_path / "r", "--data-root", root)
    assert result.exit_code == 0, result.output
    summary = json.loads(next((tmp_path / "r").glob("*/summary.json")).read_text())
    assert len(summary["skipped"]) == 21 and summary["results"] == [] and summary["failed"] == []
    assert all(s["reason"].startswith("not found: ") for s in summary["skipped"])


def test_data_root_from_the_environment(cli, tiny_model_dir, suite_file, data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENMEDCLIP_DATA", str(data_root))
    result = cli("eval", "-s", suite_file, "-m", tiny_model_dir, "-o", tmp_path / "r", "--tasks", "retrieval")
    assert result.exit_code == 0, result.output
    assert set(_results(tmp_path / "r")) == {("pairs", "zeroshot_retrieval")}
    monkeypatch.delenv("OPENMEDCLIP_DATA")
    result = cli("eval", "-s", suite_file, "-m", tiny_model_dir, "-o", tmp_path / "r")
    assert "OPENMEDCLIP_DATA" in str(result.exception)


def test_a_class_outside_the_suite_classes_fails_that_dataset_only(run, data_root):
    go, out = run
    table = data_root / "pairs" / "captions.jsonl"
    table.write_text(table.read_text().replace('"modality": "MR"', '"modality": "US"', 1))
    result = go()
    assert result.exit_code == 1
    assert "pairs" in result.output and "['US']" in result.output
    assert {d for d, _ in _results(out)} == {"pneumo"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "zeroshot,segment"], "unknown task(s) ['segment']"),
        (["--k-shots", "1,x"], "--k-shots: expected comma-separated integers"),
        (["--datasets", "nope"], "unknown dataset(s) ['nope']"),
    ],
)
def test_bad_options_raise_clear_errors(run, args, message):
    go, _ = run
    result = go(*args)
    assert message in str(result.exception)


def test_select_rows_spreads_a_limit_over_the_split():
    assert runner.select_rows(5, None) == [0, 1, 2, 3, 4]
    assert runner.select_rows(10, 3) == [0, 4, 9]
    assert runner.select_rows(3, 10) == [0, 1, 2]
    assert np.all(np.diff(runner.select_rows(1000, 40)) > 0)


def test_multilabel_table_is_scored_per_label(cli, tiny_model_dir, data_root, tmp_path):
    table = data_root / "pairs" / "findings.jsonl"
    findings = [["effusion"], ["nodule"], ["effusion", "nodule"]]
    rows = [{"image": f"img{i}.png", "caption": "x", "findings": findings[i % 3]} for i in range(8)]
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    suite = tmp_path / "ml.yaml"
    suite.write_text("name: ml\ndatasets:\n  findings:\n"
                     "    source: {type: table, path: pairs/findings.jsonl, label_col: findings}\n"
                     "    tasks: [zeroshot]\n")
    result = cli("eval", "-s", suite, "-m", tiny_model_dir, "-o", tmp_path / "r", "--data-root", data_root,
                 "--bootstrap", "20")
    assert result.exit_code == 0, result.output
    payload = _results(tmp_path / "r")[("findings", "zeroshot_classification")]
    assert {"mean_auroc", "mean_auprc", "mean_f1", "mean_mcc"} == set(payload["metrics"])
    assert payload["details"]["mode"] == "multilabel" and set(payload["plots"]["roc"]) == {"effusion", "nodule"}
