"""Images for the split-audit tests: unrelated smooth textures, written as class folders."""

from __future__ import annotations

import numpy as np
from PIL import Image

from openmedclip.data import open_source


def texture(seed: int, size: int = 96) -> np.ndarray:
    """A smooth random grey texture: distinct seeds give unrelated images."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((8, 8)) * 255
    return np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC))


def write_classes(root, images: dict[str, list[tuple[str, np.ndarray]]]):
    for label, members in images.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for name, pixels in members:
            Image.fromarray(pixels).save(root / label / f"{name}.png")
    return open_source({"type": "classfolders", "path": str(root)})
