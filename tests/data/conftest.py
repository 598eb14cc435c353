"""Tiny image files and tables for the data-source tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_png(path: Path, value: int = 128, size: tuple[int, int] = (8, 6)) -> Path:
    """A small grey PNG with a gradient (so it is not constant) at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.arange(size[0] * size[1]).reshape(size[1], size[0]) + value) % 256
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def write_corrupt(path: Path) -> Path:
    """A file with an image name but no image inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image")
    return path


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """tmp/images with a.png, b.png, c.png (good) and bad.png (corrupt)."""
    folder = tmp_path / "images"
    for n, name in enumerate(["a", "b", "c"]):
        write_png(folder / f"{name}.png", value=40 * n)
    write_corrupt(folder / "bad.png")
    return folder


@pytest.fixture
def make_png():
    """`write_png` as a fixture (test modules do not import conftest)."""
    return write_png


@pytest.fixture
def make_corrupt():
    """`write_corrupt` as a fixture."""
    return write_corrupt
