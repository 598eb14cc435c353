"""Input checks shared by the metric functions; each failure raises InvalidInputError naming the argument."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openmedclip.errors import InvalidInputError

PROB_SUM_TOLERANCE = 1e-3


def _finite_float(name: str, x: object, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name}: not numeric ({exc})") from None
    if arr.ndim != ndim:
        raise InvalidInputError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name}: no items")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{name}: contains NaN or infinite values")
    return arr


def class_labels(name: str, y: object, n_classes: int, n_items: int) -> np.ndarray:
    """``n_items`` integer class indices in ``[0, n_classes)`` as a 1-D int64 array."""
    arr = _finite_float(name, y, 1)
    if len(arr) != n_items:
        raise InvalidInputError(f"{name}: expected {n_items} labels (one per row of scores), got {len(arr)}")
    if not np.array_equal(arr, np.round(arr)):
        raise InvalidInputError(f"{name}: class labels must be integers")
    if arr.min() < 0 or arr.max() >= n_classes:
        raise InvalidInputError(
            f"{name}: labels must lie in [0, {n_classes - 1}], got range [{int(arr.min())}, {int(arr.max())}]"
        )
    return arr.astype(np.int64)


def probabilities(name: str, p: object) -> np.ndarray:
    """A ``[N, C]`` matrix of class probabilities (C >= 2, entries in [0, 1], rows summing to 1)."""
    arr = _finite_float(name, p, 2)
    if arr.shape[1] < 2:
        raise InvalidInputError(f"{name}: need at least 2 class columns, got shape {arr.shape}")
    if arr.min() < 0 or arr.max() > 1:
        raise InvalidInputError(f"{name}: probabilities must lie in [0, 1] (apply softmax to logits first)")
    worst = float(np.abs(arr.sum(axis=1) - 1).max())
    if worst > PROB_SUM_TOLERANCE:
        raise InvalidInputError(f"{name}: rows must sum to 1 (off by up to {worst:.3g}; apply softmax to logits first)")
    return arr


def binary_matrix(name: str, y: object) -> np.ndarray:
    """A ``[N, L]`` 0/1 label matrix as float (a 1-D input is one label)."""
    arr = np.asarray(y)
    arr = _finite_float(name, arr[:, None] if arr.ndim == 1 else arr, 2)
    if not np.isin(arr, (0.0, 1.0)).all():
        raise InvalidInputError(f"{name}: labels must be 0 or 1")
    return arr


def score_matrix(name: str, s: object, shape: tuple[int, int]) -> np.ndarray:
    """A finite ``[N, L]`` score matrix with the given shape (a 1-D input is one label)."""
    arr = np.asarray(s)
    arr = _finite_float(name, arr[:, None] if arr.ndim == 1 else arr, 2)
    if arr.shape != shape:
        raise InvalidInputError(f"{name}: expected shape {shape}, got {arr.shape}")
    return arr


def names(name: str, given: Sequence[str] | None, count: int) -> list[str]:
    """The given names (one per column) or ``'0'..'count-1'``."""
    if given is None:
        return [str(i) for i in range(count)]
    out = [str(n) for n in given]
    if len(out) != count:
        raise InvalidInputError(f"{name}: expected {count} names, got {len(out)}")
    if len(set(out)) != count:
        raise InvalidInputError(f"{name}: names must be unique")
    return out


def bootstrap_args(n: int, ci: float) -> None:
    """Resample count >= 0 and interval level in (0, 1)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidInputError(f"n_bootstrap: expected a non-negative integer, got {n!r}")
    if not 0 < ci < 1:
        raise InvalidInputError(f"ci: expected a level in (0, 1), got {ci!r}")


def per_label(name: str, values: object, n_labels: int) -> np.ndarray:
    """A scalar or ``[n_labels]`` array as a float ``[n_labels]`` array (NaN allowed, infinities not)."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name}: not numeric ({exc})") from None
    if arr.ndim > 1 or (arr.ndim == 1 and arr.size != n_labels):
        raise InvalidInputError(f"{name}: expected a scalar or {n_labels} values, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise InvalidInputError(f"{name}: contains infinite values")
    return np.broadcast_to(arr, (n_labels,)).copy()
