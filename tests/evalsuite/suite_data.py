"""Tiny synthetic data for suite runs: a MedMNIST-layout .npz, an image–caption JSONL with PNGs, a suite YAML."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

TINY_SUITE = """
name: tiny
description: synthetic data for tests
datasets:
  pneumo:
    modality: chest X-ray
    source: {type: medmnist, path: pneumoniamnist.npz, split: test}
    train: {split: train}
    prompts: {bank: pediatric_chest_xray}
    tasks: [zeroshot, probe]
  pairs:
    source: {type: table, path: pairs/captions.jsonl, label_col: modality}
    classes: {CT: computed tomography, MR: magnetic resonance imaging}
    prompts: {templates: ["a {} scan.", "an image acquired with {}."]}
    tasks: [zeroshot, retrieval]
  absent:
    source: {type: folders, path: not-here/test}
    tasks: [zeroshot]
"""

FAST = ["--bootstrap", "50", "--k-shots", "1,2,all", "--seeds", "0,1"]


def _write_npz(path: Path, rng: np.random.Generator) -> None:
    arrays = {}
    for split, n in (("train", 24), ("val", 6), ("test", 20)):
        labels = np.arange(n) % 2
        images = rng.integers(0, 120, (n, 28, 28)) + 100 * labels[:, None, None]
        arrays[f"{split}_images"] = images.astype(np.uint8)
        arrays[f"{split}_labels"] = labels.reshape(n, 1).astype(np.uint8)
    np.savez(path, **arrays)


def _write_pairs(folder: Path, rng: np.random.Generator) -> None:
    folder.mkdir()
    rows = []
    for i in range(8):
        modality = "CT" if i % 2 else "MR"
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
        caption = f"{modality} image number {i} of the abdomen"
        rows.append({"image": f"img{i}.png", "caption": caption, "modality": modality})
    (folder / "captions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


def write_data_root(root: Path) -> Path:
    """A data root with ``pneumoniamnist.npz`` (24/6/20 images) and ``pairs/`` (8 PNGs with captions)."""
    root.mkdir()
    rng = np.random.default_rng(0)
    _write_npz(root / "pneumoniamnist.npz", rng)
    _write_pairs(root / "pairs", rng)
    return root


def write_suite(path: Path) -> Path:
    path.write_text(TINY_SUITE, encoding="utf-8")
    return path
