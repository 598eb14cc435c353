"""Single-label classification metrics with bootstrap intervals (zero-shot and probe results).

Definitions (each checked against scikit-learn in the tests):

- ``accuracy``: top-1 (``argmax``, first index on ties) equals the label.
- ``balanced_accuracy``: mean recall over the classes present in ``y_true``.
- ``macro_f1``: mean F1 over the classes present in ``y_true`` or predicted.
- ``auroc``: binary -- the class-1 column against ``y == 1``; more classes -- one-vs-rest, unweighted
  mean over classes. Undefined (NaN, with a note) unless every class occurs in ``y_true``;
  resamples missing a class are dropped and counted in ``n_dropped``.
- ``top_k_accuracy[k]``: the label is among the ``k`` highest probabilities (ties rank the higher
  class index first, as scikit-learn does); only for ``2 <= k < C`` (``k >= C`` is trivially 1).
- ``ece``: see :mod:`openmedclip.metrics.calibration` (15 equal-width bins on max-prob confidence).
- ``positive_precision``, ``positive_recall``, ``positive_f1`` (two classes only): scikit-learn's binary
  ``precision_score``, ``recall_score`` and ``f1_score`` of the arg-max prediction with class 1 (the second class)
  positive. As there (``zero_division`` left at its default), a metric whose denominator is 0 -- no item predicted
  positive, no positive item -- is 0, with a note.

Intervals are bootstrap percentile intervals over items, or over groups of items (cases, patients)
when ``groups`` names each item's group (:mod:`openmedclip.metrics.bootstrap`); one-vs-rest AUROC
makes the cost O(n_bootstrap * N * C), about 0.5 s for 1,000 x 5,000 x 10.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openmedclip.errors import InvalidInputError
from openmedclip.metrics._inputs import class_labels, names, probabilities
from openmedclip.metrics.bootstrap import bootstrap_estimates, item_groups
from openmedclip.metrics.calibration import calibration_gaps, ece_from_gaps
from openmedclip.metrics.defaults import CI_LEVEL, N_BOOTSTRAP, POSITIVE_CLASS_METRICS
from openmedclip.metrics.ranking import RankedScores
from openmedclip.metrics.results import Estimate, json_float

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "ece")


@dataclass(frozen=True)
class MulticlassResult:
    """Metrics of class probabilities against integer labels; see the module docstring."""

    class_names: list[str]
    n_items: int
    accuracy: Estimate
    balanced_accuracy: Estimate
    macro_f1: Estimate
    auroc: Estimate
    ece: Estimate
    top_k_accuracy: dict[int, Estimate]
    per_class_recall: np.ndarray
    """``[C]``; NaN for classes absent from ``y_true``."""
    confusion_matrix: np.ndarray
    """``[C, C]`` counts, rows = true class, columns = predicted class."""
    n_bootstrap: int
    seed: int
    ci: float
    notes: list[str] = field(default_factory=list)
    n_groups: int | None = None
    """Groups the intervals resampled; None: items."""
    positive_class: dict[str, Estimate] = field(default_factory=dict)
    """Two classes: ``positive_precision``, ``positive_recall``, ``positive_f1`` with class 1 positive; else empty."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_items": self.n_items,
            "class_names": list(self.class_names),
            **{name: getattr(self, name).to_dict() for name in HEADLINE},
            **{name: est.to_dict() for name, est in self.positive_class.items()},
            "top_k_accuracy": {str(k): est.to_dict() for k, est in self.top_k_accuracy.items()},
            "per_class_recall": {c: json_float(r) for c, r in zip(self.class_names, self.per_class_recall)},
            "confusion_matrix": self.confusion_matrix.astype(int).tolist(),
            "bootstrap": {"n": self.n_bootstrap, "seed": self.seed, "ci": self.ci, "n_groups": self.n_groups},
            "notes": list(self.notes),
        }


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """``[C, C]`` int64 counts of (true, predicted) class index pairs; rows are true classes."""
    y = class_labels("y_true", y_true, n_classes, np.size(y_true))
    pred = class_labels("y_pred", y_pred, n_classes, len(y))
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _top_k_hits(y: np.ndarray, probs: np.ndarray, ks: list[int]) -> np.ndarray:
    """``[N, len(ks)]`` 0/1: the label ranks within the top k (ties: higher class index first)."""
    p_true = probs[np.arange(len(y)), y][:, None]
    above = (probs > p_true) | ((probs == p_true) & (np.arange(probs.shape[1]) > y[:, None]))
    rank = above.sum(axis=1)
    return (rank[:, None] < np.asarray(ks, dtype=int)[None, :]).astype(float)


