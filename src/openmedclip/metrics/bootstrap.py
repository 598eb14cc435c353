"""Seeded non-parametric bootstrap with percentile intervals, over items or over groups of items.

Every path draws the same resamples for a given ``(n_items, n, seed)``: row ``r`` of
``numpy.random.default_rng(seed).integers(0, n_items, size=(n, n_items))``. The generic
:func:`bootstrap_ci` calls a metric on each resample; the fast path :func:`bootstrap_estimates`
hands a vectorised metric the resamples as item multiplicities (``counts[r, i]`` = times item
``i`` was drawn), a chunk of resamples at a time.

With :class:`Groups` (one key per item: the case, patient or study it comes from) the resample is a
cluster bootstrap: row ``r`` of ``default_rng(seed).integers(0, n_groups, size=(n, n_groups))`` draws
whole groups with replacement, and each draw adds 1 to the multiplicity of every member of the group.
Groups are numbered in order of first appearance, so with one item per group the resamples, and
every interval, are exactly the item-level ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from openmedclip.errors import InvalidInputError
from openmedclip.metrics._inputs import bootstrap_args
from openmedclip.metrics.defaults import CI_LEVEL, N_BOOTSTRAP
from openmedclip.metrics.results import Estimate

_CHUNK_ELEMENTS = 1_000_000
"""Resamples are processed in chunks of about this many (resample, item) cells to bound memory."""


@dataclass(frozen=True)
class Groups:
    """The group of every item, for a cluster bootstrap (build it with :func:`item_groups`)."""

    codes: np.ndarray
    """``[n_items]`` int64: each item's group, groups numbered ``0..n_groups-1`` in order of first appearance."""
    n_groups: int

    def members(self) -> list[np.ndarray]:
        """The items of each group, in item order."""
        order = np.argsort(self.codes, kind="stable")
        return np.split(order, np.cumsum(np.bincount(self.codes, minlength=self.n_groups))[:-1])


def _missing(key: Any) -> bool:
    return key is None or (isinstance(key, (float, np.floating)) and math.isnan(key))


def item_groups(keys: Any, n_items: int) -> Groups | None:
    """The :class:`Groups` of ``n_items`` items from one hashable key per item; None for no keys (item level).

    Raises ``InvalidInputError`` for a count other than ``n_items``, missing keys (None or NaN) or
    keys that cannot be compared (lists, arrays).
    """
    if keys is None:
        return None
    if isinstance(keys, Groups):
        if len(keys.codes) != n_items:
            raise InvalidInputError(f"groups: expected {n_items} group keys (one per item), got {len(keys.codes)}")
        return keys
    listed = np.asarray(keys, dtype=object)
    if listed.ndim != 1 or len(listed) != n_items:
        shape = listed.shape if listed.ndim != 1 else len(listed)
        raise InvalidInputError(f"groups: expected {n_items} group keys (one per item), got {shape}")
    missing = [i for i, key in enumerate(listed) if _missing(key)]
    if missing:
        raise InvalidInputError(f"groups: {len(missing)} missing key(s) (None or NaN), the first for item {missing[0]}")
    numbers: dict[Any, int] = {}
    try:
        codes = np.fromiter((numbers.setdefault(key, len(numbers)) for key in listed), np.int64, n_items)
    except TypeError as err:
        raise InvalidInputError(f"groups: keys must be hashable values such as strings or integers ({err})") from None
    return Groups(codes, len(numbers))


def iter_resample_indices(n_items: int, n: int, seed: int, *, row_cells: int | None = None) -> Iterator[np.ndarray]:
    """Chunks ``[b, n_items]`` of resample indices; concatenated they are the ``[n, n_items]`` draw.

    ``row_cells`` (default ``n_items``) is what one resample costs in memory downstream: chunks hold about
    ``_CHUNK_ELEMENTS`` of them. Chunking never changes the draw.
    """
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // max(n_items, row_cells or 0))
    for start in range(0, n, rows):
        yield rng.integers(0, n_items, size=(min(rows, n - start), n_items))


def counts_from_indices(idx: np.ndarray) -> np.ndarray:
    """Item multiplicities ``[b, n_items]`` (float) of index rows ``[b, n_items]``.

    Stored items-first (a transposed view), which suits the per-item gathers of the rank metrics.
    """
    b, n_items = idx.shape
    flat = (idx * b + np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n_items).astype(float).reshape(n_items, b).T


def iter_resample_counts(n_items: int, n: int, seed: int, groups: Groups | None = None) -> Iterator[np.ndarray]:
    """Chunks ``[b, n_items]`` of item multiplicities (items-first views); with ``groups``, each item counts
    how often its group was drawn."""
    if groups is None:
        for idx in iter_resample_indices(n_items, n, seed):
            yield counts_from_indices(idx)
        return
    for idx in iter_resample_indices(groups.n_groups, n, seed, row_cells=n_items):
        yield counts_from_indices(idx).T[groups.codes].T


def iter_resample_items(n_items: int, n: int, seed: int, groups: Groups | None = None) -> Iterator[np.ndarray]:
    """Item indices of each resample, one array at a time: the drawn items, or the members of each drawn group
    (in draw order, each group's members in item order)."""
    members = None if groups is None else groups.members()
    for chunk in iter_resample_indices(n_items if groups is None else groups.n_groups, n, seed):
        for idx in chunk:
            yield idx if members is None else np.concatenate([members[g] for g in idx])


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
    *,
    groups: Any = None,
) -> tuple[float, float, int]:
    """Percentile interval of ``metric_fn(*(a[idx] for a in arrays))`` over ``n`` resamples.

    Returns ``(low, high, n_valid)``. A resample is dropped (not counted in ``n_valid``) when the
    metric returns NaN/inf or raises ``ValueError`` (scikit-learn's way of saying "undefined").
    ``groups`` (one key per item, or :class:`Groups`) resamples whole groups instead of items.
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
    for r, idx in enumerate(iter_resample_items(n_items, n, seed, item_groups(groups, n_items))):
        try:
            values[r] = float(metric_fn(*(a[idx] for a in arrays)))
        except ValueError:
            pass
    return percentile_interval(values, ci)


def bootstrap_estimates(
    batch_fn: Callable[[np.ndarray], np.ndarray],
    n_items: int,
    *,
    n: int,
    seed: int,
    ci: float,
    groups: Groups | None = None,
) -> list[Estimate]:
    """Fast path: one :class:`Estimate` per metric computed by a vectorised ``batch_fn``.

    ``batch_fn(counts)`` maps item multiplicities ``[b, n_items]`` to metric values ``[b, m]``
    (NaN where undefined). The point estimates are ``batch_fn`` on all-ones counts, so point
    values and resamples share one implementation. ``groups`` makes the resamples whole groups.
    """
    bootstrap_args(n, ci)
    points = np.asarray(batch_fn(np.ones((1, n_items))), dtype=float)[0]
    if n == 0:
        return [Estimate(float(v)) for v in points]
    values = np.concatenate(
        [np.asarray(batch_fn(counts), dtype=float) for counts in iter_resample_counts(n_items, n, seed, groups)]
    )
    out = []
    for value, column in zip(points, values.T):
        low, high, n_valid = percentile_interval(column, ci)
        out.append(Estimate(float(value), low, high, n - n_valid))
    return out
