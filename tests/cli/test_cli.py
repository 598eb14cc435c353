"""The command line as a user runs it: exit codes, outputs, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import sys

import pytest

from openmedclip.cli.app import main


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["openmedclip", *args])
    with pytest.raises(SystemExit) as done:
        main()
    out, err = capsys.readouterr()
    return done.value.code, out, err


def test_zeroshot_folder_json(monkeypatch, capsys, tiny_model_dir, image_folder):
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "zeroshot",
        str(image_folder),
        "--labels",
        "normal,pneumonia",
        "--model",
        str(tiny_model_dir),
        "--json",
    )
    assert code == 0
    payload = json.loads(out)
    assert len(payload["predictions"]) == 6  # recursive: sub-folder included
    assert {p["labels"][0] for p in payload["predictions"]} <= {"normal", "pneumonia"}


def test_zeroshot_csv_and_table(monkeypatch, capsys, tiny_model_dir, image_folder):
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "zeroshot",
        str(image_folder / "img0.png"),
        "-l",
        "a,b,c",
        "-m",
        str(tiny_model_dir),
        "--csv",
    )
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0 and rows[0] == ["image", "prediction", "a", "b", "c"] and len(rows) == 2
    assert abs(sum(float(x) for x in rows[1][2:]) - 1) < 1e-4
    code, out, _ = run_cli(
        monkeypatch, capsys, "zeroshot", str(image_folder / "img0.png"), "-l", "a,b", "-m", str(tiny_model_dir)
    )
    assert code == 0 and "img0.png" in out


def test_folder_with_bad_files_reports_them_and_keeps_the_rest(monkeypatch, capsys, tiny_model_dir, image_folder):
    (image_folder / "zero.png").write_bytes(b"")
    (image_folder / "broken.dcm").write_bytes(b"DICM" * 10)
    code, out, err = run_cli(
        monkeypatch, capsys, "zeroshot", str(image_folder), "-l", "x,y", "-m", str(tiny_model_dir), "--json"
    )
    assert code == 1
    assert len(json.loads(out)["predictions"]) == 6
    assert "zero.png" in err and "broken.dcm" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-model-xyz"], "no-such-model-xyz"),
        (["--labels", " , "], "--labels"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_2(monkeypatch, capsys, image_folder, tiny_model_dir, args, message):
    base = {"--model": str(tiny_model_dir), "--labels": "a,b"}
    base.update(dict(zip(args[::2], args[1::2])))
    flat = [x for kv in base.items() for x in kv]
    code, _, err = run_cli(monkeypatch, capsys, "zeroshot", str(image_folder), *flat)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_path_and_single_bad_file(monkeypatch, capsys, tiny_model_dir, tmp_path):
    code, _, err = run_cli(
        monkeypatch, capsys, "zeroshot", str(tmp_path / "nope.png"), "-l", "a,b", "-m", str(tiny_model_dir)
    )
    assert code == 1 and f"skipped {tmp_path / 'nope.png'}: no such file or folder" in err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    code, _, err = run_cli(monkeypatch, capsys, "zeroshot", str(bad), "-l", "a,b", "-m", str(tiny_model_dir))
    assert code == 1 and "bad.png" in err and "Traceback" not in err


def test_missing_required_option_is_a_usage_error(monkeypatch, capsys, image_folder):
    code, _, err = run_cli(monkeypatch, capsys, "zeroshot", str(image_folder))
    assert code == 2 and "--labels" in err


def test_shards_command_writes_readable_shards_and_reports_bad_rows(monkeypatch, capsys, image_folder, tmp_path):
    from openmedclip.data import WebDatasetSource

    rows = [{"image": str(p), "caption": f"image {i}"} for i, p in enumerate(sorted(image_folder.rglob("*.png")))]
    rows.append({"image": str(tmp_path / "missing.png"), "caption": "gone"})
    table = tmp_path / "pairs.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run_cli(monkeypatch, capsys, "shards", str(table), str(tmp_path / "shards"), "--maxcount", "4")
    assert code == 1 and "missing.png" in err
    assert "wrote 2 shard(s) with 6 sample(s)" in out
    source = WebDatasetSource(tmp_path / "shards")
    assert len(source) == 6 and sorted(s.captions[0] for s in source) == sorted(r["caption"] for r in rows[:6])
