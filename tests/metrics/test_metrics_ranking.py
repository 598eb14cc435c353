"""Weighted rank AUROC / average precision and ROC curve points against scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from openmedclip.errors import InvalidInputError
from openmedclip.metrics import roc_curve_points
from openmedclip.metrics.ranking import RankedScores


@pytest.mark.parametrize("decimals", [None, 1])
def test_weighted_areas_match_sklearn_sample_weight(decimals):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 3))
    if decimals is not None:
        scores = np.round(scores, decimals)  # many ties
    positive = rng.random((200, 3)) < 0.3
    counts = rng.integers(0, 4, size=(5, 200)).astype(float)  # zeros too, like a bootstrap resample
    auroc, ap = RankedScores(scores, positive).auroc_and_ap(counts)
    np.testing.assert_array_equal(RankedScores(scores, positive).auroc(counts), auroc)
    for b in range(5):
        for j in range(3):
            w = counts[b]
            assert auroc[b, j] == pytest.approx(skm.roc_auc_score(positive[:, j], scores[:, j], sample_weight=w))
            expected_ap = skm.average_precision_score(positive[:, j], scores[:, j], sample_weight=w)
            assert ap[b, j] == pytest.approx(expected_ap)


def test_undefined_without_both_classes():
    scores = np.array([[0.1, 0.2], [0.4, 0.3], [0.5, 0.9]])
    positive = np.array([[True, False], [False, False], [True, False]])
    auroc, ap = RankedScores(scores, positive).auroc_and_ap(np.array([[1.0, 1, 1], [0, 1, 0]]))
    assert auroc[0, 0] == 0.5 and np.isnan(auroc[0, 1])
    assert np.isnan(auroc[1]).all() and np.isnan(ap[1]).all()


def test_roc_curve_points_match_sklearn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 100)
    s = rng.normal(size=100) + y
    curve = roc_curve_points(y, s)
    for got, want in zip((curve.fpr, curve.tpr, curve.thresholds), skm.roc_curve(y, s)):
        np.testing.assert_array_equal(got, want)
    assert curve.auroc == skm.roc_auc_score(y, s)
    d = curve.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["thresholds"][0] is None  # +inf


def test_roc_curve_points_rejects_constant_target():
    with pytest.raises(InvalidInputError):
        roc_curve_points([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InvalidInputError):
        roc_curve_points([0, 1], [0.1, 0.2, 0.3])
