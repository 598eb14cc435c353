"""The FAISS side of an index: which kind, how each is configured and built, searched, written and read.

Every kind scores by inner product, which is the cosine for L2-normalised vectors, and is wrapped in
``IndexIDMap2`` so that FAISS ids are the store's item ids (and vectors can be read back by id):

- ``flat``: ``IndexFlatIP``, exact.
- ``ivf``: ``IndexIVFFlat`` with ``sqrt(n)`` lists (at least :data:`IVF_MIN_POINTS_PER_LIST` training vectors each),
  trained on up to :data:`IVF_TRAIN_PER_LIST` vectors per list spread over the store, searching ``lists / 16`` of
  them (:data:`IVF_PROBE_SHARE`).
- ``hnsw``: ``IndexHNSWFlat`` with :data:`HNSW_M` links per node, ``efConstruction`` :data:`HNSW_EF_CONSTRUCTION`
  and ``efSearch`` :data:`HNSW_EF_SEARCH` (at least ``k``).
- ``auto``: ``flat`` below :data:`FLAT_LIMIT` vectors, else ``ivf`` (it builds in about a minute per million
  512-d vectors on two cores, where ``hnsw`` takes several).

The FAISS file is derived data: ``vectors-<store id>-<generation>.faiss`` holds the store's vectors as of that
generation (:meth:`~openmedclip.index.store.Store.version_tag`) and is written atomically.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from openmedclip.atomic import write_atomic
from openmedclip.errors import InvalidInputError

KINDS: tuple[str, ...] = ("auto", "flat", "ivf", "hnsw")
FLAT_LIMIT = 100_000
IVF_MIN_POINTS_PER_LIST = 39
IVF_TRAIN_PER_LIST = 64
IVF_ITERATIONS = 10
IVF_PROBE_SHARE = 1 / 16
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 128

_FILE = re.compile(r"vectors-[0-9a-f]+-\d+\.faiss")


def check_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`KINDS`, else raise ``InvalidInputError`` listing them."""
    if kind not in KINDS:
        raise InvalidInputError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    return kind


def resolve_kind(kind: str, count: int) -> str:
    """The FAISS kind for ``count`` vectors: ``auto`` decided (see the module), an empty index always flat."""
    check_kind(kind)
    if count == 0:
        return "flat"
    if kind == "auto":
        return "flat" if count < FLAT_LIMIT else "ivf"
    return kind


def ivf_lists(count: int) -> int:
    """Inverted lists for ``count`` vectors: ``sqrt(count)``, with enough training vectors for each."""
    return max(1, min(round(math.sqrt(count)), count // IVF_MIN_POINTS_PER_LIST))


def new_index(kind: str, dim: int, count: int) -> Any:
    """An empty FAISS index of the resolved ``kind`` ('flat', 'ivf', 'hnsw') sized for ``count`` vectors."""
    inner: Any
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        lists = ivf_lists(count)
        inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        inner.cp.niter = IVF_ITERATIONS
        inner.cp.min_points_per_centroid = 1
        inner.nprobe = max(1, round(lists * IVF_PROBE_SHARE))
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        raise InvalidInputError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS[1:])}")
    return faiss.IndexIDMap2(inner)


def build(kind: str, dim: int, count: int, batches: Iterable[tuple[np.ndarray, np.ndarray]],
          sample: Callable[[int], np.ndarray]) -> Any:
    """A FAISS index of the resolved ``kind`` over ``count`` vectors given as ``(ids, vectors)`` batches.

    ``sample(n)`` returns ``n`` of the vectors spread over all of them (IVF trains on it).
    """
    index = new_index(kind, dim, count)
    inner: Any = faiss.downcast_index(index.index)
    if kind == "ivf":
        inner.train(np.ascontiguousarray(sample(min(count, inner.nlist * IVF_TRAIN_PER_LIST)), dtype=np.float32))
    for ids, vectors in batches:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, np.int64))
    if kind == "ivf":
        inner.make_direct_map()
    return index


def kind_of(index: Any) -> str:
    """'flat', 'ivf' or 'hnsw' for an index :func:`new_index` made."""
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    return "flat"


def search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, ids)``, each ``[Q, min(k, ntotal)]``, best first; id -1 where an approximate kind found fewer."""
    k = min(k, index.ntotal)
    inner = faiss.downcast_index(index.index)
    params = None
    if isinstance(inner, faiss.IndexHNSW) and inner.hnsw.efSearch < k:
        params = faiss.SearchParametersHNSW(efSearch=k)  # type: ignore[attr-defined]
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
    return scores, ids


def reconstruct(index: Any, ids: np.ndarray) -> np.ndarray:
    """The stored vectors of ``ids`` (all present in ``index``): ``[len(ids), dim]`` float32."""
    if len(ids) == 0:
        return np.empty((0, index.d), dtype=np.float32)
    return index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64))


def ids_of(index: Any) -> np.ndarray:
    """Every id in ``index``, ascending (int64)."""
    return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))


def file_for(folder: Path, tag: str) -> Path:
    """The FAISS file of the store content named ``tag``."""
    return Path(folder) / f"vectors-{tag}.faiss"


def write(index: Any, folder: Path, tag: str) -> Path:
    """Write ``index`` atomically as the file of ``tag`` and delete the files of other store versions."""
    path = file_for(folder, tag)
    write_atomic(path, lambda handle: faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write)))  # type: ignore[attr-defined]
    for other in Path(folder).iterdir():
        if _FILE.fullmatch(other.name) and other != path:
            other.unlink(missing_ok=True)
    return path


def read(folder: Path, tag: str) -> Any | None:
    """The FAISS index of the store content named ``tag`` from ``folder``, or None when that file is absent."""
    path = file_for(folder, tag)
    if not path.is_file():
        return None
    try:
        return faiss.read_index(str(path))
    except RuntimeError:  # a file left unreadable is derived data: rebuilt from the store
        return None
