"""open_source: specs to sources, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openmedclip.data import ClassFolders, ImageTextTable, MedMNIST, open_source
from openmedclip.errors import InvalidInputError


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    path = tmp_path / "pneumoniamnist.npz"
    images, labels = np.zeros((2, 28, 28), np.uint8), np.array([[0], [1]], np.uint8)
    np.savez(path, train_images=images, train_labels=labels, val_images=images, val_labels=labels)
    return path


def test_dict_specs(npz: Path, tmp_path: Path, image_dir: Path) -> None:
    source = open_source({"type": "medmnist", "path": str(npz), "split": "val"})
    assert isinstance(source, MedMNIST) and len(source) == 2
    (tmp_path / "t.csv").write_text("image,caption\nimages/a.png,x\n")
    assert isinstance(open_source({"type": "CSV", "path": tmp_path / "t.csv"}), ImageTextTable)
    assert isinstance(open_source({"type": "class-folders", "path": tmp_path}), ClassFolders)


def test_path_specs(npz: Path, tmp_path: Path) -> None:
    assert isinstance(open_source(npz), MedMNIST)
    (tmp_path / "t.jsonl").write_text('{"image": "x.png", "caption": "y"}\n')
    assert isinstance(open_source(str(tmp_path / "t.jsonl")), ImageTextTable)
    with pytest.raises(InvalidInputError, match="cannot tell"):
        open_source(tmp_path / "nothing.xyz")


def test_errors(npz: Path) -> None:
    with pytest.raises(InvalidInputError, match="known types") as info:
        open_source({"type": "imagenet", "path": "x"})
    assert "medmnist" in str(info.value) and "vqarad" in str(info.value)
    with pytest.raises(InvalidInputError, match="unknown option"):
        open_source({"type": "medmnist", "path": str(npz), "splitt": "val"})
    with pytest.raises(InvalidInputError, match="missing"):
        open_source({"type": "medpix"})
