"""Rank-based areas (AUROC, average precision) for many weighted resamples at once, and ROC curve points.

A resample is a row of item multiplicities (see :mod:`openmedclip.metrics.bootstrap`). Everything that
depends only on the scores -- the order of positives and negatives and, for each positive, how many
negatives/positives score below or tie with it -- is computed once, so a batch of resamples costs a
few gathers and cumulative sums. Ties: AUROC counts a tied positive/negative pair as 1/2 (the
Mann-Whitney statistic, equal to scikit-learn's trapezoidal ROC area); average precision is
scikit-learn's step-wise sum over distinct thresholds. Both are NaN where a column lacks positives
or negatives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from openmedclip.errors import InvalidInputError
from openmedclip.metrics._inputs import binary_matrix, score_matrix
from openmedclip.metrics.results import json_float, json_floats


@dataclass(frozen=True)
class _Column:
    pos: np.ndarray
    """Positive items, ascending score."""
    neg: np.ndarray
    """Negative items, ascending score."""
    neg_below: np.ndarray
    """Per positive: negatives scoring strictly lower."""
    neg_upto: np.ndarray
    """Per positive: negatives scoring lower or equal."""
    pos_below: np.ndarray
    """Per positive: positives scoring strictly lower."""


def _column(scores: np.ndarray, positive: np.ndarray) -> _Column:
    pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
    pos, neg = pos[np.argsort(scores[pos], kind="stable")], neg[np.argsort(scores[neg], kind="stable")]
    s_pos, s_neg = scores[pos], scores[neg]
    return _Column(
        pos,
        neg,
        np.searchsorted(s_neg, s_pos, side="left"),
        np.searchsorted(s_neg, s_pos, side="right"),
        np.searchsorted(s_pos, s_pos, side="left"),
    )


def _cumsum0(rows: np.ndarray) -> np.ndarray:
    """Cumulative sums over axis 0 with a leading zero row: ``out[k]`` = sum of the first k rows."""
    out = np.zeros((rows.shape[0] + 1, rows.shape[1]))
    np.cumsum(rows, axis=0, out=out[1:])
    return out


class RankedScores:
    """Score columns ``[N, M]`` with targets ``[N, M]`` (True = positive), prepared for resampling."""

    def __init__(self, scores: np.ndarray, positive: np.ndarray):
        self._columns = [_column(scores[:, j], positive[:, j]) for j in range(scores.shape[1])]

    def _passes(self, counts: np.ndarray) -> Iterator[tuple[_Column, np.ndarray, np.ndarray, np.ndarray]]:
        """Per column: the column, positive weights ``[P, b]``, cumulative negative weights ``[Nn + 1, b]``, AUROC."""
        items_first = np.ascontiguousarray(counts.T)
        for col in self._columns:
            w_pos = items_first[col.pos]
            cum_neg = _cumsum0(items_first[col.neg])
            n_pos, n_neg = w_pos.sum(axis=0), cum_neg[-1]
            wins = 0.5 * (w_pos * (cum_neg[col.neg_below] + cum_neg[col.neg_upto])).sum(axis=0)
            auroc = np.divide(wins, n_pos * n_neg, out=np.full(len(wins), np.nan), where=(n_pos > 0) & (n_neg > 0))
            yield col, w_pos, cum_neg, auroc

    def auroc(self, counts: np.ndarray) -> np.ndarray:
        """AUROC ``[b, M]`` for item multiplicities ``counts`` ``[b, N]``."""
        return np.stack([auroc for *_, auroc in self._passes(counts)], axis=1)

    def auroc_and_ap(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """AUROC and average precision, each ``[b, M]``, for item multiplicities ``counts`` ``[b, N]``."""
        aurocs, aps = [], []
        for col, w_pos, cum_neg, auroc in self._passes(counts):
            n_pos, n_neg = w_pos.sum(axis=0), cum_neg[-1]
            tp_at = n_pos - _cumsum0(w_pos)[col.pos_below]
            flagged = tp_at + n_neg - cum_neg[col.neg_below]
            precision = np.divide(tp_at, flagged, out=np.zeros_like(tp_at), where=flagged > 0)
            ap = (w_pos * precision).sum(axis=0)
            aurocs.append(auroc)
            aps.append(np.divide(ap, n_pos, out=np.full(len(ap), np.nan), where=np.isfinite(auroc)))
        return np.stack(aurocs, axis=1), np.stack(aps, axis=1)


@dataclass(frozen=True)
class RocCurve:
    """ROC curve points for one binary target (thresholds descending; the first is +inf)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auroc: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "fpr": json_floats(self.fpr),
            "tpr": json_floats(self.tpr),
            "thresholds": json_floats(self.thresholds),
            "auroc": json_float(self.auroc),
        }


def roc_curve_points(y_true: Any, scores: Any) -> RocCurve:
    """ROC curve of binary ``y_true`` ``[N]`` against ``scores`` ``[N]``.

    For one class of a multi-class result (one-vs-rest) pass ``y == c`` and ``probs[:, c]``.
    """
    y = binary_matrix("y_true", y_true)
    s = score_matrix("scores", scores, y.shape)
    if y.shape[1] != 1:
        raise InvalidInputError(f"y_true: expected one binary target, got shape {y.shape}")
    if y.min() == y.max():
        raise InvalidInputError("y_true: an ROC curve needs both positives and negatives")
    from sklearn.metrics import roc_auc_score, roc_curve  # imported here: seconds that a bare prediction never needs

    fpr, tpr, thresholds = roc_curve(y[:, 0], s[:, 0])
    return RocCurve(fpr, tpr, thresholds, float(roc_auc_score(y[:, 0], s[:, 0])))
