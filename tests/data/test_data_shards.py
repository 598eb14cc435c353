"""WebDataset round trip: any source -> shards -> WebDatasetSource with the same items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from openmedclip.data import ImageTextTable, MedMNIST, WebDatasetSource, write_shards
from openmedclip.errors import InvalidInputError
from shard_files import write_tar


def test_round_trip_multiclass(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    npz = tmp_path / "breastmnist.npz"
    np.savez(
        npz,
        **{
            "test_images": rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
            "test_labels": rng.integers(0, 2, (7, 1), dtype=np.uint8),
        },
    )
    source = MedMNIST(npz, "test")
    shards = write_shards(source, tmp_path / "shards", maxcount=3)
    assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    info = json.loads((tmp_path / "shards" / "dataset.json").read_text())
    assert info["count"] == 7 and info["label_names"] == source.label_names

    back = WebDatasetSource(tmp_path / "shards")
    assert back.name == source.name and back.task == "multiclass" and back.label_names == source.label_names
    assert back.keys == source.keys and back.metadata == source.metadata
    assert np.array_equal(back.labels, source.labels) and np.array_equal(back.targets, source.targets)
    for a, b in zip(source, back, strict=True):
        assert np.array_equal(a.image.pixels, b.image.pixels) and a.labels == b.labels
    with pytest.raises(InvalidInputError, match="already holds shards"):
        write_shards(source, tmp_path / "shards")
    pattern = str(tmp_path / "shards" / "shard-{000000..000002}.tar")
    assert len(WebDatasetSource(pattern)) == 7 and len(WebDatasetSource([str(p) for p in shards[:1]])) == 3


def test_round_trip_captions_and_skipped(tmp_path: Path, image_dir: Path) -> None:
    table = tmp_path / "t.jsonl"
    rows = [
        {"image": "images/a.png", "caption": ["one", "two"]},
        {"image": "images/bad.png", "caption": "x"},
        {"image": "images/b.png", "caption": "three"},
    ]
    table.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    source = ImageTextTable(table)
    write_shards(source, tmp_path / "out")
    assert [key for key, _ in source.skipped] == ["images/bad.png"]
    back = WebDatasetSource(tmp_path / "out")
    assert back.keys == ["images/a.png", "images/b.png"] and back.task == "image-text"
    assert back[0].captions == ["one", "two"] and back[1].captions == ["three"]
    assert back.labels.shape == (2, 0)


def test_foreign_shard_with_txt_and_bad_samples(tmp_path: Path, image_dir: Path) -> None:
    png = (image_dir / "a.png").read_bytes()
    shard = write_tar(
        tmp_path / "x.tar",
        {
            "s1.jpg": png,
            "s1.txt": b"a caption",
            "s2.png": b"broken",
            "s2.txt": b"bad image",
            "s3.txt": b"no image at all",
        },
    )
    lazy = WebDatasetSource(str(shard))
    assert lazy.keys == ["s1", "s2"] and lazy.skipped[0][0] == "s3"
    assert lazy[0].captions == ["a caption"] and lazy.task == "image-text"
    checked = WebDatasetSource(str(shard), validate=True)
    assert checked.keys == ["s1"] and {k for k, _ in checked.skipped} == {"s2", "s3"}


def test_missing_shards(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not found"):
        WebDatasetSource(str(tmp_path / "none-{0..1}.tar"))
    with pytest.raises(InvalidInputError, match=r"no \.tar"):
        WebDatasetSource(tmp_path)
