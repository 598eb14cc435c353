"""Metric defaults and key names in one place: what every task, result file, report and training log uses."""

from __future__ import annotations

RECALL_KS: tuple[int, ...] = (1, 5, 10)
"""Retrieval recall@k cut-offs."""
N_BOOTSTRAP = 1000
"""Bootstrap resamples for confidence intervals."""
CI_LEVEL = 0.95
"""Confidence level of the percentile intervals."""


def retrieval_key(direction: str, k: int) -> str:
    """The metric key of recall@k in CLIP_benchmark's naming: ``'text_to_image'`` retrieves images
    (``image_retrieval_recall@k``), ``'image_to_text'`` retrieves texts (``text_retrieval_recall@k``)."""
    return f"{_RETRIEVED[direction]}_retrieval_recall@{k}"


def retrieval_rank_key(direction: str) -> str:
    """The metric key of the median rank in one retrieval direction (``image_retrieval_median_rank``, ...)."""
    return f"{_RETRIEVED[direction]}_retrieval_median_rank"


_RETRIEVED = {"text_to_image": "image", "image_to_text": "text"}
