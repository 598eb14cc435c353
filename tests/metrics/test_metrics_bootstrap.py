"""Bootstrap intervals: determinism, coverage, width, and the fast path against a slow sklearn loop."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from openmedclip.errors import InvalidInputError
from openmedclip.metrics import bootstrap, multiclass_metrics
from openmedclip.metrics.bootstrap import bootstrap_ci, counts_from_indices, iter_resample_indices, percentile_interval
from openmedclip.metrics.calibration import expected_calibration_error

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning"),
    pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true"),
]


def _interval(est) -> tuple[float, float, int]:
    return est.low, est.high, est.n_dropped


def test_indices_do_not_depend_on_chunking(monkeypatch):
    whole = np.concatenate(list(iter_resample_indices(37, 50, seed=4)))
    monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", 100)
    chunks = list(iter_resample_indices(37, 50, seed=4))
    assert len(chunks) > 1
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    np.testing.assert_array_equal(whole, np.random.default_rng(4).integers(0, 37, size=(50, 37)))


def test_counts_from_indices():
    idx = np.random.default_rng(0).integers(0, 9, size=(6, 9))
    expected = np.stack([np.bincount(row, minlength=9) for row in idx])
    np.testing.assert_array_equal(counts_from_indices(idx), expected)


def test_percentile_interval_drops_non_finite():
    low, high, n_valid = percentile_interval(np.r_[np.arange(101.0), np.nan, np.inf], 0.9)
    assert (low, high, n_valid) == (pytest.approx(5.0), pytest.approx(95.0), 101)
    low, high, n_valid = percentile_interval(np.full(3, np.nan), 0.95)
    assert np.isnan(low) and np.isnan(high) and n_valid == 0


def test_bootstrap_ci_is_deterministic_and_drops_undefined():
    y = np.r_[np.ones(3), np.zeros(27)]
    s = np.random.default_rng(1).normal(size=30) + y
    first = bootstrap_ci(skm.roc_auc_score, (y, s), n=100, seed=5)
    assert first == bootstrap_ci(skm.roc_auc_score, (y, s), n=100, seed=5)
    assert first != bootstrap_ci(skm.roc_auc_score, (y, s), n=100, seed=6)
    assert 0 < first[2] < 100  # some resamples lost all 3 positives

    def raises_sometimes(a):
        if a.sum() == 0:
            raise ValueError("undefined")
        return a.mean()

    assert bootstrap_ci(raises_sometimes, (y,), n=100, seed=5)[2] == first[2]


@pytest.mark.parametrize("kwargs", [{"n": -1}, {"ci": 0}, {"ci": 1.5}])
def test_bootstrap_ci_checks_arguments(kwargs):
    with pytest.raises(InvalidInputError):
        bootstrap_ci(np.mean, (np.ones(5),), **kwargs)


def test_bootstrap_ci_checks_arrays():
    with pytest.raises(InvalidInputError):
        bootstrap_ci(np.mean, (np.ones(5), np.ones(4)))
    with pytest.raises(InvalidInputError):
        bootstrap_ci(np.mean, ())


@pytest.mark.parametrize("n_classes", [2, 3])
def test_fast_path_matches_slow_sklearn_loop(make_multiclass, n_classes):
    y, p = make_multiclass(120, n_classes, seed=2)
    y[y == n_classes - 1] = 0
    y[-3:] = n_classes - 1  # a rare class: some resamples lose it and AUROC is dropped
    labels = np.arange(n_classes)
    n, seed, ci = 200, 11, 0.9
    r = multiclass_metrics(y, p, top_k=(2,), n_bootstrap=n, seed=seed, ci=ci)

    def slow(fn):
        low, high, n_valid = bootstrap_ci(fn, (y, p), n=n, seed=seed, ci=ci)
        return low, high, n - n_valid

    def auroc(yy, pp):
        if n_classes == 2:
            return skm.roc_auc_score(yy, pp[:, 1])
        return skm.roc_auc_score(yy, pp, multi_class="ovr", labels=labels)

    assert _interval(r.accuracy) == slow(lambda yy, pp: skm.accuracy_score(yy, pp.argmax(axis=1)))
    expected = {
        "auroc": slow(auroc),
        "balanced_accuracy": slow(lambda yy, pp: skm.balanced_accuracy_score(yy, pp.argmax(axis=1))),
        "macro_f1": slow(lambda yy, pp: skm.f1_score(yy, pp.argmax(axis=1), average="macro")),
        "ece": slow(expected_calibration_error),
    }
    assert 0 < expected["auroc"][2] < n
    for name, (low, high, dropped) in expected.items():
        est = getattr(r, name)
        np.testing.assert_allclose([est.low, est.high], [low, high], rtol=1e-12, err_msg=name)
        assert est.n_dropped == dropped, name
    if n_classes > 2:
        top2 = slow(lambda yy, pp: skm.top_k_accuracy_score(yy, pp, k=2, labels=labels))
        np.testing.assert_allclose(_interval(r.top_k_accuracy[2]), top2, rtol=1e-12)


def test_deterministic_for_a_seed(make_multiclass):
    y, p = make_multiclass(300, 4)
    a = multiclass_metrics(y, p, n_bootstrap=100, seed=3).to_dict()
    assert a == multiclass_metrics(y, p, n_bootstrap=100, seed=3).to_dict()
    assert a != multiclass_metrics(y, p, n_bootstrap=100, seed=4).to_dict()


def test_intervals_contain_point_and_shrink_with_n(make_multiclass):
    widths = []
    for n_items in (200, 5000):
        y, p = make_multiclass(n_items, 10, seed=n_items)
        r = multiclass_metrics(y, p, n_bootstrap=300)
        ests = [r.accuracy, r.balanced_accuracy, r.macro_f1, r.auroc, r.ece, r.top_k_accuracy[5]]
        for est in ests:
            assert est.low <= est.value <= est.high and est.low < est.high
        widths.append([est.high - est.low for est in ests])
    assert (np.array(widths[1]) < 0.5 * np.array(widths[0])).all()


def test_no_bootstrap_gives_point_estimates_only(make_multiclass):
    y, p = make_multiclass(50, 3)
    est = multiclass_metrics(y, p, n_bootstrap=0).accuracy
    assert np.isnan(est.low) and np.isnan(est.high) and est.n_dropped == 0

