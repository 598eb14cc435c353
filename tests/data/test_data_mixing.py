"""MixedSource: proportions, determinism, coverage without replacement."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from openmedclip.data import MedMNIST, MixedSource
from openmedclip.data.mixing import apportion
from openmedclip.errors import InvalidInputError


def source(tmp_path: Path, name: str, n: int) -> MedMNIST:
    path = tmp_path / f"{name}.npz"
    np.savez(path, train_images=np.zeros((n, 28, 28), np.uint8), train_labels=np.zeros((n, 1), np.uint8))
    return MedMNIST(path)


def test_apportion() -> None:
    assert apportion(10, [3, 1]) == [8, 2]
    assert apportion(7, [1, 1, 1]) == [3, 2, 2]
    assert sum(apportion(1001, [0.2, 0.5, 0.3])) == 1001


def test_proportions_and_determinism(tmp_path: Path) -> None:
    small, large = source(tmp_path, "breastmnist", 5), source(tmp_path, "pneumoniamnist", 50)
    mix = MixedSource([small, large], [1, 1], epoch_size=40, seed=3)
    plan = mix.indices(0)
    assert len(plan) == 40 and Counter(s for s, _ in plan) == {0: 20, 1: 20}
    small_items = Counter(i for s, i in plan if s == 0)
    assert set(small_items) == set(range(5)) and set(small_items.values()) == {4}
    assert len({i for s, i in plan if s == 1}) == 20
    assert plan == MixedSource([small, large], [1, 1], epoch_size=40, seed=3).indices(0)
    assert plan != mix.indices(1)
    assert mix.get(*plan[0]).key.startswith(("breastmnist", "pneumoniamnist"))


def test_defaults_and_errors(tmp_path: Path) -> None:
    a, b = source(tmp_path, "breastmnist", 3), source(tmp_path, "pneumoniamnist", 6)
    plan = MixedSource([a, b]).indices()
    assert sorted(plan) == [(0, i) for i in range(3)] + [(1, i) for i in range(6)]
    assert Counter(s for s, _ in MixedSource([a, b], [0, 1], epoch_size=4).indices()) == {1: 4}
    with pytest.raises(InvalidInputError):
        MixedSource([a, b], [1])
    with pytest.raises(InvalidInputError):
        MixedSource([a, b], [0, 0])
