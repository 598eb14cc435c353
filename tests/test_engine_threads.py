"""The encode engine picks its loader workers from the first batch's measured costs, runs torch on the cores they
leave free, and restores the thread count after."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from openmedclip import hardware
from openmedclip.embed import encode_images, engine
from openmedclip.hardware import intra_op_threads, loader_workers


@pytest.fixture()
def other_thread_count():
    """Torch threads set to a count the policy would not pick for one worker; the previous count restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(intra_op_threads(1) + 1)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _threads_while_encoding(loaded, files, workers: int) -> list[int]:
    seen: list[int] = []

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return pixels.flatten(1)[:, :4]

    encoded = encode_images(loaded, files, batch_size=2, num_workers=workers, encode=encode)
    assert len(encoded.indices) == len(files)
    return seen


def test_loader_workers_leave_their_cores_to_themselves(tiny_model, image_folder, other_thread_count):
    files = sorted(image_folder.rglob("*.png"))
    assert _threads_while_encoding(tiny_model, files, workers=1) == [intra_op_threads(1)] * 3
    assert torch.get_num_threads() == other_thread_count


def test_without_workers_the_thread_count_is_left_alone(tiny_model, image_folder, other_thread_count):
    files = sorted(image_folder.rglob("*.png"))
    assert _threads_while_encoding(tiny_model, files, workers=0) == [other_thread_count] * 3
    assert torch.get_num_threads() == other_thread_count


@pytest.mark.parametrize(
    ("decode", "forward", "cores", "expected"),
    [
        (0.005, 0.040, 2, 0),  # ViT-B/16 on two cores: the model wants both
        (0.009, 0.0015, 2, 1),  # a small model on large files: decode beside it
        (0.009, 0.0015, 1, 0),  # one core: nothing to share
        (0.100, 0.0001, 16, 4),  # decode-bound on many cores: the most workers
        (0.010, 0.010, 2, 0),  # even: a worker would not pay for its process
        (0.0, 0.0, 4, 0),
    ],
)
def test_loader_workers_follow_the_measured_costs(decode, forward, cores, expected):
    assert loader_workers(decode, forward, cores=cores) == expected


class _Slow:
    """A preprocess or an encoder that takes ``seconds`` per call on top of ``inner``."""

    def __init__(self, inner, seconds: float):
        self.inner, self.seconds = inner, seconds

    def __call__(self, value):
        time.sleep(self.seconds)
        return self.inner(value)


def _features(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.flatten(1)[:, :4].float()


@pytest.mark.parametrize(("slow_decode", "expected_workers"), [(True, 1), (False, 0)])
def test_engine_picks_loader_workers_from_its_first_batch(
    tiny_model, image_folder, monkeypatch, slow_decode, expected_workers
):
    files = sorted(image_folder.rglob("*.png")) * 3  # 18 items: a probe batch of 4, then the loader
    monkeypatch.setattr(hardware, "physical_cores", lambda: 2)
    chosen: list[int] = []
    original = engine.loader_workers
    monkeypatch.setattr(engine, "loader_workers", lambda *a, **k: chosen.append(original(*a, **k)) or chosen[-1])
    if slow_decode:
        loaded = dataclasses.replace(tiny_model, preprocess=_Slow(tiny_model.preprocess, 0.02))
        encode = _features
    else:
        loaded, encode = tiny_model, _Slow(_features, 0.1)
    encoded = encode_images(loaded, [str(path) for path in files], batch_size=4, encode=encode)
    assert chosen == [expected_workers]
    reference = encode_images(tiny_model, [str(path) for path in files], batch_size=4, num_workers=0,
                              encode=_features)
    assert encoded.indices == reference.indices == list(range(len(files)))
    assert torch.equal(encoded.features, reference.features)


def test_probe_batch_keeps_bad_items_and_order(tiny_model, image_folder, tmp_path):
    files = [str(path) for path in sorted(image_folder.rglob("*.png"))]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    items = [files[0], str(bad), *files[1:], *files]
    encoded = encode_images(tiny_model, items, batch_size=4, encode=_features)
    assert [error.index for error in encoded.errors] == [1]
    assert encoded.indices == [i for i in range(len(items)) if i != 1]
    direct = encode_images(tiny_model, items, batch_size=4, num_workers=0, encode=_features)
    assert torch.equal(encoded.features, direct.features)


def test_two_batches_or_fewer_are_encoded_without_a_probe(tiny_model, image_folder, monkeypatch):
    files = [str(path) for path in sorted(image_folder.rglob("*.png"))]  # 6 items, batch 3: two batches
    monkeypatch.setattr(engine, "loader_workers", lambda *a, **k: pytest.fail("probed two batches"))
    encoded = encode_images(tiny_model, files, batch_size=3, encode=_features)
    assert encoded.indices == list(range(6))