def _top_ks(top_k: Sequence[int], n_classes: int) -> list[int]:
    ks = sorted({int(k) for k in top_k})
    if any(k < 2 for k in ks):
        raise InvalidInputError(f"top_k: values must be >= 2 (top-1 is 'accuracy'), got {list(top_k)}")
    return [k for k in ks if k < n_classes]


def multiclass_metrics(
    y_true: Any,
    probs: Any,
    class_names: Sequence[str] | None = None,
    *,
    top_k: Sequence[int] = (5,),
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    ci: float = CI_LEVEL,
    groups: Any = None,
) -> MulticlassResult:
    """Metrics of ``probs`` ``[N, C]`` against labels ``y_true`` ``[N]`` in ``[0, C)``.

    ``probs`` must be probabilities (entries in [0, 1], rows summing to 1 within 1e-3): apply softmax
    to logits first. ``top_k`` lists the k of ``top_k_accuracy`` (kept where ``k < C``). ``groups``
    (one key per item: its case, patient or study) makes the intervals a cluster bootstrap over groups.
    """
    p = probabilities("probs", probs)
    n_items, n_classes = p.shape
    y = class_labels("y_true", y_true, n_classes, n_items)
    resampled = item_groups(groups, n_items)
    cnames = names("class_names", class_names, n_classes)
    ks = _top_ks(top_k, n_classes)

    pred = p.argmax(axis=1)
    correct = (pred == y).astype(float)
    eye = np.eye(n_classes)
    features = np.column_stack([correct, _top_k_hits(y, p, ks), eye[y], eye[y] * correct[:, None], eye[pred]])
    gaps = calibration_gaps(y, p)
    ranked = RankedScores(p[:, 1:], (y == 1)[:, None]) if n_classes == 2 else RankedScores(p, eye[y] > 0)

    def batch(counts: np.ndarray) -> np.ndarray:
        total = counts.sum(axis=1)
        sums = counts @ features
        accuracy, top = sums[:, 0], sums[:, 1 : 1 + len(ks)]
        support, tp, predicted = np.split(sums[:, 1 + len(ks) :], 3, axis=1)
        recall = np.divide(tp, support, out=np.full_like(tp, np.nan), where=support > 0)
        f1 = np.divide(2 * tp, support + predicted, out=np.full_like(tp, np.nan), where=support + predicted > 0)
        columns = [
            accuracy / total,
            np.nanmean(recall, axis=1),
            np.nanmean(f1, axis=1),
            ranked.auroc(counts).mean(axis=1),
            ece_from_gaps(counts, gaps),
            top / total[:, None],
        ]
        if n_classes == 2:
            columns += _positive_class_columns(support[:, 1], tp[:, 1], predicted[:, 1])
        return np.column_stack(columns)

    est = bootstrap_estimates(batch, n_items, n=n_bootstrap, seed=seed, ci=ci, groups=resampled)
    cm = confusion_matrix(y, pred, n_classes)
    support = cm.sum(axis=1)
    notes = []
    if (support == 0).any():
        absent = [cnames[c] for c in np.flatnonzero(support == 0)]
        notes.append(f"auroc undefined: classes absent from y_true: {absent}")
    if n_classes == 2:
        notes += _positive_class_notes(cm, cnames[1])
    return MulticlassResult(
        class_names=cnames,
        n_items=n_items,
        **dict(zip(HEADLINE, est)),
        top_k_accuracy=dict(zip(ks, est[len(HEADLINE) : len(HEADLINE) + len(ks)])),
        per_class_recall=np.divide(np.diag(cm), support, out=np.full(n_classes, np.nan), where=support > 0),
        confusion_matrix=cm,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ci=ci,
        notes=notes,
        n_groups=None if resampled is None else resampled.n_groups,
        positive_class=dict(zip(POSITIVE_CLASS_METRICS, est[len(HEADLINE) + len(ks) :])),
    )


def _positive_class_columns(support: np.ndarray, tp: np.ndarray, predicted: np.ndarray) -> list[np.ndarray]:
    """Precision, recall and F1 of the positive class from its (weighted) support, true positives and predicted
    positives; 0 where a denominator is 0, as scikit-learn's default ``zero_division`` gives."""
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=support + predicted > 0)
    return [precision, recall, f1]


def _positive_class_notes(cm: np.ndarray, positive: str) -> list[str]:
    """Notes for the positive-class metrics that are 0 only because their denominator is."""
    notes = []
    if cm[:, 1].sum() == 0:
        notes.append(f"positive_precision set to 0: no item predicted as the positive class {positive!r}")
    if cm[1].sum() == 0:
        notes.append(f"positive_recall set to 0: no item of the positive class {positive!r} in y_true")
    return notes
