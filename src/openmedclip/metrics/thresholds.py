"""Per-label decision thresholds (CheXzero protocol) and the F1 / MCC they give.

A label is predicted positive when ``score >= threshold``. :func:`select_thresholds` tries every
distinct score of a label as the threshold and keeps the one maximising MCC (or F1); ties go to the
highest threshold. A label that is constant in the selection data gets a NaN threshold.
F1 and MCC follow scikit-learn's conventions: 0 where their denominator is 0.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from openmedclip.errors import InvalidInputError
from openmedclip.metrics._inputs import binary_matrix, per_label, score_matrix

ThresholdMetric = Literal["mcc", "f1"]


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)


def _mcc(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> np.ndarray:
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.divide(tp * tn - fp * fn, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)


def select_thresholds(y_true: Any, scores: Any, metric: ThresholdMetric = "mcc") -> np.ndarray:
    """Thresholds ``[L]`` maximising ``metric`` per label of 0/1 ``y_true`` and ``scores`` ``[N, L]``."""
    if metric not in ("mcc", "f1"):
        raise InvalidInputError(f"threshold_metric: expected 'mcc' or 'f1', got {metric!r}")
    y_true = binary_matrix("y_true", y_true)
    scores = score_matrix("scores", scores, y_true.shape)
    out = np.full(y_true.shape[1], np.nan)
    for j in range(y_true.shape[1]):
        order = np.argsort(-scores[:, j], kind="stable")
        s, y = scores[order, j], y_true[order, j]
        n_pos = y.sum()
        if n_pos in (0, len(y)):
            continue
        ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
        tp = np.cumsum(y)[ends]
        fp = ends + 1 - tp
        fn, tn = n_pos - tp, len(y) - n_pos - fp
        values = _mcc(tp, fp, fn, tn) if metric == "mcc" else _f1(tp, fp, fn)
        out[j] = s[ends[np.argmax(values)]]
    return out


def f1_mcc(y_true: Any, scores: Any, thresholds: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-label F1 and MCC ``[L]`` of ``scores >= thresholds``; NaN where the threshold is NaN."""
    y_true = binary_matrix("y_true", y_true)
    scores = score_matrix("scores", scores, y_true.shape)
    thresholds = per_label("thresholds", thresholds, y_true.shape[1])
    pred = scores >= thresholds
    pos = y_true > 0
    tp = (pred & pos).sum(axis=0).astype(float)
    fp = (pred & ~pos).sum(axis=0).astype(float)
    fn = (~pred & pos).sum(axis=0).astype(float)
    tn = (~pred & ~pos).sum(axis=0).astype(float)
    undefined = np.isnan(thresholds)
    return np.where(undefined, np.nan, _f1(tp, fp, fn)), np.where(undefined, np.nan, _mcc(tp, fp, fn, tn))
