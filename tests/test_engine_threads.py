"""The encode engine runs torch on the cores its loader workers leave free, and restores the thread count after."""

from __future__ import annotations

import pytest
import torch

from openmedclip.embed import encode_images
from openmedclip.hardware import intra_op_threads


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
