"""`MixedSource`: draw from several sources in fixed proportions, with a seeded order per epoch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openmedclip.data.base import DataSource, Sample
from openmedclip.errors import InvalidInputError


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` into integer counts proportional to `weights` (largest remainder; ties to the first)."""
    w = np.asarray(weights, dtype=np.float64)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(int)
    extra = np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]
    counts[extra] += 1
    return counts.tolist()


class MixedSource:
    """An epoch plan over several sources: `indices(epoch)` lists `(source_idx, item_idx)` pairs.

    Each source contributes `weight / sum(weights)` of `epoch_size` items (default: the total size, and weights
    default to the source sizes). Within a source items are drawn without replacement, starting a new
    permutation when it runs out; the pairs are then shuffled. Same seed and epoch give the same plan.
    """

    def __init__(
        self,
        sources: Sequence[DataSource],
        weights: Sequence[float] | None = None,
        *,
        epoch_size: int | None = None,
        seed: int = 0,
    ):
        self.sources = list(sources)
        self.weights = [float(len(s)) for s in self.sources] if weights is None else [float(w) for w in weights]
        if not self.sources or len(self.weights) != len(self.sources):
            raise InvalidInputError(
                f"need one weight per source: {len(self.sources)} sources, {len(self.weights)} weights"
            )
        if min(self.weights) < 0:
            raise InvalidInputError(f"weights must be >= 0 with a positive sum, got {self.weights}")
        empty = [s for s, w in zip(self.sources, self.weights, strict=True) if w > 0 and len(s) == 0]
        if weights is None and not any(self.weights):
            empty = self.sources
        if empty:
            raise InvalidInputError("; ".join(s.empty_reason() for s in empty))
        if sum(self.weights) <= 0:
            raise InvalidInputError(f"weights must be >= 0 with a positive sum, got {self.weights}")
        self.epoch_size = sum(len(s) for s in self.sources) if epoch_size is None else int(epoch_size)
        self.seed = seed

    def __len__(self) -> int:
        return self.epoch_size

    def counts(self) -> list[int]:
        """Items drawn from each source per epoch."""
        return apportion(self.epoch_size, self.weights)

    def indices(self, epoch: int = 0) -> list[tuple[int, int]]:
        """The epoch's `(source_idx, item_idx)` pairs in their (seeded) order."""
        rng = np.random.default_rng([self.seed, epoch])
        pairs = []
        for s, (source, count) in enumerate(zip(self.sources, self.counts(), strict=True)):
            rounds = -(-count // len(source)) if count else 0
            items = np.concatenate([rng.permutation(len(source)) for _ in range(rounds)] or [np.empty(0, int)])
            pairs += [(s, int(i)) for i in items[:count]]
        return [pairs[k] for k in rng.permutation(len(pairs))]

    def get(self, source_idx: int, item_idx: int) -> Sample:
        """The sample a pair of `indices` points to."""
        return self.sources[source_idx][item_idx]
