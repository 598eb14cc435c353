"""Seeded non-parametric bootstrap with percentile intervals.

Every path draws the same resamples for a given ``(n_items, n, seed)``: row ``r`` of
``numpy.random.default_rng(seed).integers(0, n_items, size=(n, n_items))``. The generic
:func:`bootstrap_ci` calls a metric on each resample; the fast path :func:`bootstrap_estimates`
hands a vectorised metric the resamples as item multiplicities (``counts[r, i]`` = times item
``i`` was drawn), a chunk of resamples at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from openmedclip.errors import InvalidInputError
from openmedclip.metrics._inputs import bootstrap_args
from openmedclip.metrics.defaults import CI_LEVEL, N_BOOTSTRAP
from openmedclip.metrics.results import Estimate

_CHUNK_ELEMENTS = 1_000_000
"""Resamples are processed in chunks of about this many (resample, item) cells to bound memory."""


def iter_resample_indices(n_items: int, n: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks ``[b, n_items]`` of resample indices; concatenated they are the ``[n, n_items]`` draw."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // n_items)
    for start in range(0, n, rows):
        yield rng.integers(0, n_items, size=(min(rows, n - start), n_items))


def counts_from_indices(idx: np.ndarray) -> np.ndarray:
    """Item multiplicities ``[b, n_items]`` (float) of index rows ``[b, n_items]``.

    Stored items-first (a transposed view), which suits the per-item gathers of the rank metrics.
    """
    b, n_items = idx.shape
    flat = (idx * b + np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n_items).astype(float).reshape(n_items, b).T


def percentile_interval(values: np.ndarray, ci: float) -> tuple[float, float, int]:
    """``(low, high, n_valid)``: the central ``ci`` percentile interval of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, 0
    tail = 100 * (1 - ci) / 2
    low, high = np.percentile(v, [tail, 100 - tail])
    return float(low), float(high), int(v.size)


def bootstrap_ci(
    metric_fn: Callable[..., float],
    arrays: Sequence[np.ndarray],
    n: int = N_BOOTSTRAP,
    seed: int = 0,
    ci: float = CI_LEVEL,
) -> tuple[float, float, int]:
    """Percentile interval of ``metric_fn(*(a[idx] for a in arrays))`` over ``n`` resamples.

    Returns ``(low, high, n_valid)``. A resample is dropped (not counted in ``n_valid``) when the
    metric returns NaN/inf or raises ``ValueError`` (scikit-learn's way of saying "undefined").
    One Python call per resample: use it for custom metrics; the built-in metrics use the fast path.
    """
    bootstrap_args(n, ci)
    arrays = [np.asarray(a) for a in arrays]
    if not arrays or arrays[0].ndim == 0 or len(arrays[0]) == 0:
        raise InvalidInputError("arrays: need at least one non-empty array")
    n_items = len(arrays[0])
    if any(a.ndim == 0 or len(a) != n_items for a in arrays):
        raise InvalidInputError(f"arrays: all must have the same length ({[a.shape for a in arrays]})")
    values = np.full(n, math.nan)
    r = 0
    for chunk in iter_resample_indices(n_items, n, seed):
        for idx in chunk:
            try:
                values[r] = float(metric_fn(*(a[idx] for a in arrays)))
            except ValueError:
                pass
            r += 1
    return percentile_interval(values, ci)


def bootstrap_estimates(
    batch_fn: Callable[[np.ndarray], np.ndarray], n_items: int, *, n: int, seed: int, ci: float
) -> list[Estimate]:
    """Fast path: one :class:`Estimate` per metric computed by a vectorised ``batch_fn``.

    ``batch_fn(counts)`` maps item multiplicities ``[b, n_items]`` to metric values ``[b, m]``
    (NaN where undefined). The point estimates are ``batch_fn`` on all-ones counts, so point
    values and resamples share one implementation.
    """
    bootstrap_args(n, ci)
    points = np.asarray(batch_fn(np.ones((1, n_items))), dtype=float)[0]
    if n == 0:
        return [Estimate(float(v)) for v in points]
    values = np.concatenate(
        [np.asarray(batch_fn(counts_from_indices(idx)), dtype=float) for idx in iter_resample_indices(n_items, n, seed)]
    )
    out = []
    for value, column in zip(points, values.T):
        low, high, n_valid = percentile_interval(column, ci)
        out.append(Estimate(float(value), low, high, n - n_valid))
    return out
