"""`write_shards`: convert any `DataSource` into WebDataset tar shards (PNG image, captions, labels, metadata)."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import numpy as np

from openmedclip.atomic import write_text
from openmedclip.data.base import DataSource, Sample
from openmedclip.errors import InvalidInputError
from openmedclip.io import to_model_input

DATASET_INFO = "dataset.json"


def _plain(value: object) -> object:
    """JSON fallback: numpy scalars and arrays as Python values, anything else as its string."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    return str(value)


def sample_record(n: int, sample: Sample) -> dict[str, object]:
    """The tar entries of one sample: `png` (the 8-bit picture a model sees; grey stays grey), `txt` (first caption)
    and `json` (key, captions, labels, meta)."""
    png = BytesIO()
    picture = to_model_input(sample.image)
    (picture.convert("L") if sample.image.pixels.ndim == 2 else picture).save(png, format="PNG")
    info = {"key": sample.key, "captions": sample.captions, "labels": sample.labels, "meta": sample.meta}
    return {
        "__key__": f"{n:08d}",
        "png": png.getvalue(),
        "txt": (sample.captions[0] if sample.captions else "").encode("utf-8"),
        "json": json.dumps(info, default=_plain).encode("utf-8"),
    }


def write_shards(
    source: DataSource,
    out_dir: str | Path,
    *,
    maxcount: int = 10_000,
    maxsize: float = 1e9,
    prefix: str = "shard",
) -> list[Path]:
    """Write every readable sample of `source` to `<out_dir>/<prefix>-NNNNNN.tar`; returns the shard paths.

    A shard is closed once it holds `maxcount` samples or `maxsize` bytes. `<out_dir>/dataset.json` records
    the source's name, task, label names, sample count, shard names and skipped items, so that
    `WebDatasetSource` restores the same label columns. Unreadable items are skipped and reported by the source.
    A folder that already holds `<prefix>-*.tar` shards is refused (stale shards would be read back too).
    """
    import webdataset as wds

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    old = sorted(p.name for p in out.glob(f"{prefix}-*.tar"))
    if old:
        raise InvalidInputError(f"{out}: already holds shards {old[:3]}; write to an empty folder")
    pattern = str(out).replace("%", "%%") + f"/{prefix}-%06d.tar"
    written: list[str] = []
    count = 0
    with wds.ShardWriter(pattern, maxcount=maxcount, maxsize=maxsize, post=written.append, verbose=0) as sink:
        for sample in source:
            sink.write(sample_record(count, sample))
            count += 1
    info = {
        "name": source.name,
        "task": source.task,
        "label_names": source.label_names,
        "count": count,
        "shards": [Path(f).name for f in written],
        "skipped": source.skipped,
    }
    write_text(out / DATASET_INFO, json.dumps(info, indent=2, default=_plain))
    return [Path(f) for f in written]
