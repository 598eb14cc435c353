"""Image↔text retrieval: exact cosine search, and recall@k / rank metrics for captioned image sets.

Scores are cosine similarities (rows are L2-normalised here, so features need not be). Both functions work a chunk
of queries at a time, so memory grows with ``chunk × gallery`` rather than ``queries × gallery``.

Ranks are 1-based. With ``ties="optimistic"`` (the default) a query's rank is 1 + the number of gallery items
scoring strictly higher than its correct item; ``"pessimistic"`` also counts the other items scoring exactly the
same. Real features rarely tie, but collapsed features (every score equal) look perfect under the optimistic rule
and worst-case under the pessimistic one, so compare both when in doubt.

- text→image: each caption is a query; its correct item is the image it belongs to.
- image→text: each image is a query; its correct items are all of its captions, and its rank is that of its best
  scoring caption (a hit at k when any caption is in the top k). Images without a caption only serve as
  distractors for text→image.

Recall intervals are bootstrap percentile intervals over images (a resampled image brings all its captions), or
with ``groups`` over groups of images (a resampled case brings all its images and their captions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from ..metrics.bootstrap import bootstrap_estimates, item_groups
from ..metrics.defaults import (
    CI_LEVEL,
    N_BOOTSTRAP,
    RECALL_KS,
    retrieval_key,
    retrieval_rank_key,
)
from ..metrics.results import Estimate, json_float
from .records import put_estimate
from .registry import TaskInputs, TaskRecord, TaskSpec, register_task

_CHUNK_CELLS = 1 << 24
"""Default chunk: about this many (query, gallery) scores at once (64 MB of float32)."""


@dataclass(frozen=True)
class DirectionResult:
    """Retrieval quality in one direction."""

    recall: dict[int, Estimate]
    """k -> share of queries whose correct item (any of them) ranks within the top k."""
    median_rank: float
    mean_rank: float
    ranks: np.ndarray
    """1-based rank per query (int64); 0 for an image without captions in the image→text direction."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_queries": int((self.ranks > 0).sum()),
            **{f"recall@{k}": estimate.to_dict() for k, estimate in self.recall.items()},
            "median_rank": json_float(self.median_rank),
            "mean_rank": json_float(self.mean_rank),
        }


@dataclass(frozen=True)
class RetrievalResult:
    """Image→text and text→image retrieval metrics for ``n_images`` images and ``n_texts`` captions."""

    n_images: int
    n_texts: int
    image_to_text: DirectionResult
    text_to_image: DirectionResult
    ties: str
    n_bootstrap: int
    seed: int
    ci: float
    notes: list[str] = field(default_factory=list)
    n_groups: int | None = None
    """Groups of images the intervals resampled; None: images."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": "retrieval",
            "n_images": self.n_images,
            "n_texts": self.n_texts,
            "image_to_text": self.image_to_text.to_dict(),
            "text_to_image": self.text_to_image.to_dict(),
            "ties": self.ties,
            "bootstrap": {"n": self.n_bootstrap, "seed": self.seed, "ci": self.ci, "n_groups": self.n_groups},
            "notes": list(self.notes),
        }


def _unit_rows(name: str, x: Any) -> torch.Tensor:
    """``x`` as a float32 tensor of L2-normalised rows (a tensor keeps its device)."""
    try:
        t = x.detach().float() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"{name}: not numeric ({error})") from None
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise InvalidInputError(f"{name}: expected a non-empty [N, D] array, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise InvalidInputError(f"{name}: contains NaN or infinite values")
    zero = int((t.norm(dim=1) == 0).sum())
    if zero:
        raise InvalidInputError(f"{name}: {zero} all-zero row(s) have no direction (cosine undefined)")
    return F.normalize(t, dim=1)


def _pair(query_name: str, queries: Any, gallery_name: str, gallery: Any) -> tuple[torch.Tensor, torch.Tensor]:
    q, g = _unit_rows(query_name, queries), _unit_rows(gallery_name, gallery)
    if q.shape[1] != g.shape[1]:
        raise InvalidInputError(f"{query_name} have {q.shape[1]} dimensions but {gallery_name} have {g.shape[1]}")
    return q, g.to(q.device)


def _chunk_rows(chunk_size: int | None, gallery_size: int) -> int:
    if chunk_size is None:
        return max(1, _CHUNK_CELLS // gallery_size)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise InvalidInputError(f"chunk_size: expected a positive integer, got {chunk_size!r}")
    return int(chunk_size)


def _top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best columns per row, best first; equal scores in column order (lower index first)."""
    values, indices = scores.topk(k, dim=1)
    crowded = (scores >= values[:, -1:]).sum(dim=1) > k
    if crowded.any():
        rows = crowded.nonzero().squeeze(1)
        tied_values, tied_indices = scores[rows].sort(dim=1, descending=True, stable=True)
        values[rows], indices[rows] = tied_values[:, :k], tied_indices[:, :k]
    by_index = indices.argsort(dim=1)
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    by_value = values.argsort(dim=1, descending=True, stable=True)
    return values.gather(1, by_value), indices.gather(1, by_value)


