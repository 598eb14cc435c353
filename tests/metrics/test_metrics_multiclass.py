"""multiclass_metrics against scikit-learn, edge cases and input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from openmedclip.errors import InvalidInputError
from openmedclip.metrics import confusion_matrix, multiclass_metrics

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")


def _sk_auroc(y: np.ndarray, p: np.ndarray) -> float:
    if p.shape[1] == 2:
        return skm.roc_auc_score(y, p[:, 1])
    return skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=np.arange(p.shape[1]))


def _assert_matches_sklearn(y: np.ndarray, p: np.ndarray, ks: tuple[int, ...] = (5,)) -> None:
    r = multiclass_metrics(y, p, top_k=ks, n_bootstrap=0)
    pred = p.argmax(axis=1)
    n_classes = p.shape[1]
    assert r.accuracy.value == skm.accuracy_score(y, pred)
    assert r.balanced_accuracy.value == pytest.approx(skm.balanced_accuracy_score(y, pred), abs=1e-12)
    assert r.macro_f1.value == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-12)
    np.testing.assert_allclose(r.auroc.value, _sk_auroc(y, p), rtol=1e-12)
    labels = np.arange(n_classes)
    np.testing.assert_array_equal(r.confusion_matrix, skm.confusion_matrix(y, pred, labels=labels))
    recall = skm.recall_score(y, pred, labels=labels, average=None, zero_division=np.nan)
    np.testing.assert_allclose(r.per_class_recall, recall, equal_nan=True)
    assert sorted(r.top_k_accuracy) == [k for k in ks if k < n_classes]
    for k, est in r.top_k_accuracy.items():
        assert est.value == pytest.approx(skm.top_k_accuracy_score(y, p, k=k, labels=labels), abs=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3, 10])
@pytest.mark.parametrize("signal", [0.0, 1.5])
def test_matches_sklearn(make_multiclass, n_classes, signal):
    y, p = make_multiclass(400, n_classes, signal, seed=n_classes)
    _assert_matches_sklearn(y, p, ks=(2, 5))


def test_ties_in_scores_match_sklearn(make_multiclass):
    y, p = make_multiclass(300, 6, 1.0, seed=3)
    p = np.round(p * 4) + 0.5  # few distinct values: many ties within rows and across items
    p /= p.sum(axis=1, keepdims=True)
    p[:20] = 1 / 6  # fully tied rows
    _assert_matches_sklearn(y, p, ks=(2, 3, 5))


def test_perfect_classifier():
    y = np.arange(50) % 5
    r = multiclass_metrics(y, np.eye(5)[y], top_k=(2,), n_bootstrap=50)
    for est in (r.accuracy, r.balanced_accuracy, r.macro_f1, r.auroc, r.top_k_accuracy[2]):
        assert (est.value, est.low, est.high) == (1.0, 1.0, 1.0)
    assert r.ece.value == 0.0
    np.testing.assert_array_equal(r.confusion_matrix, np.diag(np.bincount(y)))


def test_absent_class_gives_nan_auroc_with_note(make_multiclass):
    y, p = make_multiclass(200, 4, seed=1)
    y[y == 2] = 0
    r = multiclass_metrics(y, p, ["a", "b", "c", "d"], n_bootstrap=20)
    assert np.isnan(r.auroc.value) and r.auroc.n_dropped == 20
    assert any("auroc" in note and "'c'" in note for note in r.notes)
    assert np.isnan(r.per_class_recall[2])
    assert r.accuracy.value == skm.accuracy_score(y, p.argmax(axis=1))
    d = r.to_dict()
    assert d["auroc"]["value"] is None and d["per_class_recall"]["c"] is None


def test_binary_single_class_present():
    p = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    r = multiclass_metrics([0, 0, 0], p, n_bootstrap=10)
    assert np.isnan(r.auroc.value) and r.auroc.n_dropped == 10
    assert r.accuracy.value == pytest.approx(2 / 3)


def test_top_k_only_below_class_count(make_multiclass):
    y, p = make_multiclass(60, 5)
    assert multiclass_metrics(y, p, n_bootstrap=0).top_k_accuracy == {}
    y, p = make_multiclass(60, 6)
    assert list(multiclass_metrics(y, p, n_bootstrap=0).top_k_accuracy) == [5]


def test_to_dict_is_strict_json(make_multiclass):
    y, p = make_multiclass(100, 3)
    d = multiclass_metrics(y, p, ["x", "y", "z"], n_bootstrap=20).to_dict()
    json.dumps(d, allow_nan=False)
    assert set(d["accuracy"]) == {"value", "low", "high", "n_dropped"}
    assert d["bootstrap"] == {"n": 20, "seed": 0, "ci": 0.95, "n_groups": None}
    assert d["top_k_accuracy"] == {}


def test_confusion_matrix_helper():
    np.testing.assert_array_equal(confusion_matrix([0, 1, 2, 2], [0, 2, 2, 1], 3), [[1, 0, 0], [0, 0, 1], [0, 1, 1]])
    with pytest.raises(InvalidInputError):
        confusion_matrix([0, 3], [0, 1], 3)


@pytest.mark.parametrize(
    "y, p, kwargs",
    [
        ([0, 1], [[0.5, 0.5, 0.0]], {}),  # length mismatch
        ([0, 1], [0.5, 0.5], {}),  # probs not 2-D
        ([0, 3], [[0.5, 0.5], [0.5, 0.5]], {}),  # label out of range
        ([0, -1], [[0.5, 0.5], [0.5, 0.5]], {}),
        ([0, 0.5], [[0.5, 0.5], [0.5, 0.5]], {}),  # non-integer label
        ([0, 1], [[np.nan, 0.5], [0.5, 0.5]], {}),  # NaN score
        ([0, 1], [[2.0, -1.0], [0.5, 0.5]], {}),  # logits, not probabilities
        ([0, 1], [[0.9, 0.9], [0.5, 0.5]], {}),  # rows not summing to 1
        ([0], [[1.0]], {}),  # one class column
        ([], np.zeros((0, 2)), {}),  # no items
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], {"class_names": ["a"]}),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], {"class_names": ["a", "a"]}),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], {"top_k": (1,)}),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], {"n_bootstrap": -1}),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], {"ci": 1.0}),
    ],
)
def test_invalid_inputs(y, p, kwargs):
    with pytest.raises(InvalidInputError):
        multiclass_metrics(y, p, **kwargs)
