"""Bad input to the data sources: text encodings, tables without usable rows, fake or unsafe .npz files, broken
shard samples, and sources that report per-item problems instead of raising."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import numpy as np
import pytest

from openmedclip.cli.app import run
from openmedclip.data import VQARAD, ImageTextTable, MedMNIST, MixedSource, WebDatasetSource
from openmedclip.data.base import SkippedItem
from openmedclip.data.streaming import ShardSource, ShardStream
from openmedclip.errors import InvalidInputError
from shard_files import write_tar


def _latin1_csv(tmp_path: Path) -> Path:
    path = tmp_path / "latin.csv"
    path.write_bytes("image,caption\nimages/a.png,caf\xe9 au lait\n".encode("latin-1"))
    return path


def test_a_latin1_table_names_the_file_the_line_and_the_bytes(tmp_path: Path, image_dir: Path) -> None:
    path = _latin1_csv(tmp_path)
    with pytest.raises(InvalidInputError) as info:
        ImageTextTable(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 2 ") and "b'\\xe9'" in message and "'images/a.png,caf'" in message
    assert "UTF-8" in message and "\n" not in message
    jsonl = tmp_path / "latin.jsonl"
    jsonl.write_bytes('{"image": "images/a.png", "caption": "r\xf6ntgen"}\n'.encode("latin-1"))
    with pytest.raises(InvalidInputError, match=r"latin\.jsonl: line 1 is not UTF-8 text: bytes b'\\xf6'"):
        ImageTextTable(jsonl)


def test_the_encoding_option_reads_latin1_and_a_utf8_bom_is_tolerated(tmp_path: Path, image_dir: Path) -> None:
    assert ImageTextTable(_latin1_csv(tmp_path), encoding="latin-1").captions(0) == ["café au lait"]
    with pytest.raises(InvalidInputError, match="unknown text encoding 'klingon'"):
        ImageTextTable(_latin1_csv(tmp_path), encoding="klingon")
    csv_bom = tmp_path / "bom.csv"
    csv_bom.write_bytes(codecs.BOM_UTF8 + "image,caption\nimages/a.png,café\n".encode())
    jsonl_bom = tmp_path / "bom.jsonl"
    jsonl_bom.write_bytes(codecs.BOM_UTF8 + '{"image": "images/a.png", "caption": "café"}\n'.encode())
    assert ImageTextTable(csv_bom).captions(0) == ImageTextTable(jsonl_bom).captions(0) == ["café"]


def test_a_latin1_vqarad_question_file_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "trainset.json").write_bytes('[{"question": "is this a r\xf6ntgen?"}]'.encode("latin-1"))
    with pytest.raises(InvalidInputError, match=r"trainset\.json: line 1 is not UTF-8 text"):
        VQARAD(tmp_path)


def test_the_shards_command_gives_one_line_for_a_latin1_table(tmp_path: Path, image_dir: Path, capsys) -> None:
    assert run(["shards", str(_latin1_csv(tmp_path)), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "latin.csv: line 2" in err


def test_a_table_without_usable_rows_says_so_and_why(tmp_path: Path, image_dir: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("image,caption\nnope/1.png,a\n,b\nnope/2.png,c\n", encoding="utf-8")
    table = ImageTextTable(path)
    with pytest.raises(InvalidInputError) as info:
        MixedSource([table])
    message = str(info.value)
    assert message.startswith(f"{path}: the table has no usable rows: 3 rows, 3 skipped: ")
    assert "2 file not found (e.g. nope/1.png)" in message and "1 empty 'image' value (e.g. row 1)" in message
    assert "column 'image'" in message and "['caption']" in message and "weights" not in message
    header_only = tmp_path / "h.csv"
    header_only.write_text("image,caption\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"h\.csv: the table has no rows; looked for images in column"):
        MixedSource([ImageTextTable(header_only)])


def test_an_empty_source_among_weighted_ones_is_named(tmp_path: Path, image_dir: Path) -> None:
    good, empty = tmp_path / "good.csv", tmp_path / "empty.csv"
    good.write_text("image,caption\nimages/a.png,a\n", encoding="utf-8")
    empty.write_text("image,caption\nnope.png,a\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"empty\.csv: the table has no usable rows"):
        MixedSource([ImageTextTable(good), ImageTextTable(empty)], [1.0, 1.0])


def _splits() -> dict[str, np.ndarray]:
    images, labels = np.zeros((2, 28, 28), np.uint8), np.array([[0], [1]], np.uint8)
    return {"train_images": images, "train_labels": labels}


def test_a_text_file_named_npz_is_not_called_pickled_data(tmp_path: Path) -> None:
    path = tmp_path / "pneumoniamnist.npz"
    path.write_text("this is a text file\n", encoding="utf-8")
    with pytest.raises(InvalidInputError) as info:
        MedMNIST(path)
    message = str(info.value)
    assert message == f"{path}: not a valid .npz file (not a zip archive of numpy arrays)"
    assert "pickle" not in message


def test_an_npz_without_the_arrays_names_them(tmp_path: Path) -> None:
    path = tmp_path / "pneumoniamnist.npz"
    np.savez(path, images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(InvalidInputError, match=r"missing array\(s\) \['train_images', 'train_labels'\]"):
        MedMNIST(path)


class _Touch:
    """Unpickling this creates a file: proof that an array of objects was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_an_npz_of_python_objects_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / "pneumoniamnist.npz"
    objects = np.empty(2, dtype=object)
    objects[:] = [_Touch(marker), _Touch(marker)]
    np.savez(path, **{**_splits(), "train_labels": objects})
    with pytest.raises(InvalidInputError) as info:
        MedMNIST(path)
    message = str(info.value)
    assert "'train_labels' holds Python objects, which are not loaded" in message
    assert "allow_pickle" not in message and not marker.exists()


