"""multilabel_metrics against scikit-learn; threshold selection on validation data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from openmedclip.errors import InvalidInputError
from openmedclip.metrics import multilabel_metrics, select_thresholds
from openmedclip.metrics.bootstrap import bootstrap_ci

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")


def test_matches_sklearn_with_constant_labels_and_ties(make_multilabel):
    y, s = make_multilabel(300, 5, seed=1)
    s[:, 1] = np.round(s[:, 1], 1)  # ties
    y[:, 3] = 0
    y[:, 4] = 1
    r = multilabel_metrics(y, s, list("abcde"), n_bootstrap=0)
    aurocs = []
    for j, label in enumerate(r.labels):
        assert label.n_positive == y[:, j].sum()
        if j >= 3:  # constant: no AUROC/AUPRC, and no threshold can be chosen on these data
            assert np.isnan([label.auroc.value, label.auprc.value, label.threshold, label.f1, label.mcc]).all()
            continue
        pred = s[:, j] >= label.threshold
        assert label.f1 == pytest.approx(skm.f1_score(y[:, j], pred), abs=1e-12)
        assert label.mcc == pytest.approx(skm.matthews_corrcoef(y[:, j], pred), abs=1e-12)
        aurocs.append(skm.roc_auc_score(y[:, j], s[:, j]))
        assert label.auroc.value == pytest.approx(aurocs[-1], abs=1e-12)
        assert label.auprc.value == pytest.approx(skm.average_precision_score(y[:, j], s[:, j]), abs=1e-12)
    assert r.mean_auroc.value == pytest.approx(np.mean(aurocs), abs=1e-12)
    assert any("'d', 'e'" in note for note in r.notes)
    constant_in_test = multilabel_metrics(y, s, thresholds=0.0, n_bootstrap=0).labels[3]
    assert constant_in_test.f1 == skm.f1_score(y[:, 3], s[:, 3] >= 0, zero_division=0.0) == 0.0
    assert constant_in_test.mcc == skm.matthews_corrcoef(y[:, 3], s[:, 3] >= 0) == 0.0
    json.dumps(r.to_dict(), allow_nan=False)


def _brute_force_best(y: np.ndarray, s: np.ndarray, metric) -> float:
    return max(metric(y, s >= t) for t in np.unique(s))


@pytest.mark.parametrize("metric", ["mcc", "f1"])
def test_threshold_maximises_metric_on_validation(make_multilabel, metric):
    vy, vs = make_multilabel(150, 3, seed=2)
    vs[:, 0] = np.round(vs[:, 0], 1)
    fn = skm.matthews_corrcoef if metric == "mcc" else skm.f1_score
    chosen = select_thresholds(vy, vs, metric)
    for j in range(3):
        assert chosen[j] in vs[:, j]
        assert fn(vy[:, j], vs[:, j] >= chosen[j]) == pytest.approx(_brute_force_best(vy[:, j], vs[:, j], fn))


def test_validation_thresholds_applied_unchanged_to_test(make_multilabel):
    vy, vs = make_multilabel(200, 4, seed=3)
    from_val = select_thresholds(vy, vs)
    results = []
    for seed in (4, 5):  # two unrelated test sets
        y, s = make_multilabel(300, 4, signal=0.5 * seed, seed=seed)
        r = multilabel_metrics(y, s, val_y_true=vy, val_scores=vs, n_bootstrap=0)
        assert r.thresholds_from == "validation"
        thresholds = np.array([label.threshold for label in r.labels])
        np.testing.assert_array_equal(thresholds, from_val)
        f1 = [skm.f1_score(y[:, j], s[:, j] >= from_val[j]) for j in range(4)]
        np.testing.assert_allclose([label.f1 for label in r.labels], f1, rtol=1e-12)
        assert r.mean_f1 == pytest.approx(np.mean(f1))
        results.append(r)
    assert results[0].mean_auroc.value != results[1].mean_auroc.value


def test_thresholds_from_test_are_flagged(make_multilabel):
    y, s = make_multilabel(200, 2)
    r = multilabel_metrics(y, s, n_bootstrap=0)
    assert r.thresholds_from == "test (optimistic)"
    assert any("optimistic" in note for note in r.notes)
    np.testing.assert_array_equal([label.threshold for label in r.labels], select_thresholds(y, s))


def test_given_thresholds(make_multilabel):
    y, s = make_multilabel(100, 3)
    r = multilabel_metrics(y, s, thresholds=0.5, n_bootstrap=0)
    assert r.thresholds_from == "given" and all(label.threshold == 0.5 for label in r.labels)
    r = multilabel_metrics(y, s, thresholds=[0.0, np.nan, 1.0], n_bootstrap=0)
    assert np.isnan(r.labels[1].f1) and r.to_dict()["labels"]["1"]["mcc"] is None


def test_constant_validation_label_has_no_threshold(make_multilabel):
    vy, vs = make_multilabel(100, 2, seed=8)
    vy[:, 1] = 0
    y, s = make_multilabel(100, 2, seed=9)
    r = multilabel_metrics(y, s, val_y_true=vy, val_scores=vs, n_bootstrap=0)
    assert np.isnan(r.labels[1].threshold) and np.isnan(r.labels[1].f1) and np.isnan(r.labels[1].mcc)
    assert r.mean_mcc == r.labels[0].mcc
    assert any("no threshold" in note for note in r.notes)


def test_bootstrap_matches_slow_sklearn_loop(make_multilabel):
    y, s = make_multilabel(80, 3, seed=6)
    y[:, 2] = 0
    y[:3, 2] = 1  # rare label: some resamples lose its positives
    n, seed = 120, 9
    r = multilabel_metrics(y, s, n_bootstrap=n, seed=seed)

    def auroc(j):
        return lambda yy, ss: skm.roc_auc_score(yy[:, j], ss[:, j])

    def ap(j):
        return lambda yy, ss: skm.average_precision_score(yy[:, j], ss[:, j]) if yy[:, j].sum() > 0 else np.nan

    def mean_auroc(yy, ss):
        return np.mean([skm.roc_auc_score(yy[:, j], ss[:, j]) for j in range(3)])

    checks = [(r.mean_auroc, mean_auroc)]
    checks += [(label.auroc, auroc(j)) for j, label in enumerate(r.labels)]
    checks += [(label.auprc, ap(j)) for j, label in enumerate(r.labels)]
    for est, fn in checks:
        low, high, n_valid = bootstrap_ci(fn, (y, s), n=n, seed=seed)
        np.testing.assert_allclose([est.low, est.high], [low, high], rtol=1e-12)
        assert est.n_dropped == n - n_valid
    assert r.labels[2].auroc.n_dropped > 0 and r.mean_auroc.n_dropped == r.labels[2].auroc.n_dropped
    assert r.mean_auroc.low <= r.mean_auroc.value <= r.mean_auroc.high


@pytest.mark.parametrize(
    "kwargs",
    [
        {"y_true": [[0, 2], [1, 0]]},  # not 0/1
        {"scores": [[0.1], [0.2]]},  # shape mismatch
        {"scores": [[0.1, np.nan], [0.2, 0.3]]},
        {"label_names": ["a"]},
        {"threshold_metric": "youden"},
        {"thresholds": [0.5, 0.5, 0.5]},
        {"thresholds": 0.5, "val_y_true": [[0, 1], [1, 0]], "val_scores": [[0.1, 0.2], [0.3, 0.4]]},
        {"val_y_true": [[0, 1], [1, 0]]},
        {"val_y_true": [[0], [1]], "val_scores": [[0.1], [0.3]]},
        {"n_bootstrap": 1.5},
    ],
)
def test_invalid_inputs(kwargs):
    args = {"y_true": [[0, 1], [1, 0]], "scores": [[0.1, 0.2], [0.3, 0.4]], **kwargs}
    with pytest.raises(InvalidInputError):
        multilabel_metrics(**args)
