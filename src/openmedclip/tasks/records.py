"""Shared pieces of the tasks' record builders: CLIP_benchmark metric fields with intervals, ROC plot data.

Metric names follow CLIP_benchmark where it has one (``acc1``, ``acc5``, ``mean_per_class_recall``; ``lp_``
prefixed for linear probes; ``image_retrieval_recall@k`` = text→image, ``text_retrieval_recall@k`` = image→text);
ours are added beside them (``auroc``, ``macro_f1``, ``ece``, ...). Every metric with a bootstrap interval has it in
``ci`` as ``[low, high]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openmedclip.metrics import MulticlassResult, roc_curve_points
from openmedclip.metrics.results import Estimate, json_float, json_floats


def put_estimate(metrics: dict, ci: dict, name: str, estimate: Estimate) -> None:
    """Store an estimate's value under ``metrics[name]`` and its interval under ``ci[name]``."""
    metrics[name] = json_float(estimate.value)
    ci[name] = [json_float(estimate.low), json_float(estimate.high)]


def multiclass_fields(result: MulticlassResult, prefix: str = "") -> tuple[dict, dict]:
    """The CLIP_benchmark-named metrics (and intervals) of a multi-class result, optionally prefixed."""
    metrics: dict = {}
    ci: dict = {}
    put_estimate(metrics, ci, f"{prefix}acc1", result.accuracy)
    if 5 in result.top_k_accuracy:
        put_estimate(metrics, ci, f"{prefix}acc5", result.top_k_accuracy[5])
    put_estimate(metrics, ci, f"{prefix}mean_per_class_recall", result.balanced_accuracy)
    for name in ("auroc", "macro_f1", "ece"):
        put_estimate(metrics, ci, f"{prefix}{name}", getattr(result, name))
    return metrics, ci


def roc_curves(targets: np.ndarray, scores: np.ndarray, names: Sequence[str]) -> dict[str, dict]:
    """ROC points per class (one-vs-rest; only the positive class of a binary task), where defined."""
    columns = [1] if targets.ndim == 1 and len(names) == 2 else range(len(names))
    curves = {}
    for c in columns:
        positive = targets[:, c] if targets.ndim == 2 else targets == c
        if 0 < positive.sum() < len(positive):
            curve = roc_curve_points(positive.astype(float), scores[:, c])
            curves[names[c]] = {"fpr": json_floats(curve.fpr), "tpr": json_floats(curve.tpr), "auroc": curve.auroc}
    return curves
