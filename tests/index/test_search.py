"""Searching an index, against a brute-force reference over the same model's features."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from index_support import write_png

from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.index import SearchHit, build_index, open_index


@pytest.fixture()
def index(tiny_model, archive, tmp_path):
    build_index(archive, tiny_model, tmp_path / "idx")
    return open_index(tmp_path / "idx")


def _query(seed: int, dim: int = 32) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _pairs(hits: list[SearchHit]) -> list[tuple[str, float]]:
    return [(hit.path, hit.score) for hit in hits]


def _same(hits: list[SearchHit], expected: list[tuple[str, float]]) -> None:
    assert [hit.path for hit in hits] == [path for path, _ in expected]
    assert [hit.score for hit in hits] == pytest.approx([score for _, score in expected], abs=1e-5)
    assert [hit.rank for hit in hits] == list(range(1, len(expected) + 1))


def test_flat_search_is_the_exact_top_k(index, archive, reference):
    for seed in range(3):
        query = _query(seed)
        _same(index.search(query, k=5), reference(archive, query, 5))
    everything = index.search(_query(9), k=100)
    assert len(everything) == index.count and len({hit.path for hit in everything}) == index.count


def test_one_query_gives_a_list_and_several_give_one_list_each(index, archive, reference):
    queries = np.stack([_query(seed) for seed in range(3)])
    batched = index.search(torch.from_numpy(queries), k=4)
    assert len(batched) == 3 and all(isinstance(hits, list) for hits in batched)
    for query, hits in zip(queries, batched, strict=True):
        _same(hits, reference(archive, query, 4))
    single = index.search(queries[0], k=4)
    assert all(isinstance(hit, SearchHit) for hit in single) and _pairs(single) == _pairs(batched[0])


def test_hits_carry_the_metadata(index):
    hit = index.search(_query(0), k=1, where={"modality": "MR"})[0]
    assert hit.path == "mr/head.dcm"
    assert {key: hit.metadata[key] for key in ("format", "modality", "body_part", "rows", "columns")} == {
        "format": "dicom", "modality": "MR", "body_part": "HEAD", "rows": 36, "columns": 44}
    assert len(hit.metadata["sha256"]) == 64 and hit.metadata["size"] > 0
    assert hit.to_dict() == {"rank": 1, "score": hit.score, "path": "mr/head.dcm", "metadata": hit.metadata}


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_filtered_search_is_exact_among_matching_files_whatever_the_kind(tiny_model, archive, tmp_path, reference,
                                                                          monkeypatch, kind):
    from openmedclip.index import vectors

    for i in range(20):  # enough files for several inverted lists, probed one at a time
        write_png(archive / "more" / f"extra{i:02d}.png", 200 + i)
    monkeypatch.setattr(vectors, "IVF_MIN_POINTS_PER_LIST", 1)
    build_index(archive, tiny_model, tmp_path / "idx", kind=kind)
    index = open_index(tmp_path / "idx")
    assert index.kind == kind
    for seed in range(4):
        query = _query(seed)
        _same(index.search(query, k=6, where={"format": "png", "columns": "48"}),
              reference(archive, query, 6, [p for p in sorted(archive.rglob("*.png"))
                                           if p.name != "broken.png" and _columns(p) == 48]))
        _same(index.search(query, k=3, where={"modality": "CT", "body_part": "CHEST"}),
              reference(archive, query, 3, [archive / "ct/chest1.dcm", archive / "ct/chest2.dcm"]))


def _columns(path) -> int:
    from PIL import Image

    with Image.open(path) as image:
        return image.size[0]


def test_filters_that_match_nothing_give_no_hits(index):
    assert index.search(_query(0), where={"modality": "US"}) == []
    assert index.search(np.stack([_query(0), _query(1)]), where={"rows": "9999"}) == [[], []]


def test_unknown_filter_keys_and_bad_values_are_errors_listing_the_keys(index):
    with pytest.raises(InvalidInputError, match="unknown filter key.*'colour'.*allowed: format, modality, body_part"):
        index.search(_query(0), where={"colour": "red"})
    with pytest.raises(InvalidInputError, match="rows='tall'"):
        index.search(_query(0), where={"rows": "tall"})


def test_bad_queries_are_errors(index):
    with pytest.raises(InvalidInputError, match="16 dimensions.*32-dimensional"):
        index.search(_query(0, dim=16))
    with pytest.raises(InvalidInputError, match="L2-normalised"):
        index.search(_query(0) * 3)
    with pytest.raises(InvalidInputError, match="shape"):
        index.search(np.zeros((2, 2, 32), np.float32))
    with pytest.raises(InvalidInputError, match="k must be"):
        index.search(_query(0), k=0)


def test_text_and_image_search_encode_with_the_model(index, tiny_model, archive):
    from openmedclip.embed import encode_texts
    from openmedclip.io import read_image

    text = "left pleural effusion"
    assert _pairs(index.search_text(tiny_model, text, k=3)) == _pairs(
        index.search(encode_texts(tiny_model, [text])[0], k=3))
    by_path = index.search_image(tiny_model, archive / "ct" / "abdomen.dcm", k=2)
    assert by_path[0].path == "ct/abdomen.dcm" and by_path[0].score == pytest.approx(1.0, abs=1e-5)
    by_image = index.search_image(tiny_model, read_image(archive / "ct" / "abdomen.dcm"), k=2)
    assert [hit.path for hit in by_image] == [hit.path for hit in by_path]
    assert [hit.score for hit in by_image] == pytest.approx([hit.score for hit in by_path], abs=1e-5)
    with pytest.raises(ImageReadError, match="broken.png"):
        index.search_image(tiny_model, archive / "broken.png")
    with pytest.raises(InvalidInputError, match="empty"):
        index.search_text(tiny_model, "  ")


def test_queries_from_another_architecture_are_refused(index, tiny_model):
    from dataclasses import replace

    index.identity = replace(index.identity, architecture="ViT-B-16")
    with pytest.raises(InvalidInputError, match="queries must be encoded with the index's model"):
        index.search_text(tiny_model, "effusion")


def test_searches_from_several_threads_agree(index):
    queries = [_query(seed) for seed in range(8)]
    expected = [_pairs(index.search(query, k=3, where={"format": "png"})) for query in queries]
    found: list = [None] * len(queries)

    def run(i: int) -> None:
        found[i] = _pairs(index.search(queries[i], k=3, where={"format": "png"}))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(queries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == expected
