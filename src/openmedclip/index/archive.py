"""Searching an index: :func:`open_index` gives an :class:`ArchiveIndex`, which finds the files nearest to query
vectors, a text or an image, optionally among the files whose metadata match a filter."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.index import derived
from openmedclip.index import vectors as vector_index
from openmedclip.index.identity import ModelIdentity
from openmedclip.index.records import FileRecord
from openmedclip.index.store import Store, check_where

if TYPE_CHECKING:
    import torch

    from openmedclip.embed import ImageItem
    from openmedclip.models.loaded import LoadedModel

_NORM_TOLERANCE = 1e-2
_EXACT_CHUNK = 65536
"""Vectors scored at once by a filtered search."""


@dataclass(frozen=True)
class SearchHit:
    """One result: 1-based ``rank``, cosine ``score``, ``path`` relative to the archive root, and ``metadata``
    (``sha256``, ``size``, ``mtime`` in seconds, and the header fields: ``format``, ``modality``, ``body_part``,
    ``study_uid``, ``series_uid``, ``rows``, ``columns``)."""

    rank: int
    score: float
    path: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "score": self.score, "path": self.path, "metadata": dict(self.metadata)}


def _metadata(record: FileRecord) -> dict[str, Any]:
    return {"sha256": record.sha256, "size": record.size, "mtime": record.mtime_ns / 1e9, **record.header()}


class ArchiveIndex:
    """An index opened for search: the FAISS vectors of one generation of the store, and the store's metadata.

    It is a snapshot: builds that finish after it was opened show once it is opened again. Searches may run from
    several threads at once.
    """

    def __init__(self, folder: Path, store: Store, faiss_index: Any, generation: int):
        self.folder = folder
        self._store = store
        self._faiss = faiss_index
        self._ids = vector_index.ids_of(faiss_index)
        self._lock = threading.Lock()
        self.generation = generation
        meta = store.meta()
        model = store.model()
        if model is None:
            raise InvalidInputError(f"{folder}: the index has not been built yet (no model recorded)")
        self.identity: ModelIdentity = model
        self.model = model.reference
        """The model the index was built with, as ``load_model`` takes it (registry name or absolute path)."""
        self.count = int(faiss_index.ntotal)
        """Files in the index."""
        self.dim = int(faiss_index.d)
        """Size of the vectors."""
        self.kind = vector_index.kind_of(faiss_index)
        """The FAISS kind in use: 'flat', 'ivf' or 'hnsw'."""
        self.archive = Path(meta.get("archive", ""))
        """The archive folder of the last build (hit paths are relative to it)."""

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> ArchiveIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- search ------------------------------------------------------------------------------------------------

    def search(
        self, vectors: torch.Tensor | np.ndarray, k: int = 10, where: Mapping[str, str] | None = None
    ) -> list[SearchHit] | list[list[SearchHit]]:
        """The ``k`` files nearest to the query vector(s), best first.

        ``vectors``: one L2-normalised query ``[D]`` -> a list of hits; ``[Q, D]`` -> one list per query.
        ``where`` keeps only files whose metadata equal each given value (keys: ``FILTER_KEYS``, ANDed); the
        hits are then the exact top ``k`` among those files, whatever the index kind. Without ``where``, 'flat'
        is exact and 'ivf' / 'hnsw' approximate. Fewer than ``k`` hits come back when fewer files match.
        """
        hits = self.search_many(vectors, k, where)
        one = (vectors.ndim if hasattr(vectors, "ndim") else np.ndim(vectors)) == 1
        return hits[0] if one else hits

    def search_many(
        self, queries: torch.Tensor | np.ndarray, k: int = 10, where: Mapping[str, str] | None = None
    ) -> list[list[SearchHit]]:
        """:meth:`search` for ``[Q, D]`` queries: one list of hits per query."""
        matrix = self._queries(queries)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidInputError(f"k must be a positive whole number, got {k!r}")
        chosen = check_where(where)
        if chosen:
            with self._lock:
                matching = np.intersect1d(self._store.ids_where(chosen), self._ids, assume_unique=True)
            scores, ids = self._exact(matrix, matching, int(k))
        elif self.count:
            scores, ids = vector_index.search(self._faiss, matrix, int(k))
        else:
            scores, ids = np.empty((len(matrix), 0), np.float32), np.empty((len(matrix), 0), np.int64)
        return self._hits(scores, ids)

    def search_text(
        self, model: LoadedModel, text: str, k: int = 10, where: Mapping[str, str] | None = None
    ) -> list[SearchHit]:
        """The ``k`` files nearest to ``text`` encoded by ``model`` (the index's model)."""
        from openmedclip.embed import encode_texts

        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("the search text is empty")
        self.identity.check_query(ModelIdentity.of(model), self.folder)
        return self.search_many(encode_texts(model, [text]), k, where)[0]

    def search_image(
        self, model: LoadedModel, image: ImageItem, k: int = 10, where: Mapping[str, str] | None = None
    ) -> list[SearchHit]:
        """The ``k`` files nearest to ``image`` (a path, ``MedicalImage`` or PIL image) encoded by ``model``."""
        from openmedclip.embed import describe_item, encode_images

        self.identity.check_query(ModelIdentity.of(model), self.folder)
        encoded = encode_images(model, [image], num_workers=0)
        if encoded.errors:
            raise ImageReadError(describe_item(image), encoded.errors[0].message)
        return self.search_many(encoded.features, k, where)[0]

    # -- helpers -----------------------------------------------------------------------------------------------

    def _queries(self, values: Any) -> np.ndarray:
        """``values`` as checked ``[Q, D]`` float32 queries."""
        if hasattr(values, "detach"):
            values = values.detach().float().cpu().numpy()
        matrix = np.asarray(values, dtype=np.float32)
        if matrix.ndim == 1:
            matrix = matrix[None, :]
        if matrix.ndim != 2 or matrix.shape[0] == 0:
            raise InvalidInputError(f"query vectors must have shape [D] or [Q, D], got {tuple(np.shape(values))}")
        if matrix.shape[1] != self.dim:
            raise InvalidInputError(f"{self.folder}: query vectors have {matrix.shape[1]} dimensions, the index "
                                    f"holds {self.dim}-dimensional vectors (model '{self.model}')")
        norms = np.linalg.norm(matrix, axis=1)
        if not np.all(np.isfinite(norms)) or np.any(np.abs(norms - 1) > _NORM_TOLERANCE):
            raise InvalidInputError("query vectors must be finite and L2-normalised (norms "
                                    f"{np.round(norms[:4], 4).tolist()}...)")
        return np.ascontiguousarray(matrix)

    def _exact(self, queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` among ``ids``: their stored vectors scored a chunk at a time."""
        k = min(k, len(ids))
        best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        best_ids = np.empty((len(queries), 0), dtype=np.int64)
        for start in range(0, len(ids), _EXACT_CHUNK):
            chunk = ids[start : start + _EXACT_CHUNK]
            scores = queries @ vector_index.reconstruct(self._faiss, chunk).T
            best_scores = np.concatenate([best_scores, scores], axis=1)
            best_ids = np.concatenate([best_ids, np.broadcast_to(chunk, scores.shape)], axis=1)
            if best_scores.shape[1] > k:
                keep = np.argpartition(-best_scores, k - 1, axis=1)[:, :k]
                best_scores = np.take_along_axis(best_scores, keep, axis=1)
                best_ids = np.take_along_axis(best_ids, keep, axis=1)
        order = np.lexsort((best_ids, -best_scores), axis=1)
        return np.take_along_axis(best_scores, order, axis=1), np.take_along_axis(best_ids, order, axis=1)

    def _hits(self, scores: np.ndarray, ids: np.ndarray) -> list[list[SearchHit]]:
        wanted = sorted({int(i) for i in ids.ravel() if i >= 0})
        with self._lock:
            records = self._store.records(wanted)
        results = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            found = [(float(score), records[int(i)]) for score, i in zip(row_scores, row_ids, strict=True)
                     if int(i) in records]
            results.append([SearchHit(rank, score, record.path, _metadata(record))
                            for rank, (score, record) in enumerate(found, start=1)])
        return results


def open_index(folder: str | Path) -> ArchiveIndex:
    """Open the index in ``folder`` for search.

    The FAISS file of the store's current generation is read; when it is missing or stale (a build was
    interrupted) it is rebuilt from the vectors in the store, and written back where the folder allows.
    Raises ``InvalidInputError`` naming the folder when it holds no index.
    """
    folder = Path(folder)
    store = Store.open(folder)
    try:
        faiss_index, generation = derived.current(store, folder)
        return ArchiveIndex(folder, store, faiss_index, generation)
    except BaseException:
        store.close()
        raise