def _record(key: str, png: bytes, **entries: bytes) -> dict[str, bytes]:
    return {f"{key}.png": png, **{f"{key}.{ext}": data for ext, data in entries.items()}}


@pytest.fixture
def broken_shard(tmp_path: Path, image_dir: Path) -> Path:
    """One shard: a good sample, one with bad json, one with latin-1 txt, one with an undecodable image."""
    png = (image_dir / "a.png").read_bytes()
    (tmp_path / "shards").mkdir()
    members = {
        **_record("good", png, json=json.dumps({"captions": ["fine"]}).encode()),
        **_record("badjson", png, json=b"{broken"),
        **_record("latin", png, txt="caf\xe9".encode("latin-1")),
        **_record("badimage", b"not a png", txt=b"x"),
    }
    return write_tar(tmp_path / "shards" / "shard-000000.tar", members)


def test_a_webdataset_source_reports_bad_samples_and_keeps_the_rest(broken_shard: Path) -> None:
    source = WebDatasetSource(broken_shard, validate=True)
    assert source.keys == ["good"] and source.captions(0) == ["fine"]
    reasons = dict(source.skipped)
    assert {key.rsplit("#", 1)[-1] for key in reasons} == {"badjson", "latin", "badimage"}
    assert any("JSONDecodeError" in reason for reason in reasons.values())
    assert any("UnicodeDecodeError" in reason for reason in reasons.values())


def test_a_truncated_shard_is_reported_not_raised(tmp_path: Path, image_dir: Path) -> None:
    png = (image_dir / "a.png").read_bytes()
    (tmp_path / "shards").mkdir()
    whole = write_tar(tmp_path / "shards" / "shard-000000.tar", {**_record("a", png), **_record("b", png)})
    member = 512 + -(-len(png) // 512) * 512  # a tar header and the data, in 512-byte blocks
    whole.write_bytes(whole.read_bytes()[: member + 512 + len(png) // 2])  # "a", then half of "b.png"
    source = WebDatasetSource(whole)
    assert source.keys == ["a"]
    assert source.skipped and "unreadable from here on" in source.skipped[-1][1]


def test_a_stream_can_hand_its_unreadable_samples_on(broken_shard: Path) -> None:
    shards = ShardSource.open(broken_shard.parent)
    kept = ShardStream([shards], resample=False, shuffle_buffer=0, rank=0, world_size=1, keep_skipped=True)
    items = list(kept)
    skipped = [item for item in items if isinstance(item, SkippedItem)]
    assert len(items) == 4 and {item.item.rsplit("#", 1)[-1] for item in skipped} == {"badjson", "latin", "badimage"}
    left_out = ShardStream([shards], resample=False, shuffle_buffer=0, rank=0, world_size=1)
    assert [item.id.rsplit("#", 1)[-1] for item in left_out] == ["good"]


def test_shards_of_a_table_with_unreadable_images_writes_the_rest_and_exits_1(
    tmp_path: Path, image_dir: Path, capsys
) -> None:
    (image_dir / "empty.png").write_bytes(b"")
    path = tmp_path / "t.csv"
    lines = ["images/a.png,a", "images/bad.png,b", "images/empty.png,c", "images/c.png,d"]
    path.write_text("image,caption\n" + "\n".join(lines) + "\n", encoding="utf-8")
    assert run(["shards", str(path), str(tmp_path / "out")]) == 1
    info = json.loads((tmp_path / "out" / "dataset.json").read_text(encoding="utf-8"))
    assert info["count"] == 2 and sorted(key for key, _ in info["skipped"]) == ["images/bad.png", "images/empty.png"]
    assert "Traceback" not in capsys.readouterr().err

