"""Synthetic predictions for the metric tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def make_multiclass() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """``(y [N], probs [N, C])``; ``signal`` raises the true class's logit (0 = random classifier)."""

    def make(n: int, n_classes: int, signal: float = 1.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        y = rng.integers(0, n_classes, n)
        logits = rng.normal(size=(n, n_classes))
        logits[np.arange(n), y] += signal
        return y, _softmax(logits)

    return make


@pytest.fixture
def make_multilabel() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """``(y [N, L] 0/1, scores [N, L])`` with positives scoring ``signal`` higher on average."""

    def make(n: int, n_labels: int, signal: float = 1.0, rate: float = 0.3, seed: int = 0):
        rng = np.random.default_rng(seed)
        y = (rng.random((n, n_labels)) < rate).astype(int)
        return y, rng.normal(size=(n, n_labels)) + signal * y

    return make
