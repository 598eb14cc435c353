"""Protocol scoring: a primary metric per suite dataset, the suite's protocol summary in the report (means of the
primary metrics in percent, with the datasets a run lacks listed), and the positive-class precision, recall and F1
of binary zero-shot tasks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from openmedclip.errors import InvalidInputError
from openmedclip.eval.protocol import protocol_summaries
from openmedclip.eval.report import load_results, load_summaries, write_report
from openmedclip.eval.suite import parse_suite
from openmedclip.metrics import bootstrap_ci, multiclass_metrics
from openmedclip.metrics.defaults import POSITIVE_CLASS_METRICS, ZEROSHOT_METRICS

DATASET = """
  {name}:
    modality: {modality}
    source: {{type: folders, path: {name}/test}}
    tasks: [{tasks}]
"""


def _suite(datasets: str, head: str = "") -> str:
    return f"name: proto\n{head}datasets:{datasets}"


def _dataset(name: str, modality: str = "CT", tasks: str = "zeroshot", metric: str | None = None) -> str:
    text = DATASET.format(name=name, modality=modality, tasks=tasks)
    return text + (f"    metric: {metric}\n" if metric else "")


# --- the suite fields ------------------------------------------------------------------------------------------


def test_metric_and_summary_are_read_into_the_suite():
    suite = parse_suite(_suite(_dataset("a", metric="auroc") + _dataset("b", metric="mean_per_class_recall"),
                               "summary: {groups: modality, means: [groups, datasets]}\n"))
    assert suite.datasets["a"].metric == "auroc" and suite.datasets["b"].metric == "mean_per_class_recall"
    assert suite.summary == {"groups": "modality", "means": ["groups", "datasets"]}
    plain = parse_suite(_suite(_dataset("a")))
    assert plain.datasets["a"].metric is None and plain.summary is None
    assert parse_suite(_suite(_dataset("a", metric="acc1"), "summary: {}\n")).summary == {
        "groups": None, "means": ["datasets"],
    }


def test_an_unknown_metric_is_an_error_listing_the_zero_shot_metrics():
    with pytest.raises(InvalidInputError) as err:
        parse_suite(_suite(_dataset("chest", metric="balanced_acc")), origin="s.yaml")
    message = str(err.value)
    assert message.startswith("s.yaml: datasets.chest.metric: unknown metric 'balanced_acc'")
    assert all(name in message for name in ZEROSHOT_METRICS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_suite(_dataset("a", tasks="retrieval", metric="acc1")), "datasets.a: 'metric' names the zero-shot"),
        (_suite(_dataset("a", metric="acc1") + _dataset("b"), "summary: {means: [datasets]}\n"),
         "'summary' needs a 'metric' on every zeroshot dataset: ['b']"),
        (_suite(_dataset("a", metric="acc1") + _dataset("b", modality="''", metric="acc1"),
                "summary: {groups: modality}\n"),
         "'groups: modality' needs a 'modality' on every zeroshot dataset: ['b']"),
        (_suite(_dataset("a", metric="acc1"), "summary: {means: [groups]}\n"), "a mean over 'groups' needs 'groups'"),
        (_suite(_dataset("a", metric="acc1"), "summary: {means: [datasets, datasets]}\n"), "at most once"),
        (_suite(_dataset("a", metric="acc1"), "summary: {groups: source}\n"), "summary.groups"),
    ],
)
def test_inconsistent_metric_or_summary_is_an_error(text, expected):
    with pytest.raises(InvalidInputError, match="proto.yaml") as err:
        parse_suite(text, origin="proto.yaml")
    assert expected in str(err.value)


# --- the report's protocol summary on synthetic results --------------------------------------------------------

PROTOCOL = {
    "groups": "modality",
    "means": ["datasets", "groups"],
    "datasets": {
        "a": {"metric": "acc1", "group": "X"},
        "b": {"metric": "acc1", "group": "X"},
        "c": {"metric": "auroc", "group": "Y"},
        "d": {"metric": "acc1", "group": "Y"},
        "e": {"metric": "acc1", "group": "Z"},
    },
}


def _write_result(
    out: Path, dataset: str, metrics: dict, *, suite: str = "proto", task: str = "zeroshot_classification",
    limit: int | None = None,
) -> None:
    payload = {"dataset": dataset, "model": "m/1", "model_slug": "m_1", "task": task, "metrics": metrics,
               "ci": {}, "suite": suite, "options": {"limit": limit}}
    path = out / "m_1" / dataset / f"{task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload), encoding="utf-8")


def _write_run(out: Path, protocol: dict, *, limit: int | None = None) -> None:
    _write_result(out, "a", {"acc1": 0.50, "auroc": 0.99}, limit=limit)
    _write_result(out, "b", {"acc1": 0.70}, limit=limit)
    _write_result(out, "c", {"acc1": 0.10, "auroc": 0.90}, limit=limit)
    _write_result(out, "e", {"acc1": None})  # undefined
    _write_result(out, "d", {"acc1": 0.0}, suite="other")  # another suite's dataset of the same name
    _write_result(out, "d", {"lp_acc1": 0.0}, task="linear_probe")
    summary = {"suite": "proto", "model": "m/1", "model_slug": "m_1", "skipped": [], "failed": [],
               "protocol": protocol}
    (out / "m_1" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def test_protocol_means_are_plain_means_of_the_primary_metrics_in_percent(tmp_path):
    _write_run(tmp_path, PROTOCOL)
    [summary] = protocol_summaries(load_results(tmp_path), load_summaries(tmp_path))
    assert (summary.suite, summary.model) == ("proto", "m_1")
    assert [(s.dataset, s.percent, s.status) for s in summary.scores] == [
        ("a", 50.0, "ok"), ("b", 70.0, "ok"), ("c", 90.0, "ok"), ("d", None, "missing"), ("e", None, "undefined"),
    ]
    groups = {m.label: (m.percent, m.n_datasets, m.of_datasets) for m in summary.group_means}
    assert groups == {"X": (pytest.approx(60.0), 2, 2), "Y": (pytest.approx(90.0), 1, 2), "Z": (None, 0, 1)}
    over_datasets, over_groups = summary.means
    assert over_datasets.label == "over datasets" and over_datasets.percent == pytest.approx((50 + 70 + 90) / 3)
    assert (over_datasets.n_datasets, over_datasets.of_datasets) == (3, 5)
    assert over_groups.label == "over modality means" and over_groups.percent == pytest.approx((60 + 90) / 2)
    assert (over_groups.n_groups, over_groups.of_groups) == (2, 3)
    assert summary.unscored("missing") == ["d"] and summary.unscored("undefined") == ["e"] and summary.limits == []


def test_report_prints_the_protocol_summary_and_lists_missing_datasets(tmp_path):
    _write_run(tmp_path, PROTOCOL, limit=10)
    text = write_report(tmp_path, plots=False).markdown.read_text(encoding="utf-8")
    section = text[text.index("## Protocol summary") : text.index("## Zero-shot classification")]
    assert "### proto · m_1" in section
    for line in [
        "| dataset | modality | metric | % |",
        "| a | X | acc1 | 50.00 |",
        "| c | Y | auroc | 90.00 |",
        "| d | Y | acc1 | missing |",
        "| e | Z | acc1 | undefined |",
        "| X | 2 of 2 | 60.00 |",
        "| Y | 1 of 2 | 90.00 |",
        "| Z | 0 of 1 | — |",
        "| over datasets | 3 of 5 | 70.00 |",
        "| over modality means | 3 of 5 (2 of 3 groups) | 75.00 |",
        "**Partial run**: 1 of 5 datasets have no result here and are not in the means: d.",
        "Undefined primary metric (not in the means): e.",
        "Run with --limit 10: the values are on a subset of each test set.",
    ]:
        assert line in section.splitlines(), line


def test_a_summary_without_groups_has_one_mean_and_no_group_column(tmp_path):
    protocol = {"groups": None, "means": ["datasets"],
                "datasets": {n: {"metric": "auroc" if n == "c" else "acc1", "group": None} for n in "abc"}}
    _write_run(tmp_path, protocol)
    text = write_report(tmp_path, plots=False).markdown.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert "| dataset | metric | % |" in lines and "| c | auroc | 90.00 |" in lines
    assert "| over datasets | 3 of 3 | 70.00 |" in lines
    assert "over modality means" not in text and "Partial run" not in text


def test_runs_without_a_protocol_give_no_summary(tmp_path):
    _write_run(tmp_path, PROTOCOL)
    path = tmp_path / "m_1" / "summary.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "protocol"}))
    assert "Protocol summary" not in write_report(tmp_path, plots=False).markdown.read_text(encoding="utf-8")


# --- positive-class precision, recall and F1 -------------------------------------------------------------------

Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0])
P_CLASS1 = np.array([0.1, 0.6, 0.2, 0.3, 0.8, 0.4, 0.9, 0.7, 0.35, 0.55, 0.65, 0.05])
SKLEARN = {
    "positive_precision": skm.precision_score,
    "positive_recall": skm.recall_score,
    "positive_f1": skm.f1_score,
}


def test_binary_positive_class_metrics_match_sklearn_with_their_intervals():
    probs = np.column_stack([1 - P_CLASS1, P_CLASS1])
    result = multiclass_metrics(Y_TRUE, probs, ["benign", "malignant"], n_bootstrap=200, seed=3)
    pred = probs.argmax(axis=1)
    assert list(result.positive_class) == list(POSITIVE_CLASS_METRICS)
    for name, score in SKLEARN.items():
        estimate = result.positive_class[name]
        assert estimate.value == pytest.approx(score(Y_TRUE, pred), abs=1e-12), name
        # the fast path draws the same resamples as the generic bootstrap around scikit-learn's function
        low, high, _ = bootstrap_ci(lambda y, p, score=score: score(y, p, zero_division=0), [Y_TRUE, pred], n=200,
                                    seed=3)
        assert (estimate.low, estimate.high) == (pytest.approx(low), pytest.approx(high)), name
    assert result.positive_class["positive_precision"].value == pytest.approx(4 / 6)  # tp 4 of 6 predicted
    assert result.positive_class["positive_recall"].value == pytest.approx(4 / 6)  # tp 4 of 6 positives
    as_dict = result.to_dict()
    assert as_dict["positive_f1"]["value"] == pytest.approx(skm.f1_score(Y_TRUE, pred))
    assert {"accuracy", "balanced_accuracy", "macro_f1", "auroc", "ece"} <= set(as_dict)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_positive_class_metrics_are_zero_with_a_note_when_nothing_is_predicted_positive():
    probs = np.tile([0.8, 0.2], (len(Y_TRUE), 1))
    result = multiclass_metrics(Y_TRUE, probs, ["benign", "malignant"], n_bootstrap=0)
    pred = probs.argmax(axis=1)
    for name, score in SKLEARN.items():
        assert result.positive_class[name].value == score(Y_TRUE, pred) == 0.0, name
    assert any("positive_precision set to 0" in note and "'malignant'" in note for note in result.notes)


def test_more_than_two_classes_have_no_positive_class_metrics():
    y = np.arange(12) % 3
    result = multiclass_metrics(y, np.eye(3)[y], n_bootstrap=0)
    assert result.positive_class == {} and not set(POSITIVE_CLASS_METRICS) & set(result.to_dict())


# --- end to end: a protocol-like suite on class folders ----------------------------------------------------------

PROTOCOL_SUITE = """
name: mini-protocol
summary: {groups: modality, means: [datasets, groups]}
datasets:
  lesion:
    modality: US
    metric: positive_f1
    source: {type: folders, path: lesion/test}
    classes: {benign: benign lesion, malignant: malignant lesion}
    prompts: {templates: ["an ultrasound image of a {}.", "{} on ultrasound"]}
    tasks: [zeroshot]
  organ:
    modality: CT
    metric: acc1
    source: {type: folders, path: organ/test}
    classes: [liver, spleen, kidney]
    prompts:
      sentences:
        liver: ["A CT image of the liver."]
        spleen: ["A CT image of the spleen.", "The spleen on computed tomography."]
        kidney: ["A CT image of a kidney."]
    tasks: [zeroshot]
  absent:
    modality: CT
    metric: acc1
    source: {type: folders, path: absent/test}
    tasks: [zeroshot]
