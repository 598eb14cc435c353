"""MedMNIST: official .npz layout, label names and task from medmnist.INFO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openmedclip.data import MedMNIST
from openmedclip.errors import InvalidInputError


def fake_npz(path: Path, channels: int = 0, label_cols: int = 1, n_classes: int = 2) -> Path:
    """A tiny file with the official keys: <split>_images uint8 and <split>_labels (N, label_cols)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        shape = (n, 28, 28, channels) if channels else (n, 28, 28)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, n_classes, (n, label_cols), dtype=np.uint8)
    np.savez_compressed(path, **arrays)
    return path


def test_binary_grey(tmp_path: Path) -> None:
    path = fake_npz(tmp_path / "pneumoniamnist.npz")
    source = MedMNIST(path, "train")
    assert len(source) == 5 and source.name == "pneumoniamnist"
    assert source.task == "multiclass" and source.label_names == ["normal", "pneumonia"]
    raw = np.load(path)["train_labels"][:, 0]
    assert source.targets.tolist() == raw.tolist()
    assert source.labels.dtype == np.float32 and source.labels.argmax(1).tolist() == raw.tolist()
    sample = source[4]
    assert sample.image.photometric == "MONOCHROME2" and sample.image.pixels.shape == (28, 28)
    assert sample.key == "pneumoniamnist/train/4" and sample.labels == [source.label_names[raw[4]]]
    assert np.array_equal(sample.image.pixels, np.load(path)["train_images"][4])
    assert len(MedMNIST(path, "val")) == 2 and len(MedMNIST(path, "test")) == 3


def test_colour_ordinal_and_size_suffix(tmp_path: Path) -> None:
    source = MedMNIST(fake_npz(tmp_path / "retinamnist_224.npz", channels=3, n_classes=5), "test")
    assert source.flag == "retinamnist" and source.task == "multiclass" and len(source.label_names) == 5
    assert source[0].image.pixels.shape[:2] == (28, 28)


def test_multilabel(tmp_path: Path) -> None:
    source = MedMNIST(fake_npz(tmp_path / "data.npz", label_cols=14), "val", flag="chestmnist")
    assert source.task == "multilabel" and source.targets is None
    assert source.labels.shape == (2, 14) and source.label_names[0] == "atelectasis"
    assert source[0].labels == [n for n, v in zip(source.label_names, source.labels[0], strict=True) if v]


def test_errors(tmp_path: Path) -> None:
    path = fake_npz(tmp_path / "mystery.npz")
    with pytest.raises(InvalidInputError, match=r"flag="):
        MedMNIST(path)
    with pytest.raises(InvalidInputError, match="split"):
        MedMNIST(path, "dev", flag="breastmnist")
    with pytest.raises(InvalidInputError, match="class index"):
        MedMNIST(fake_npz(tmp_path / "breastmnist.npz", n_classes=200), flag="breastmnist")
    partial = tmp_path / "breastmnist_64.npz"
    np.savez(partial, train_images=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(InvalidInputError, match="train_labels"):
        MedMNIST(partial)
    (tmp_path / "octmnist.npz").write_bytes(b"junk")
    with pytest.raises(InvalidInputError, match=r"octmnist\.npz"):
        MedMNIST(tmp_path / "octmnist.npz")
