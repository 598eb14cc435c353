"""Expected calibration error (ECE) of the top-1 prediction.

Confidence is the maximum class probability, the prediction its ``argmax`` (first index on ties).
Confidences fall into ``n_bins`` equal-width bins over [0, 1], right-closed: bin ``k`` holds
``k/n_bins < conf <= (k+1)/n_bins`` (bin 0 also holds 0). Then
``ECE = sum_k (n_k / N) * |accuracy_k - mean confidence_k|``, which equals
``(1/N) * sum_k |sum_{i in k} (correct_i - conf_i)|`` -- the form used for fast resampling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from openmedclip.metrics._inputs import class_labels, probabilities

N_BINS = 15


def calibration_gaps(y_true: np.ndarray, probs: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Per-item ``correct - confidence`` placed in its bin's column: ``[N, n_bins]``, zero elsewhere."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    gaps = np.zeros((len(conf), n_bins))
    gaps[np.arange(len(conf)), bins] = correct - conf
    return gaps


def ece_from_gaps(counts: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """ECE ``[b]`` of each resample (item multiplicities ``counts`` ``[b, N]``)."""
    return np.abs(counts @ gaps).sum(axis=1) / counts.sum(axis=1)


def expected_calibration_error(y_true: Any, probs: Any, n_bins: int = N_BINS) -> float:
    """ECE of class probabilities ``probs`` ``[N, C]`` for integer labels ``y_true`` ``[N]``."""
    p = probabilities("probs", probs)
    y = class_labels("y_true", y_true, p.shape[1], len(p))
    return float(ece_from_gaps(np.ones((1, len(y))), calibration_gaps(y, p, n_bins))[0])
