"""Toy image–text data and recipe helpers for the training tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

COLOURS = {
    "red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "white": (240, 240, 240),
    "black": (15, 15, 15), "yellow": (230, 220, 30), "cyan": (30, 220, 220), "magenta": (220, 30, 220),
}


def write_toy_pairs(folder: Path, n: int = 32, size: int = 36) -> Path:
    """`n` noisy single-colour PNGs with two captions each naming the colour; returns the JSONL table."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = list(COLOURS)[i % len(COLOURS)]
        pixels = np.array(COLOURS[name])[None, None] + rng.normal(0, 25, (size, size, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / "img" / f"{i:03d}.png")
        rows.append({"image": f"img/{i:03d}.png", "caption": [f"a {name} square", f"{name} colour"]})
    table = folder / "pairs.jsonl"
    table.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return table


@pytest.fixture(scope="session")
def toy_table(tmp_path_factory) -> Path:
    return write_toy_pairs(tmp_path_factory.mktemp("toy_pairs"))


@pytest.fixture()
def recipe(tiny_model_dir, toy_table, tmp_path):
    """A function giving the overrides of a small run on the toy pairs, with `changes` applied."""

    def make(**changes) -> dict:
        base = {
            "model": str(tiny_model_dir),
            "datasets": [{"type": "table", "path": str(toy_table)}],
            "epochs": 2,
            "batch_size": 8,
            "lr": 1e-3,
            "weight_decay": 0.1,
            "warmup_steps": 2,
            "out_dir": str(tmp_path / "run"),
            "progress": False,
            "device": "cpu",
        }
        return {**base, **changes}

    return make
