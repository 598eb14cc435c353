"""The FAISS index as derived data: read the file of the store's current generation, or rebuild it from the
vectors in the store (after a build was interrupted, or when the file is missing) and write it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from openmedclip.errors import InvalidInputError
from openmedclip.index import vectors
from openmedclip.index.lock import build_lock
from openmedclip.index.store import Store


def from_store(store: Store, kind: str) -> Any:
    """A new FAISS index of ``kind`` ('auto', 'flat', 'ivf', 'hnsw') over every vector in ``store`` (call it inside
    ``store.snapshot()``, so that it sees one generation)."""
    dim = store.dim()
    if dim is None:
        raise InvalidInputError(f"{store.path}: the index has not been built yet (no model recorded)")
    ids = store.ids()
    count = len(ids)

    def sample(n: int) -> np.ndarray:
        return store.vectors(ids[np.linspace(0, count - 1, n).astype(np.int64)], dim)

    return vectors.build(vectors.resolve_kind(kind, count), dim, count, store.iter_vectors(dim), sample)


def current(store: Store, folder: Path) -> tuple[Any, int]:
    """``(faiss index, generation)`` for the store's current generation: read from its file, else rebuilt.

    A rebuilt index is written when no build is running and the store has not moved on meanwhile; otherwise
    (and in a folder that cannot be written) it stays in memory only.
    """
    with store.snapshot():
        generation, tag = store.generation, store.version_tag()
        index = vectors.read(folder, tag)
        if index is not None:
            return index, generation
        index = from_store(store, store.meta().get("kind", "auto"))
    try:
        with build_lock(folder):
            if store.version_tag() == tag:
                vectors.write(index, folder, tag)
    except (InvalidInputError, OSError):  # a build is running, or the folder is read-only
        pass
    return index, generation
