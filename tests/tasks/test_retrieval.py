"""Image↔text retrieval against a plain argsort reference, tie rules, chunking and the tiny model end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from openmedclip.embed import encode_images, encode_texts
from openmedclip.errors import InvalidInputError
from openmedclip.tasks.retrieval import retrieval_metrics, retrieve


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _reference_ranks(images: np.ndarray, texts: np.ndarray, owner: np.ndarray) -> tuple[list[int], list[int]]:
    """1-based ranks by sorting every query's scores (no ties in random data): image→text uses the first of the
    image's captions in its ranking; images without captions get 0."""
    scores = _unit(images.astype(np.float64)) @ _unit(texts.astype(np.float64)).T
    image_ranks = []
    for i in range(len(images)):
        order = list(np.argsort(-scores[i]))
        own = [order.index(j) + 1 for j in range(len(texts)) if owner[j] == i]
        image_ranks.append(min(own) if own else 0)
    text_ranks = [list(np.argsort(-scores[:, j])).index(owner[j]) + 1 for j in range(len(texts))]
    return image_ranks, text_ranks


def _captioned(n_images: int, n_texts: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, captions near their image, and each caption's image; the last image has no caption."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n_images, 12)).astype(np.float32)
    owner = np.concatenate([np.arange(n_images - 1), rng.integers(0, n_images - 1, n_texts - n_images + 1)])
    texts = (images[owner] + noise * rng.normal(size=(n_texts, 12))).astype(np.float32)
    return images, texts, owner


def test_matches_brute_force_with_several_captions_per_image():
    images, texts, owner = _captioned(30, 70, noise=1.5, seed=0)
    result = retrieval_metrics(images, texts, owner, ks=(1, 5, 10), n_bootstrap=0)
    image_ranks, text_ranks = _reference_ranks(images, texts, owner)
    np.testing.assert_array_equal(result.image_to_text.ranks, image_ranks)
    np.testing.assert_array_equal(result.text_to_image.ranks, text_ranks)
    captioned = np.array(image_ranks[:-1])
    for k in (1, 5, 10):
        assert result.image_to_text.recall[k].value == pytest.approx(np.mean(captioned <= k))
        assert result.text_to_image.recall[k].value == pytest.approx(np.mean(np.array(text_ranks) <= k))
    assert result.image_to_text.median_rank == np.median(captioned)
    assert result.image_to_text.mean_rank == pytest.approx(np.mean(captioned))
    assert result.text_to_image.median_rank == np.median(text_ranks)
    assert result.text_to_image.mean_rank == pytest.approx(np.mean(text_ranks))
    assert (result.n_images, result.n_texts) == (30, 70)
    assert result.notes == ["1 image(s) without a caption: distractors only, not image→text queries"]
    assert 0 < result.text_to_image.recall[1].value < 1


def test_perfect_alignment_ranks_first_and_shuffling_drops():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(40, 16))
    owner = np.repeat(np.arange(40), 2)
    perfect = retrieval_metrics(images, images[owner], owner, n_bootstrap=0)
    for direction in (perfect.image_to_text, perfect.text_to_image):
        assert direction.recall[1].value == 1.0
        assert direction.median_rank == direction.mean_rank == 1.0
    shuffled = retrieval_metrics(images, images[owner], rng.permutation(owner), n_bootstrap=0)
    assert shuffled.image_to_text.recall[1].value < 0.3
    assert shuffled.text_to_image.recall[1].value < 0.3
    assert shuffled.text_to_image.median_rank > 5


def test_ties_optimistic_and_pessimistic():
    images = np.eye(4)
    # Caption 0 (of image 1) scores 1/sqrt(2) with images 0 and 1; caption 1 (of image 2) matches only image 2;
    # captions 2 and 3 (of images 3 and 0) score 0.5 with every image.
    texts = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]])
    owner = [1, 2, 3, 0]
    optimistic = retrieval_metrics(images, texts, owner, n_bootstrap=0)
    pessimistic = retrieval_metrics(images, texts, owner, ties="pessimistic", n_bootstrap=0)
    assert optimistic.text_to_image.ranks.tolist() == [1, 1, 1, 1]
    assert pessimistic.text_to_image.ranks.tolist() == [2, 1, 4, 4]
    # Image 0 scores (0.71, 0, 0.5, 0.5): its caption 3 is behind caption 0 and tied with caption 2.
    assert optimistic.image_to_text.ranks.tolist() == [2, 1, 1, 1]
    assert pessimistic.image_to_text.ranks.tolist() == [3, 1, 1, 2]


def test_collapsed_features_are_perfect_optimistically_and_worst_pessimistically():
    images, texts = np.ones((5, 3)), np.ones((10, 3))
    owner = np.repeat(np.arange(5), 2)
    optimistic = retrieval_metrics(images, texts, owner, n_bootstrap=0)
    pessimistic = retrieval_metrics(images, texts, owner, ties="pessimistic", n_bootstrap=0)
    assert optimistic.image_to_text.recall[1].value == optimistic.text_to_image.recall[1].value == 1.0
    assert set(pessimistic.text_to_image.ranks) == {5}
    assert set(pessimistic.image_to_text.ranks) == {10 - 2 + 1}


