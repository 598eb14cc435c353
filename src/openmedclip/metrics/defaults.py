"""Metric defaults and key names in one place: what every task, result file, report and training log uses."""

from __future__ import annotations

RECALL_KS: tuple[int, ...] = (1, 5, 10)
"""Retrieval recall@k cut-offs."""
N_BOOTSTRAP = 1000
"""Bootstrap resamples for confidence intervals."""
CI_LEVEL = 0.95
"""Confidence level of the percentile intervals."""
POSITIVE_CLASS_METRICS: tuple[str, ...] = ("positive_precision", "positive_recall", "positive_f1")
"""Binary tasks: precision, recall and F1 of the arg-max prediction with the second class positive."""
ZEROSHOT_METRICS: tuple[str, ...] = (
    "acc1",
    "acc5",
    "mean_per_class_recall",
    "auroc",
    "macro_f1",
    "ece",
    *POSITIVE_CLASS_METRICS,
    "mean_auroc",
    "mean_auprc",
    "mean_f1",
    "mean_mcc",
)
"""Every metric key a zero-shot result may hold (which ones it holds depends on the task: ``acc5`` needs more than
five classes, the ``positive_*`` ones two, the ``mean_*`` ones multi-label data)."""


def retrieval_key(direction: str, k: int) -> str:
    """The metric key of recall@k in CLIP_benchmark's naming: ``'text_to_image'`` retrieves images
    (``image_retrieval_recall@k``), ``'image_to_text'`` retrieves texts (``text_retrieval_recall@k``)."""
    return f"{_RETRIEVED[direction]}_retrieval_recall@{k}"


def retrieval_rank_key(direction: str) -> str:
    """The metric key of the median rank in one retrieval direction (``image_retrieval_median_rank``, ...)."""
    return f"{_RETRIEVED[direction]}_retrieval_median_rank"


_RETRIEVED = {"text_to_image": "image", "image_to_text": "text"}
