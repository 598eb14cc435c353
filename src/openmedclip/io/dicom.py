"""DICOM through pydicom: Modality LUT, header VOI window, MONOCHROME1 inversion, frames and colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder, pixel_array
from pydicom.uid import UID, JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes, RLETransferSyntaxes

from openmedclip.errors import ImageReadError
from openmedclip.io.checks import check_pixel_count, choose_index, one_line
from openmedclip.io.image import MedicalImage

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_DECODER_PACKAGES: dict[str, str] = {
    **dict.fromkeys(JPEGTransferSyntaxes, "pylibjpeg pylibjpeg-libjpeg (or python-gdcm)"),
    **dict.fromkeys(JPEGLSTransferSyntaxes, "pylibjpeg pylibjpeg-libjpeg (or pyjpegls)"),
    **dict.fromkeys(JPEG2000TransferSyntaxes, "pylibjpeg pylibjpeg-openjpeg (or python-gdcm)"),
    **dict.fromkeys(RLETransferSyntaxes, "pylibjpeg pylibjpeg-rle"),
}


def read_dicom(path: Path, *, frame: int | None = None) -> MedicalImage:
    """Read one frame of a DICOM image (default: the middle frame).

    Grey frames go through the Modality LUT (LUT sequence or rescale slope/intercept, also from enhanced
    multi-frame functional groups), so CT comes out in HU. MONOCHROME1 frames are reflected as
    ``offset - value``, offset being the sum of the smallest and largest representable values after the
    Modality LUT, and the header window is reflected the same way. The header window (Window Center/Width,
    first value when several; else the input range of a VOI LUT sequence, as a linear stand-in) is
    recorded in ``window``, not applied. Colour frames (RGB, YBR_*, PALETTE COLOR) come out as RGB.
    """
    ds = _dataset(path)
    rows, columns = _dimensions(path, ds)
    check_pixel_count(path, rows, columns)
    n_frames = int(ds.get("NumberOfFrames") or 1)
    index = choose_index(path, frame, n_frames, n_frames // 2, "frame")
    syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    _require_decoder(path, syntax)
    try:
        stored = pixel_array(ds, index=index)
    except Exception as exc:
        raise ImageReadError(path, f"cannot decode DICOM pixel data ({_syntax_name(syntax)}): {one_line(exc)}") from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    meta = {
        "format": "dicom",
        "bit_depth": int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8),
        "frame": index,
        "n_frames": n_frames,
        "inverted": False,
        "spacing": _spacing(ds, index),
        "transfer_syntax": _syntax_name(syntax),
        "photometric_original": photometric,
    }
    if "PatientOrientation" in ds and ds.PatientOrientation:
        meta["patient_orientation"] = tuple(str(value) for value in ds.PatientOrientation)
    modality = str(ds.Modality) if ds.get("Modality") else None
    if photometric == "PALETTE COLOR":
        stored = apply_color_lut(stored, ds)
        if stored.dtype == np.uint16:
            stored = stored / 257.0
        meta["bit_depth"] = 8
    if stored.ndim == 3:
        return MedicalImage(stored.astype(np.float32), str(path), modality, photometric="RGB", meta=meta)
    pixels, window = _grey(ds, index, stored, photometric, meta)
    return MedicalImage(pixels, str(path), modality, photometric="MONOCHROME2", window=window, meta=meta)


def _dataset(path: Path) -> Dataset:
    """Parse the file (also without the 128-byte preamble) and require pixel data."""
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:
        raise ImageReadError(path, f"not a readable DICOM file: {one_line(exc)}") from exc
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        if getattr(ds, "preamble", None) is None:
            raise ImageReadError(path, "not a DICOM file (no 'DICM' preamble and no pixel data found)")
        raise ImageReadError(path, "DICOM file has no pixel data (not an image object, or the file is truncated)")
    return ds


def _dimensions(path: Path, ds: Dataset) -> tuple[int, int]:
    try:
        return int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ImageReadError(path, "DICOM image lacks valid Rows/Columns") from exc


def _syntax_name(syntax: UID | None) -> str:
    """'JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)', the bare UID when unnamed, or a placeholder."""
    if not syntax:
        return "unknown transfer syntax"
    return f"{syntax.name} ({syntax})" if syntax.name != str(syntax) else str(syntax)


def _require_decoder(path: Path, syntax: UID | None) -> None:
    """Raise naming the transfer syntax and the package to install when no decoder can handle it."""
    if not syntax:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise ImageReadError(path, f"pixel data in {_syntax_name(syntax)} cannot be decoded by pydicom") from exc
    if not decoder.is_available:
        packages = _DECODER_PACKAGES.get(str(syntax)) or "; ".join(decoder.missing_dependencies)
        raise ImageReadError(path, f"no decoder installed for {_syntax_name(syntax)}; install: pip install {packages}")


def _grey(
    ds: Dataset, index: int, stored: np.ndarray, photometric: str, meta: dict
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Apply the Modality LUT and MONOCHROME1 inversion; return pixels and the header window."""
    if ds.get("ModalityLUTSequence"):
        source: Dataset | None = ds
    else:
        source = _attribute_source(ds, index, "PixelValueTransformationSequence", "RescaleSlope")
    values = apply_modality_lut(stored, source) if source is not None else stored
    if source is not None and "RescaleSlope" in source and "RescaleIntercept" in source:
        meta["rescale_slope"] = float(source.RescaleSlope)
        meta["rescale_intercept"] = float(source.RescaleIntercept)
    meta["modality_lut"] = bool(ds.get("ModalityLUTSequence"))
    window, meta["window_source"] = _header_window(ds, index)
    values = values.astype(np.float64)
    if photometric == "MONOCHROME1":
        offset = _inversion_offset(ds, stored, source)
        values = offset - values
        window = (offset - window[0], window[1]) if window else None
        meta["inverted"] = True
        meta["inversion_offset"] = offset
    return values.astype(np.float32), window


