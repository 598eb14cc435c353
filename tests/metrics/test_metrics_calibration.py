"""Expected calibration error against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from openmedclip.errors import InvalidInputError
from openmedclip.metrics import expected_calibration_error, multiclass_metrics


def test_hand_computed_example():
    probs = np.array(
        [
            [0.90, 0.05, 0.05],  # conf 0.90 bin 13, correct
            [0.05, 0.90, 0.05],  # conf 0.90 bin 13, wrong
            [0.10, 0.70, 0.20],  # conf 0.70 bin 10, correct
            [0.70, 0.10, 0.20],  # conf 0.70 bin 10, correct
            [0.40, 0.35, 0.25],  # conf 0.40 bin 5, wrong
        ]
    )
    y = np.array([0, 0, 1, 0, 1])
    # (n_bin / N) * |accuracy - mean confidence| per bin
    expected = 2 / 5 * abs(0.5 - 0.9) + 2 / 5 * abs(1.0 - 0.7) + 1 / 5 * abs(0.0 - 0.4)
    assert expected_calibration_error(y, probs) == pytest.approx(expected, abs=1e-12)
    assert multiclass_metrics(y, probs, n_bootstrap=0).ece.value == pytest.approx(expected, abs=1e-12)


def test_matches_binned_loop(make_multiclass):
    y, p = make_multiclass(500, 4, seed=7)
    conf, correct = p.max(axis=1), p.argmax(axis=1) == y
    edges = np.linspace(0, 1, 16)
    expected = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            expected += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    assert expected_calibration_error(y, p) == pytest.approx(expected, abs=1e-12)


def test_bins_are_right_closed():
    # confidence 0.6 sits on the edge 9/15: it belongs to bin (8/15, 9/15], with 0.55, not with 0.62
    probs = np.array([[0.6, 0.4], [0.55, 0.45], [0.62, 0.38]])
    y = np.array([0, 1, 0])
    in_bin_8 = 2 / 3 * abs(0.5 - (0.6 + 0.55) / 2)
    in_bin_9 = 1 / 3 * abs(1.0 - 0.62)
    assert expected_calibration_error(y, probs) == pytest.approx(in_bin_8 + in_bin_9, abs=1e-12)


def test_perfectly_calibrated_bin_is_zero():
    probs = np.tile([0.8, 0.2], (10, 1))
    y = np.r_[np.zeros(8, int), np.ones(2, int)]
    assert expected_calibration_error(y, probs) == pytest.approx(0.0, abs=1e-12)


def test_rejects_logits():
    with pytest.raises(InvalidInputError):
        expected_calibration_error([0, 1], [[3.0, -1.0], [0.2, 0.1]])
