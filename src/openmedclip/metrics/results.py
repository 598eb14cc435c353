"""Result building blocks shared by the metric modules: a point estimate with its bootstrap interval."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, SupportsFloat, TypeAlias

import numpy as np

JsonFloats: TypeAlias = "float | list[JsonFloats] | None"
"""A :func:`json_float` value, or nested lists of them."""


def json_float(x: SupportsFloat) -> float | None:
    """A plain float for JSON, with NaN/inf mapped to ``None``."""
    x = float(x)
    return x if math.isfinite(x) else None


def json_floats(xs: Any) -> JsonFloats:
    """Nested lists of :func:`json_float` values from an array-like of any rank (the value itself for rank 0)."""
    arr = np.asarray(xs, dtype=float)
    if arr.ndim == 0:
        return json_float(arr)
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