"""


def _write_class_folders(root: Path, folders: list[str], per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for index, folder in enumerate(folders):
        (root / folder).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 128, (32, 32, 3)) + 60 * index
            Image.fromarray(pixels.astype(np.uint8)).save(root / folder / f"img{i}.png")


def test_a_protocol_suite_runs_and_reports_its_summary_with_the_base_model(cli, tmp_path):
    root = tmp_path / "data"
    _write_class_folders(root / "lesion" / "test", ["benign", "malignant"], 6, 0)
    _write_class_folders(root / "organ" / "test", ["liver", "spleen", "kidney"], 3, 1)
    suite = tmp_path / "mini.yaml"
    suite.write_text(PROTOCOL_SUITE, encoding="utf-8")
    out = tmp_path / "results"
    result = cli("eval", "--suite", suite, "--model", "openmedclip-base", "--out", out, "--data-root", root,
                 "--bootstrap", "50", "--device", "cpu", "--precision", "fp32")
    assert result.exit_code == 0, result.output

    results = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/*/zeroshot_classification.json")}
    assert set(results) == {"lesion", "organ"}
    lesion, organ = results["lesion"], results["organ"]
    assert lesion["primary_metric"] == "positive_f1" and organ["primary_metric"] == "acc1"
    assert set(lesion["metrics"]) == {"acc1", "mean_per_class_recall", "auroc", "macro_f1", "ece",
                                      *POSITIVE_CLASS_METRICS}
    assert set(lesion["ci"]) == set(lesion["metrics"]) and set(organ["metrics"]) <= set(ZEROSHOT_METRICS)
    assert not set(POSITIVE_CLASS_METRICS) & set(organ["metrics"])
    (_, fp), (fn, tp) = lesion["plots"]["confusion_matrix"]
    assert lesion["metrics"]["positive_precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
    assert lesion["metrics"]["positive_recall"] == pytest.approx(tp / (tp + fn))
    assert lesion["metrics"]["positive_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    for name in POSITIVE_CLASS_METRICS:
        low, high = lesion["ci"][name]
        assert low <= lesion["metrics"][name] <= high, name

    run = json.loads(next(out.glob("*/summary.json")).read_text())
    assert run["protocol"]["datasets"] == {
        "lesion": {"metric": "positive_f1", "group": "US"},
        "organ": {"metric": "acc1", "group": "CT"},
        "absent": {"metric": "acc1", "group": "CT"},
    }

    report = cli("report", out, "--no-plots")
    assert report.exit_code == 0, report.output
    lines = (out / "report.md").read_text(encoding="utf-8").splitlines()
    f1, acc = 100 * lesion["metrics"]["positive_f1"], 100 * organ["metrics"]["acc1"]
    model = lesion["model_slug"]
    assert f"### mini-protocol · {model}" in lines
    assert f"| lesion | US | positive_f1 | {f1:.2f} |" in lines
    assert f"| organ | CT | acc1 | {acc:.2f} |" in lines and "| absent | CT | acc1 | missing |" in lines
    assert f"| US | 1 of 1 | {f1:.2f} |" in lines and f"| CT | 1 of 2 | {acc:.2f} |" in lines
    assert f"| over datasets | 2 of 3 | {(f1 + acc) / 2:.2f} |" in lines
    assert f"| over modality means | 2 of 3 (2 of 2 groups) | {(f1 + acc) / 2:.2f} |" in lines
    assert "**Partial run**: 1 of 3 datasets have no result here and are not in the means: absent." in lines


def test_a_primary_metric_the_task_does_not_produce_fails_that_dataset(cli, tiny_model_dir, tmp_path):
    root = tmp_path / "data"
    _write_class_folders(root / "organ" / "test", ["liver", "spleen", "kidney"], 2, 1)
    suite = tmp_path / "bad.yaml"
    suite.write_text(_suite(_dataset("organ", metric="positive_f1")), encoding="utf-8")
    out = tmp_path / "results"
    result = cli("eval", "--suite", suite, "--model", tiny_model_dir, "--out", out, "--data-root", root,
                 "--bootstrap", "0")
    assert result.exit_code == 1
    [failed] = json.loads(next(out.glob("*/summary.json")).read_text())["failed"]
    assert failed["dataset"] == "organ" and failed["task"] == "zeroshot"
    assert "primary metric 'positive_f1' is not among its zero-shot metrics (acc1," in failed["error"]
    assert not list(out.glob("*/organ/*.json"))