@pytest.mark.parametrize("chunk_size", [1, 3, 64])
def test_chunking_gives_identical_results(chunk_size):
    images, texts, owner = _captioned(50, 120, noise=1.0, seed=2)
    whole = retrieval_metrics(images, texts, owner, n_bootstrap=100)
    chunked = retrieval_metrics(images, texts, owner, chunk_size=chunk_size, n_bootstrap=100)
    assert chunked.to_dict() == whole.to_dict()
    np.testing.assert_array_equal(chunked.image_to_text.ranks, whole.image_to_text.ranks)
    np.testing.assert_array_equal(chunked.text_to_image.ranks, whole.text_to_image.ranks)
    scores, indices = retrieve(texts, images, top_k=7)
    chunk_scores, chunk_indices = retrieve(texts, images, top_k=7, chunk_size=chunk_size)
    np.testing.assert_array_equal(chunk_indices, indices)
    np.testing.assert_allclose(chunk_scores, scores, atol=1e-6)


def test_retrieve_matches_argsort_and_orders_ties_by_index():
    rng = np.random.default_rng(3)
    queries, gallery = rng.normal(size=(9, 8)), rng.normal(size=(40, 8))
    scores, indices = retrieve(queries, gallery, top_k=5)
    reference = _unit(queries) @ _unit(gallery).T
    np.testing.assert_array_equal(indices, np.argsort(-reference, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.take_along_axis(reference, indices, axis=1), atol=1e-6)
    assert scores.dtype == np.float32 and indices.dtype == np.int64

    tied = np.eye(3)[[1, 0, 1, 2, 1, 0]]  # gallery items 0, 2, 4 are the same vector
    _, order = retrieve(np.eye(3)[[1, 0]], tied, top_k=4)
    assert order.tolist() == [[0, 2, 4, 1], [1, 5, 0, 2]]
    _, exact = retrieve(np.eye(3)[[1]], tied, top_k=3)
    assert exact.tolist() == [[0, 2, 4]]
    _, everything = retrieve(np.eye(3)[[1]], tied, top_k=100)
    assert everything.tolist() == [[0, 2, 4, 1, 3, 5]]


def test_bootstrap_intervals_bracket_the_value_and_repeat_with_the_seed():
    images, texts, owner = _captioned(60, 150, noise=1.5, seed=4)
    result = retrieval_metrics(images, texts, owner, ks=(1, 5), n_bootstrap=200, seed=7)
    for direction in (result.image_to_text, result.text_to_image):
        for estimate in direction.recall.values():
            assert estimate.low <= estimate.value <= estimate.high
            assert estimate.high - estimate.low > 0
    assert retrieval_metrics(images, texts, owner, ks=(1, 5), n_bootstrap=200, seed=7).to_dict() == result.to_dict()
    report = json.loads(json.dumps(result.to_dict()))
    assert report["text_to_image"]["n_queries"] == 150
    assert report["image_to_text"]["n_queries"] == 59
    assert set(report["image_to_text"]) >= {"recall@1", "recall@5", "median_rank", "mean_rank"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i, t, o: retrieval_metrics(i, t[:, :5], o), "dimensions"),
        (lambda i, t, o: retrieval_metrics(i, t, o[:-1]), "text_image_index"),
        (lambda i, t, o: retrieval_metrics(i, t, o + 10), r"\[0, 9\]"),
        (lambda i, t, o: retrieval_metrics(i, t, o.astype(float)), "integer"),
        (lambda i, t, o: retrieval_metrics(i[0], t, o), "shape"),
        (lambda i, t, o: retrieval_metrics(i * 0, t, o), "all-zero"),
        (lambda i, t, o: retrieval_metrics(i * np.nan, t, o), "NaN"),
        (lambda i, t, o: retrieval_metrics(i, t, o, ks=(0,)), "ks"),
        (lambda i, t, o: retrieval_metrics(i, t, o, ties="random"), "ties"),
        (lambda i, t, o: retrieval_metrics(i, t, o, chunk_size=0), "chunk_size"),
        (lambda i, t, o: retrieve(i, t, top_k=0), "top_k"),
        (lambda i, t, o: retrieve(i, t[:0]), "non-empty"),
    ],
)
def test_bad_inputs_name_the_problem(call, message):
    images, texts, owner = _captioned(10, 20, noise=1.0, seed=5)
    with pytest.raises(InvalidInputError, match=message):
        call(images, texts, owner)


def test_tiny_model_end_to_end(tiny_model, image_folder):
    paths = sorted(image_folder.rglob("*.png"))
    captions = [f"{view} chest x-ray number {i}" for i in range(len(paths)) for view in ("frontal", "lateral")]
    owner = np.repeat(np.arange(len(paths)), 2)
    images = encode_images(tiny_model, paths, num_workers=0).features
    texts = encode_texts(tiny_model, captions)
    result = retrieval_metrics(images, texts, owner, ks=(1, 3), n_bootstrap=50)
    image_ranks, text_ranks = _reference_ranks(images.numpy(), texts.numpy(), owner)
    np.testing.assert_array_equal(result.image_to_text.ranks, image_ranks)
    np.testing.assert_array_equal(result.text_to_image.ranks, text_ranks)
    assert (result.n_images, result.n_texts) == (6, 12)
    json.dumps(result.to_dict())
    scores, indices = retrieve(texts, images, top_k=3)
    np.testing.assert_array_equal(indices, np.argsort(-(texts.numpy() @ images.numpy().T), axis=1)[:, :3])
    assert scores.shape == (12, 3)
