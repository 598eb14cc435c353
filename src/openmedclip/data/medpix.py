"""`MedPix`: the MedPix 2.0 JSONL splits (CT/MR images with captions, case-disjoint train/dev)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from openmedclip.data.base import Task
from openmedclip.data.captions import caption_from_fields
from openmedclip.data.files import FileSource, Row
from openmedclip.data.table import read_table
from openmedclip.errors import InvalidInputError

LABEL_FIELDS = {"modality": "Type", "location": "Location Category"}
CASE_FIELDS = ("Title", "Case Diagnosis", "History", "Findings")
VAGUE_PLANES = ("NOS - Not specified", "Other View (see caption)", "Multiple or Montage")
"""`Plane` values that say nothing about the view: left out of field captions."""
VAGUE_LOCATIONS = ("Left Blank", "Generalized")


class MedPix(FileSource):
    """One MedPix 2.0 split: `descriptions_<split>.jsonl` (one record per image) + `data_<split>.jsonl` (cases).

    Captions are the images' `Description.Caption`. Metadata holds `Type` (CT/MR), `U_id` (case id),
    `Location`, `Location Category`, the other `Description` fields and `case` (title, diagnosis, history,
    findings). `label="modality"` or `"location"` exposes `Type` or `Location Category` as multiclass labels;
    without it the source is image-text only. Images are `images/<image>.<ext>` under `folder`.
    `groups["case"]` is each row's case id (`U_id`; a row without one is a case of its own): the images of a
    case are not independent.

    With ``field_captions``, each image has three captions to draw from: its caption, a header built from its
    `Plane`, `Modality`, `Location Category` and `Location` fields ("Axial CT image (noncontrast) of the head
    (brain and neuro)."; brackets and "w/" in `Modality` become plain words), and the header followed by the caption.
    """

    def __init__(
        self,
        folder: str | Path,
        split: str = "train",
        label: Literal["modality", "location"] | None = None,
        *,
        name: str | None = None,
        validate: bool = False,
        read_options: dict | None = None,
        field_captions: bool = False,
    ):
        folder = Path(folder)
        if label is not None and label not in LABEL_FIELDS:
            raise InvalidInputError(f"MedPix label must be one of {list(LABEL_FIELDS)} or None, got {label!r}")
        records, _ = read_table(folder / f"descriptions_{split}.jsonl")
        cases = {case.get("U_id"): case.get("Case") or {} for case in read_table(folder / f"data_{split}.jsonl")[0]}
        image_dir = folder / "images"
        files = {p.stem: p for p in image_dir.iterdir()} if image_dir.is_dir() else {}
        rows, bad = [], []
        for record in records:
            key = str(record.get("image") or "")
            description = record.get("Description") or {}
            value = record.get(LABEL_FIELDS[label]) if label else None
            if key not in files:
                bad.append((key, f"no image file {key}.* in {image_dir}"))
            elif label and not value:
                bad.append((key, f"no {LABEL_FIELDS[label]!r} value"))
            else:
                meta = {k: v for k, v in record.items() if k != "Description"} | {
                    k: v for k, v in description.items() if k != "Caption"
                }
                case = cases.get(record.get("U_id"), {})
                meta["case"] = {k: case.get(k) for k in CASE_FIELDS}
                caption = str(description.get("Caption") or "").strip()
                captions = [caption] if caption else []
                if field_captions:
                    captions = with_field_captions(captions, record)
                rows.append(Row(key, files[key], captions, [value] if value else [], meta))
        task: Task = "multiclass" if label else "image-text"
        super().__init__(
            name or f"medpix2-{split}",
            rows,
            task=task,
            label_names=sorted({name for row in rows for name in row.labels}),
            validate=validate,
            read_options=read_options,
            bad=bad,
        )
        case_ids = [str(meta.get("U_id") or key) for meta, key in zip(self.metadata, self.keys, strict=True)]
        self.groups = {"case": case_ids}


def with_field_captions(captions: list[str], record: dict) -> list[str]:
    """`captions`, the header describing a MedPix record's image, and the header followed by each caption."""
    header = field_header(record)
    if header is None:
        return captions
    return [*captions, header, *(f"{header} {caption}" for caption in captions)]


def field_header(record: dict) -> str | None:
    """"<Plane> <modality> image (<detail>) of the <location category> (<location>)." from a MedPix record, or
    None when it has neither a modality nor a location."""
    description = record.get("Description") or {}
    modality = re.sub(r"[()]", "", str(description.get("Modality") or "")).replace("w/", "with ").strip() or None
    plane = str(description.get("Plane") or "").strip()
    category = str(record.get("Location Category") or "").strip()
    location = str(record.get("Location") or "").strip()
    organ = category
    if location and location not in VAGUE_LOCATIONS and location.lower() != category.lower():
        organ = f"{category} ({location})" if category else location
    if not (modality or organ):
        return None
    return caption_from_fields(
        modality=modality, organ=organ.lower() or None, plane=None if plane in VAGUE_PLANES else plane or None
    )
