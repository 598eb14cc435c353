"""One task on already-encoded features -> a `TaskRecord`: CLIP_benchmark metrics, intervals, details, plot data.

Metric names follow CLIP_benchmark where it has one (``acc1``, ``acc5``, ``mean_per_class_recall``; ``lp_``
prefixed for linear probes; ``image_retrieval_recall@k`` = text→image, ``text_retrieval_recall@k`` = image→text);
ours are added beside them (``auroc``, ``macro_f1``, ``ece``, ...). Every metric with a bootstrap interval has it in
``ci`` as ``[low, high]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from openmedclip.embed import EncodedImages
from openmedclip.errors import InvalidInputError
from openmedclip.metrics import MulticlassResult, multiclass_metrics, multilabel_metrics, roc_curve_points
from openmedclip.metrics.results import Estimate, json_float, json_floats
from openmedclip.models.loaded import LoadedModel
from openmedclip.tasks.probe import linear_probe
from openmedclip.tasks.retrieval import retrieval_metrics
from openmedclip.tasks.zeroshot import zero_shot

TASK_NAMES = {"zeroshot": "zeroshot_classification", "probe": "linear_probe", "retrieval": "zeroshot_retrieval"}
"""Suite task name -> CLIP_benchmark task name (used in result files)."""

RETRIEVAL_KS = (1, 5, 10)


@dataclass
class TaskRecord:
    """What one task produced, ready for the result JSON."""

    task: str
    n_items: int
    metrics: dict[str, float | None]
    ci: dict[str, list[float | None]]
    details: dict[str, Any]
    plots: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """Task-specific top-level fields of the result JSON."""


def _put(metrics: dict, ci: dict, name: str, estimate: Estimate) -> None:
    metrics[name] = json_float(estimate.value)
    ci[name] = [json_float(estimate.low), json_float(estimate.high)]


def _multiclass_fields(result: MulticlassResult, prefix: str = "") -> tuple[dict, dict]:
    metrics: dict = {}
    ci: dict = {}
    _put(metrics, ci, f"{prefix}acc1", result.accuracy)
    if 5 in result.top_k_accuracy:
        _put(metrics, ci, f"{prefix}acc5", result.top_k_accuracy[5])
    _put(metrics, ci, f"{prefix}mean_per_class_recall", result.balanced_accuracy)
    for name in ("auroc", "macro_f1", "ece"):
        _put(metrics, ci, f"{prefix}{name}", getattr(result, name))
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


def zeroshot_record(
    loaded: LoadedModel,
    features: torch.Tensor,
    targets: np.ndarray,
    class_names: list[str],
    prompts: Mapping[str, Any],
    *,
    multilabel: bool,
    n_bootstrap: int,
) -> TaskRecord:
    """Zero-shot classification of ``features`` ``[N, D]``; ``targets`` are class indices ``[N]`` or, with
    ``multilabel``, a 0/1 matrix ``[N, C]`` over ``class_names``."""
    sentences = prompts.get("sentences")
    if sentences is not None:
        missing = [c for c in class_names if c not in sentences]
        if missing:
            raise InvalidInputError(f"prompts: no sentences for class(es) {missing}")
        labels: Any = {c: sentences[c] for c in class_names}
    else:
        labels = class_names
    encoded = EncodedImages(features, list(range(len(features))), [str(i) for i in range(len(features))])
    result = zero_shot(
        loaded,
        encoded,
        labels,
        templates=prompts.get("templates"),
        bank=prompts.get("bank"),
        multilabel=multilabel,
        pairs=prompts.get("pairs"),
    )
    probs = result.probabilities.astype(np.float64)
    plots: dict[str, Any] = {"class_names": class_names, "roc": roc_curves(targets, probs, class_names)}
    details: dict[str, Any] = {"mode": result.mode, "prompts": result.prompts}
    if multilabel:
        ml = multilabel_metrics(targets, probs, class_names, n_bootstrap=n_bootstrap)
        metrics: dict = {}
        ci: dict = {}
        _put(metrics, ci, "mean_auroc", ml.mean_auroc)
        _put(metrics, ci, "mean_auprc", ml.mean_auprc)
        metrics |= {"mean_f1": json_float(ml.mean_f1), "mean_mcc": json_float(ml.mean_mcc)}
        details["metrics"] = ml.to_dict()
    else:
        mc = multiclass_metrics(targets, probs, class_names, n_bootstrap=n_bootstrap)
        metrics, ci = _multiclass_fields(mc)
        details["metrics"] = mc.to_dict()
        plots["confusion_matrix"] = mc.confusion_matrix.astype(int).tolist()
    return TaskRecord(TASK_NAMES["zeroshot"], len(targets), metrics, ci, details, plots)


def probe_record(
    train_features: torch.Tensor,
    train_targets: np.ndarray,
    test_features: torch.Tensor,
    test_targets: np.ndarray,
    class_names: list[str],
    *,
    k_shots: Sequence[int | None],
    seeds: Sequence[int],
    n_bootstrap: int,
) -> TaskRecord:
    """Few-shot linear probes; the headline metrics are those of the probe on all training rows (or the largest k)
    with the first seed, the per-k mean and sd over seeds are in ``plots['k_curve']`` and ``details``."""
    result = linear_probe(
        train_features.numpy(),
        train_targets,
        test_features.numpy(),
        test_targets,
        class_names=class_names,
        k_shots=k_shots,
        seeds=seeds,
        n_bootstrap=n_bootstrap,
    )
    top_k = None if None in k_shots else max(k for k in k_shots if k is not None)
    headline = result.runs_for(top_k)[0]
    metrics, ci = _multiclass_fields(headline.metrics, prefix="lp_")
    curve = {
        ("all" if k is None else str(k)): {"mean": json_float(mean), "sd": json_float(sd)}
        for k, (mean, sd) in result.curve("accuracy").items()
    }
    plots = {
        "class_names": class_names,
        "confusion_matrix": headline.metrics.confusion_matrix.astype(int).tolist(),
        "k_curve": {"metric": "accuracy", "points": curve, "n_train": len(train_targets)},
    }
    extra = {"headline_run": {"k": "all" if top_k is None else top_k, "seed": headline.seed}}
    return TaskRecord(TASK_NAMES["probe"], len(test_targets), metrics, ci, result.to_dict(), plots, extra)


def retrieval_record(
    image_features: torch.Tensor, text_features: torch.Tensor, text_image_index: Sequence[int], *, n_bootstrap: int
) -> TaskRecord:
    """Image↔caption retrieval; ``text_image_index[j]`` is the row of ``image_features`` caption ``j`` describes."""
    result = retrieval_metrics(
        image_features, text_features, list(text_image_index), RETRIEVAL_KS, n_bootstrap=n_bootstrap
    )
    metrics: dict = {}
    ci: dict = {}
    for k in RETRIEVAL_KS:
        _put(metrics, ci, f"image_retrieval_recall@{k}", result.text_to_image.recall[k])
        _put(metrics, ci, f"text_retrieval_recall@{k}", result.image_to_text.recall[k])
    metrics |= {
        "image_retrieval_median_rank": json_float(result.text_to_image.median_rank),
        "text_retrieval_median_rank": json_float(result.image_to_text.median_rank),
    }
    return TaskRecord(TASK_NAMES["retrieval"], result.n_images, metrics, ci, result.to_dict())
