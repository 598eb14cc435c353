"""ClassFolders: label names from sub-folders, loose files reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from openmedclip.data import ClassFolders
from openmedclip.errors import InvalidInputError


def test_class_folders(tmp_path: Path, make_png, make_corrupt) -> None:
    write_png, write_corrupt = make_png, make_corrupt
    root = tmp_path / "tb"
    write_png(root / "tb" / "t1.png")
    write_png(root / "tb" / "sub" / "t2.png")
    write_png(root / "health" / "h1.png")
    write_corrupt(root / "health" / "h2.png")
    write_png(root / "loose.png")
    (root / "empty").mkdir()
    source = ClassFolders(root, validate=True)
    assert source.label_names == ["empty", "health", "tb"]
    assert source.task == "multiclass" and source.name == "tb"
    assert source.keys == ["health/h1.png", "tb/sub/t2.png", "tb/t1.png"]
    assert source.targets.tolist() == [1, 2, 2]
    assert source.labels.shape == (3, 3) and source.labels.sum() == 3
    assert dict(source.skipped).keys() == {"loose.png", "health/h2.png"}
    sample = source[1]
    assert sample.labels == ["tb"] and sample.image.pixels.ndim in (2, 3) and sample.meta["class"] == "tb"


def test_class_folders_errors(tmp_path: Path, make_png) -> None:
    with pytest.raises(InvalidInputError, match="not a folder"):
        ClassFolders(tmp_path / "nope")
    make_png(tmp_path / "flat" / "x.png")
    with pytest.raises(InvalidInputError, match="no class sub-folders"):
        ClassFolders(tmp_path / "flat")
