"""Helpers for the index tests: a small mixed archive of PNG and DICOM files (with header metadata) and one
corrupt file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dicom_files import build_dicom

DICOMS = {
    "ct/chest1.dcm": {"Modality": "CT", "BodyPartExamined": "CHEST", "series": "1.2.3.1"},
    "ct/chest2.dcm": {"Modality": "CT", "BodyPartExamined": "CHEST", "series": "1.2.3.1"},
    "ct/abdomen.dcm": {"Modality": "CT", "BodyPartExamined": "ABDOMEN", "series": "1.2.3.2"},
    "mr/head.dcm": {"Modality": "MR", "BodyPartExamined": "HEAD", "series": "1.2.4.1"},
}
STUDY_UID = "1.2.3"
CORRUPT = "broken.png"


def write_png(path: Path, seed: int, shape: tuple[int, ...] = (40, 48, 3)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def write_dicom(path: Path, seed: int, *, Modality: str, BodyPartExamined: str, series: str,
                rows: int = 36, columns: int = 44) -> Path:
    """An uncompressed 16-bit Secondary Capture DICOM with the given header fields."""
    pixels = np.random.default_rng(seed).integers(0, 4000, (rows, columns), dtype=np.uint16)
    ds = build_dicom(pixels, "MONOCHROME2", 12, Modality=Modality, BodyPartExamined=BodyPartExamined,
                     StudyInstanceUID=STUDY_UID, SeriesInstanceUID=series)
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def make_archive(root: Path, n_png: int = 8) -> Path:
    """``n_png`` PNGs (RGB and grey, in sub-folders), the :data:`DICOMS`, and one truncated PNG."""
    for i in range(n_png):
        write_png(root / ("scans" if i % 2 else "photos") / f"img{i:02d}.png", i,
                  (40 + i, 48, 3) if i % 3 else (40, 44 + i))
    for k, (name, fields) in enumerate(DICOMS.items()):
        write_dicom(root / name, 100 + k, **fields)
    good = (root / "photos" / "img00.png").read_bytes()
    (root / CORRUPT).write_bytes(good[: len(good) // 3])
    return root
