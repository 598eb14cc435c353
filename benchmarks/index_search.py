"""Index search: the FAISS kinds ``build_index`` uses (flat, IVF, HNSW) on random L2-normalised vectors.

For each kind: build time, memory (growth of the resident set while building, and the size of the written index),
single-query latency (p50, p99; one query at a time, as a service answers them) and recall@k against an exact
brute-force search in NumPy. The indexes are built and searched by :mod:`openmedclip.index.vectors`, the code
``build_index`` and ``ArchiveIndex.search`` run.

Run: ``uv run python benchmarks/index_search.py [--count 1000000] [--dim 512] [--queries 200] [--clustered]``
(``--tiny`` for a smoke run: 20,000 vectors, 50 queries).
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from common import cpu_line, markdown_table
from openmedclip.index import vectors

CHUNK = 100_000


def random_unit(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """``count`` random unit vectors (uniform on the sphere), float32."""
    values = rng.standard_normal((count, dim), dtype=np.float32)
    values /= np.linalg.norm(values, axis=1, keepdims=True)
    return values


def clustered_unit(rng: np.random.Generator, count: int, dim: int, clusters: int = 1000) -> np.ndarray:
    """``count`` unit vectors around ``clusters`` random centres (cosine about 0.7 to their centre), float32."""
    centres = random_unit(rng, clusters, dim)
    values = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, CHUNK):
        stop = min(count, start + CHUNK)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32) / np.sqrt(dim)
        values[start:stop] = centres[rng.integers(0, clusters, stop - start)] + noise
    values /= np.linalg.norm(values, axis=1, keepdims=True)
    return values


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids of the ``k`` best inner products per query, by brute force (``[Q, k]``)."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.empty((len(queries), 0), dtype=np.int64)
    for start in range(0, len(data), CHUNK):
        scores = queries @ data[start : start + CHUNK].T
        ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_ids = np.concatenate([best_ids, ids], axis=1)
        keep = np.argpartition(-best_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(best_scores, keep, axis=1)
        best_ids = np.take_along_axis(best_ids, keep, axis=1)
    return best_ids


def rss_bytes() -> int:
    """The resident set of this process."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def batches(data: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(data), CHUNK):
        chunk = data[start : start + CHUNK]
        yield np.arange(start, start + len(chunk), dtype=np.int64), chunk


def describe(index: object, kind: str) -> str:
    import faiss

    inner = faiss.downcast_index(index.index)  # type: ignore[attr-defined]
    if kind == "ivf":
        return f"IVFFlat, {inner.nlist} lists, nprobe {inner.nprobe}"
    if kind == "hnsw":
        return (f"HNSWFlat, M {vectors.HNSW_M}, efConstruction {inner.hnsw.efConstruction}, "
                f"efSearch {inner.hnsw.efSearch}")
    return "FlatIP (exact)"


def measure(kind: str, data: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int) -> list[str]:
    gc.collect()
    before = rss_bytes()
    start = time.perf_counter()
    index = vectors.build(kind, data.shape[1], len(data), batches(data),
                          lambda n: data[np.linspace(0, len(data) - 1, n).astype(np.int64)])
    build_seconds = time.perf_counter() - start
    growth = rss_bytes() - before
    with tempfile.TemporaryDirectory() as scratch:
        size = vectors.write(index, Path(scratch), "0-0").stat().st_size
    latencies, found = [], []
    for query in queries:
        start = time.perf_counter()
        _, ids = vectors.search(index, query[None, :], k)
        latencies.append(time.perf_counter() - start)
        found.append(ids[0])
    recall = np.mean([len(set(hit) & set(true)) / k for hit, true in zip(found, truth, strict=True)])
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    row = [kind, describe(index, kind), f"{build_seconds:.1f}", f"{growth / 2**20:.0f}", f"{size / 2**20:.0f}",
           f"{p50:.2f}", f"{p99:.2f}", f"{recall:.3f}"]
    del index
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kinds", default="flat,ivf,hnsw")
    parser.add_argument("--clustered", action="store_true", help="Vectors around 1,000 centres instead of uniform.")
    parser.add_argument("--tiny", action="store_true", help="Smoke run: 20,000 vectors, 50 queries.")
    args = parser.parse_args()
    count, n_queries = (20_000, 50) if args.tiny else (args.count, args.queries)

    make = clustered_unit if args.clustered else random_unit
    start = time.perf_counter()
    drawn = make(np.random.default_rng(0), count + n_queries, args.dim)  # queries: held-out draws, same clusters
    data, queries = drawn[:count], np.ascontiguousarray(drawn[count:])
    del drawn
    truth = exact_top_k(data, queries, args.k)
    print(f"{count:,} {'clustered' if args.clustered else 'random'} {args.dim}-d vectors, {n_queries} queries "
          f"(data and exact top-{args.k} in {time.perf_counter() - start:.0f} s)", flush=True)
    headers = ["kind", "configuration", "build s", "RSS growth MiB", "index MiB", "p50 ms", "p99 ms",
               f"recall@{args.k}"]
    rows = []
    for kind in args.kinds.split(","):
        rows.append(measure(kind, data, queries, truth, args.k))
        print(" | ".join(rows[-1]), flush=True)
    print()
    print(markdown_table(headers, rows))
    print(cpu_line())


if __name__ == "__main__":
    main()
