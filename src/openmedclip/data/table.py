"""`ImageTextTable`: image paths with one or more captions (and optional labels) from a CSV or JSONL file."""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from openmedclip.data.base import Task, skipped_summary
from openmedclip.data.files import FileSource, Row
from openmedclip.errors import InvalidInputError

CONTEXT_BYTES = 20
"""Bytes of the line before undecodable bytes that an encoding error shows."""


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The text of a file in `encoding` (for UTF-8, a leading byte-order mark is dropped); bytes that do not decode
    raise `InvalidInputError` naming the file, the line and the bytes."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise InvalidInputError(f"{path}: unknown text encoding {encoding!r}") from None
    data = path.read_bytes()
    if codec == "utf-8" and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode(codec)
    except UnicodeDecodeError as err:
        raise InvalidInputError(_decode_problem(path, data, err, codec)) from None


def _decode_problem(path: Path, data: bytes, err: UnicodeDecodeError, codec: str) -> str:
    """``FILE: line N is not UTF-8 text: bytes b'\\xe9' after 'caf'; ...``."""
    newline = b"\n"
    line = data.count(newline, 0, err.start) + 1
    start = max(data.rfind(newline, 0, err.start) + 1, err.start - CONTEXT_BYTES)
    before = data[start : err.start].decode(codec, "replace")
    return (
        f"{path}: line {line} is not {codec.upper()} text: bytes {data[err.start : err.end]!r} after {before!r}; "
        "re-save the file as UTF-8 (or give the source its 'encoding', e.g. latin-1)"
    )


def read_table(path: Path, encoding: str = "utf-8") -> tuple[list[dict], list[str]]:
    """Rows (dicts) and column names of a CSV or JSONL (one JSON object per line) file in `encoding` (see
    `read_text`)."""
    if not path.is_file():
        raise InvalidInputError(f"{path}: table not found")
    text = read_text(path, encoding)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = [_json_row(path, n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        return rows, list(dict.fromkeys(k for row in rows for k in row))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return list(reader), list(reader.fieldnames or [])
    except csv.Error as err:
        raise InvalidInputError(f"{path}: line {reader.line_num} is not valid CSV ({err})") from None


def _json_row(path: Path, n: int, line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{path}: line {n} is not valid JSON ({err.msg})") from None
    if not isinstance(row, dict):
        raise InvalidInputError(f"{path}: line {n} is not a JSON object")
    return row


def _texts(value: object, sep: str | None) -> list[str]:
    """Non-empty stripped strings from a cell: a list (JSONL) or a string split on `sep`."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(sep) if sep else [str(value)]
    return [text for text in (str(item).strip() for item in items) if text]


class ImageTextTable(FileSource):
    """Image-caption pairs from a table; image paths are relative to the table's folder or `root`.

    `caption_col` is one column or several; a cell holds a JSON list (JSONL) or text split on `caption_sep`.
    With `label_col`, each row's labels are its class (multiclass), or a list / text split on `label_sep`
    (multilabel); label names are the sorted distinct values. Other columns go to `metadata`. The file is read as
    `encoding` (default UTF-8, with or without a byte-order mark).
    """

    def __init__(
        self,
        path: str | Path,
        image_col: str = "image",
        caption_col: str | Sequence[str] = "caption",
        root: str | Path | None = None,
        *,
        caption_sep: str | None = "||",
        label_col: str | None = None,
        label_sep: str | None = None,
        name: str | None = None,
        validate: bool = False,
        read_options: dict | None = None,
        encoding: str = "utf-8",
    ):
        path = Path(path)
        records, columns = read_table(path, encoding)
        caption_cols = [caption_col] if isinstance(caption_col, str) else list(caption_col)
        needed = [image_col, *caption_cols, *([label_col] if label_col else [])]
        missing = [col for col in needed if col not in columns]
        if missing:
            raise InvalidInputError(f"{path}: missing column(s) {missing}; columns present: {columns}")
        base = Path(root) if root is not None else path.parent
        rows, bad = [], []
        seen: dict[str, int] = {}
        for n, record in enumerate(records):
            ref = str(record.get(image_col) or "").strip()
            if not ref:
                bad.append((f"row {n}", f"empty {image_col!r} value"))
                continue
            seen[ref] = seen.get(ref, 0) + 1
            key = ref if seen[ref] == 1 else f"{ref}#{seen[ref]}"
            captions = [text for col in caption_cols for text in _texts(record.get(col), caption_sep)]
            labels = _texts(record.get(label_col), label_sep) if label_col else []
            meta = {k: v for k, v in record.items() if k not in needed} | {"row": n}
            rows.append(Row(key, base / ref, captions, labels, meta))
        task = self._task(records, label_col, label_sep)
        if task == "multiclass":
            bad += [(row.key, f"no {label_col!r} label") for row in rows if not row.labels]
            rows = [row for row in rows if row.labels]
        label_names = sorted({label for row in rows for label in row.labels})
        super().__init__(
            name or path.stem,
            rows,
            task=task,
            label_names=label_names,
            validate=validate,
            read_options=read_options,
            bad=bad,
        )
        self.path, self.n_rows = path, len(records)
        self.looked_for = f"images in column {image_col!r} (relative to {base}), captions in {caption_cols}"

    def empty_reason(self) -> str:
        if not self.n_rows:
            return f"{self.path}: the table has no rows; looked for {self.looked_for}"
        return (
            f"{self.path}: the table has no usable rows: {self.n_rows} rows, {skipped_summary(self.skipped)}; "
            f"looked for {self.looked_for}"
        )

    @staticmethod
    def _task(records: list[dict], label_col: str | None, label_sep: str | None) -> Task:
        if not label_col:
            return "image-text"
        if label_sep or any(isinstance(r.get(label_col), list) for r in records):
            return "multilabel"
        return "multiclass"

