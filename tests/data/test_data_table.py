"""ImageTextTable: CSV/JSONL captions, bad rows reported and skipped, column errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from openmedclip.data import ImageTextTable
from openmedclip.errors import ImageReadError, InvalidInputError


def write_csv(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def csv_table(tmp_path: Path, image_dir: Path) -> Path:
    return write_csv(
        tmp_path / "pairs.csv",
        "image,caption,site",
        [
            "images/a.png,chest x-ray||frontal chest radiograph,1",
            "images/missing.png,never seen,2",
            "images/b.png,axial CT of the head,3",
            "images/bad.png,corrupt file,4",
            "images/c.png,,5",
        ],
    )


def test_validate_reports_missing_and_corrupt_and_keeps_good_rows(csv_table: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        source = ImageTextTable(csv_table, validate=True)
    assert source.keys == ["images/a.png", "images/b.png", "images/c.png"]
    reasons = dict(source.skipped)
    assert set(reasons) == {"images/missing.png", "images/bad.png"}
    assert "not found" in reasons["images/missing.png"]
    assert reasons["images/bad.png"]
    assert "missing.png" in caplog.text and "bad.png" in caplog.text
    assert source.task == "image-text" and source.label_names == [] and source.labels.shape == (3, 0)
    assert source.targets is None


def test_items_captions_and_metadata(csv_table: Path) -> None:
    source = ImageTextTable(csv_table, validate=True)
    first = source[0]
    assert first.image.pixels.shape[:2] == (6, 8)
    assert first.captions == ["chest x-ray", "frontal chest radiograph"]
    assert first.labels == [] and first.key == "images/a.png"
    assert first.meta["site"] == "1" and first.meta["row"] == 0
    assert source[-1].captions == []
    assert len(list(source)) == 3


def test_without_validation_missing_is_skipped_and_corrupt_fails_on_access(csv_table: Path) -> None:
    source = ImageTextTable(csv_table)
    assert [key for key, _ in source.skipped] == ["images/missing.png"]
    assert len(source) == 4
    with pytest.raises(ImageReadError):
        source[source.keys.index("images/bad.png")]
    assert [s.key for s in source] == ["images/a.png", "images/b.png", "images/c.png"]
    assert [key for key, _ in source.skipped] == ["images/missing.png", "images/bad.png"]


def test_missing_column_names_file_column_and_columns_present(tmp_path: Path, image_dir: Path) -> None:
    table = write_csv(tmp_path / "t.csv", "path,text", ["images/a.png,x"])
    with pytest.raises(InvalidInputError) as info:
        ImageTextTable(table, caption_col="text")
    message = str(info.value)
    assert "t.csv" in message and "'image'" in message and "path" in message and "text" in message


def test_jsonl_caption_lists_root_and_duplicate_keys(tmp_path: Path, image_dir: Path) -> None:
    table = tmp_path / "meta" / "pairs.jsonl"
    table.parent.mkdir()
    rows = [
        {"file": "a.png", "captions": ["first caption", " second caption ", ""], "view": "PA"},
        {"file": "b.png", "captions": "single caption"},
        {"file": "a.png", "captions": ["another caption for a"]},
    ]
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    source = ImageTextTable(table, image_col="file", caption_col="captions", root=image_dir)
    assert source.keys == ["a.png", "b.png", "a.png#2"]
    assert source.captions(0) == ["first caption", "second caption"]
    assert source.captions(1) == ["single caption"]
    assert source.metadata[0]["view"] == "PA"
    assert source[2].image.pixels.shape[:2] == (6, 8)


def test_several_caption_columns_and_labels(tmp_path: Path, image_dir: Path) -> None:
    table = write_csv(
        tmp_path / "t.csv",
        "image,findings,impression,finding",
        ["images/a.png,clear lungs,normal,normal", "images/b.png,,effusion on the left,effusion", "images/c.png,x,y,"],
    )
    source = ImageTextTable(table, caption_col=["findings", "impression"], label_col="finding")
    assert source.captions(0) == ["clear lungs", "normal"] and source.captions(1) == ["effusion on the left"]
    assert source.task == "multiclass" and source.label_names == ["effusion", "normal"]
    assert source.targets.tolist() == [1, 0]
    assert source[1].labels == ["effusion"]
    assert source.skipped == [("images/c.png", "no 'finding' label")]


def test_multilabel_column(tmp_path: Path, image_dir: Path) -> None:
    lines = ["images/a.png,x,", "images/b.png,y,edema|effusion"]
    table = write_csv(tmp_path / "t.csv", "image,caption,findings", lines)
    source = ImageTextTable(table, label_col="findings", label_sep="|")
    assert source.task == "multilabel" and source.label_names == ["edema", "effusion"]
    assert source.labels.tolist() == [[0, 0], [1, 1]] and source.targets is None


def test_bad_jsonl_line_is_an_input_error(tmp_path: Path) -> None:
    table = tmp_path / "t.jsonl"
    table.write_text('{"image": "a.png", "caption": "x"}\n{broken\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match="line 2"):
        ImageTextTable(table)
