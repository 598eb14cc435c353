"""Multi-label metrics (e.g. chest X-ray findings) with bootstrap intervals.

Per label: AUROC and AUPRC (average precision) with bootstrap intervals, and F1 / MCC at a decision
threshold (CheXzero protocol): the threshold maximising MCC (or F1) on a validation split is applied
unchanged to the test data. Without a validation split the thresholds are chosen on the test data
themselves and the result says ``thresholds_from='test (optimistic)'``.

A label without both positives and negatives in ``y_true`` has NaN AUROC/AUPRC (noted) and is left
out of the means; resamples where a kept label loses its positives or negatives are dropped from
the intervals of the means (``n_dropped``). With ``groups`` (each item's case, patient or study) the
intervals resample whole groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openmedclip.errors import InvalidInputError
from openmedclip.metrics._inputs import binary_matrix, names, per_label, score_matrix
from openmedclip.metrics.bootstrap import bootstrap_estimates, item_groups
from openmedclip.metrics.defaults import CI_LEVEL, N_BOOTSTRAP
from openmedclip.metrics.ranking import RankedScores
from openmedclip.metrics.results import Estimate, json_float
from openmedclip.metrics.thresholds import ThresholdMetric, f1_mcc, select_thresholds


@dataclass(frozen=True)
class LabelResult:
    """Metrics of one label."""

    name: str
    n_positive: int
    auroc: Estimate
    auprc: Estimate
    threshold: float
    """Predict positive when ``score >= threshold``; NaN when it could not be chosen."""
    f1: float
    mcc: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_positive": self.n_positive,
            "auroc": self.auroc.to_dict(),
            "auprc": self.auprc.to_dict(),
            "threshold": json_float(self.threshold),
            "f1": json_float(self.f1),
            "mcc": json_float(self.mcc),
        }


@dataclass(frozen=True)
class MultilabelResult:
    """Per-label and mean metrics of scores against a 0/1 label matrix; see the module docstring."""

    n_items: int
    labels: list[LabelResult]
    mean_auroc: Estimate
    mean_auprc: Estimate
    mean_f1: float
    mean_mcc: float
    threshold_metric: str
    thresholds_from: str
    """'given', 'validation' or 'test (optimistic)'."""
    n_bootstrap: int
    seed: int
    ci: float
    notes: list[str] = field(default_factory=list)
    n_groups: int | None = None
    """Groups the intervals resampled; None: items."""

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_items": self.n_items,
            "label_names": self.label_names,
            "mean_auroc": self.mean_auroc.to_dict(),
            "mean_auprc": self.mean_auprc.to_dict(),
            "mean_f1": json_float(self.mean_f1),
            "mean_mcc": json_float(self.mean_mcc),
            "labels": {label.name: label.to_dict() for label in self.labels},
            "threshold_metric": self.threshold_metric,
            "thresholds_from": self.thresholds_from,
            "bootstrap": {"n": self.n_bootstrap, "seed": self.seed, "ci": self.ci, "n_groups": self.n_groups},
            "notes": list(self.notes),
        }


def _thresholds(
    y: np.ndarray, s: np.ndarray, thresholds: Any, val_y_true: Any, val_scores: Any, metric: ThresholdMetric
) -> tuple[np.ndarray, str]:
    """The per-label thresholds and where they came from."""
    if (val_y_true is None) != (val_scores is None):
        raise InvalidInputError("val_y_true and val_scores must be given together")
    if thresholds is not None:
        if val_y_true is not None:
            raise InvalidInputError("give either thresholds or a validation split, not both")
        return per_label("thresholds", thresholds, y.shape[1]), "given"
    if val_y_true is None:
        return select_thresholds(y, s, metric), "test (optimistic)"
    vy = binary_matrix("val_y_true", val_y_true)
    if vy.shape[1] != y.shape[1]:
        raise InvalidInputError(f"val_y_true: expected {y.shape[1]} labels, got {vy.shape[1]}")
    return select_thresholds(vy, score_matrix("val_scores", val_scores, vy.shape), metric), "validation"


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def multilabel_metrics(
    y_true: Any,
    scores: Any,
    label_names: Sequence[str] | None = None,
    *,
    thresholds: Any = None,
    val_y_true: Any = None,
    val_scores: Any = None,
    threshold_metric: ThresholdMetric = "mcc",
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    ci: float = CI_LEVEL,
    groups: Any = None,
) -> MultilabelResult:
    """Metrics of ``scores`` ``[N, L]`` (any real scale) against 0/1 ``y_true`` ``[N, L]``.

    Thresholds: ``thresholds`` (scalar or ``[L]``) if given, else chosen on ``val_y_true``/``val_scores``
    by ``threshold_metric`` ('mcc' or 'f1'), else chosen on the test data (flagged as optimistic).
    ``groups`` (one key per item) makes the intervals a cluster bootstrap over groups.
    """
    y = binary_matrix("y_true", y_true)
    s = score_matrix("scores", scores, y.shape)
    n_items, n_labels = y.shape
    resampled = item_groups(groups, n_items)
    lnames = names("label_names", label_names, n_labels)
    if threshold_metric not in ("mcc", "f1"):
        raise InvalidInputError(f"threshold_metric: expected 'mcc' or 'f1', got {threshold_metric!r}")
    cut, source = _thresholds(y, s, thresholds, val_y_true, val_scores, threshold_metric)
    f1, mcc = f1_mcc(y, s, cut)

    n_pos = y.sum(axis=0).astype(int)
    kept = (n_pos > 0) & (n_pos < n_items)
    ranked = RankedScores(s, y > 0)

    def batch(counts: np.ndarray) -> np.ndarray:
        auroc, ap = ranked.auroc_and_ap(counts)
        if not kept.any():
            return np.column_stack([auroc, ap, np.full((len(auroc), 2), np.nan)])
        return np.column_stack([auroc, ap, auroc[:, kept].mean(axis=1), ap[:, kept].mean(axis=1)])

    est = bootstrap_estimates(batch, n_items, n=n_bootstrap, seed=seed, ci=ci, groups=resampled)
    notes = []
    if not kept.all():
        notes.append(f"auroc/auprc undefined (label constant in y_true): {[lnames[j] for j in np.flatnonzero(~kept)]}")
    if np.isnan(cut).any():
        missing = [lnames[j] for j in np.flatnonzero(np.isnan(cut))]
        notes.append(f"no threshold (label constant where chosen, or given as NaN): {missing}")
    if source == "test (optimistic)":
        notes.append("thresholds chosen on the test data: F1/MCC are optimistic; pass a validation split")
    labels = [
        LabelResult(lnames[j], int(n_pos[j]), est[j], est[n_labels + j], float(cut[j]), float(f1[j]), float(mcc[j]))
        for j in range(n_labels)
    ]
    return MultilabelResult(
        n_items=n_items,
        labels=labels,
        mean_auroc=est[2 * n_labels],
        mean_auprc=est[2 * n_labels + 1],
        mean_f1=_mean(f1),
        mean_mcc=_mean(mcc),
        threshold_metric=threshold_metric,
        thresholds_from=source,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ci=ci,
        notes=notes,
        n_groups=None if resampled is None else resampled.n_groups,
    )
