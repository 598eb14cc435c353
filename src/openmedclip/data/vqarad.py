"""`VQARAD`: VQA-RAD images (one item per image) with their question-answer pairs; organ as the label."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar, overload

from openmedclip.data.files import FileSource, Row
from openmedclip.data.table import read_text
from openmedclip.errors import InvalidInputError

SPLIT_FILES = {"train": "trainset.json", "test": "testset.json"}
QA_FIELDS = ("qid", "question", "answer", "answer_type", "question_type", "phrase_type")
MODALITY_WORDS = {
    "CT": r"\bct\b",
    "MR": r"\bmri?\b|flair|\bt[12]\b|\bdwi\b|\badc\b|diffusion",
    "X-ray": r"x-?\s?ray|\bcxr\b|plain film",
}


def modality_from_answers(qa: Iterable[dict]) -> str | None:
    """CT / MR / X-ray when the open MODALITY answers of an image name exactly one of them, else None."""
    found = set()
    for pair in qa:
        negated = " not " in str(pair["question"]).lower()
        if pair["question_type"] != "MODALITY" or pair["answer_type"] != "OPEN" or negated:
            continue
        answer = str(pair["answer"]).lower()
        found |= {name for name, pattern in MODALITY_WORDS.items() if re.search(pattern, answer)}
    return found.pop() if len(found) == 1 else None


_V = TypeVar("_V")


@overload
def _clean(value: str) -> str: ...
@overload
def _clean(value: _V) -> _V: ...
def _clean(value: object) -> object:
    """Strip strings (the source has e.g. "CLOSED " next to "CLOSED"); keep other values."""
    return value.strip() if isinstance(value, str) else value


def _read_qa(path: Path) -> list[dict]:
    if not path.is_file():
        raise InvalidInputError(f"{path}: VQA-RAD question file not found")
    try:
        records = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{path}: not valid JSON ({err.msg})") from None
    if not isinstance(records, list):
        raise InvalidInputError(f"{path}: expected a JSON list of question records")
    return records


class VQARAD(FileSource):
    """The images of a VQA-RAD split, sorted by file name.

    VQA-RAD's splits are of questions, not images: every image asked about in "test" is also asked about in
    "train". "train-only" is the images no test question refers to, the split to train on when "test" images
    are evaluated; "train", "test" and "all" are the images their question files refer to.

    Label: the image organ (ABD / CHEST / HEAD). Captions are left empty (built later from the raw fields);
    metadata holds `organ`, `modality` (CT / MR / X-ray when the open modality answers state it, else None),
    `splits` and `qa` (the question-answer records, with their split). Keys are image file stems.
    """

    def __init__(
        self,
        folder: str | Path,
        split: str = "train",
        *,
        name: str | None = None,
        validate: bool = False,
        read_options: dict | None = None,
    ):
        folder = Path(folder)
        if split not in (*SPLIT_FILES, "all", "train-only"):
            raise InvalidInputError(f"VQA-RAD split must be 'train', 'test', 'all' or 'train-only', got {split!r}")
        by_image: dict[str, list[dict]] = {}
        organs: dict[str, set[str]] = {}
        for part in SPLIT_FILES if split in ("all", "train-only") else [split]:
            for record in _read_qa(folder / SPLIT_FILES[part]):
                image_name = str(record.get("image_name", ""))
                pair = {k: _clean(record.get(k)) for k in QA_FIELDS} | {"split": part}
                by_image.setdefault(image_name, []).append(pair)
                organs.setdefault(image_name, set()).add(_clean(record.get("image_organ")) or "")
        rows, bad = [], []
        for image_name in sorted(by_image):
            qa, organ = by_image[image_name], sorted(organs[image_name])
            if split == "train-only" and any(pair["split"] != "train" for pair in qa):
                continue
            key = Path(image_name).stem
            if len(organ) != 1 or not organ[0]:
                bad.append((key, f"organ must be one value, found {organ}"))
                continue
            meta = {
                "image_name": image_name,
                "organ": organ[0],
                "modality": modality_from_answers(qa),
                "splits": sorted({pair["split"] for pair in qa}),
                "qa": qa,
            }
            rows.append(Row(key, folder / "images" / image_name, labels=organ, meta=meta))
        super().__init__(
            name or f"vqa-rad-{split}",
            rows,
            task="multiclass",
            label_names=sorted({row.labels[0] for row in rows}),
            validate=validate,
            read_options=read_options,
            bad=bad,
        )
