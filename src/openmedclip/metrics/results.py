"""Result building blocks shared by the metric modules: a point estimate with its bootstrap interval."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def json_float(x: float) -> float | None:
    """A plain float for JSON, with NaN/inf mapped to ``None``."""
    x = float(x)
    return x if math.isfinite(x) else None


def json_floats(xs: Any) -> list:
    """Nested lists of :func:`json_float` values from an array-like of any rank."""
    arr = np.asarray(xs, dtype=float)
    if arr.ndim == 0:
        return json_float(arr)  # type: ignore[return-value]
    return [json_floats(row) for row in arr]


@dataclass(frozen=True)
class Estimate:
    """A metric value on all items plus its bootstrap percentile interval.

    ``low``/``high`` are NaN when no bootstrap was run or no resample was usable;
    ``n_dropped`` counts resamples where the metric was undefined (e.g. a class absent for AUROC).
    """

    value: float
    low: float = math.nan
    high: float = math.nan
    n_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": json_float(self.value),
            "low": json_float(self.low),
            "high": json_float(self.high),
            "n_dropped": int(self.n_dropped),
        }
