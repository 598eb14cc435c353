"""Fixtures for the index tests: a small mixed archive, a counter of what the encoder is given, and a brute-force
reference search."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from index_support import make_archive


@pytest.fixture()
def archive(tmp_path) -> Path:
    """A mixed archive: 8 PNGs, 4 DICOMs (CT chest x2, CT abdomen, MR head), one corrupt PNG."""
    return make_archive(tmp_path / "archive")


@pytest.fixture()
def encoded_paths(monkeypatch) -> list[str]:
    """The file names the encoder is given, in order, during the test (every call of ``encode_images``)."""
    import openmedclip.embed

    seen: list[str] = []
    real = openmedclip.embed.encode_images

    def counting(loaded, items, **options):
        seen.extend(str(item) for item in items)
        return real(loaded, items, **options)

    monkeypatch.setattr(openmedclip.embed, "encode_images", counting)
    return seen


@pytest.fixture()
def reference(tiny_model) -> Callable[..., list[tuple[str, float]]]:
    """``reference(archive, query, k, paths=None)``: the exact top ``k`` ``(relative path, cosine)`` by brute force
    over the tiny model's features of ``paths`` (default: every readable image of the archive; features are
    computed once per archive and test)."""
    from openmedclip.embed import encode_images
    from openmedclip.io import find_images

    features: dict[Path, dict[str, np.ndarray]] = {}

    def top(archive: Path, query: np.ndarray, k: int, paths: list[Path] | None = None) -> list[tuple[str, float]]:
        if archive not in features:
            encoded = encode_images(tiny_model, find_images([archive]), num_workers=0)
            features[archive] = {Path(item).relative_to(archive).as_posix(): row.numpy()
                                 for item, row in zip(encoded.items, encoded.features, strict=True)}
        known = features[archive]
        names = sorted(known) if paths is None else [p.relative_to(archive).as_posix() for p in paths]
        scores = {name: float(known[name] @ np.asarray(query, dtype=np.float32)) for name in names}
        return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))[:k]

    return top