def retrieve(
    query_features: Any, gallery_features: Any, top_k: int = 10, *, chunk_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine search: ``(scores [Q, k], indices [Q, k])``, best first, for ``k = min(top_k, G)``.

    ``query_features`` ``[Q, D]`` and ``gallery_features`` ``[G, D]`` are arrays or tensors (a tensor's device is
    used for the search). Equal scores are ordered by gallery index, so results do not depend on ``chunk_size``,
    the number of queries scored at once (default: about 16M scores per chunk).
    """
    q, g = _pair("query_features", query_features, "gallery_features", gallery_features)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise InvalidInputError(f"top_k: expected a positive integer, got {top_k!r}")
    k = min(int(top_k), g.shape[0])
    rows = _chunk_rows(chunk_size, g.shape[0])
    scores, indices = [], []
    for start in range(0, q.shape[0], rows):
        values, columns = _top_k(q[start : start + rows] @ g.T, k)
        scores.append(values.cpu())
        indices.append(columns.cpu())
    return torch.cat(scores).numpy(), torch.cat(indices).numpy().astype(np.int64)


def _ranks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    pair_query: torch.Tensor,
    pair_item: torch.Tensor,
    pessimistic: bool,
    rows: int,
) -> np.ndarray:
    """1-based rank of each query's best-scoring correct item; ``(pair_query[i], pair_item[i])`` are the correct
    (query, gallery item) pairs. Queries without a pair get rank 0."""
    ranks = torch.zeros(queries.shape[0], dtype=torch.int64, device=queries.device)
    has_pair = torch.zeros(queries.shape[0], dtype=torch.bool, device=queries.device)
    has_pair[pair_query] = True
    for start in range(0, queries.shape[0], rows):
        scores = queries[start : start + rows] @ gallery.T
        chunk = (pair_query >= start) & (pair_query < start + scores.shape[0])
        local, items = pair_query[chunk] - start, pair_item[chunk]
        correct = scores[local, items]
        best = torch.full((scores.shape[0],), -torch.inf, device=scores.device)
        best = best.scatter_reduce(0, local, correct, reduce="amax")
        rank = 1 + (scores > best[:, None]).sum(dim=1)
        if pessimistic:
            tied_correct = torch.zeros_like(rank).index_add_(0, local, (correct == best[local]).long())
            rank += (scores == best[:, None]).sum(dim=1) - tied_correct
        ranks[start : start + scores.shape[0]] = rank
    return torch.where(has_pair, ranks, 0).cpu().numpy()


def _direction(ranks: np.ndarray, recall: list[Estimate], ks: list[int]) -> DirectionResult:
    valid = ranks[ranks > 0]
    return DirectionResult(dict(zip(ks, recall)), float(np.median(valid)), float(np.mean(valid)), ranks)


def retrieval_metrics(
    image_features: Any,
    text_features: Any,
    text_image_index: Sequence[int],
    ks: Sequence[int] = RECALL_KS,
    *,
    ties: str = "optimistic",
    chunk_size: int | None = None,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    ci: float = CI_LEVEL,
    groups: Any = None,
) -> RetrievalResult:
    """Recall@k, median and mean rank for image→text and text→image retrieval.

    ``image_features`` ``[N, D]``, ``text_features`` ``[M, D]``; ``text_image_index[j]`` is the image caption ``j``
    describes (an image may have several captions, or none). ``groups`` (one key per image: its case, patient or
    study) makes the recall intervals resample whole groups. See the module docstring for ranks and ties.
    """
    images, texts = _pair("image_features", image_features, "text_features", text_features)
    n_images, n_texts = images.shape[0], texts.shape[0]
    owner = np.asarray(text_image_index)
    if owner.shape != (n_texts,) or not np.issubdtype(owner.dtype, np.integer):
        raise InvalidInputError(f"text_image_index: expected {n_texts} integer image indices, got shape {owner.shape}")
    if owner.min() < 0 or owner.max() >= n_images:
        raise InvalidInputError(f"text_image_index: image indices must lie in [0, {n_images - 1}]")
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise InvalidInputError(f"ks: expected positive integers, got {list(ks)}")
    if ties not in ("optimistic", "pessimistic"):
        raise InvalidInputError(f"ties: expected 'optimistic' or 'pessimistic', got {ties!r}")
    ks = sorted({int(k) for k in ks})
    resampled = item_groups(groups, n_images)

    text_ids = torch.arange(n_texts, device=images.device)
    image_ids = torch.as_tensor(owner, dtype=torch.int64, device=images.device)
    pessimistic = ties == "pessimistic"
    i2t = _ranks(images, texts, image_ids, text_ids, pessimistic, _chunk_rows(chunk_size, n_texts))
    t2i = _ranks(texts, images, text_ids, image_ids, pessimistic, _chunk_rows(chunk_size, n_images))

    # Per image: image→text hits (and whether it is a query), text→image hits summed over its captions (and count).
    k_arr = np.asarray(ks)
    i2t_hits = ((i2t[:, None] > 0) & (i2t[:, None] <= k_arr)).astype(float)
    t2i_hits = np.zeros((n_images, len(ks)))
    np.add.at(t2i_hits, owner, (t2i[:, None] <= k_arr).astype(float))
    per_image = np.column_stack([i2t_hits, (i2t > 0).astype(float), t2i_hits, np.bincount(owner, minlength=n_images)])

    def batch(counts: np.ndarray) -> np.ndarray:
        sums = counts @ per_image
        n = len(ks)
        return np.column_stack([sums[:, :n] / sums[:, n : n + 1], sums[:, n + 1 : 2 * n + 1] / sums[:, -1:]])

    with np.errstate(invalid="ignore", divide="ignore"):
        recall = bootstrap_estimates(batch, n_images, n=n_bootstrap, seed=seed, ci=ci, groups=resampled)
    notes = []
    uncaptioned = int((i2t == 0).sum())
    if uncaptioned:
        notes.append(f"{uncaptioned} image(s) without a caption: distractors only, not image→text queries")
    return RetrievalResult(
        n_images=n_images,
        n_texts=n_texts,
        image_to_text=_direction(i2t, recall[: len(ks)], ks),
        text_to_image=_direction(t2i, recall[len(ks) :], ks),
        ties=ties,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ci=ci,
        notes=notes,
        n_groups=None if resampled is None else resampled.n_groups,
    )


def retrieval_record(inputs: TaskInputs) -> TaskRecord:
    """Image↔caption retrieval over the test images and their captions."""
    texts, owner = inputs.captions()
    result = retrieval_metrics(
        inputs.features, inputs.text_features(texts), owner, RECALL_KS, n_bootstrap=inputs.n_bootstrap,
        groups=inputs.groups,
    )
    metrics: dict = {}
    ci: dict = {}
    for k in RECALL_KS:
        for direction in ("text_to_image", "image_to_text"):
            put_estimate(metrics, ci, retrieval_key(direction, k), getattr(result, direction).recall[k])
    for direction in ("text_to_image", "image_to_text"):
        metrics[retrieval_rank_key(direction)] = json_float(getattr(result, direction).median_rank)
    return TaskRecord(RETRIEVAL.benchmark_name, result.n_images, metrics, ci, result.to_dict())


RETRIEVAL = register_task(
    TaskSpec(
        name="retrieval",
        benchmark_name="zeroshot_retrieval",
        title="Image–text retrieval",
        needs=frozenset({"captions"}),
        build_record=retrieval_record,
        headline=(retrieval_key("text_to_image", 5), retrieval_key("image_to_text", 5)),
    )
)