def _inversion_offset(ds: Dataset, stored: np.ndarray, source: Dataset | None) -> float:
    """Smallest plus largest value the frame can hold after the Modality LUT."""
    if np.issubdtype(stored.dtype, np.floating):
        return float(stored.min()) + float(stored.max())
    bits = int(ds.get("BitsStored") or stored.dtype.itemsize * 8)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    bounds = np.array([low, high], dtype=np.int64)
    if source is not None:
        bounds = apply_modality_lut(bounds, source)
    return float(np.min(bounds)) + float(np.max(bounds))


def _header_window(ds: Dataset, index: int) -> tuple[tuple[float, float] | None, str | None]:
    """The header's (centre, width) and where it came from ('header', 'voi_lut_range'), or (None, None)."""
    source = _attribute_source(ds, index, "FrameVOILUTSequence", "WindowCenter")
    if source is not None:
        try:
            centre, width = _first(source.WindowCenter), _first(source.get("WindowWidth"))
        except (TypeError, ValueError, IndexError):
            centre, width = 0.0, 0.0
        if width > 0:
            return (centre, width), "header"
    luts = ds.get("VOILUTSequence")
    if luts and luts[0].get("LUTDescriptor"):
        entries, first = int(luts[0].LUTDescriptor[0]) or 65536, int(luts[0].LUTDescriptor[1])
        if entries > 1:
            return (first + (entries - 1) / 2.0, float(entries - 1)), "voi_lut_range"
    return None, None


def _first(value: object) -> float:
    """The first of a possibly multi-valued DICOM number."""
    return float(value[0] if isinstance(value, (MultiValue, list, tuple)) else value)


def _spacing(ds: Dataset, index: int) -> tuple[float, float] | None:
    """Row and column spacing in mm (Pixel Spacing, else Imager Pixel Spacing), or None."""
    candidates = (
        _attribute_source(ds, index, "PixelMeasuresSequence", "PixelSpacing"),
        ds.get("ImagerPixelSpacing"),
    )
    for candidate in candidates:
        values = candidate.PixelSpacing if isinstance(candidate, Dataset) else candidate
        try:
            row, column = (float(value) for value in values)
        except (TypeError, ValueError):
            continue
        if row > 0 and column > 0:
            return row, column
    return None


def _attribute_source(ds: Dataset, index: int, group: str, keyword: str) -> Dataset | None:
    """The dataset holding ``keyword`` for frame ``index``: top level, else per-frame, else shared functional group."""
    if keyword in ds:
        return ds
    for sequence, position in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(sequence)
        if groups and position < len(groups):
            items = groups[position].get(group)
            if items and keyword in items[0]:
                return items[0]
    return None
