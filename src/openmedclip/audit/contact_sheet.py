"""A PNG contact sheet of the closest cross-part pairs: each row the two images side by side with their names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from openmedclip.atomic import write_atomic
from openmedclip.audit.findings import CopyPair
from openmedclip.data.base import DataSource
from openmedclip.io.convert import to_model_input

THUMBNAIL = 160
HEADER = 16
CAPTION = 30
ROW = HEADER + THUMBNAIL + CAPTION + 12


def _thumbnail(source: DataSource, key: str) -> Image.Image:
    picture = to_model_input(source.image(source.keys.index(key)))
    scale = THUMBNAIL / max(picture.size)
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), resample)
    tile = Image.new("RGB", (THUMBNAIL, THUMBNAIL), "black")
    tile.paste(picture, ((THUMBNAIL - picture.width) // 2, (THUMBNAIL - picture.height) // 2))
    return tile


def _label(pair: CopyPair, first: bool) -> str:
    part, key, labels = ((pair.first_part, pair.first_key, pair.first_labels) if first
                         else (pair.second_part, pair.second_key, pair.second_labels))
    return f"{key.rsplit('/', 1)[-1]} {part}\n{', '.join(labels)[:24]}"


def write_contact_sheet(pairs: Sequence[CopyPair], sources: Mapping[str, DataSource], path: str | Path) -> Path:
    """Draw ``pairs`` (at most a few dozen) into a PNG at ``path``: per row, both images, their part, key and labels,
    and the pair's kind and distance."""
    path = Path(path)
    width = 2 * THUMBNAIL + 3 * 8
    height = max(1, len(pairs)) * ROW + 8
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    if not pairs:
        draw.text((8, 8), "no cross-part copies", fill="black")
    for row, pair in enumerate(pairs):
        top = 8 + row * ROW
        draw.text((8, top), f"{pair.kind}, pHash distance {pair.distance}"
                  + (f", cosine {pair.cosine:.3f}" if pair.cosine is not None else "")
                  + (", labels differ" if pair.conflicting else ""), fill="darkred" if pair.conflicting else "black")
        for column, (part, key) in enumerate(((pair.first_part, pair.first_key),
                                              (pair.second_part, pair.second_key))):
            left = 8 + column * (THUMBNAIL + 8)
            sheet.paste(_thumbnail(sources[part], key), (left, top + HEADER))
            draw.text((left, top + HEADER + THUMBNAIL + 2), _label(pair, column == 0), fill="black")
    write_atomic(path, lambda handle: sheet.save(handle, format="PNG"))
    return path
